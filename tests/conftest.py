"""Shared test helpers: NumPy references and per-backend gradients."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np
import pytest
from hypothesis import settings

# Property tests: CI draws the same examples every run ("ci", derandomized), so
# a red run is reproducible; HYPOTHESIS_PROFILE=explore draws fresh random
# examples, and KERAS_SPARSE_HYPOTHESIS_SCALE=10 draws ten times as many.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
HYPOTHESIS_SCALE = float(os.environ.get("KERAS_SPARSE_HYPOTHESIS_SCALE", "1"))


def max_examples(n: int) -> int:
    """A test's example count, scaled by `KERAS_SPARSE_HYPOTHESIS_SCALE`."""
    return max(1, int(n * HYPOTHESIS_SCALE))

BACKEND = keras.backend.backend()


def pytest_report_header(config):
    return f"keras {keras.__version__}, KERAS_BACKEND={BACKEND}"


@pytest.fixture(autouse=True)
def _reset_policy():
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


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


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
