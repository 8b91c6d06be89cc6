"""The compiled CPU kernels against NumPy."""

import keras
import numpy as np
import pytest

from keras_sparse import Connectivity
from keras_sparse.connectivity import random_connectivity
from keras_sparse.ops import csr_cpu


def _case(shape, density, batch, dtype="float32"):
    conn = random_connectivity(*shape, density=density, seed=0, min_fan_in=1)
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, shape[0])).astype(dtype)
    dy = rng.standard_normal((batch, shape[1])).astype(dtype)
    v = rng.standard_normal(conn.nnz).astype(dtype)
    w = np.zeros(shape)
    w[conn.input_indices, conn.output_indices] = v
    return conn, plan, x, dy, v, w


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
        # most 128-input tiles without a connection (skipped)
        ((20000, 5), 0.0001, 40),
    ],
)
def test_kernels_match_numpy(shape, density, batch):
    conn, plan, x, dy, v, w = _case(shape, density, batch)
    indptr, indices, perm = plan.arrays
    np.testing.assert_allclose(
        csr_cpu.spmm(x, v, *plan.arrays, shape[1]), x @ w, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        csr_cpu.spmm_t(dy, v, indptr, indices, perm, shape[0]),
        dy @ w.T,
        rtol=1e-4,
        atol=1e-4,
    )
    expected = (x.astype(np.float64).T @ dy)[conn.input_indices, conn.output_indices]
    np.testing.assert_allclose(
        csr_cpu.sddmm(x, dy, *plan.arrays), expected, rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows, cols", [(16, 16), (8, 8), (35, 300), (129, 17), (3, 5)])
def test_tiles_are_transposed_in_registers(dtype, rows, cols):
    # The kernels' tile loads and stores: full 64-byte squares through the
    # register transpose, ragged edges element by element.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows + 3, cols + 5)).astype(dtype)
    tile = np.full((cols, rows), np.nan, dtype)
    csr_cpu._load_tile(a, 2, rows, 4, cols, tile)
    np.testing.assert_array_equal(tile, a[2 : 2 + rows, 4 : 4 + cols].T)
    out = np.full((rows + 3, cols + 5), -1.0, dtype)
    csr_cpu._store_tile(tile, cols, rows, out, 1, 3)
    expected = np.full_like(out, -1.0)
    expected[1 : 1 + rows, 3 : 3 + cols] = a[2 : 2 + rows, 4 : 4 + cols]
    np.testing.assert_array_equal(out, expected)


def _row_loops():
    # The intrinsics run only inside compiled code.
    import numba

    @numba.njit
    def scatter(acc, indices, vk, k0, k1, src, s, nbw):
        csr_cpu._scatter_rows(acc, indices, vk, k0, k1, src, s, nbw)

    @numba.njit
    def gather(dst, r, src, indices, vk, k0, k1, nbw):
        csr_cpu._gather_rows(dst, r, src, indices, vk, k0, k1, nbw)

    @numba.njit
    def dot(sums, s0, src, s, rows, indices, k0, k1, ahead, nbw):
        csr_cpu._dot_rows(sums, s0, src, s, rows, indices, k0, k1, ahead, nbw)

    return scatter, gather, dot


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("vectors", [0, 1, 4, 5, 9])
def test_vector_row_loops_match_numpy(dtype, vectors):
    # The three kernels' inner loops, emitted as vector code:
    # rows of `vectors` whole vectors (groups of four, then single ones),
    # connections k0 <= k < k1 only, every other element left alone.
    rng = np.random.default_rng(0)
    n = csr_cpu._SIDE_F64 if dtype == "float64" else csr_cpu._SIDE_F32
    nbw, nb = vectors * n, vectors * n + 3
    indices = rng.integers(0, 11, 40).astype(np.int32)
    vk = rng.standard_normal(40).astype(dtype)
    src = rng.standard_normal((11, nb)).astype(dtype)
    acc = rng.standard_normal((11, nb)).astype(dtype)
    expected = acc.copy()
    for k in range(5, 29):
        expected[indices[k], :nbw] += vk[k] * src[3, :nbw]
    scatter, gather, dot = _row_loops()
    scatter(acc, indices, vk, 5, 29, src, 3, nbw)
    np.testing.assert_allclose(acc, expected, rtol=1e-5, atol=1e-5)
    dst = np.full((4, nb), np.nan, dtype)
    gather(dst, 2, src, indices, vk, 5, 29, nbw)
    np.testing.assert_allclose(
        dst[2, :nbw], vk[5:29] @ src[indices[5:29], :nbw], rtol=1e-5, atol=1e-5
    )
    assert np.isnan(dst[2, nbw:]).all() and np.isnan(dst[[0, 1, 3]]).all()
    gather(dst, 0, src, indices, vk, 7, 7, nbw)  # no connection
    np.testing.assert_array_equal(dst[0, :nbw], 0)
    sums = rng.standard_normal(30).astype(dtype)
    expected = sums.copy()
    expected[1:25] += src[indices[5:29], :nbw] @ src[3, :nbw]
    # prefetching the row 8 connections ahead up to k = 20 (then not)
    dot(sums, 4, src, 3, src, indices, 5, 29, 21, nbw)
    np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-5)


def test_float64_is_exact():
    conn, plan, x, dy, v, w = _case((300, 40), 0.05, 17, dtype="float64")
    indptr, indices, perm = plan.arrays
    y = csr_cpu.spmm(x, v, *plan.arrays, 40)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, x @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        csr_cpu.spmm_t(dy, v, indptr, indices, perm, 300),
        dy @ w.T,
        rtol=1e-12,
        atol=1e-12,
    )
    expected = (x.T @ dy)[conn.input_indices, conn.output_indices]
    np.testing.assert_allclose(
        csr_cpu.sddmm(x, dy, *plan.arrays), expected, rtol=1e-12, atol=1e-12
    )


def test_non_finite_inputs_reach_only_connected_outputs():
    conn = Connectivity([0, 1, 2], [0, 0, 1], shape=(4, 3), empty_outputs="ignore")
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    x = np.array([[np.nan, 1.0, 2.0, np.inf]], np.float32)
    y = csr_cpu.spmm(x, np.ones(3, np.float32), *plan.arrays, 3)
    assert np.isnan(y[0, 0]) and y[0, 1] == 2.0 and y[0, 2] == 0.0


def test_block_size_rule():
    threads = csr_cpu.numba.get_num_threads()
    assert csr_cpu.block(1) == 8
    assert csr_cpu.block(10_000) == 128
    assert csr_cpu.block(64 * threads) == 64


def test_empty_batch():
    plan = csr_cpu.CSRPlan.from_connectivity(
        random_connectivity(20, 4, density=0.5, seed=0)
    )
    indptr, indices, perm = plan.arrays
    v = np.ones(plan.nnz, np.float32)
    assert csr_cpu.spmm(np.zeros((0, 20), np.float32), v, *plan.arrays, 4).shape == (
        0,
        4,
    )
    assert csr_cpu.spmm_t(
        np.zeros((0, 4), np.float32), v, indptr, indices, perm, 20
    ).shape == (0, 20)
    np.testing.assert_array_equal(
        csr_cpu.sddmm(
            np.zeros((0, 20), np.float32), np.zeros((0, 4), np.float32), *plan.arrays
        ),
        0,
    )


def test_non_contiguous_inputs_and_empty_rows():
    conn = Connectivity([0, 3], [1, 1], shape=(5, 3), empty_outputs="ignore")
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    x = np.asfortranarray(np.arange(20, dtype=np.float32).reshape(4, 5))
    v = np.array([2.0, -1.0], np.float32)
    out = csr_cpu.spmm(x, v, *plan.arrays, 3)
    np.testing.assert_array_equal(out[:, [0, 2]], 0)
    np.testing.assert_allclose(out[:, 1], 2 * x[:, 0] - x[:, 3])


def test_kernel_thread_launches_every_kernel_from_one_thread(monkeypatch):
    # The opt-in kernel thread: same results, and every launch (from any
    # calling thread) runs on the one library-owned thread.
    import threading

    conn, plan, x, dy, v, w = _case((300, 40), 0.05, 33)
    indptr, indices, perm = plan.arrays
    want = (
        csr_cpu.spmm(x, v, *plan.arrays, 40),
        csr_cpu.spmm_t(dy, v, indptr, indices, perm, 300),
        csr_cpu.sddmm(x, dy, *plan.arrays),
    )
    seen = []
    names = ("_forward", "_input_grad", "_values_grad")
    real = {name: getattr(csr_cpu, name) for name in names}

    def recording(name):
        def kernel(*args):
            seen.append(threading.get_ident())
            real[name](*args)

        return kernel

    for name in real:
        monkeypatch.setattr(csr_cpu, name, recording(name))
    monkeypatch.setitem(csr_cpu._KERNEL_THREAD, "on", False)
    csr_cpu.set_kernel_thread(True)
    try:
        assert csr_cpu.kernel_thread()
        got = []

        def call():
            got.append(
                (
                    csr_cpu.spmm(x, v, *plan.arrays, 40),
                    csr_cpu.spmm_t(dy, v, indptr, indices, perm, 300),
                    csr_cpu.sddmm(x, dy, *plan.arrays),
                )
            )

        call()
        others = [threading.Thread(target=call) for _ in range(3)]
        for t in others:
            t.start()
        for t in others:
            t.join()
    finally:
        csr_cpu.set_kernel_thread(None)
    assert len(seen) == 12 and len(set(seen)) == 1
    assert seen[0] != threading.get_ident()
    assert seen[0] not in {t.ident for t in others}
    for result in got:
        for g, e in zip(result, want, strict=True):
            np.testing.assert_array_equal(g, e)


def test_kernel_thread_setting_and_the_bindings_default(monkeypatch):
    # `None` (the default) leaves the choice to the caller's preference,
    # which holds only when Numba runs more than one thread; True/False
    # override it. Anything else is refused, naming the argument.
    assert csr_cpu.kernel_thread() is None
    for threads in (1, 2):
        monkeypatch.setattr(csr_cpu.numba, "get_num_threads", lambda t=threads: t)
        assert csr_cpu.uses_kernel_thread(True) is (threads > 1)
        assert csr_cpu.uses_kernel_thread(False) is False
        for on in (True, False):
            csr_cpu.set_kernel_thread(on)
            try:
                assert csr_cpu.uses_kernel_thread(True) is on
                assert csr_cpu.uses_kernel_thread(False) is on
            finally:
                csr_cpu.set_kernel_thread(None)
    with pytest.raises(TypeError, match=r"`on`.*Received: on='yes'"):
        csr_cpu.set_kernel_thread("yes")
    assert csr_cpu.kernel_thread() is None


def test_the_kernel_thread_runs_with_the_callers_numba_thread_count(monkeypatch):
    # Numba's thread count is per thread: a caller's `set_num_threads(1)`
    # must hold on the kernel thread too.
    import numba

    conn, plan, x, dy, v, w = _case((50, 7), 0.2, 5)
    seen = []
    real = csr_cpu._forward

    def recording(*args):
        seen.append(numba.get_num_threads())
        real(*args)

    monkeypatch.setattr(csr_cpu, "_forward", recording)
    before = numba.get_num_threads()
    csr_cpu.set_kernel_thread(True)
    try:
        numba.set_num_threads(1)
        one = csr_cpu.spmm(x, v, *plan.arrays, 7)
        numba.set_num_threads(before)
        again = csr_cpu.spmm(x, v, *plan.arrays, 7)
    finally:
        numba.set_num_threads(before)
        csr_cpu.set_kernel_thread(None)
    assert seen == [1, before]
    np.testing.assert_allclose(one, x @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(one, again)


def test_after_a_fork_the_child_starts_its_own_kernel_thread():
    # `os.register_at_fork` runs `_forget_pool` in a forked child, whose copy
    # of the pool has no thread. (Numba's OpenMP layer itself refuses to
    # run in a child forked after a parallel region; its TBB layer does.)
    import os

    conn, plan, x, dy, v, w = _case((50, 7), 0.2, 5)
    csr_cpu.set_kernel_thread(True)
    try:
        want = csr_cpu.spmm(x, v, *plan.arrays, 7)
        first = csr_cpu._KERNEL_THREAD["ident"]
        assert first is not None
        pool = csr_cpu._KERNEL_THREAD["pool"]
        csr_cpu._forget_pool()  # what the child runs
        got = csr_cpu.spmm(x, v, *plan.arrays, 7)
        assert csr_cpu._KERNEL_THREAD["pool"] is not pool
        assert csr_cpu._KERNEL_THREAD["ident"] not in (None, first)
        np.testing.assert_array_equal(got, want)
        pool.shutdown()
    finally:
        csr_cpu.set_kernel_thread(None)
    assert hasattr(os, "register_at_fork")


_OTHER_SIDES_SCRIPT = """
import numpy as np
from numpy.testing import assert_allclose
from keras_sparse.connectivity import random_connectivity
from keras_sparse.ops import csr_cpu as k

assert (k._SIDE_F32, k._SIDE_F64) == {sides}, (k._SIDE_F32, k._SIDE_F64)
rng = np.random.default_rng(0)
for dtype, tol in (("float32", 1e-4), ("float64", 1e-12)):
    for rows, cols in ((16, 16), (35, 300), (129, 17)):
        a = rng.standard_normal((rows + 3, cols + 5)).astype(dtype)
        part = a[2 : 2 + rows, 4 : 4 + cols]
        tile = np.full((cols, rows), np.nan, dtype)
        k._load_tile(a, 2, rows, 4, cols, tile)
        assert np.array_equal(tile, part.T)
        out = np.full((rows + 3, cols + 5), -1.0, dtype)
        k._store_tile(tile, cols, rows, out, 1, 3)
        assert np.array_equal(out[1 : 1 + rows, 3 : 3 + cols], part)
    conn = random_connectivity(700, 60, density=0.02, seed=0, min_fan_in=1)
    ptr, ind, perm = k.CSRPlan.from_connectivity(conn).arrays
    x = rng.standard_normal((259, 700)).astype(dtype)
    dy = rng.standard_normal((259, 60)).astype(dtype)
    v = rng.standard_normal(conn.nnz).astype(dtype)
    w = np.zeros((700, 60))
    w[conn.input_indices, conn.output_indices] = v
    dv = (x.astype(np.float64).T @ dy)[conn.input_indices, conn.output_indices]
    assert_allclose(k.spmm(x, v, ptr, ind, perm, 60), x @ w, tol, tol)
    assert_allclose(k.spmm_t(dy, v, ptr, ind, perm, 700), dy @ w.T, tol, tol)
    assert_allclose(k.sddmm(x, dy, ptr, ind, perm), dv, tol, tol)
print("ok")
"""


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="NumPy-only kernels, no backend involved: checked once, in the torch run "
    "(it compiles every kernel again, about 30 s)",
)
def test_the_other_register_square_sides_match_numpy(tmp_path):
    # The host's vector width picks 16 x 16 (AVX-512) or 8 x 8 float32
    # squares; the choice this host does not make is compiled and checked
    # in a process of its own (own Numba cache: cached kernels keep the
    # sides they were compiled with).
    import os
    import subprocess
    import sys

    here = (csr_cpu._SIDE_F32, csr_cpu._SIDE_F64)
    other = (8, 8) if here == (16, 8) else (16, 8)
    env = dict(
        os.environ,
        KERAS_SPARSE_TRANSPOSE_SIDES=f"{other[0]},{other[1]}",
        NUMBA_CACHE_DIR=str(tmp_path),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _OTHER_SIDES_SCRIPT.format(sides=other)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "ok"


def test_a_bad_square_sides_override_names_the_variable(monkeypatch):
    monkeypatch.setenv("KERAS_SPARSE_TRANSPOSE_SIDES", "32,8")
    with pytest.raises(ValueError, match="KERAS_SPARSE_TRANSPOSE_SIDES.*'32,8'"):
        csr_cpu._square_sides()
