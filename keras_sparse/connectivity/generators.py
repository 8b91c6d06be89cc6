"""Generators of random and structured `Connectivity` patterns.

Every random generator draws from `numpy.random.default_rng(seed)`, so the
same seed gives the same pattern on every Keras backend and machine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from keras_sparse._validation import (
    float_in_range,
    int_in_range,
    invalid_value,
    positive_int,
)
from keras_sparse.connectivity.connectivity import Connectivity

__all__ = [
    "random_connectivity",
    "erdos_renyi_connectivity",
    "banded_connectivity",
    "block_diagonal_connectivity",
    "full_connectivity",
    "shuffled_connectivity",
    "lenet5_c3_connectivity",
]


def _sample_positions(
    rng: np.random.Generator, total: int, count: int, exclude: np.ndarray | None = None
) -> np.ndarray:
    """`count` distinct flat positions in `[0, total)`, avoiding `exclude`.

    Memory grows with `count`, not `total` (rejection sampling of a few
    extra draws, then de-duplication that keeps the draw order).
    """
    excluded = np.unique(exclude) if exclude is not None else np.empty(0, np.int64)
    available = total - excluded.size
    if count > available:
        raise ValueError(f"Cannot draw {count} distinct positions from {available}.")
    if count == 0:
        return np.empty(0, dtype=np.int64)
    if total <= 4 * (count + excluded.size) or total <= 1 << 22:
        # Small or dense: permute the candidates directly.
        mask = np.ones(total, dtype=bool)
        mask[excluded] = False
        candidates = np.flatnonzero(mask)
        return np.sort(rng.choice(candidates, size=count, replace=False))
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < count:
        need = count - chosen.size
        draw = rng.integers(0, total, size=int(need * 1.1) + 16, dtype=np.int64)
        merged = np.concatenate([chosen, draw])
        _, first = np.unique(merged, return_index=True)
        keep = np.sort(first)
        merged = merged[keep]
        if excluded.size:
            merged = merged[~np.isin(merged, excluded)]
        chosen = merged[:count]
    return np.sort(chosen)


def random_connectivity(
    num_inputs: int,
    num_outputs: int,
    density: float | None = None,
    nnz: int | None = None,
    seed: int | None = None,
    min_fan_in: int = 0,
    input_names: Any = None,
    output_names: Any = None,
) -> Connectivity:
    """Uniformly random connections with an exact `nnz` (or `density`).

    The `nnz` connections are drawn uniformly without replacement among all
    `num_inputs * num_outputs` pairs. With `min_fan_in=k`, every output
    first receives `k` distinct random inputs, and the remaining
    connections are drawn uniformly among the other pairs, so `nnz` is
    still exact. Memory and time grow with `nnz`, not with
    `num_inputs * num_outputs`.

    Args:
        num_inputs: positive int.
        num_outputs: positive int.
        density: float in (0, 1]; `nnz = round(density * num_inputs *
            num_outputs)`. Give exactly one of `density` and `nnz`.
        nnz: int in [0, num_inputs * num_outputs].
        seed: seed of `numpy.random.default_rng`.
        min_fan_in: int >= 0, the fewest inputs any output may have.
        input_names, output_names: optional names, as in `Connectivity`.

    Returns:
        A `Connectivity` of shape `(num_inputs, num_outputs)`.

    Raises:
        ValueError: for non-positive sizes, a density outside (0, 1], both
            or neither of `density`/`nnz`, or an `nnz` too small for
            `min_fan_in * num_outputs` or larger than the matrix.

    Example:

    >>> c = random_connectivity(9180, 230, density=0.01, seed=0)
    >>> c.nnz
    21114
    """
    n_in = positive_int(num_inputs, "num_inputs")
    n_out = positive_int(num_outputs, "num_outputs")
    total = n_in * n_out
    if (density is None) == (nnz is None):
        raise ValueError(
            invalid_value(
                "nnz",
                "exactly one of `density` and `nnz`",
                received=f"density={density!r}, nnz={nnz!r}",
            )
        )
    if density is not None:
        density = float_in_range(density, "density", 0.0, 1.0, low_inclusive=False)
        nnz = int(round(density * total))
    nnz = int_in_range(nnz, "nnz", 0, total)
    min_fan_in = int_in_range(
        min_fan_in, "min_fan_in", 0, n_in, fix=f"num_inputs is {n_in}."
    )
    if min_fan_in * n_out > nnz:
        raise ValueError(
            invalid_value(
                "min_fan_in",
                f"at most nnz / num_outputs = {nnz} / {n_out}: each output needs "
                "that many connections",
                min_fan_in,
                fix=f"Raise `density`/`nnz` to at least {min_fan_in * n_out} or "
                "lower `min_fan_in`.",
            )
        )
    rng = np.random.default_rng(seed)
    base = np.empty(0, dtype=np.int64)
    if min_fan_in:
        # For each output, `min_fan_in` distinct inputs.
        picks = np.stack(
            [rng.choice(n_in, size=min_fan_in, replace=False) for _ in range(n_out)]
        ).astype(np.int64)
        base = np.sort((picks * n_out + np.arange(n_out)[:, None]).ravel())
    extra = _sample_positions(rng, total, int(nnz) - base.size, exclude=base)
    flat = np.concatenate([base, extra])
    return Connectivity(
        flat // n_out,
        flat % n_out,
        shape=(n_in, n_out),
        input_names=input_names,
        output_names=output_names,
        empty_outputs="ignore" if min_fan_in else "warn",
    )


def erdos_renyi_connectivity(
    num_inputs: int,
    num_outputs: int,
    epsilon: float = 20.0,
    seed: int | None = None,
    input_names: Any = None,
    output_names: Any = None,
) -> Connectivity:
    """Erdős–Rényi random connections with SET's density rule.

    Each pair is connected independently with probability
    `p = epsilon * (num_inputs + num_outputs) / (num_inputs * num_outputs)`
    (Mocanu et al. 2018), capped at 1. The number of connections is drawn
    as `Binomial(num_inputs * num_outputs, p)` and the positions uniformly,
    which is the same distribution without a dense draw.

    Args:
        num_inputs, num_outputs: positive ints.
        epsilon: positive float, SET's sparsity parameter (default 20).
        seed: seed of `numpy.random.default_rng`.
        input_names, output_names: optional names.

    Raises:
        ValueError: for non-positive sizes or `epsilon`.

    References:
        Mocanu et al., "Scalable training of artificial neural networks with
        adaptive sparse connectivity inspired by network science", Nature
        Communications 9, 2383 (2018).
    """
    n_in = positive_int(num_inputs, "num_inputs")
    n_out = positive_int(num_outputs, "num_outputs")
    epsilon = float_in_range(epsilon, "epsilon", 0.0, math.inf, low_inclusive=False)
    if math.isinf(epsilon):
        raise ValueError(invalid_value("epsilon", "a positive finite float", epsilon))
    p = min(1.0, epsilon * (n_in + n_out) / (n_in * n_out))
    rng = np.random.default_rng(seed)
    total = n_in * n_out
    nnz = int(rng.binomial(total, p))
    flat = _sample_positions(rng, total, nnz)
    return Connectivity(
        flat // n_out,
        flat % n_out,
        shape=(n_in, n_out),
        input_names=input_names,
        output_names=output_names,
    )


def banded_connectivity(
    num_inputs: int,
    window: int,
    stride: int | None = None,
    num_outputs: int | None = None,
    input_names: Any = None,
    output_names: Any = None,
) -> Connectivity:
    """Locally connected pattern: output `j` sees a window of inputs.

    Output `j` reads inputs `[j * stride, j * stride + window)`, clipped to
    `num_inputs`, like a 1-D convolution with 'valid' padding but with
    unshared weights (a locally connected layer).

    Args:
        num_inputs: positive int.
        window: positive int, inputs per output.
        stride: positive int, shift between consecutive outputs; defaults
            to `window` (non-overlapping windows).
        num_outputs: number of outputs; defaults to the number of full
            windows, `(num_inputs - window) // stride + 1`.
        input_names, output_names: optional names.

    Raises:
        ValueError: for non-positive arguments, `window > num_inputs`, or a
            `num_outputs` whose last window would start past the inputs.
    """
    n_in = positive_int(num_inputs, "num_inputs")
    window = positive_int(window, "window")
    stride = window if stride is None else positive_int(stride, "stride")
    if window > n_in:
        raise ValueError(invalid_value("window", f"at most num_inputs={n_in}", window))
    max_out = (n_in - 1) // stride + 1
    if num_outputs is None:
        n_out = (n_in - window) // stride + 1
    else:
        n_out = positive_int(num_outputs, "num_outputs")
        if n_out > max_out:
            raise ValueError(
                invalid_value(
                    "num_outputs",
                    f"at most {max_out} for num_inputs={n_in} and "
                    f"stride={stride} (output j starts at input j*stride)",
                    n_out,
                )
            )
    starts = np.arange(n_out, dtype=np.int64) * stride
    stops = np.minimum(starts + window, n_in)
    lengths = stops - starts
    cols = np.repeat(np.arange(n_out, dtype=np.int64), lengths)
    offsets = np.arange(cols.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = np.repeat(starts, lengths) + offsets
    return Connectivity(
        rows,
        cols,
        shape=(n_in, n_out),
        input_names=input_names,
        output_names=output_names,
    )


def block_diagonal_connectivity(
    num_inputs: int,
    num_outputs: int,
    groups: int,
    input_names: Any = None,
    output_names: Any = None,
) -> Connectivity:
    """Block-diagonal pattern: `groups` independent blocks, as grouped layers.

    Inputs and outputs are split into `groups` contiguous, equal parts, and
    part `g` of the inputs feeds only part `g` of the outputs (the pattern
    of a grouped convolution, Krizhevsky et al. 2012).

    Raises:
        ValueError: if a size is not positive or not divisible by `groups`.
    """
    n_in = positive_int(num_inputs, "num_inputs")
    n_out = positive_int(num_outputs, "num_outputs")
    groups = positive_int(groups, "groups")
    if n_in % groups or n_out % groups:
        raise ValueError(
            invalid_value(
                "groups",
                f"a divisor of both num_inputs={n_in} and num_outputs={n_out}",
                groups,
            )
        )
    gi, go = n_in // groups, n_out // groups
    g = np.arange(groups)
    # All (input, output) pairs of each block.
    block = (groups, gi, go)
    rows = np.broadcast_to(g[:, None, None] * gi + np.arange(gi)[None, :, None], block)
    cols = np.broadcast_to(g[:, None, None] * go + np.arange(go)[None, None, :], block)
    return Connectivity(
        rows.ravel(),
        cols.ravel(),
        shape=(n_in, n_out),
        input_names=input_names,
        output_names=output_names,
    )


def full_connectivity(
    num_inputs: int,
    num_outputs: int,
    input_names: Any = None,
    output_names: Any = None,
) -> Connectivity:
    """Every input feeds every output (`density == 1`).

    Raises:
        ValueError: for non-positive sizes.
    """
    n_in = positive_int(num_inputs, "num_inputs")
    n_out = positive_int(num_outputs, "num_outputs")
    rows = np.repeat(np.arange(n_in, dtype=np.int64), n_out)
    cols = np.tile(np.arange(n_out, dtype=np.int64), n_in)
    return Connectivity(
        rows,
        cols,
        shape=(n_in, n_out),
        input_names=input_names,
        output_names=output_names,
    )


def shuffled_connectivity(
    connectivity: Connectivity,
    seed: int | None = None,
    inputs: str = "all",
) -> Connectivity:
    """A density-matched random control of `connectivity`.

    Every output keeps its fan-in (so `nnz`, density and the per-output
    parameter counts are unchanged), but draws that many distinct inputs
    uniformly at random. Names are kept, so a network built on it reads
    like the original with the biology removed (P-NET's shuffled-map
    control, Elmarakeby et al. 2021).

    Args:
        connectivity: the `Connectivity` to match.
        seed: seed of `numpy.random.default_rng`.
        inputs: `"all"` (default) draws among all inputs; `"connected"`
            only among inputs that have at least one connection in
            `connectivity` (e.g. genes that are in some pathway).

    Raises:
        ValueError: for an unknown `inputs`, or when an output's fan-in
            exceeds the number of candidate inputs.

    References:
        Elmarakeby et al., "Biologically informed deep neural network for
        prostate cancer discovery", Nature 598, 348-352 (2021).
    """
    if inputs not in ("all", "connected"):
        raise ValueError(invalid_value("inputs", "'all' or 'connected'", inputs))
    pool = (
        np.arange(connectivity.num_inputs)
        if inputs == "all"
        else np.flatnonzero(connectivity.fan_out > 0)
    )
    if connectivity.nnz and connectivity.fan_in.max() > pool.size:
        raise ValueError(
            invalid_value(
                "connectivity",
                f"fan-ins of at most {pool.size}, the candidate inputs with "
                f"inputs={inputs!r}",
                received=f"an output with fan-in {int(connectivity.fan_in.max())}",
            )
        )
    rng = np.random.default_rng(seed)
    rows = [rng.choice(pool, size=int(k), replace=False) for k in connectivity.fan_in]
    cols = np.repeat(np.arange(connectivity.num_outputs), connectivity.fan_in)
    return Connectivity(
        np.concatenate(rows) if rows else np.empty(0, np.int64),
        cols,
        shape=connectivity.shape,
        input_names=connectivity.input_names,
        output_names=connectivity.output_names,
        empty_outputs="ignore",
    )


def lenet5_c3_connectivity() -> Connectivity:
    """LeNet-5's C3 table: which of the 6 S2 maps feed each of 16 C3 maps.

    Table I of LeCun et al. (1998): C3 maps 0-5 read every cyclically
    contiguous triple of S2 maps, maps 6-11 every contiguous quadruple,
    maps 12-14 the discontinuous quadruples {0,1,3,4}, {1,2,4,5},
    {0,2,3,5}, and map 15 all six: 60 connections, so a 5x5 C3 layer has
    60 * 25 + 16 = 1,516 parameters, as in the paper.

    Returns:
        A `Connectivity` of shape `(6, 16)`, inputs named `S2_0..S2_5`,
        outputs `C3_0..C3_15`.

    References:
        LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied
        to document recognition", Proc. IEEE 86(11), 1998, Table I.
    """
    table = [[(j + k) % 6 for k in range(3)] for j in range(6)]
    table += [[(j + k) % 6 for k in range(4)] for j in range(6)]
    table += [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], list(range(6))]
    rows = np.concatenate([np.asarray(t) for t in table])
    cols = np.repeat(np.arange(16), [len(t) for t in table])
    return Connectivity(
        rows,
        cols,
        shape=(6, 16),
        input_names=[f"S2_{i}" for i in range(6)],
        output_names=[f"C3_{j}" for j in range(16)],
    )
