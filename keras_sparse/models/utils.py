"""Small helpers shared by the models, experiments, CLI and benchmarks."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["trainable_param_count"]


def trainable_param_count(model: Any) -> int:
    """Number of trainable scalars of a built Keras model or layer.

    The sum of the sizes of `model.trainable_weights` (Keras's
    `count_params()` counts the non-trainable weights too, e.g. BatchNorm's
    moving statistics). For a sparse layer this is its `nnz` kernel values
    plus its bias, not the dense `fan_in * units`.

    Args:
        model: a built `keras.Model` or `keras.layers.Layer`.

    Returns:
        The number of trainable scalars, a Python `int`.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
    ...                           keras.layers.BatchNormalization()])
    >>> trainable_param_count(model), model.count_params()
    (24, 32)
    """
    return sum(math.prod(int(d) for d in w.shape) for w in model.trainable_weights)
