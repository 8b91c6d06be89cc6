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

        return [
            to_numpy(g) for g in jax.grad(fn, argnums=tuple(range(len(args))))(*args)
        ]
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


def run_sparse_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape):
    """Keras's `run_layer_test`, for a sparse layer, with what only a sparse
    layer must keep:

    - `get_config` / `from_config` and the JSON round trip keep the config;
    - symbolic (`keras.Input`) and eager calls give `expected_output_shape`;
    - `.keras` and `.weights.h5` round trips give the same outputs and the
      same connectivity;
    - `fit` changes the weights, and absent connections stay exactly zero
      in the effective kernel.
    """
    import json
    import tempfile

    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    assert json.loads(json.dumps(config)) == json.loads(json.dumps(clone.get_config()))

    inputs = keras.Input(input_shape[1:])
    outputs = layer(inputs)
    assert tuple(outputs.shape[1:]) == tuple(expected_output_shape[1:])
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype("float32")
    y = to_numpy(model(x))
    assert y.shape == tuple(expected_output_shape)

    rebuilt = keras.models.model_from_json(model.to_json())
    assert rebuilt.layers[-1].connectivity.same_edges(layer.connectivity)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(to_numpy(loaded(x)), y, rtol=1e-5, atol=1e-5)
        assert loaded.layers[-1].connectivity == layer.connectivity
        weights = os.path.join(tmp, "m.weights.h5")
        model.save_weights(weights)
        fresh = keras.Model(inputs := keras.Input(input_shape[1:]),
                            layer_cls(**init_kwargs)(inputs))
        fresh.load_weights(weights)
        np.testing.assert_allclose(to_numpy(fresh(x)), y, rtol=1e-5, atol=1e-5)

    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = to_numpy(layer.kernel).copy()
    model.fit(x, rng.standard_normal(y.shape).astype("float32"), epochs=2, verbose=0)
    after = to_numpy(layer.kernel)
    assert not np.allclose(before, after), "fit did not change the weights"
    np.testing.assert_array_equal(after[before == 0], 0)
    return model
