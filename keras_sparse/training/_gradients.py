"""Inputs and output gradients of chosen layers, by a side computation.

RigL grows connections where the dense weight gradient `G = x^T @ dz` is
largest (`x`: the layer's inputs, `dz`: the gradient of the loss w.r.t. the
layer's pre-activation output). Neither is exposed by Keras's train step, so
RigL runs its own forward/backward pass on one batch:

1. each chosen layer's `call` is wrapped (on the instance, restored after)
   to record its input `x`, and its `activation` is wrapped to add a zero
   "probe" tensor `p` before the activation: `act(z + p)`;
2. the loss is differentiated w.r.t. the probes with the backend's autodiff
   (`keras_sparse.ops.backend.value_and_grad`), which gives `dL/dp = dL/dz`
   exactly, without touching the model's variables;
3. the model runs with `training=False`, so dropout and batch statistics are
   neither sampled nor updated (the side pass changes no state).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from keras import ops

from keras_sparse.ops import backend


@contextlib.contextmanager
def _instrument(
    layers: Sequence[Any], probes: dict[int, Any], record: dict
) -> Iterator[None]:
    saved = []
    try:
        for layer in layers:
            key = id(layer)
            call, activation = layer.call, layer.activation

            def new_call(inputs, *args, _call=call, _key=key, **kwargs):
                record.setdefault(_key, {})["x"] = inputs
                return _call(inputs, *args, **kwargs)

            def new_activation(z, _act=activation, _key=key):
                record.setdefault(_key, {})["z_shape"] = tuple(z.shape)
                record[_key]["z_dtype"] = z.dtype
                if _key in probes:
                    z = ops.add(z, probes[_key])
                return _act(z)

            saved.append((layer, activation))
            object.__setattr__(layer, "call", new_call)
            object.__setattr__(layer, "activation", new_activation)
        yield
    finally:
        for layer, activation in saved:
            object.__delattr__(layer, "call")
            object.__setattr__(layer, "activation", activation)


def _value_and_probe_grads(
    fn: Callable[[list[Any]], tuple[Any, Any]], probes: list[Any]
) -> tuple[list[Any], Any]:
    """Gradients of `fn(probes)[0]` w.r.t. `probes`, and `fn`'s aux output
    (the backend seam's `value_and_grad`)."""
    (_, aux), grads = backend.value_and_grad(fn, probes)
    return grads, aux


def layer_inputs_and_output_grads(
    model: Any,
    layers: Sequence[Any],
    x: Any,
    y: Any,
    loss_fn: Callable[[Any, Any], Any],
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """`{id(layer): (x, dz)}` for one batch, as NumPy arrays.

    `x` is the layer's input and `dz` the gradient of
    `mean(loss_fn(y, model(x)))` w.r.t. its pre-activation output (same
    shape as the output). The model's variables are not changed.
    """
    record: dict[int, dict[str, Any]] = {}
    x = ops.convert_to_tensor(x)
    y = ops.convert_to_tensor(y)
    with _instrument(layers, {}, record):
        model(x, training=False)  # shapes of the pre-activations
    missing = [layer.name for layer in layers if id(layer) not in record]
    if missing:
        raise ValueError(
            f"Layers {missing} were not called when the model ran; RigL can only "
            "grow connections of layers on the path from the inputs to the loss."
        )
    keys = [id(layer) for layer in layers]
    zeros = [ops.zeros(record[k]["z_shape"], dtype=record[k]["z_dtype"]) for k in keys]

    def fn(probes: list[Any]) -> tuple[Any, Any]:
        inner: dict[int, dict[str, Any]] = {}
        with _instrument(layers, dict(zip(keys, probes, strict=True)), inner):
            y_pred = model(x, training=False)
        loss = ops.mean(loss_fn(y, y_pred))
        return loss, [inner[k]["x"] for k in keys]

    grads, inputs = _value_and_probe_grads(fn, zeros)
    return {
        k: (np.asarray(ops.convert_to_numpy(xi)), np.asarray(ops.convert_to_numpy(g)))
        for k, xi, g in zip(keys, inputs, grads, strict=True)
    }


def conv_kernel_gradient(layer: Any, x: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Dense kernel gradient `d sum(conv(x, K) * dz) / dK` of a sparse convolution."""
    c_in, filters = layer.connectivity.shape
    shape = tuple(layer.kernel_size) + (c_in, filters)
    xt = ops.convert_to_tensor(x.astype("float32"))
    dzt = ops.convert_to_tensor(dz.astype("float32"))

    def fn(kernels: list[Any]) -> tuple[Any, Any]:
        out = backend.conv(
            xt,
            kernels[0],
            strides=layer.strides,
            padding=layer.padding,
            data_format=layer.data_format,
            dilation_rate=layer.dilation_rate,
        )
        return ops.sum(ops.multiply(out, dzt)), []

    grads, _ = _value_and_probe_grads(fn, [ops.zeros(shape, dtype="float32")])
    return np.asarray(ops.convert_to_numpy(grads[0]))
