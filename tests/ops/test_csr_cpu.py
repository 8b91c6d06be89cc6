"""The compiled CPU kernels against NumPy."""

import numpy as np
import pytest

from keras_sparse import Connectivity
from keras_sparse.connectivity import random_connectivity
from keras_sparse.ops import csr_cpu


@pytest.mark.parametrize(
    "shape, density, batch",
    [
        ((50, 7), 0.2, 5),
        ((300, 40), 0.01, 33),
        ((64, 64), 1.0, 1),
        ((2000, 3), 0.002, 17),
        # several sample blocks with a ragged last one, inputs past one tile
        ((37, 300), 0.3, 300),
        ((9180, 230), 0.01, 259),
        ((9180, 230), 0.001, 259),
    ],
)
def test_kernels_match_numpy(shape, density, batch):
    conn = random_connectivity(*shape, density=density, seed=0, min_fan_in=1)
    plan = csr_cpu.CSRPlan(conn)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, shape[0])).astype("float32")
    dy = rng.standard_normal((batch, shape[1])).astype("float32")
    v = rng.standard_normal(conn.nnz).astype("float32")
    w = np.zeros(shape)
    w[conn.input_indices, conn.output_indices] = v
    np.testing.assert_allclose(csr_cpu.forward(plan, x, v), x @ w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(csr_cpu.input_grad(plan, dy, v), dy @ w.T, rtol=1e-4, atol=1e-4)
    expected = (x.astype(np.float64).T @ dy)[conn.input_indices, conn.output_indices]
    np.testing.assert_allclose(csr_cpu.values_grad(plan, x, dy), expected, rtol=1e-4, atol=1e-4)
    # The forward pass that saves x's active columns, and the value gradient from them.
    y, xt = csr_cpu.forward(plan, x, v, save_x=True)
    np.testing.assert_allclose(y, x @ w, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(xt, x[:, plan.active].T)
    np.testing.assert_allclose(
        csr_cpu.values_grad_saved(plan, xt, dy), expected, rtol=1e-4, atol=1e-4
    )


def test_block_size_rule():
    plan = csr_cpu.CSRPlan(random_connectivity(100, 10, density=0.1, seed=0))
    threads = csr_cpu.numba.get_num_threads()
    assert plan.block(1) == 8
    assert plan.block(10_000) == 128
    assert plan.block(64 * threads) == 64


def test_saves_x_rule():
    # Few inputs with a connection: the forward pass keeps their columns.
    assert csr_cpu.CSRPlan(random_connectivity(2000, 30, nnz=30, seed=0)).saves_x
    # Many connections per input: the value gradient is compute-bound.
    assert csr_cpu.CSRPlan(random_connectivity(9180, 230, density=0.2, seed=0)).saves_x
    assert not csr_cpu.CSRPlan(random_connectivity(9180, 230, density=0.01, seed=0)).saves_x


def test_empty_batch():
    plan = csr_cpu.CSRPlan(random_connectivity(20, 4, density=0.5, seed=0))
    v = np.ones(plan.in_indices.size, np.float32)
    assert csr_cpu.forward(plan, np.zeros((0, 20), np.float32), v).shape == (0, 4)
    assert csr_cpu.input_grad(plan, np.zeros((0, 4), np.float32), v).shape == (0, 20)
    np.testing.assert_array_equal(
        csr_cpu.values_grad(plan, np.zeros((0, 20), np.float32), np.zeros((0, 4), np.float32)), 0
    )
    y, xt = csr_cpu.forward(plan, np.zeros((0, 20), np.float32), v, save_x=True)
    assert y.shape == (0, 4) and xt.shape == (plan.active.size, 0)
    np.testing.assert_array_equal(csr_cpu.values_grad_saved(plan, xt, np.zeros((0, 4), np.float32)), 0)


def test_non_contiguous_inputs_and_empty_rows():
    conn = Connectivity([0, 3], [1, 1], shape=(5, 3), empty_outputs="ignore")
    plan = csr_cpu.CSRPlan(conn)
    x = np.asfortranarray(np.arange(20, dtype=np.float32).reshape(4, 5))
    v = np.array([2.0, -1.0], np.float32)
    out = csr_cpu.forward(plan, x, v)
    np.testing.assert_array_equal(out[:, [0, 2]], 0)
    np.testing.assert_allclose(out[:, 1], 2 * x[:, 0] - x[:, 3])
