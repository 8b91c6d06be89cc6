"""Compiled CPU kernels for `x @ W` with a sparse `W` (Numba, multithreaded).

A training step of a sparse layer needs three products, each
`O(nnz * batch)`:

- forward, `y = x @ W`;
- input gradient, `dx = dy @ W.T` (skipped when the input needs none);
- value gradient, `dvalues[e] = sum_b x[b, i_e] * dy[b, j_e]`, a sampled
  dense-dense product over the existing connections only.

Two layouts, chosen per connectivity (`CSRPlan.transposed`):

- batch-major (very sparse layers): the kernels gather from the arrays the
  frameworks hand over, no transposes; every sample's row of `x` (or `dy`)
  stays in cache while the connection arrays stream past;
- transposed: `x` and `dy` are transposed once (blocked) so the batch is
  contiguous and each connection is one vectorized multiply-add over the
  batch, reading rows in both orientations of the connectivity (CSC and CSR
  of `W`).

Threads own disjoint outputs (rows, samples or connections), so no two
threads write the same memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # Numba is a dependency, but keep the package importable without it.
    import numba

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    _HAVE_NUMBA = False

__all__ = ["available", "CSRPlan", "forward", "input_grad", "values_grad"]


def available() -> bool:
    """Whether the compiled kernels can run (Numba importable)."""
    return _HAVE_NUMBA


if _HAVE_NUMBA:

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _gather_rows(x, indptr, indices, values, out):  # pragma: no cover
        # out[b, r] = sum_{k in row r} values[k] * x[b, indices[k]]
        batch = x.shape[0]
        n_rows = indptr.size - 1
        for b in numba.prange(batch):
            xb = x[b]
            ob = out[b]
            for r in range(n_rows):
                acc = xb[0] * 0
                for k in range(indptr[r], indptr[r + 1]):
                    acc += values[k] * xb[indices[k]]
                ob[r] = acc

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _scatter_rows(dy, rows, cols, values, out):  # pragma: no cover
        # out[b, rows[e]] += values[e] * dy[b, cols[e]], out zeroed first
        batch = dy.shape[0]
        nnz = rows.size
        for b in numba.prange(batch):
            ob = out[b]
            db = dy[b]
            ob[:] = 0
            for e in range(nnz):
                ob[rows[e]] += values[e] * db[cols[e]]

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _sampled_products(x, dy, rows, cols, out):  # pragma: no cover
        # out[e] = sum_b x[b, rows[e]] * dy[b, cols[e]]; threads own slices of e
        nnz = rows.size
        batch = x.shape[0]
        n_chunks = max(1, min(nnz // 2048, 256))
        size = (nnz + n_chunks - 1) // n_chunks
        for c in numba.prange(n_chunks):
            start = c * size
            stop = min(start + size, nnz)
            for e in range(start, stop):
                out[e] = 0
            for b in range(batch):
                xb = x[b]
                db = dy[b]
                for e in range(start, stop):
                    out[e] += xb[rows[e]] * db[cols[e]]

    @numba.njit(parallel=True, cache=True)
    def _transpose(src, dst):  # pragma: no cover
        # dst = src.T, blocked; threads own bands of dst rows.
        n, m = src.shape
        tile = 32
        for jb in numba.prange((m + tile - 1) // tile):
            j0 = jb * tile
            j1 = min(j0 + tile, m)
            for i0 in range(0, n, tile):
                i1 = min(i0 + tile, n)
                for j in range(j0, j1):
                    for i in range(i0, i1):
                        dst[j, i] = src[i, j]

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _rows_axpy(indptr, indices, values, dense_t, out_t):  # pragma: no cover
        # out_t[r, :] = sum_{k in row r} values[k] * dense_t[indices[k], :]
        n_rows = indptr.size - 1
        batch = dense_t.shape[1]
        for r in numba.prange(n_rows):
            orow = out_t[r]
            orow[:] = 0
            for k in range(indptr[r], indptr[r + 1]):
                v = values[k]
                src = dense_t[indices[k]]
                for b in range(batch):
                    orow[b] += v * src[b]

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _rows_dot(indptr, indices, a_t, b_t, out):  # pragma: no cover
        # out[k] = a_t[indices[k], :] . b_t[r, :] for k in row r
        n_rows = indptr.size - 1
        batch = a_t.shape[1]
        for r in numba.prange(n_rows):
            brow = b_t[r]
            for k in range(indptr[r], indptr[r + 1]):
                arow = a_t[indices[k]]
                acc = arow[0] * 0
                for b in range(batch):
                    acc += arow[b] * brow[b]
                out[k] = acc

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _scatter_axpy(indptr, indices, values, dense_t, n_out, n_chunks):  # pragma: no cover
        # out_t[indices[k], :] += values[k] * dense_t[r, :] for k in row r.
        # Streams the (large) rows of dense_t once; each thread accumulates
        # into its own copy of the (small) output, summed at the end.
        n_rows = indptr.size - 1
        batch = dense_t.shape[1]
        partial = np.zeros((n_chunks, n_out, batch), dtype=dense_t.dtype)
        size = (n_rows + n_chunks - 1) // n_chunks
        for c in numba.prange(n_chunks):
            acc = partial[c]
            for r in range(c * size, min((c + 1) * size, n_rows)):
                src = dense_t[r]
                for k in range(indptr[r], indptr[r + 1]):
                    v = values[k]
                    dst = acc[indices[k]]
                    for b in range(batch):
                        dst[b] += v * src[b]
        out_t = partial[0]
        for c in range(1, n_chunks):
            out_t += partial[c]
        return out_t


class CSRPlan:
    """A connectivity laid out for the kernels.

    Attributes:
        shape: `(num_inputs, num_outputs)`.
        rows, cols: `(nnz,)` input and output index of each connection, in
            canonical (output-major) order.
        out_indptr: `(num_outputs + 1,)` CSC pointers of `W` (canonical order).
        in_indptr, in_indices, in_perm: the input-major order (CSR of `W`):
            pointers, output of each connection, canonical value position.
        transposed: whether the products run on transposed, batch-contiguous
            copies (vectorized; pays two transposes) rather than gathering
            from the batch-major arrays (scalar; no transpose). Transposing
            wins once `nnz >= num_inputs / 2` (measured, see
            docs/benchmarks.md).
    """

    def __init__(self, connectivity: Any) -> None:
        n_in, n_out = connectivity.shape
        index = np.int32 if max(n_in, n_out, connectivity.nnz) < 2**31 else np.int64
        self.shape = (n_in, n_out)
        self.rows = connectivity.input_indices.astype(index)
        self.cols = connectivity.output_indices.astype(index)
        self.out_indptr = connectivity.indptr.astype(np.int64)
        order = np.lexsort((self.cols, self.rows))
        self.in_perm = order.astype(index)
        self.in_indices = self.cols[order]
        self.in_indptr = np.zeros(n_in + 1, dtype=np.int64)
        np.cumsum(connectivity.fan_out, out=self.in_indptr[1:])
        self.transposed = 2 * connectivity.nnz >= n_in
        # In the transposed layout, stream the larger dense side and keep the
        # smaller one (randomly accessed) in cache.
        self.stream_inputs = n_in > 4 * n_out


def _c(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


def transpose(a: np.ndarray) -> np.ndarray:
    """A C-contiguous transpose of a 2-D array (blocked, multithreaded)."""
    out = np.empty((a.shape[1], a.shape[0]), dtype=a.dtype)
    _transpose(_c(a), out)
    return out


def forward(plan: CSRPlan, x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`x @ W`: `x` `(batch, num_inputs)` -> `(batch, num_outputs)`."""
    x, values = _c(x), _c(values)
    if plan.transposed:
        if plan.stream_inputs:
            chunks = max(1, numba.get_num_threads())
            out_t = _scatter_axpy(
                plan.in_indptr, plan.in_indices, values[plan.in_perm], transpose(x),
                plan.shape[1], chunks,
            )
            return transpose(out_t)
        out_t = np.empty((plan.shape[1], x.shape[0]), dtype=x.dtype)
        _rows_axpy(plan.out_indptr, plan.rows, values, transpose(x), out_t)
        return transpose(out_t)
    out = np.empty((x.shape[0], plan.shape[1]), dtype=x.dtype)
    _gather_rows(x, plan.out_indptr, plan.rows, values, out)
    return out


def input_grad(plan: CSRPlan, dy: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`dy @ W.T`: `dy` `(batch, num_outputs)` -> `(batch, num_inputs)`."""
    dy, values = _c(dy), _c(values)
    if plan.transposed:
        out_t = np.empty((plan.shape[0], dy.shape[0]), dtype=dy.dtype)
        _rows_axpy(plan.in_indptr, plan.in_indices, values[plan.in_perm], transpose(dy), out_t)
        return transpose(out_t)
    out = np.empty((dy.shape[0], plan.shape[0]), dtype=dy.dtype)
    _scatter_rows(dy, plan.rows, plan.cols, values, out)
    return out


def values_grad(plan: CSRPlan, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """`dvalues[e] = sum_b x[b, i_e] * dy[b, j_e]` -> `(nnz,)`."""
    x, dy = _c(x), _c(dy)
    out = np.empty(plan.rows.size, dtype=x.dtype)
    if plan.transposed and plan.stream_inputs:
        # Input-major: rows of x.T stream once; dy.T rows come from cache.
        by_input = np.empty_like(out)
        _rows_dot(plan.in_indptr, plan.in_indices, transpose(dy), transpose(x), by_input)
        out[plan.in_perm] = by_input
    elif plan.transposed:
        _rows_dot(plan.out_indptr, plan.rows, transpose(x), transpose(dy), out)
    else:
        _sampled_products(x, dy, plan.rows, plan.cols, out)
    return out
