"""RigL's side pass: x and dz of chosen layers give the dense kernel gradient."""

import keras
import numpy as np

from keras_sparse.connectivity import random_connectivity
from keras_sparse.layers import SparseConv2D, SparseDense
from keras_sparse.training import densify
from keras_sparse.training._gradients import (
    conv_kernel_gradient,
    layer_inputs_and_output_grads,
)
from tests.conftest import gradients


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def kernel_gradient_of_dense_copy(model, name, x, y, loss):
    """Reference: autodiff of the loss w.r.t. the densified layer's kernel."""
    dense = densify(model)
    target = dense.get_layer(name).kernel
    trainable = list(dense.trainable_variables)
    index = next(i for i, v in enumerate(trainable) if v is target)
    values = [v.value for v in trainable]
    non_trainable = [v.value for v in dense.non_trainable_variables]

    def fn(kernel):
        vals = list(values)
        vals[index] = kernel
        pred, _ = dense.stateless_call(
            vals, non_trainable, keras.ops.convert_to_tensor(x)
        )
        return keras.ops.mean(loss(keras.ops.convert_to_tensor(y), pred))

    return gradients(fn, keras.ops.convert_to_tensor(to_numpy(target)))[0]


def test_dense_layers_x_transpose_dz_is_the_kernel_gradient():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10,)),
            SparseDense(
                8, random_connectivity(10, 8, 0.4, seed=0), activation="tanh", name="a"
            ),
            keras.layers.Dropout(0.5),
            SparseDense(
                4, random_connectivity(8, 4, 0.5, seed=1), activation="relu", name="b"
            ),
            keras.layers.Dense(2, name="c"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 10)).astype("float32")
    y = rng.normal(size=(6, 2)).astype("float32")
    weights_before = [to_numpy(w).copy() for w in model.weights]
    layers = [model.get_layer("a"), model.get_layer("b")]
    activations = [layer.activation for layer in layers]
    got = layer_inputs_and_output_grads(
        model, layers, x, y, keras.losses.mean_squared_error
    )
    for layer in layers:
        xi, dz = got[id(layer)]
        ref = kernel_gradient_of_dense_copy(
            model, layer.name, x, y, keras.losses.mean_squared_error
        )
        np.testing.assert_allclose(xi.T @ dz, ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[id(layers[0])][0], x)
    # nothing changed: no variable, no leftover wrapper
    for w, b in zip(model.weights, weights_before, strict=True):
        np.testing.assert_array_equal(to_numpy(w), b)
    for layer, act in zip(layers, activations, strict=True):
        assert "call" not in vars(layer) and layer.activation is act


def test_convolution_kernel_gradient():
    keras.utils.set_random_seed(0)
    conn = random_connectivity(3, 5, 0.6, seed=2)
    model = keras.Sequential(
        [
            keras.Input((7, 7, 3)),
            SparseConv2D(
                5,
                (3, 2),
                conn,
                strides=(2, 1),
                padding="same",
                activation="relu",
                name="c",
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(2, name="d"),
        ]
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 7, 7, 3)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")
    layer = model.get_layer("c")
    xi, dz = layer_inputs_and_output_grads(
        model, [layer], x, y, keras.losses.mean_squared_error
    )[id(layer)]
    got = conv_kernel_gradient(layer, xi, dz)
    ref = kernel_gradient_of_dense_copy(
        model, "c", x, y, keras.losses.mean_squared_error
    )
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
