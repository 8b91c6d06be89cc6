"""Connectivity that changes during training (`mutable_connectivity=True`):
no retrace, the compiled step sees the new connections, values move with
their connections, and a fixed layer refuses."""

import keras
import numpy as np
import pytest

from helpers import BACKEND, to_numpy
from keras_sparse import SparseDense
from keras_sparse.connectivity import random_connectivity
from keras_sparse.ops import backend


class _Swap(keras.callbacks.Callback):
    """Replaces the layer's connectivity before every batch."""

    def __init__(self, layer, conns):
        super().__init__()
        self.layer, self.conns, self.k = layer, conns, 0

    def on_train_batch_begin(self, batch, logs=None):
        _ = self.model  # syncs the JAX trainer state (Keras's contract)
        self.layer.set_connectivity(self.conns[self.k % len(self.conns)])
        self.k += 1


@pytest.mark.parametrize("impl", ["sparse", "csr", "dense"])
def test_twenty_updates_under_fit_do_not_retrace(impl):
    if impl == "csr" and not backend.csr_available():
        pytest.skip("no compiled kernels on this placement")
    conns = [random_connectivity(16, 4, nnz=20, seed=s) for s in range(5)]
    layer = SparseDense(4, conns[0], implementation=impl, mutable_connectivity=True)
    traces = []
    original = layer.call

    def counting_call(*args, **kwargs):
        traces.append(1)
        return original(*args, **kwargs)

    layer.call = counting_call
    model = keras.Sequential([keras.Input((16,)), layer])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x = np.random.default_rng(0).standard_normal((21 * 4, 16)).astype("float32")
    y = np.zeros((21 * 4, 4), "float32")
    model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)  # compile once
    before = len(traces)
    swap = _Swap(layer, conns)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[swap])
    assert swap.k == 21
    if BACKEND != "torch":  # torch runs eagerly: `call` runs every step
        assert len(traces) - before <= 1, f"{len(traces) - before} traces over 21 updates"
    # The compiled step computes with the last connectivity.
    last = conns[(swap.k - 1) % len(conns)]
    assert layer.connectivity == last
    w = np.zeros((16, 4))
    w[last.input_indices, last.output_indices] = to_numpy(layer.kernel_values)
    want = x[:3] @ w + to_numpy(layer.bias)
    np.testing.assert_allclose(to_numpy(model.predict(x[:3], verbose=0)), want, atol=1e-5)


def test_values_and_mask_move_with_their_connections():
    old = random_connectivity(10, 3, nnz=8, seed=0)
    layer = SparseDense(3, old, mutable_connectivity=True)
    layer.build((None, 10))
    values = to_numpy(layer.kernel_values).copy()
    mask = np.ones(8, "float32")
    mask[2] = 0
    layer.set_kernel_mask(mask)
    new = random_connectivity(10, 3, nnz=8, seed=1)
    source = layer.set_connectivity(new)
    old_edges = {(i, j): e for e, (i, j) in enumerate(
        zip(old.input_indices, old.output_indices, strict=True))}
    for e, (i, j) in enumerate(zip(new.input_indices, new.output_indices, strict=True)):
        want = old_edges.get((int(i), int(j)), -1)
        assert source[e] == want
        got = to_numpy(layer.kernel_values)[e]
        assert got == (values[want] if want >= 0 else 0.0)
        assert to_numpy(layer.kernel_mask)[e] == (mask[want] if want >= 0 else 1.0)


def test_fixed_layers_refuse_and_bad_updates_are_explained():
    conn = random_connectivity(10, 3, nnz=8, seed=0)
    fixed = SparseDense(3, conn)
    fixed.build((None, 10))
    with pytest.raises(ValueError, match="mutable_connectivity=True"):
        fixed.set_connectivity(random_connectivity(10, 3, nnz=8, seed=1))
    layer = SparseDense(3, conn, mutable_connectivity=True)
    with pytest.raises(ValueError, match="not built"):
        layer.set_connectivity(conn)
    layer.build((None, 10))
    with pytest.raises(ValueError, match=r"nnz=8.*nnz=9"):
        layer.set_connectivity(random_connectivity(10, 3, nnz=9, seed=1))
    with pytest.raises(ValueError, match="`source`"):
        layer.set_connectivity(conn, source=np.arange(7))
    with pytest.raises(ValueError, match=r"\(8,\)"):
        layer.set_kernel_mask(np.ones(5))


def test_mask_survives_loading_into_a_fixed_layer(tmp_path):
    conn = random_connectivity(12, 4, nnz=20, seed=2)
    layer = SparseDense(4, conn, mutable_connectivity=True)
    model = keras.Sequential([keras.Input((12,)), layer])
    mask = np.ones(20, "float32")
    mask[[1, 5, 9]] = 0
    layer.set_kernel_mask(mask)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    fixed = keras.Sequential([keras.Input((12,)), SparseDense(4, conn)])
    fixed.load_weights(path)
    x = np.random.default_rng(2).standard_normal((5, 12)).astype("float32")
    np.testing.assert_allclose(to_numpy(fixed(x)), to_numpy(model(x)), atol=1e-6)
    assert (to_numpy(fixed.layers[0].kernel_values)[[1, 5, 9]] == 0).all()
    assert (layer.edge_table()["weight"].to_numpy()[[1, 5, 9]] == 0).all()


def test_rewiring_a_large_layer_does_not_keep_old_connectivities():
    from keras_sparse.layers import connectivity_layer

    before = len(connectivity_layer._SHARED)
    layer = SparseDense(300, random_connectivity(20_000, 300, nnz=200_000, seed=0),
                        mutable_connectivity=True)
    layer.build((None, 20_000))
    for seed in range(1, 5):
        layer.set_connectivity(random_connectivity(20_000, 300, nnz=200_000, seed=seed))
        assert layer.get_config()["connectivity"]["stored_with_weights"]
    assert len(connectivity_layer._SHARED) - before == 1
