"""Variance scaling with each unit's real (sparse) fan-in and fan-out."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity

__all__ = ["SparseVarianceScaling", "kernel_values_initializer"]

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")


@keras.saving.register_keras_serializable(package="keras_sparse")
class SparseVarianceScaling(keras.initializers.Initializer):
    """Variance scaling per unit, with the unit's real sparse fan-in/fan-out.

    A dense initializer such as Glorot uses the fans of the full kernel
    (`num_inputs`, `units`) for every weight, so in a sparse layer an output
    with 8 inputs and one with 300 start with pre-activation variances that
    differ by ~40x, both far too small. Here the weight of connection
    `i -> j` is drawn with variance `scale / fan`, where

    - `fan = fan_in[j] * receptive_field` for `mode="fan_in"`,
    - `fan = fan_out[i] * receptive_field` for `mode="fan_out"`,
    - `fan = (fan_in[j] + fan_out[i]) / 2 * receptive_field` for
      `mode="fan_avg"`,

    with `fan_in[j]` the number of inputs of output `j` and `fan_out[i]` the
    number of outputs of input `i` in the layer's `Connectivity`
    (`receptive_field` is the kernel area for convolutions, 1 otherwise).
    With `mode="fan_in"` and unit-variance inputs, every output's
    pre-activation has variance `scale`, whatever its fan-in.

    Values are drawn with `numpy.random.default_rng(seed)`, so a seeded
    initializer gives identical weights on every Keras backend. With
    `seed=None`, the seed is drawn from NumPy's global generator, which
    `keras.utils.set_random_seed` seeds.

    Args:
        scale: positive float, the target variance multiplier (default 1).
        mode: `"fan_in"` (default), `"fan_out"` or `"fan_avg"`.
        distribution: `"uniform"` (default; limit `sqrt(3 * scale / fan)`),
            `"truncated_normal"` (truncated at two standard deviations and
            rescaled to variance `scale / fan`) or `"untruncated_normal"`.
        seed: optional int.

    Raises:
        ValueError: for a non-positive `scale`, an unknown `mode` or
            `distribution`, or when called without a connectivity (it needs
            a sparse layer; see `kernel_values_initializer`).

    Example:

    >>> import numpy as np
    >>> from keras_sparse.connectivity import random_connectivity
    >>> from keras_sparse.layers import SparseDense
    >>> conn = random_connectivity(9180, 230, density=0.01, seed=0)
    >>> layer = SparseDense(230, conn,
    ...                     kernel_initializer=SparseVarianceScaling(seed=1))
    >>> layer.build((None, 9180))
    >>> values = np.asarray(layer.kernel_values)
    >>> # each weight has variance 1 / fan_in of its output unit
    >>> fan_in = conn.fan_in[conn.output_indices]
    >>> bool(abs(np.std(values * np.sqrt(fan_in)) - 1.0) < 0.05)
    True

    References:
        Evci et al., "Rigging the Lottery: Making All Tickets Winners",
        ICML 2020 (unit-scaled initialization of sparse layers); He et al.,
        "Delving Deep into Rectifiers", ICCV 2015; Glorot & Bengio, AISTATS
        2010.
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "uniform",
        seed: int | None = None,
    ):
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(
                "Received an invalid value for `scale`, expected a positive "
                f"float. Received: scale={scale!r}"
            )
        if mode not in _MODES:
            raise ValueError(
                f"Received an invalid value for `mode`, expected one of {_MODES}. "
                f"Received: mode={mode!r}"
            )
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in _DISTRIBUTIONS:
            raise ValueError(
                "Received an invalid value for `distribution`, expected one of "
                f"{_DISTRIBUTIONS}. Received: distribution={distribution!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"Received an invalid value for `seed`, expected an int or None. "
                f"Received: seed={seed!r}"
            )
        self.scale = float(scale)
        self.mode = mode
        self.distribution = distribution
        self.seed = seed

    def edge_fans(
        self, connectivity: Connectivity, receptive_field: int = 1
    ) -> np.ndarray:
        """The `(nnz,)` float64 fan used for each connection."""
        fan_in = connectivity.fan_in[connectivity.output_indices].astype(np.float64)
        fan_out = connectivity.fan_out[connectivity.input_indices].astype(np.float64)
        if self.mode == "fan_in":
            fan = fan_in
        elif self.mode == "fan_out":
            fan = fan_out
        else:
            fan = (fan_in + fan_out) / 2.0
        return np.maximum(fan * receptive_field, 1.0)

    def sample(
        self,
        connectivity: Connectivity,
        receptive_field: int = 1,
    ) -> np.ndarray:
        """Draws the `(nnz, receptive_field)` float64 values as NumPy."""
        rng = np.random.default_rng(
            self.seed if self.seed is not None else np.random.randint(0, 2**31 - 1)
        )
        std = np.sqrt(self.scale / self.edge_fans(connectivity, receptive_field))
        std = std[:, None]
        size = (connectivity.nnz, receptive_field)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0) * std
            return rng.uniform(-1.0, 1.0, size=size) * limit
        if self.distribution == "untruncated_normal":
            return rng.standard_normal(size) * std
        # Truncated at +-2 sd, rescaled so the variance is scale / fan.
        draws = rng.standard_normal(size)
        bad = np.abs(draws) > 2.0
        while bad.any():
            draws[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(draws) > 2.0
        return draws * (std / 0.87962566103423978)

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        raise ValueError(
            "SparseVarianceScaling needs the layer's connectivity to know each "
            "unit's fan-in; use it as the `kernel_initializer` of a keras_sparse "
            f"layer, not on its own (called with shape={tuple(shape)})."
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


def kernel_values_initializer(
    initializer: Any,
    connectivity: Connectivity,
    receptive_field: int = 1,
) -> Any:
    """Adapts `initializer` to a sparse layer's `(nnz * receptive_field,)` values.

    - `SparseVarianceScaling`: per-unit sparse fans (see its docstring).
    - Keras's `VarianceScaling` family (`GlorotUniform`, `HeNormal`,
      `LecunUniform`, ...): the fans of the *dense* kernel
      (`num_inputs * receptive_field`, `num_outputs * receptive_field`), so
      the values are distributed exactly as the same entries of a dense
      layer initialized that way.
    - Anything else (elementwise initializers such as `RandomNormal`,
      `Zeros`, `Constant`, or a callable): called with the values' shape.

    Returns:
        A callable `(shape, dtype) -> tensor` for `Layer.add_weight`.
    """
    if isinstance(initializer, SparseVarianceScaling):

        def sparse_init(shape: Any, dtype: Any = None) -> Any:
            values = initializer.sample(connectivity, receptive_field)
            return keras.ops.convert_to_tensor(
                values.reshape(shape), dtype=dtype or "float32"
            )

        return sparse_init
    if isinstance(initializer, keras.initializers.VarianceScaling):
        fan_in = connectivity.num_inputs * receptive_field
        fan_out = connectivity.num_outputs * receptive_field
        dense_fan = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2.0,
        }[initializer.mode]

        def dense_fan_init(shape: Any, dtype: Any = None) -> Any:
            # Keras computes fan_in = fan_out = n for a 1-D shape (n,), so
            # rescaling by n / dense_fan reproduces the dense variance.
            n = int(np.prod(shape))
            clone = keras.initializers.VarianceScaling(
                scale=initializer.scale * max(1.0, n) / dense_fan,
                mode=initializer.mode,
                distribution=initializer.distribution,
                seed=initializer.seed,
            )
            return keras.ops.reshape(clone((n,), dtype=dtype), shape)

        return dense_fan_init
    return initializer
