"""The gradient `keras_sparse.interpret` needs, through the backend seam.

Keras 3 has no backend-neutral gradient function; the package's backend
seam (`keras_sparse.ops.backend.value_and_grad`: TensorFlow
`GradientTape`, `jax.value_and_grad`, `torch.autograd`) provides one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


def sum_gradient(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """Gradient of `sum(fn(x))` w.r.t. `x`, as a NumPy array of x's shape.

    For a function whose output rows depend only on the matching input
    rows (a model in inference mode), row `i` of the result is the
    gradient of output row `i`'s sum w.r.t. input row `i`.
    """
    from keras_sparse.ops import backend

    ops = keras.ops
    t = ops.convert_to_tensor(np.asarray(x, dtype="float32"))
    _, (grad,) = backend.value_and_grad(lambda a: (ops.sum(fn(a[0])), ()), [t])
    return np.asarray(ops.convert_to_numpy(ops.stop_gradient(grad)))
