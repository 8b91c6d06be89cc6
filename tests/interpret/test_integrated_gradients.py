"""Integrated gradients on every node vs a NumPy finite-difference reference."""

import keras
import numpy as np
import pytest

from keras_sparse.connectivity import random_connectivity
from keras_sparse.interpret import (
    degree_adjusted,
    input_attributions,
    integrated_gradients,
    node_attributions,
    node_degrees,
)
from keras_sparse.models import build_pathway_network

STEPS = 16


def as_numpy(t):
    return np.asarray(
        keras.ops.convert_to_numpy(keras.ops.stop_gradient(t)), np.float64
    )


def small_network(level_heads, task="classification", num_classes=2, seed=0):
    genes = random_connectivity(12, 6, density=0.35, seed=seed, min_fan_in=1)
    mid = random_connectivity(6, 3, density=0.5, seed=seed + 1, min_fan_in=1)
    top = random_connectivity(3, 2, density=0.7, seed=seed + 2, min_fan_in=1)
    rng = np.random.default_rng(seed)
    mean, var = rng.normal(5, 1, 12), rng.uniform(0.5, 2, 12)
    keras.utils.set_random_seed(seed)
    model = build_pathway_network(
        genes, [mid, top], task=task, num_classes=num_classes, level_heads=level_heads,
        input_mean=mean, input_variance=var,
    )  # fmt: skip
    # Larger weights and biases than the initializer's, so the network is
    # far from linear and the test can tell a wrong path from a right one.
    for w in model.weights:
        w.assign(rng.normal(0, 1.0, tuple(w.shape)).astype("float32"))
    return model, mean, var


def numpy_network(model, mean, var):
    """The same network in float64 NumPy, returned as per-level functions."""
    levels = ["pathways", "level_1", "level_2"]
    kernels = [as_numpy(model.get_layer(n).kernel) for n in levels]
    biases = [as_numpy(model.get_layer(n).bias) for n in levels]
    names = {layer.name for layer in model.layers}
    heads = "head_0" in names

    def head(name, h):
        layer = model.get_layer(name)
        w, b = (as_numpy(v) for v in layer.weights)
        z = h @ w + b
        if layer.activation is keras.activations.sigmoid:
            return 1 / (1 + np.exp(-z))
        if layer.activation is keras.activations.softmax:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return z

    def from_level(k, h, out_index=0):
        outs = []
        for j in range(k, 3):
            if j > k:
                h = np.tanh(h @ kernels[j] + biases[j])
            if heads:
                outs.append(head(f"head_{j}", h))
        out = sum(outs) / 3 if heads else head("head", h)
        return out[:, out_index]

    def acts(x):
        h = (x - mean) / np.sqrt(var)
        out = []
        for j in range(3):
            h = np.tanh(h @ kernels[j] + biases[j])
            out.append(h)
        return out

    def whole(x, out_index=0):
        return from_level(0, acts(x)[0], out_index)

    return acts, from_level, whole


def numpy_ig(f, x, b, steps=STEPS, eps=1e-5):
    """Midpoint-rule IG with central finite-difference gradients."""
    total = np.zeros_like(x)
    for a in (np.arange(steps) + 0.5) / steps:
        point = b + a * (x - b)
        for i in range(x.shape[1]):
            up, down = point.copy(), point.copy()
            up[:, i] += eps
            down[:, i] -= eps
            total[:, i] += (f(up) - f(down)) / (2 * eps)
    return (x - b) * total / steps


@pytest.mark.parametrize("level_heads", [False, True])
def test_node_attributions_match_finite_differences(level_heads):
    model, mean, var = small_network(level_heads)
    acts, from_level, whole = numpy_network(model, mean, var)
    rng = np.random.default_rng(1)
    x = rng.normal(5, 1.5, (5, 12))
    baseline = x.mean(axis=0) + 0.3
    # The float32 model agrees with the float64 reference first.
    np.testing.assert_allclose(
        as_numpy(model(x.astype("float32"))).ravel(),
        whole(x), rtol=1e-4, atol=1e-5,
    )  # fmt: skip
    got = node_attributions(model, x, baseline, steps=STEPS)
    assert list(got) == ["inputs", "pathways", "level_1", "level_2"]
    want = {"inputs": numpy_ig(whole, x, np.broadcast_to(baseline, x.shape))}
    a_x, a_b = acts(x), acts(baseline[None])
    for k, name in enumerate(["pathways", "level_1", "level_2"]):
        want[name] = numpy_ig(
            lambda h, k=k: from_level(k, h),
            a_x[k],
            np.broadcast_to(a_b[k], a_x[k].shape),
        )
    for name in want:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(
            got[name], want[name], rtol=2e-3, atol=2e-5, err_msg=name
        )
        # Not trivially zero: the test can fail.
        assert np.abs(want[name]).max() > 1e-3
    # Completeness (many steps): a level's attributions sum to F(x) - F(b)
    # as seen from that level.
    fine = node_attributions(model, x, baseline, steps=256, include_inputs=False)
    for k, name in enumerate(["pathways", "level_1", "level_2"]):
        gap = from_level(k, a_x[k]) - from_level(
            k, np.broadcast_to(a_b[k], a_x[k].shape)
        )
        np.testing.assert_allclose(fine[name].sum(axis=1), gap, atol=2e-4)


def test_softmax_output_index_and_regression():
    model, mean, var = small_network(False, num_classes=3)
    acts, from_level, whole = numpy_network(model, mean, var)
    x = np.random.default_rng(2).normal(5, 1, (3, 12))
    b = np.full(12, 5.0)
    with pytest.raises(ValueError, match="pass `output_index`"):
        node_attributions(model, x, b, steps=4)
    got = node_attributions(
        model, x, b, steps=STEPS, output_index=2, include_inputs=False
    )
    a_x, a_b = acts(x), acts(b[None])
    want = numpy_ig(
        lambda h: from_level(2, h, 2), a_x[2], np.broadcast_to(a_b[2], a_x[2].shape)
    )
    np.testing.assert_allclose(got["level_2"], want, rtol=2e-3, atol=2e-5)
    model, mean, var = small_network(False, task="regression")
    acts, from_level, whole = numpy_network(model, mean, var)
    got = node_attributions(model, x, b, steps=STEPS)
    want = numpy_ig(whole, x, np.broadcast_to(b, x.shape))
    np.testing.assert_allclose(got["inputs"], want, rtol=2e-3, atol=2e-5)


def test_integrated_gradients_exact_cases_and_errors():
    # F = sum(w * x): IG_i = w_i (x_i - b_i) exactly, with any number of steps.
    w = np.array([1.0, -2.0, 0.5])
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    b = np.array([0.5, 0.5, 0.5])
    ig = integrated_gradients(
        lambda t: keras.ops.sum(t * keras.ops.convert_to_tensor(w, "float32"), axis=1),
        x,
        b,
        steps=1,
    )
    np.testing.assert_allclose(ig, w * (x - b), rtol=1e-6)
    with pytest.raises(ValueError, match="`steps`, expected a positive integer"):
        integrated_gradients(lambda t: t, x, b, steps=0)
    with pytest.raises(ValueError, match="`model`, expected a model built by"):
        node_attributions(
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]), x, b
        )


def test_degrees_and_adjustment():
    model, _, _ = small_network(True)
    degrees = node_degrees(model)
    conns = [
        model.get_layer(n).connectivity for n in ("pathways", "level_1", "level_2")
    ]
    np.testing.assert_array_equal(degrees["inputs"][1], conns[0].fan_out)
    np.testing.assert_array_equal(degrees["pathways"][0], conns[0].fan_in)
    np.testing.assert_array_equal(
        degrees["pathways"][1], conns[1].fan_out + 1
    )  # + head_0
    np.testing.assert_array_equal(degrees["level_2"][1], np.ones(2))  # head_2 only
    scores = np.array([[2.0, 6.0, 1.0]])
    np.testing.assert_allclose(
        degree_adjusted(scores, [0, 3, 0], [1, 4, 0]), [[2.0 / 1.0, 6.0 / 3.0, 0.0]]
    )


@pytest.mark.parametrize("level_heads", [False, True])
def test_input_attributions_by_block_sum_to_input_ig(level_heads):
    """Blocks of the first level split the genes' IG; the split is exact."""
    model, mean, var = small_network(level_heads)
    acts, from_level, whole = numpy_network(model, mean, var)
    rng = np.random.default_rng(3)
    x = rng.normal(5, 1.5, (4, 12))
    baseline = x.mean(axis=0) - 0.2
    got = input_attributions(model, x, baseline, steps=STEPS, blocks=3)
    assert got.shape == (3, 4, 12)
    want = numpy_ig(whole, x, np.broadcast_to(baseline, x.shape))
    np.testing.assert_allclose(got.sum(axis=0), want, rtol=2e-3, atol=2e-5)
    # Block k by finite differences: only the gradient through level-0
    # units 2k, 2k + 1 (the others held at their values on the path).
    k0 = as_numpy(model.get_layer("pathways").kernel)
    b0 = as_numpy(model.get_layer("pathways").bias)

    def through(k):
        cols = np.zeros(6, bool)
        cols[2 * k : 2 * k + 2] = True

        def f(xp, x_fixed):
            s_p, s_f = (xp - mean) / np.sqrt(var), (x_fixed - mean) / np.sqrt(var)
            z = np.where(cols, s_p @ k0, s_f @ k0) + b0
            return from_level(0, np.tanh(z))

        return f

    for k in range(3):
        f = through(k)
        total = np.zeros_like(x)
        for a in (np.arange(STEPS) + 0.5) / STEPS:
            point = baseline + a * (x - baseline)
            for i in range(12):
                up, down = point.copy(), point.copy()
                up[:, i] += 1e-5
                down[:, i] -= 1e-5
                total[:, i] += (f(up, point) - f(down, point)) / 2e-5
        np.testing.assert_allclose(
            got[k], (x - baseline) * total / STEPS, rtol=2e-3, atol=2e-5
        )
    assert np.abs(got[1]).max() > 1e-3
    with pytest.raises(ValueError, match="`blocks`, expected a positive integer"):
        input_attributions(model, x, baseline, blocks=4)
