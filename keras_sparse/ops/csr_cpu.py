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
gradient), so no two threads write the same memory. Where it pays
(`CSRPlan.saves_x`), the forward pass also writes the active columns of
`x`, transposed, so that the value gradient is contiguous dot products. Memory beyond the
arrays handed in and out is `O(num_outputs * block)` per thread.

Measured against the previous transposed-copy kernels and SciPy in
`benchmarks/` (docs/benchmarks.md).
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

__all__ = ["available", "CSRPlan", "forward", "input_grad", "values_grad", "values_grad_saved"]

# Inputs transposed together into the cache-resident tile.
_TILE = 16
# Largest sample block: `num_outputs * block` accumulators per thread.
_MAX_BLOCK = 128


def available() -> bool:
    """Whether the compiled kernels can run (Numba importable)."""
    return _HAVE_NUMBA


if _HAVE_NUMBA:
    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _forward(x, indptr, indices, values, active, n_out, blk, out, xt):  # pragma: no cover
        # out[b, o] = sum over connections (i -> o) of values * x[b, i]; input-major
        # CSR (indptr/indices/values by input), `active` = inputs with connections.
        # If `xt` has rows, xt[a, b] = x[b, active[a]] is written on the way.
        save = xt.shape[0] > 0
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
                if save:
                    for j in range(na):
                        xt[a0 + j, b0:b0 + nb] = tile[j]
                for j in range(na):
                    i = active[a0 + j]
                    xs = tile[j]
                    for k in range(indptr[i], indptr[i + 1]):
                        v = values[k]
                        row = acc[indices[k]]
                        for t in range(nb):
                            row[t] += v * xs[t]
            for t in range(nb):
                orow = out[b0 + t]
                for o in range(n_out):
                    orow[o] = acc[o, t]

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _input_grad(dy, indptr, indices, values, n_in, blk, out):  # pragma: no cover
        # out[b, i] = sum over connections (i -> o) of values * dy[b, o]
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
                        v = values[k]
                        d = dyt[indices[k]]
                        for t in range(nb):
                            acc[t] += v * d[t]
                for t in range(nb):
                    orow = out[b0 + t]
                    for j in range(ni):
                        orow[i0 + j] = tile[j, t]

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _values_grad(x, dy, indptr, indices, perm, active, blk, n_chunks, out):  # pragma: no cover
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


    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _values_grad_saved(xt, dy, indptr, indices, perm, active, n_chunks, out):  # pragma: no cover
        # As _values_grad, from xt[a, b] = x[b, active[a]] saved by _forward:
        # every connection is one contiguous dot product over the batch.
        batch, n_out = dy.shape
        if batch == 0:
            out[:] = 0
            return
        dyt = np.empty((n_out, batch), dtype=dy.dtype)
        for o in numba.prange(n_out):
            for t in range(batch):
                dyt[o, t] = dy[t, o]
        n_active = active.size
        size = (n_active + n_chunks - 1) // n_chunks
        for c in numba.prange(n_chunks):
            for a in range(c * size, min((c + 1) * size, n_active)):
                i = active[a]
                xs = xt[a]
                for k in range(indptr[i], indptr[i + 1]):
                    d = dyt[indices[k]]
                    s = xs[0] * 0
                    for t in range(batch):
                        s += xs[t] * d[t]
                    out[perm[k]] = s


class CSRPlan:
    """A connectivity laid out for the kernels (built once per layer).

    Attributes:
        shape: `(num_inputs, num_outputs)`.
        index_dtype: int32, or int64 when `nnz >= 2**31`.
        in_indptr: `(num_inputs + 1,)` CSR pointers of `W` (by input).
        in_indices: `(nnz,)` output of each connection, in input-major order.
        in_perm: `(nnz,)` canonical (output-major) position of each
            input-major connection: `values[in_perm]` is input-major.
        active: inputs that have at least one connection, ascending.
        saves_x: whether the layer's forward pass keeps `x[:, active].T`
            for the value gradient (`forward(..., save_x=True)`,
            `values_grad_saved`).
    """

    def __init__(self, connectivity: Any) -> None:
        n_in, n_out = connectivity.shape
        # int32 indices (and pointers) whenever they fit: half the memory, and
        # what JAX passes without 64-bit mode (keras_sparse.ops.xla_ffi).
        index = np.int32 if connectivity.nnz < 2**31 else np.int64
        self.index_dtype = np.dtype(index)
        self.shape = (n_in, n_out)
        rows = connectivity.input_indices.astype(index)
        cols = connectivity.output_indices.astype(index)
        order = np.lexsort((cols, rows))
        self.in_perm = order.astype(index)
        self.in_indices = cols[order]
        self.in_indptr = np.zeros(n_in + 1, dtype=index)
        np.cumsum(connectivity.fan_out, out=self.in_indptr[1:])
        self.active = np.flatnonzero(connectivity.fan_out).astype(index)
        # The forward pass saves x's active columns (transposed, `len(active)
        # * batch` floats: up to one more copy of x per layer, kept until the
        # backward pass; not during inference) for the value gradient, which
        # then runs contiguous dot products instead of gathering them from x
        # again, when that pays for the extra writes (benchmarks/, kernel
        # times at batch 256): few inputs have a connection (at most a
        # quarter: x is mostly skipped), or inputs have many connections each
        # (at least 32 on average: the gradient is compute-bound). 9180 x 230:
        # 0.1 % fwd + value grad 0.71 -> 0.54 ms, 20 % 17.2 -> 15.5 ms; 1 % and
        # 200,000 x 20,000 with 2M connections gain nothing and do not save.
        self.saves_x = bool(
            4 * self.active.size <= n_in or connectivity.nnz >= 32 * max(1, self.active.size)
        )

    @property
    def nnz(self) -> int:
        return int(self.in_indices.size)

    def block(self, batch: int) -> int:
        """Samples per block (forward, input gradient): enough blocks for
        every thread, at most 128."""
        threads = max(1, numba.get_num_threads())
        return int(min(_MAX_BLOCK, max(8, -(-batch // threads))))


    def values_block(self, batch: int) -> int:
        """Samples per block of the value gradient: long dot products."""
        return int(max(1, min(batch, 256)))

    def chunks(self) -> int:
        """Input chunks of the value gradient (threads own chunks)."""
        return 4 * max(1, numba.get_num_threads())


def _c(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


def forward(plan: CSRPlan, x: np.ndarray, values: np.ndarray, save_x: bool = False) -> Any:
    """`x @ W`: `x` `(batch, num_inputs)` -> `(batch, num_outputs)`.

    With `save_x`, returns `(x @ W, xt)` where `xt[a, b] = x[b, active[a]]`
    `(len(plan.active), batch)`, for `values_grad_saved`.
    """
    x = _c(x)
    out = np.empty((x.shape[0], plan.shape[1]), dtype=x.dtype)
    rows = plan.active.size if save_x else 0
    xt = np.empty((rows, x.shape[0] if save_x else 0), dtype=x.dtype)
    _forward(
        x, plan.in_indptr, plan.in_indices, _c(values[plan.in_perm]), plan.active,
        plan.shape[1], plan.block(x.shape[0]), out, xt,
    )
    return (out, xt) if save_x else out


def input_grad(plan: CSRPlan, dy: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`dy @ W.T`: `dy` `(batch, num_outputs)` -> `(batch, num_inputs)`."""
    dy = _c(dy)
    out = np.empty((dy.shape[0], plan.shape[0]), dtype=dy.dtype)
    _input_grad(
        dy, plan.in_indptr, plan.in_indices, _c(values[plan.in_perm]), plan.shape[0],
        plan.block(dy.shape[0]), out,
    )
    return out


def values_grad(plan: CSRPlan, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """`dvalues[e] = sum_b x[b, i_e] * dy[b, j_e]` -> `(nnz,)`, canonical order."""
    x, dy = _c(x), _c(dy)
    # The kernel writes every entry (zero for an empty batch).
    out = np.empty(plan.in_indices.size, dtype=x.dtype)
    _values_grad(
        x, dy, plan.in_indptr, plan.in_indices, plan.in_perm, plan.active,
        plan.values_block(x.shape[0]), plan.chunks(), out,
    )
    return out


def values_grad_saved(plan: CSRPlan, xt: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """`values_grad` from the `xt` that `forward(..., save_x=True)` returned."""
    xt, dy = _c(xt), _c(dy)
    out = np.empty(plan.in_indices.size, dtype=dy.dtype)
    _values_grad_saved(
        xt, dy, plan.in_indptr, plan.in_indices, plan.in_perm, plan.active, plan.chunks(), out
    )
    return out
