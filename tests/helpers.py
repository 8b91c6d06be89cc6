"""Shared test helpers: NumPy references, per-backend gradients, layer calls.

Import with `from helpers import ...` (tests/ is on `sys.path` through
`tests/conftest.py`).
"""

from __future__ import annotations

import os

import keras
import numpy as np

HYPOTHESIS_SCALE = float(os.environ.get("KERAS_SPARSE_HYPOTHESIS_SCALE", "1"))


def max_examples(n: int) -> int:
    """A test's example count, scaled by `KERAS_SPARSE_HYPOTHESIS_SCALE`."""
    return max(1, int(n * HYPOTHESIS_SCALE))


BACKEND = keras.backend.backend()


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def reference_forward(x, dense_kernel, bias=None):
    """Independent NumPy reference: x @ (W * M) + b, in float64."""
    out = x.astype(np.float64) @ dense_kernel.astype(np.float64)
    if bias is not None:
        out = out + bias.astype(np.float64)
    return out


def gradients(fn, *args):
    """Gradients of `sum(fn(*args))`-style scalar `fn` w.r.t. `args`, per backend.

    `args` are backend tensors or variables. Returns NumPy arrays.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            for a in args:
                tape.watch(a)
            loss = fn(*args)
        return [to_numpy(g) for g in tape.gradient(loss, list(args))]
    if BACKEND == "jax":
        import jax

        return [to_numpy(g) for g in jax.grad(fn, argnums=tuple(range(len(args))))(*args)]
    if BACKEND == "torch":
        import torch

        leaves = [a.detach().clone().requires_grad_(True) for a in args]
        loss = fn(*leaves)
        grads = torch.autograd.grad(loss, leaves)
        return [g.detach().cpu().numpy() for g in grads]
    raise NotImplementedError(BACKEND)


def apply(layer, x, values, bias=None):
    """`layer(x)` with its trainable values replaced by tensors (public
    `stateless_call`), so that `gradients` can differentiate in them."""
    trainable = [values] + ([bias] if bias is not None else [])
    if bias is None and getattr(layer, "bias", None) is not None:
        trainable.append(layer.bias.value)
    non_trainable = [v.value for v in layer.non_trainable_variables]
    out, _ = layer.stateless_call(trainable, non_trainable, x)
    return out
