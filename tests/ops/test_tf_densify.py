"""TensorFlow's densify fast path equals the portable path and NumPy."""

import numpy as np
import pytest

from helpers import BACKEND
from keras_sparse.connectivity import random_connectivity

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the XLA-compiled densify is the TensorFlow backend's fast path",
)


@pytest.mark.parametrize(
    "shape, density", [((37, 23), 0.3), ((9180, 230), 0.2), ((5, 1), 1.0)]
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_densify_and_gradient_match_portable_and_numpy(shape, density, dtype):
    import tensorflow as tf

    from keras_sparse.ops.backend import portable, tf_densify

    conn = random_connectivity(*shape, density=density, seed=1)
    rng = np.random.default_rng(0)
    # Flat positions in the transposed kernel, shuffled (any order is valid).
    order = rng.permutation(conn.nnz)
    rows, cols = conn.input_indices[order], conn.output_indices[order]
    positions = cols.astype(np.int64) * shape[0] + rows
    values = tf.Variable(rng.standard_normal(conn.nnz).astype(dtype))
    kernel_shape = (shape[1], shape[0])
    upstream = rng.standard_normal(kernel_shape).astype(dtype)

    expected = np.zeros(kernel_shape, dtype)
    expected[cols, rows] = values.numpy()
    # d/dvalues of sum(upstream * W) is upstream at each connection.
    expected_grad = upstream[cols, rows]

    for densify in (tf_densify.densify, portable.densify):
        with tf.GradientTape() as tape:
            index = positions if densify is tf_densify.densify else tf.constant(positions)
            kernel = densify(values, index, kernel_shape)
            loss = tf.reduce_sum(kernel * upstream)
        grad = tape.gradient(loss, values)
        assert kernel.dtype == values.dtype
        np.testing.assert_array_equal(kernel.numpy(), expected)
        np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-6)


def test_sparse_dense_uses_it_and_trains_under_tf_function(monkeypatch):
    import keras
    import tensorflow as tf

    from keras_sparse import SparseDense
    from keras_sparse.ops.backend import tf_densify

    calls = []
    original = tf_densify.densify
    monkeypatch.setattr(
        tf_densify, "densify", lambda *a: calls.append(1) or original(*a)
    )

    conn = random_connectivity(40, 7, density=0.3, seed=2)
    layer = SparseDense(7, conn, implementation="dense", use_bias=False)
    model = keras.Sequential([keras.Input((40,)), layer])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 40)).astype("float32")
    y = rng.standard_normal((16, 7)).astype("float32")
    w0 = layer.kernel_values.numpy().copy()
    model.train_on_batch(x, y)
    w = np.zeros((40, 7), "float32")
    w[conn.input_indices, conn.output_indices] = w0
    # One SGD step on the MSE by hand (NumPy): grad W = 2/(N*units) x^T (xW - y).
    grad_w = 2.0 / (16 * 7) * x.T @ (x @ w - y)
    expected = w0 - 0.1 * grad_w[conn.input_indices, conn.output_indices]
    np.testing.assert_allclose(
        layer.kernel_values.numpy(), expected, rtol=1e-4, atol=1e-6
    )
    assert isinstance(layer.kernel_values.value, tf.Variable)
    assert calls, "the dense kernel did not go through tf_densify"


def test_layers_of_many_sizes_share_one_traced_scatter():
    """The XLA-compiled scatter takes the kernel's size as a tensor, so
    layers of different sizes reuse its trace (one, and one generalized to
    any length); with the size as a Python argument each layer retraced it
    and TensorFlow logged retracing warnings."""
    from keras_sparse import SparseDense
    from keras_sparse.ops.backend import tf_densify

    tf_densify._scatter.cache_clear()  # fresh: the tests above traced it
    for n in range(20, 28):
        conn = random_connectivity(n, 5, density=0.5, seed=n)
        layer = SparseDense(5, conn, implementation="dense")
        layer.build((None, n))
        x = np.random.default_rng(n).standard_normal((2, n)).astype("float32")
        w = np.zeros((n, 5), "float32")
        w[conn.input_indices, conn.output_indices] = layer.kernel_values.numpy()
        np.testing.assert_allclose(
            layer(x).numpy(), x @ w + layer.bias.numpy(), rtol=1e-5, atol=1e-6
        )
    assert tf_densify._scatter().experimental_get_tracing_count() <= 2
