"""LeNet-5 with its original partially connected C3 layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.connectivity.generators import lenet5_c3_connectivity
from keras_sparse.layers.sparse_conv2d import SparseConv2D

__all__ = ["build_lenet5"]


def build_lenet5(
    c3: Connectivity | str = "lenet5",
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (28, 28, 1),
    name: str | None = None,
) -> keras.Model:
    """Builds LeNet-5 (LeCun et al. 1998) for 28x28 or 32x32 images.

    C1: 6 maps 5x5 (inputs zero-padded to 32x32) -> S2: 2x2 average pooling
    -> C3: 16 maps 5x5 whose input maps follow `c3` -> S4: 2x2 average
    pooling -> C5: 120 maps 5x5 -> F6: 84 units -> softmax output. Tanh
    activations; the paper's scaled tanh, trainable subsampling and RBF
    output are replaced by their usual modern equivalents.

    Args:
        c3: `"lenet5"` (the paper's Table I, 60 of 96 kernels, a
            `SparseConv2D` with 1,516 parameters), `"full"` (a dense
            `Conv2D`, 2,416 parameters) or any `Connectivity` of shape
            `(6, 16)`.
        num_classes: output classes (default 10).
        input_shape: `(28, 28, 1)` or `(32, 32, c)`.
        name: model name.

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: for an unknown `c3` or a connectivity not of shape (6, 16).

    References:
        LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to
        document recognition", Proc. IEEE 86(11), 1998.
    """
    if isinstance(c3, str):
        if c3 not in ("lenet5", "full"):
            raise ValueError(
                f"`c3` must be 'lenet5', 'full' or a Connectivity. Received: c3={c3!r}"
            )
        c3_layer: Any = (
            SparseConv2D(16, 5, lenet5_c3_connectivity(), activation="tanh", name="C3")
            if c3 == "lenet5"
            else keras.layers.Conv2D(16, 5, activation="tanh", name="C3")
        )
        label = c3
    elif isinstance(c3, Connectivity):
        if c3.shape != (6, 16):
            raise ValueError(
                f"A C3 connectivity must have shape (6, 16). Received {c3.shape}."
            )
        c3_layer = SparseConv2D(16, 5, c3, activation="tanh", name="C3")
        label = "custom"
    else:
        raise ValueError(
            f"`c3` must be 'lenet5', 'full' or a Connectivity. Received: c3={c3!r}"
        )
    inputs = keras.Input(input_shape)
    x = inputs
    if input_shape[0] == 28:
        x = keras.layers.ZeroPadding2D(2)(x)
    x = keras.layers.Conv2D(6, 5, activation="tanh", name="C1")(x)
    x = keras.layers.AveragePooling2D(2, name="S2")(x)
    x = c3_layer(x)
    x = keras.layers.AveragePooling2D(2, name="S4")(x)
    x = keras.layers.Conv2D(120, 5, activation="tanh", name="C5")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(84, activation="tanh", name="F6")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=name or f"lenet5_c3_{label}")
