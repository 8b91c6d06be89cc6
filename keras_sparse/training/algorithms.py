"""The connectivity updates of GMP, SET and RigL as NumPy functions.

Everything here works on host arrays and is deterministic: ties are broken
by position (the lower index first), and random choices come from
`numpy.random.default_rng([seed, step, layer])`, a stateless seed that is
the same on every replica. Positions of a `(num_inputs, num_outputs)`
kernel are numbered `flat = input * num_outputs + output` (int64).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity

__all__ = [
    "cosine_drop_fraction",
    "cubic_density",
    "drop_smallest",
    "flat_positions",
    "kernel_scores",
    "random_absent_positions",
    "rebuild_connectivity",
    "top_gradient_positions",
]


def flat_positions(connectivity: Connectivity) -> np.ndarray:
    """`input * num_outputs + output` of every connection (int64, canonical order)."""
    return connectivity.input_indices.astype(np.int64) * connectivity.num_outputs + (
        connectivity.output_indices.astype(np.int64)
    )


def kernel_scores(values: Any) -> np.ndarray:
    """Magnitude of each connection: `|w|`, or a kernel's L2 norm for convolutions.

    Args:
        values: `(nnz,)` weights (dense layers) or `(nnz, kernel_area)`
            kernels (convolutions).

    Returns:
        float64 array of shape `(nnz,)`.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        return np.abs(v)
    return np.sqrt(np.sum(v.reshape(v.shape[0], -1) ** 2, axis=1))


def drop_smallest(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` smallest scores (ties: lower index first), sorted."""
    count = int(count)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(np.asarray(scores), kind="stable")
    return np.sort(order[:count]).astype(np.int64)


def cubic_density(
    step: int,
    begin_step: int,
    end_step: int,
    initial_density: float,
    final_density: float,
) -> float:
    """Density of the gradual magnitude pruning schedule (Zhu & Gupta 2017).

    `s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_end - t_0)) ** 3` for
    sparsity `s = 1 - density`, clamped to `s_i` before `begin_step` and
    `s_f` after `end_step`.

    Example:

    >>> round(cubic_density(50, 0, 100, 1.0, 0.1), 4)
    0.2125
    """
    s_i, s_f = 1.0 - initial_density, 1.0 - final_density
    if step <= begin_step:
        return initial_density
    if step >= end_step:
        return final_density
    progress = (step - begin_step) / (end_step - begin_step)
    return 1.0 - (s_f + (s_i - s_f) * (1.0 - progress) ** 3)


def cosine_drop_fraction(
    step: int, drop_fraction: float, end_step: int | None
) -> float:
    """RigL's decayed fraction `alpha / 2 * (1 + cos(pi * t / T_end))`.

    Constant `drop_fraction` when `end_step` is None; 0 after `end_step`.

    Example:

    >>> cosine_drop_fraction(50, 0.3, 100)
    0.15
    """
    if end_step is None:
        return float(drop_fraction)
    if step > end_step:
        return 0.0
    return float(drop_fraction) / 2.0 * (1.0 + math.cos(math.pi * step / end_step))


def _top_k(
    scores: np.ndarray, flat: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` largest scores; ties at the boundary go to the smaller `flat`."""
    if scores.size <= k:
        return scores, flat
    if k <= 0:
        return scores[:0], flat[:0]
    kth = np.partition(scores, scores.size - k)[scores.size - k]
    above = np.flatnonzero(scores > kth)
    equal = np.flatnonzero(scores == kth)
    need = k - above.size
    equal = equal[np.argsort(flat[equal], kind="stable")[:need]]
    chosen = np.concatenate([above, equal])
    return scores[chosen], flat[chosen]


def top_gradient_positions(
    x: Any,
    dy: Any,
    occupied: np.ndarray,
    count: int,
    block_size: int = 1 << 22,
) -> np.ndarray:
    """The `count` absent positions with the largest `|x^T dy|`, never forming it whole.

    The dense gradient of a `(num_inputs, num_outputs)` kernel,
    `G = x^T @ dy`, is computed in blocks of input rows, each holding about
    `block_size` entries; positions in `occupied` are excluded, and a
    running top-`count` (scores and positions) is kept. Peak extra memory
    is O(block_size + count), independent of `num_inputs * num_outputs`.

    Args:
        x: `(batch, num_inputs)` layer inputs.
        dy: `(batch, num_outputs)` gradient of the loss w.r.t. the layer's
            pre-activation output.
        occupied: sorted int64 flat positions that may not be chosen.
        count: number of positions to return.
        block_size: entries of `G` formed at a time.

    Returns:
        Sorted int64 flat positions, `count` of them (ties: smaller
        position first).
    """
    x = np.asarray(x)
    dy = np.asarray(dy)
    n_in, n_out = x.shape[1], dy.shape[1]
    occupied = np.asarray(occupied, dtype=np.int64)
    count = int(count)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if count > n_in * n_out - occupied.size:
        raise ValueError(
            f"Cannot grow {count} connections: only {n_in * n_out - occupied.size} "
            "positions are free."
        )
    rows = max(1, int(block_size) // n_out)
    best_scores = np.zeros(0, dtype=np.float64)
    best_flat = np.zeros(0, dtype=np.int64)
    for start in range(0, n_in, rows):
        stop = min(n_in, start + rows)
        block = x[:, start:stop].T @ dy
        np.abs(block, out=block)
        block = block.ravel()
        base = start * n_out
        lo, hi = np.searchsorted(occupied, [base, stop * n_out])
        block[occupied[lo:hi] - base] = -1.0  # scores are >= 0
        if best_scores.size == count:
            # Later blocks hold larger positions: equal scores lose the tie.
            candidates = np.flatnonzero(block > best_scores.min())
        else:
            candidates = np.flatnonzero(block >= 0.0)
        if candidates.size == 0:
            continue
        scores = np.concatenate([best_scores, block[candidates].astype(np.float64)])
        flat = np.concatenate([best_flat, candidates.astype(np.int64) + base])
        best_scores, best_flat = _top_k(scores, flat, count)
        del block, candidates, scores, flat
    return np.sort(best_flat)


def top_kernel_gradient_positions(
    kernel_gradient: Any, occupied: np.ndarray, count: int
) -> np.ndarray:
    """Convolution RigL growth: absent (input channel, filter) kernels by gradient norm.

    Args:
        kernel_gradient: dense kernel gradient `kernel_size + (C_in, filters)`.
        occupied: sorted flat positions `c * filters + f` that may not be chosen.
        count: number of kernels to grow.

    Returns:
        Sorted int64 flat positions.
    """
    g = np.asarray(kernel_gradient, dtype=np.float64)
    c_in, filters = g.shape[-2:]
    norms = np.sqrt(np.sum(g.reshape(-1, c_in * filters) ** 2, axis=0))
    norms[np.asarray(occupied, dtype=np.int64)] = -1.0
    valid = np.flatnonzero(norms >= 0.0)
    _, flat = _top_k(norms[valid], valid.astype(np.int64), int(count))
    return np.sort(flat)


def random_absent_positions(
    total: int, occupied: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` distinct positions drawn uniformly from `[0, total)` minus `occupied`.

    When at least half the positions are free, draws by rejection (memory
    O(count + len(occupied))): positions are drawn in rounds of
    `rng.integers(0, total, 2 * missing + 16)` and kept in draw order if
    free and new. Otherwise the free positions are listed and
    `rng.choice(free, count, replace=False)` picks them.

    Returns:
        Sorted int64 flat positions.
    """
    occupied = np.asarray(occupied, dtype=np.int64)
    count = int(count)
    free = int(total) - occupied.size
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if count > free:
        raise ValueError(
            f"Cannot grow {count} connections: only {free} positions are free."
        )
    if 2 * occupied.size > total:
        mask = np.ones(int(total), dtype=bool)
        mask[occupied] = False
        candidates = np.flatnonzero(mask)
        return np.sort(rng.choice(candidates, size=count, replace=False)).astype(
            np.int64
        )
    chosen = np.zeros(0, dtype=np.int64)
    while chosen.size < count:
        draw = rng.integers(
            0, int(total), size=2 * (count - chosen.size) + 16, dtype=np.int64
        )
        pos = np.searchsorted(occupied, draw)
        pos = np.minimum(pos, max(occupied.size - 1, 0))
        is_free = occupied[pos] != draw if occupied.size else np.ones(draw.size, bool)
        draw = draw[is_free]
        merged = np.concatenate([chosen, draw])
        _, first = np.unique(merged, return_index=True)
        chosen = merged[np.sort(first)]
    return np.sort(chosen[:count])


def rebuild_connectivity(
    connectivity: Connectivity, keep: np.ndarray, grown: np.ndarray
) -> tuple[Connectivity, np.ndarray]:
    """The connectivity made of kept connections plus grown positions.

    Args:
        connectivity: the current connectivity.
        keep: indices (into the current canonical order) of kept connections.
        grown: flat positions of grown connections, disjoint from the kept
            ones; a grown position that was a connection before (dropped and
            grown again in one step) keeps its old index.

    Returns:
        `(new_connectivity, source)`: `source[e]` is the old index whose
        value moves to new connection `e`, or -1 for a new connection, in the
        new canonical order (what `set_connectivity(..., source=...)`
        expects).
    """
    n_out = connectivity.num_outputs
    old_flat = flat_positions(connectivity)
    keep = np.asarray(keep, dtype=np.int64)
    grown = np.asarray(grown, dtype=np.int64)
    old_order = np.argsort(old_flat, kind="stable")
    pos = np.searchsorted(old_flat[old_order], grown)
    pos = np.minimum(pos, old_flat.size - 1)
    hit = old_flat[old_order][pos] == grown
    grown_source = np.where(hit, old_order[pos], -1)
    flat = np.concatenate([old_flat[keep], grown])
    source = np.concatenate([keep, grown_source]).astype(np.int64)
    rows, cols = flat // n_out, flat % n_out
    order = np.lexsort((rows, cols))
    new = Connectivity(
        rows[order],
        cols[order],
        shape=connectivity.shape,
        input_names=connectivity.input_names,
        output_names=connectivity.output_names,
        empty_outputs="ignore",
    )
    return new, source[order]
