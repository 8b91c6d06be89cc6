"""Layer-wise density budgets: uniform and Erdős–Rényi-Kernel (ERK)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DISTRIBUTIONS", "check_density", "layer_densities"]

DISTRIBUTIONS = ("uniform", "erk")


def check_density(density: Any, argument: str = "density", function: str = "") -> float:
    """Returns `density` as a float in (0, 1] or raises a `ValueError`."""
    ok = (
        isinstance(density, (int, float))
        and not isinstance(density, bool)
        and math.isfinite(density)
        and 0.0 < density <= 1.0
    )
    if not ok:
        where = f" of `{function}`" if function else ""
        raise ValueError(
            f"Received an invalid value for `{argument}`{where}, expected a float in "
            f"(0, 1] (the fraction of connections kept; sparsity = 1 - density). "
            f"Received: {argument}={density!r}"
        )
    return float(density)


def layer_densities(
    shapes: Mapping[str, Sequence[int]],
    density: float,
    distribution: str = "uniform",
    erk_power_scale: float = 1.0,
) -> dict[str, float]:
    """Per-layer densities whose parameter-weighted mean is `density`.

    `"uniform"` gives every layer `density`. `"erk"` (Erdős–Rényi-Kernel,
    Evci et al. 2020) gives layer `l`, whose kernel has shape `dims_l` and
    `N_l = prod(dims_l)` entries, the density
    `eps * (sum(dims_l) / prod(dims_l)) ** erk_power_scale`, with `eps`
    chosen so that `sum_l density_l * N_l = density * sum_l N_l`. A layer
    whose density would exceed 1 is made dense and `eps` is solved again
    over the others (the layers with the largest raw score first, as in
    RigL's `get_sparsities_erdos_renyi`).

    Args:
        shapes: `{layer name: kernel shape}`; a Dense kernel is
            `(num_inputs, units)`, a convolution's
            `kernel_size + (input_channels, filters)`.
        density: float in (0, 1], the overall fraction of kernel entries
            kept.
        distribution: `"uniform"` or `"erk"`.
        erk_power_scale: positive float, the exponent of the raw ERK score
            (1 in the paper; below 1 makes ERK closer to uniform).

    Returns:
        `{layer name: density}` in the order of `shapes`; every value in
        (0, 1].

    Raises:
        ValueError: for a `density` outside (0, 1], an unknown
            `distribution`, an empty `shapes` or a non-positive dimension.

    Example:

    >>> d = layer_densities({"a": (100, 100), "b": (100, 10)}, 0.1, "erk")
    >>> {k: round(v, 4) for k, v in d.items()}
    {'a': 0.071, 'b': 0.3903}

    References:
        Evci et al., "Rigging the Lottery: Making All Tickets Winners",
        ICML 2020 (ERK); Mocanu et al., Nature Communications 9, 2383
        (2018) (Erdős–Rényi for MLPs).
    """
    density = check_density(density, "density", "layer_densities")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            "Received an invalid value for `distribution`, expected one of "
            f"{DISTRIBUTIONS}. Received: distribution={distribution!r}"
        )
    if not shapes:
        raise ValueError("`shapes` is empty: there is no layer to give a density to.")
    sizes: dict[str, int] = {}
    raw: dict[str, float] = {}
    for name, shape in shapes.items():
        dims = [int(d) for d in shape]
        if not dims or min(dims) < 1:
            raise ValueError(
                f"The kernel shape of layer {name!r} must be positive integers. "
                f"Received: {tuple(shape)!r}"
            )
        sizes[name] = math.prod(dims)
        raw[name] = (sum(dims) / math.prod(dims)) ** float(erk_power_scale)
    if distribution == "uniform" or density == 1.0:
        return {name: density for name in shapes}
    total = sum(sizes.values())
    dense: set[str] = set()
    while True:
        free = [n for n in shapes if n not in dense]
        if not free:  # everything dense (cannot happen for density < 1)
            return {name: 1.0 for name in shapes}
        rhs = density * total - sum(sizes[n] for n in dense)
        divisor = sum(raw[n] * sizes[n] for n in free)
        eps = rhs / divisor
        top = max(raw[n] for n in free)
        if eps * top > 1.0:
            dense.update(n for n in free if raw[n] == top)
            continue
        return {name: 1.0 if name in dense else eps * raw[name] for name in shapes}
