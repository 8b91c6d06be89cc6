"""The one backend-specific piece of `keras_sparse.interpret`: a gradient.

Keras 3 has no backend-neutral gradient function, so the gradient of a
function's summed output w.r.t. its input is taken with each backend's
own autodiff (TensorFlow `GradientTape`, `jax.grad`, `torch.autograd`).
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
    backend = keras.backend.backend()
    x = np.asarray(x, dtype="float32")
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda t: jnp.sum(fn(t)))(jnp.asarray(x)))
    if backend == "tensorflow":
        import tensorflow as tf

        t = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(t)
            total = tf.reduce_sum(fn(t))
        return np.asarray(tape.gradient(total, t))
    if backend == "torch":
        import torch

        t = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        with torch.enable_grad():
            total = fn(t).sum()
            (grad,) = torch.autograd.grad(total, t)
        return grad.detach().cpu().numpy()
    raise NotImplementedError(
        f"Gradients are implemented for the tensorflow, jax and torch backends; "
        f"this Keras runs {backend!r}."
    )
