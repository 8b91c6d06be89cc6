"""ERK / uniform layer densities against values computed by hand."""

import math

import pytest

from keras_sparse.training import layer_densities


def test_uniform_gives_every_layer_the_density():
    d = layer_densities({"a": (10, 20), "b": (3, 3, 4, 8)}, 0.25)
    assert d == {"a": 0.25, "b": 0.25}


def test_erk_two_dense_layers_by_hand():
    # a: 100x100, raw (100+100)/10000 = 0.02, N = 10000
    # b: 100x10,  raw (100+10)/1000 = 0.11,  N = 1000
    # eps = 0.1 * 11000 / (0.02 * 10000 + 0.11 * 1000) = 1100 / 310
    d = layer_densities({"a": (100, 100), "b": (100, 10)}, 0.1, "erk")
    eps = 1100 / 310
    assert d["a"] == pytest.approx(0.02 * eps, rel=1e-12)
    assert d["b"] == pytest.approx(0.11 * eps, rel=1e-12)
    # the budget is met exactly
    assert d["a"] * 10000 + d["b"] * 1000 == pytest.approx(1100, rel=1e-12)


def test_erk_layer_over_one_is_made_dense_and_resolved():
    # density 0.5: eps = 5500/310 -> b would get 0.11 * 17.7 = 1.95 > 1: dense.
    # Re-solved: eps * 0.02 * 10000 = 0.5 * 11000 - 1000 = 4500 -> a: 0.45.
    d = layer_densities({"a": (100, 100), "b": (100, 10)}, 0.5, "erk")
    assert d["b"] == 1.0
    assert d["a"] == pytest.approx(0.45, rel=1e-12)


def test_erk_convolution_includes_kernel_dims():
    # conv 3x3x16x32: raw = (3+3+16+32)/(3*3*16*32) = 54/4608, N = 4608
    # dense 512x10:   raw = 522/5120, N = 5120
    shapes = {"conv": (3, 3, 16, 32), "fc": (512, 10)}
    d = layer_densities(shapes, 0.2, "erk")
    eps = 0.2 * (4608 + 5120) / (54 + 522)
    assert d["conv"] == pytest.approx(eps * 54 / 4608, rel=1e-12)
    assert d["fc"] == pytest.approx(eps * 522 / 5120, rel=1e-12)


def test_erk_power_scale():
    d = layer_densities({"a": (100, 100), "b": (100, 10)}, 0.1, "erk", 0.5)
    ra, rb = math.sqrt(0.02), math.sqrt(0.11)
    eps = 1100 / (ra * 10000 + rb * 1000)
    assert d["a"] == pytest.approx(eps * ra) and d["b"] == pytest.approx(eps * rb)


def test_erk_three_layers_two_rounds():
    # MLP 784-300-100-10 at density 0.1: the 100x10 layer goes dense first.
    shapes = {"l1": (784, 300), "l2": (300, 100), "l3": (100, 10)}
    d = layer_densities(shapes, 0.1, "erk")
    sizes = {"l1": 235200, "l2": 30000, "l3": 1000}
    raw = {"l1": 1084 / 235200, "l2": 400 / 30000, "l3": 110 / 1000}
    eps = 0.1 * sum(sizes.values()) / sum(raw[k] * sizes[k] for k in sizes)
    assert eps * raw["l3"] > 1  # the first solve is invalid...
    eps2 = (0.1 * sum(sizes.values()) - 1000) / (1084 + 400)
    assert d["l3"] == 1.0
    assert d["l1"] == pytest.approx(eps2 * raw["l1"])
    assert d["l2"] == pytest.approx(eps2 * raw["l2"])
    total = sum(d[k] * sizes[k] for k in sizes)
    assert total == pytest.approx(0.1 * sum(sizes.values()))


@pytest.mark.parametrize("density", [0, -0.1, 1.5, float("nan"), "0.5", True])
def test_bad_density(density):
    with pytest.raises(ValueError, match="Received an invalid value for `density`"):
        layer_densities({"a": (2, 2)}, density)


def test_bad_distribution_and_shapes():
    with pytest.raises(ValueError, match="`distribution`"):
        layer_densities({"a": (2, 2)}, 0.5, "random")
    with pytest.raises(ValueError, match="empty"):
        layer_densities({}, 0.5)
    with pytest.raises(ValueError, match="positive"):
        layer_densities({"a": (0, 2)}, 0.5)
