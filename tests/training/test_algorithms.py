"""The NumPy drop/grow rules against independent dense-mask references."""

import numpy as np
import pytest

from keras_sparse.connectivity import random_connectivity
from keras_sparse.training import algorithms as alg


def dense_topk_reference(x, dy, mask, k):
    """Full dense gradient, absent positions only, stable sort (ties: lower pos)."""
    g = np.abs(x.T.astype(np.float64) @ dy.astype(np.float64)).ravel()
    g[mask.ravel()] = -np.inf
    order = np.argsort(-g, kind="stable")
    return np.sort(order[:k])


@pytest.mark.parametrize("block_size", [1, 7, 40, 10_000])
def test_blocked_gradient_topk_matches_dense_reference(block_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 30))
    dy = rng.normal(size=(16, 20))
    conn = random_connectivity(30, 20, density=0.2, seed=3)
    mask = conn.to_dense()
    occupied = np.sort(alg.flat_positions(conn))
    for k in (1, 25, 200, 480):
        got = alg.top_gradient_positions(x, dy, occupied, k, block_size=block_size)
        np.testing.assert_array_equal(got, dense_topk_reference(x, dy, mask, k))


def test_blocked_gradient_topk_ties_prefer_lower_position():
    x = np.ones((2, 6))
    dy = np.ones((2, 4))  # every gradient entry equal
    occupied = np.array([0, 5, 9], dtype=np.int64)
    got = alg.top_gradient_positions(x, dy, occupied, 5, block_size=4)
    np.testing.assert_array_equal(got, [1, 2, 3, 4, 6])


def test_blocked_gradient_refuses_too_many():
    with pytest.raises(ValueError, match="free"):
        alg.top_gradient_positions(np.ones((1, 2)), np.ones((1, 2)), np.arange(3), 2)


def test_drop_smallest_and_scores():
    values = np.array([0.5, -0.1, 0.1, 2.0, -0.05])
    np.testing.assert_array_equal(
        alg.drop_smallest(alg.kernel_scores(values), 3), [1, 2, 4]
    )
    kernels = np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(alg.kernel_scores(kernels), [5.0, 1.0, np.sqrt(2)])
    assert alg.drop_smallest(np.zeros(3), 0).size == 0


@pytest.mark.parametrize("density", [0.01, 0.3, 0.7, 0.95])
def test_random_absent_positions(density):
    total = 400
    rng = np.random.default_rng(1)
    occupied = np.sort(rng.choice(total, int(density * total), replace=False))
    free = total - occupied.size
    count = max(1, free // 2)
    a = alg.random_absent_positions(
        total, occupied, count, np.random.default_rng([5, 7])
    )
    b = alg.random_absent_positions(
        total, occupied, count, np.random.default_rng([5, 7])
    )
    np.testing.assert_array_equal(a, b)  # stateless: same seed, same draw
    assert a.size == count == np.unique(a).size
    assert not np.isin(a, occupied).any()
    c = alg.random_absent_positions(
        total, occupied, count, np.random.default_rng([5, 8])
    )
    assert not np.array_equal(a, c)


def test_random_absent_positions_uniform():
    # Growing 1 of 10 free positions, 20,000 times: each ~2,000 (chi-square).
    occupied = np.arange(0, 20, 2)
    counts = np.zeros(20)
    for s in range(20_000):
        counts[
            alg.random_absent_positions(20, occupied, 1, np.random.default_rng(s))
        ] += 1
    assert counts[occupied].sum() == 0
    expected = 2000.0
    chi2 = ((counts[1::2] - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # 9 degrees of freedom, p = 0.001


@pytest.mark.filterwarnings("ignore::keras_sparse.connectivity.EmptyOutputWarning")
def test_rebuild_connectivity_source():
    conn = random_connectivity(5, 4, density=0.4, seed=0)
    flat = alg.flat_positions(conn)
    keep = np.array([0, 2, 3, 5, 6, 7])
    dropped = np.setdiff1d(np.arange(conn.nnz), keep)
    occupied = set(flat[keep].tolist())
    free = [p for p in range(20) if p not in occupied and p not in set(flat.tolist())]
    grown = np.array(sorted([free[0], free[3], int(flat[dropped[0]])]))
    new, source = alg.rebuild_connectivity(conn, keep, grown)
    assert new.nnz == keep.size + grown.size
    new_flat = alg.flat_positions(new)
    old_index = {int(p): i for i, p in enumerate(flat)}
    for e, p in enumerate(new_flat):
        assert source[e] == old_index.get(int(p), -1)
    assert (source == -1).sum() == 2  # the re-grown dropped one keeps its index


def test_schedules_by_hand():
    # s_f = 0.9, halfway: s = 0.9 + (0 - 0.9) * 0.5**3 = 0.7875 -> density 0.2125
    assert alg.cubic_density(50, 0, 100, 1.0, 0.1) == pytest.approx(0.2125)
    assert alg.cubic_density(0, 0, 100, 1.0, 0.1) == 1.0
    assert alg.cubic_density(150, 0, 100, 1.0, 0.1) == pytest.approx(0.1)
    assert alg.cubic_density(25, 0, 100, 1.0, 0.1) == pytest.approx(
        1 - 0.9 * (1 - 0.75**3)
    )
    assert alg.cosine_drop_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert alg.cosine_drop_fraction(100, 0.3, 100) == pytest.approx(0.0)
    assert alg.cosine_drop_fraction(25, 0.3, 100) == pytest.approx(
        0.15 * (1 + np.cos(np.pi / 4))
    )
    assert alg.cosine_drop_fraction(101, 0.3, 100) == 0.0
    assert alg.cosine_drop_fraction(7, 0.3, None) == 0.3


def test_conv_kernel_growth_by_norm():
    g = np.zeros((3, 3, 2, 3))
    g[..., 0, 1] = 1.0  # norm 3
    g[..., 1, 2] = 0.5  # norm 1.5
    g[0, 0, 1, 0] = 2.0  # norm 2
    occupied = np.array([1], dtype=np.int64)  # (0, 1) exists
    got = alg.top_kernel_gradient_positions(g, occupied, 2)
    np.testing.assert_array_equal(got, [3, 5])  # (1, 0) and (1, 2)
