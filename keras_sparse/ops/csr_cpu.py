"""Compiled CPU kernels for `x @ W` with a sparse `W` (Numba, multithreaded).

A training step of a sparse layer needs three products, each
`O(nnz * batch)`:

- forward, `y = x @ W`;
- input gradient, `dx = dy @ W.T` (skipped when the input needs none);
- value gradient, `dvalues[e] = sum_b x[b, i_e] * dy[b, j_e]`, a sampled
  dense-dense product over the existing connections only.

The kernels work on the batch-major arrays the frameworks hand over (no
transposes): every sample's row of `x` (or `dy`) is read from cache while
the connection arrays stream past, and the threads split the batch (forward,
input gradient) or the connections (value gradient), so no two threads
write the same memory. Connections are read in the canonical output-major
order (CSC of `W`): as rows for the forward pass, as a scatter over the connections (input gradient).
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


class CSRPlan:
    """A connectivity laid out for the kernels.

    Attributes:
        shape: `(num_inputs, num_outputs)`.
        out_indptr: `(num_outputs + 1,)` CSC pointers of `W` (canonical order).
        rows, cols: `(nnz,)` input and output index of each connection, in
            canonical (output-major) order; `out_indices` is `rows`.
    """

    def __init__(self, connectivity: Any) -> None:
        n_in, n_out = connectivity.shape
        index = np.int32 if max(n_in, n_out, connectivity.nnz) < 2**31 else np.int64
        self.shape = (n_in, n_out)
        self.rows = connectivity.input_indices.astype(index)
        self.cols = connectivity.output_indices.astype(index)
        self.out_indptr = connectivity.indptr.astype(np.int64)
        self.out_indices = self.rows


def _c(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


def forward(plan: CSRPlan, x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`x @ W`: `x` `(batch, num_inputs)` -> `(batch, num_outputs)`."""
    x = _c(x)
    out = np.empty((x.shape[0], plan.shape[1]), dtype=x.dtype)
    _gather_rows(x, plan.out_indptr, plan.out_indices, _c(values), out)
    return out


def input_grad(plan: CSRPlan, dy: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`dy @ W.T`: `dy` `(batch, num_outputs)` -> `(batch, num_inputs)`."""
    dy = _c(dy)
    out = np.empty((dy.shape[0], plan.shape[0]), dtype=dy.dtype)
    _scatter_rows(dy, plan.rows, plan.cols, _c(values), out)
    return out


def values_grad(plan: CSRPlan, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """`dvalues[e] = sum_b x[b, i_e] * dy[b, j_e]` -> `(nnz,)`."""
    x, dy = _c(x), _c(dy)
    out = np.empty(plan.rows.size, dtype=x.dtype)
    _sampled_products(x, dy, plan.rows, plan.cols, out)
    return out
