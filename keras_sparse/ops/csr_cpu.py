"""Compiled CPU kernels for `x @ W` with a sparse `W` (Numba, multithreaded).

A training step of a sparse layer needs three products, each
`O(nnz * batch)`:

- forward, `y = x @ W`;
- input gradient, `dx = dy @ W.T` (skipped when the input needs none);
- value gradient, `dvalues[e] = sum_b x[b, i_e] * dy[b, j_e]`, a sampled
  dense-dense product over the existing connections only.

All three walk `W` input by input (CSR of the `(num_inputs, num_outputs)`
kernel) over a block of samples at a time. The block's slice of the dense
side is transposed on the fly, a small tile at a time, into a buffer that
stays in cache, so every connection is one vectorized multiply-add over the
block's samples and no transposed copy of `x`, `dy` or `dx` is ever
written to memory. Inputs without a connection are skipped. Threads own
disjoint sample blocks (forward, input gradient) or disjoint inputs (value
gradient), so no two threads write the same memory. Memory beyond the
arrays handed in and out is `O(num_outputs * block)` per thread. The values
stay in the layer's canonical order and the kernels read them through the
plan's permutation, so a call does no `O(nnz)` work outside the kernels.

The three products are named as in sparse linear algebra: `spmm` (sparse
times dense, `x @ W`), `spmm_t` (`dy @ W.T`) and `sddmm` (sampled
dense-dense product). Each is the derivative of the other two (see
`keras_sparse.ops.backend`), so gradients of any order use the same kernels.

Measured against the previous transposed-copy kernels and SciPy in
`benchmarks/` (docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

try:  # Numba is a dependency, but keep the package importable without it.
    import numba

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None  # type: ignore[assignment]
    _HAVE_NUMBA = False

__all__ = [
    "available",
    "CSRPlan",
    "kernel_thread",
    "set_kernel_thread",
    "spmm",
    "spmm_t",
    "sddmm",
]

# Numba's fast-math flags without `nnan`/`ninf`: NaN and inf propagate as
# IEEE arithmetic says, so a non-finite input reaches exactly the outputs it
# is connected to, on every kernel (tests/layers/test_dense_parity.py).
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# Inputs transposed together into the cache-resident tile.
_TILE = 16
# Largest sample block: `num_outputs * block` accumulators per thread.
_MAX_BLOCK = 128


def available() -> bool:
    """Whether the compiled kernels can run (Numba importable)."""
    return _HAVE_NUMBA


if _HAVE_NUMBA:

    @numba.njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
    def _forward(
        x, indptr, indices, values, perm, active, n_out, blk, out
    ):  # pragma: no cover
        # out[b, o] = sum over connections (i -> o) of values * x[b, i]; input-major
        # CSR (indptr/indices by input), `values` canonical and read through
        # `perm`, `active` = inputs with connections.
        batch = x.shape[0]
        n_active = active.size
        for bb in numba.prange((batch + blk - 1) // blk):
            b0 = bb * blk
            nb = min(blk, batch - b0)
            acc = np.zeros((n_out, nb), dtype=x.dtype)
            tile = np.empty((_TILE, nb), dtype=x.dtype)
            for a0 in range(0, n_active, _TILE):
                na = min(_TILE, n_active - a0)
                for t in range(nb):
                    xr = x[b0 + t]
                    for j in range(na):
                        tile[j, t] = xr[active[a0 + j]]
                for j in range(na):
                    i = active[a0 + j]
                    xs = tile[j]
                    for k in range(indptr[i], indptr[i + 1]):
                        v = values[perm[k]]
                        row = acc[indices[k]]
                        for t in range(nb):
                            row[t] += v * xs[t]
            for t in range(nb):
                orow = out[b0 + t]
                for o in range(n_out):
                    orow[o] = acc[o, t]

    @numba.njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
    def _input_grad(
        dy, indptr, indices, values, perm, n_in, blk, out
    ):  # pragma: no cover
        # out[b, i] = sum over connections (i -> o) of values * dy[b, o]; `values`
        # canonical, read through `perm`.
        batch, n_out = dy.shape
        for bb in numba.prange((batch + blk - 1) // blk):
            b0 = bb * blk
            nb = min(blk, batch - b0)
            dyt = np.empty((n_out, nb), dtype=dy.dtype)
            for t in range(nb):
                for o in range(n_out):
                    dyt[o, t] = dy[b0 + t, o]
            tile = np.empty((_TILE, nb), dtype=dy.dtype)
            for i0 in range(0, n_in, _TILE):
                ni = min(_TILE, n_in - i0)
                for j in range(ni):
                    acc = tile[j]
                    acc[:] = 0
                    i = i0 + j
                    for k in range(indptr[i], indptr[i + 1]):
                        v = values[perm[k]]
                        d = dyt[indices[k]]
                        for t in range(nb):
                            acc[t] += v * d[t]
                for t in range(nb):
                    orow = out[b0 + t]
                    for j in range(ni):
                        orow[i0 + j] = tile[j, t]

    @numba.njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
    def _values_grad(
        x, dy, indptr, indices, perm, active, blk, n_chunks, out
    ):  # pragma: no cover
        # out[perm[k]] = sum_b x[b, i] * dy[b, indices[k]] for connection k of input i.
        batch = x.shape[0]
        n_out = dy.shape[1]
        nblk = (batch + blk - 1) // blk
        dyt = np.empty((nblk, n_out, blk), dtype=dy.dtype)
        for bb in numba.prange(nblk):
            b0 = bb * blk
            for t in range(min(blk, batch - b0)):
                for o in range(n_out):
                    dyt[bb, o, t] = dy[b0 + t, o]
        n_active = active.size
        size = (n_active + n_chunks - 1) // n_chunks
        for c in numba.prange(n_chunks):
            tile = np.empty((_TILE, blk), dtype=x.dtype)
            for a0 in range(c * size, min((c + 1) * size, n_active), _TILE):
                na = min(_TILE, min((c + 1) * size, n_active) - a0)
                for j in range(na):
                    i = active[a0 + j]
                    for k in range(indptr[i], indptr[i + 1]):
                        out[perm[k]] = 0
                for bb in range(nblk):
                    b0 = bb * blk
                    nb = min(blk, batch - b0)
                    for t in range(nb):
                        xr = x[b0 + t]
                        for j in range(na):
                            tile[j, t] = xr[active[a0 + j]]
                    for j in range(na):
                        i = active[a0 + j]
                        xs = tile[j]
                        for k in range(indptr[i], indptr[i + 1]):
                            d = dyt[bb, indices[k]]
                            s = xs[0] * 0
                            for t in range(nb):
                                s += xs[t] * d[t]
                            out[perm[k]] += s


class CSRPlan:
    """A connectivity laid out for the kernels (built once per connectivity).

    Attributes:
        shape: `(num_inputs, num_outputs)`.
        index_dtype: int32, or int64 when `nnz >= 2**31`.
        indptr: `(num_inputs + 1,)` CSR pointers of `W` (by input).
        indices: `(nnz,)` output of each connection, in input-major order.
        perm: `(nnz,)` canonical (output-major) position of each input-major
            connection: `values[perm]` is input-major.
        active: inputs that have at least one connection, ascending (all
            inputs with `all_inputs_active=True`, which keeps the array's size
            fixed when the connectivity may change).
    """

    def __init__(
        self,
        input_indices: np.ndarray,
        output_indices: np.ndarray,
        shape: tuple[int, int],
        all_inputs_active: bool = False,
    ) -> None:
        n_in, n_out = int(shape[0]), int(shape[1])
        nnz = int(np.asarray(input_indices).size)
        # int32 indices (and pointers) whenever they fit: half the memory, and
        # what JAX passes without 64-bit mode (the XLA FFI kernels).
        index = np.int32 if nnz < 2**31 else np.int64
        self.index_dtype = np.dtype(index)
        self.shape = (n_in, n_out)
        rows = np.asarray(input_indices).astype(index)
        cols = np.asarray(output_indices).astype(index)
        order = np.lexsort((cols, rows))
        self.perm = order.astype(index)
        self.indices = cols[order]
        fan_out = np.bincount(rows, minlength=n_in)
        self.indptr = np.zeros(n_in + 1, dtype=index)
        np.cumsum(fan_out, out=self.indptr[1:])
        if all_inputs_active:
            self.active = np.arange(n_in, dtype=index)
        else:
            self.active = np.flatnonzero(fan_out).astype(index)

    @classmethod
    def from_connectivity(
        cls, connectivity: Any, all_inputs_active: bool = False
    ) -> CSRPlan:
        return cls(
            connectivity.input_indices,
            connectivity.output_indices,
            connectivity.shape,
            all_inputs_active,
        )

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(indptr, indices, perm, active)`, the index operands of the kernels."""
        return self.indptr, self.indices, self.perm, self.active


def block(batch: int) -> int:
    """Samples per block (`spmm`, `spmm_t`): enough blocks for every thread,
    at most 128."""
    threads = max(1, numba.get_num_threads())
    return int(min(_MAX_BLOCK, max(8, -(-batch // threads))))


def sddmm_block(batch: int) -> int:
    """Samples per block of `sddmm`: long dot products."""
    return int(max(1, min(batch, 256)))


def chunks() -> int:
    """Input chunks of `sddmm` (threads own chunks)."""
    return 4 * max(1, numba.get_num_threads())


def _contiguous(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


# One host thread for every kernel launch (`set_kernel_thread`). Numba's
# OpenMP layer (libgomp) keeps one worker team per host thread that has
# entered a parallel region; the frameworks call the kernels from their own
# executor threads, so several teams end up competing for the cores and
# libgomp stops spin-waiting (docs/benchmarks.md, "Kernels inside a step").
_KERNEL_THREAD: dict[str, Any] = {"on": False, "pool": None, "ident": None}


def set_kernel_thread(on: bool) -> None:
    """Launch every kernel called through this module's NumPy API (`spmm`,
    `spmm_t`, `sddmm`: the TensorFlow, PyTorch and `jax.pure_callback`
    paths) from one library-owned thread instead of the calling thread.

    The calling thread waits for the result; the kernels release the GIL.
    The XLA FFI path (JAX) calls the kernels in place and is not affected.
    Off by default: on the 2-core machine it changed a 9180 -> 230 training
    step by 1.01x (TensorFlow) and 1.02x (PyTorch)
    (`benchmarks/kernel_threads.py`, docs/benchmarks.md); it is kept to
    measure machines with more cores.

    Args:
        on: bool, whether to launch from the kernel thread.

    Example:

    >>> from keras_sparse.ops import csr_cpu
    >>> csr_cpu.set_kernel_thread(True); csr_cpu.kernel_thread()
    True
    >>> csr_cpu.set_kernel_thread(False); csr_cpu.kernel_thread()
    False
    """
    _KERNEL_THREAD["on"] = bool(on)


def kernel_thread() -> bool:
    """Whether kernels are launched from the library's kernel thread."""
    return bool(_KERNEL_THREAD["on"])


def _remember_ident() -> None:
    _KERNEL_THREAD["ident"] = threading.get_ident()


def _launch(kernel: Any, *args: Any) -> None:
    if not _KERNEL_THREAD["on"] or threading.get_ident() == _KERNEL_THREAD["ident"]:
        kernel(*args)
        return
    pool = _KERNEL_THREAD["pool"]
    if pool is None:
        pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="keras_sparse_kernels",
            initializer=_remember_ident,
        )
        _KERNEL_THREAD["pool"] = pool
    pool.submit(kernel, *args).result()


def spmm(
    x: np.ndarray,
    values: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    perm: np.ndarray,
    active: np.ndarray,
    num_outputs: int,
) -> np.ndarray:
    """`x @ W`: `x` `(batch, num_inputs)` -> `(batch, num_outputs)`.

    `values` `(nnz,)` in canonical order; the index arrays as in `CSRPlan`.
    Float32 or float64 (the result has `x`'s dtype).
    """
    x = _contiguous(x)
    out = np.empty((x.shape[0], int(num_outputs)), dtype=x.dtype)
    v = _contiguous(np.asarray(values, dtype=x.dtype))
    _launch(
        _forward,
        x,
        indptr,
        indices,
        v,
        perm,
        active,
        int(num_outputs),
        block(x.shape[0]),
        out,
    )
    return out


def spmm_t(
    dy: np.ndarray,
    values: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    perm: np.ndarray,
    num_inputs: int,
) -> np.ndarray:
    """`dy @ W.T`: `dy` `(batch, num_outputs)` -> `(batch, num_inputs)`."""
    dy = _contiguous(dy)
    out = np.empty((dy.shape[0], int(num_inputs)), dtype=dy.dtype)
    v = _contiguous(np.asarray(values, dtype=dy.dtype))
    _launch(
        _input_grad,
        dy,
        indptr,
        indices,
        v,
        perm,
        int(num_inputs),
        block(dy.shape[0]),
        out,
    )
    return out


def sddmm(
    x: np.ndarray,
    dy: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    perm: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """`out[e] = sum_b x[b, i_e] * dy[b, j_e]` -> `(nnz,)`, canonical order.

    The gradient of `sum(spmm(x, values) * dy)` with respect to `values`.
    """
    x, dy = _contiguous(x), _contiguous(np.asarray(dy, dtype=x.dtype))
    out = np.empty(perm.size, dtype=x.dtype)  # every entry written by the kernel
    _launch(
        _values_grad,
        x,
        dy,
        indptr,
        indices,
        perm,
        active,
        sddmm_block(x.shape[0]),
        chunks(),
        out,
    )
    return out
