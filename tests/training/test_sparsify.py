"""sparsify / densify / compact / compression_report against NumPy references."""

import keras
import numpy as np
import pytest

from keras_sparse.layers import SparseConv1D, SparseConv2D, SparseDense
from keras_sparse.training import (
    compact,
    compression_report,
    densify,
    layer_densities,
    sparsify,
)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    h = keras.layers.Dropout(0.1, name="drop")(h)
    h = keras.layers.Dense(8, activation="tanh", name="fc2")(h)
    outputs = keras.layers.Dense(3, name="out")(h)
    return keras.Model(inputs, outputs)


def cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10, 10, 4)),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Conv2D(5, (3, 2), strides=2, name="c2"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(3, name="out"),
        ]
    )


def keep_top(scores, k):
    """Reference: indices of the k largest scores (ties: lower index)."""
    order = np.argsort(-scores.ravel(), kind="stable")
    keep = np.zeros(scores.size, bool)
    keep[order[:k]] = True
    return keep.reshape(scores.shape)


def reference_mlp(model, x, masks):
    """NumPy forward of `mlp` with the dense kernels multiplied by masks."""
    h = x.astype(np.float64)
    acts = {"fc1": lambda z: np.maximum(z, 0), "fc2": np.tanh, "out": lambda z: z}
    for name in ("fc1", "fc2", "out"):
        layer = model.get_layer(name)
        w = to_numpy(layer.kernel) * masks.get(name, 1)
        h = acts[name](h @ w + to_numpy(layer.bias))
    return h


@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
def test_layerwise_uniform_matches_masked_reference(density):
    model = mlp()
    x = np.random.default_rng(1).normal(size=(5, 12)).astype("float32")
    sparse = sparsify(model, density)
    masks = {}
    for name in ("fc1", "fc2", "out"):
        w = to_numpy(model.get_layer(name).kernel)
        k = max(1, round(density * w.size))
        masks[name] = keep_top(np.abs(w), k)
        layer = sparse.get_layer(name)
        assert isinstance(layer, SparseDense) and layer.nnz == k
        np.testing.assert_array_equal(layer.connectivity.to_dense(), masks[name])
    np.testing.assert_allclose(
        to_numpy(sparse(x)), reference_mlp(model, x, masks), rtol=1e-5, atol=1e-5
    )
    assert isinstance(sparse.get_layer("drop"), keras.layers.Dropout)


def test_erk_and_dict_densities():
    model = mlp()
    shapes = {n: tuple(model.get_layer(n).kernel.shape) for n in ("fc1", "fc2", "out")}
    expected = layer_densities(shapes, 0.3, "erk")
    sparse = sparsify(model, 0.3, distribution="erk")
    for name, d in expected.items():
        size = np.prod(shapes[name])
        assert sparse.get_layer(name).nnz == max(1, round(d * size))
    only = sparsify(model, {"fc2": 0.25})
    assert isinstance(only.get_layer("fc1"), keras.layers.Dense)
    assert only.get_layer("fc2").nnz == 32
    assert isinstance(
        sparsify(model, 0.5, layers=["out"]).get_layer("out"), SparseDense
    )


def test_global_scope_one_threshold():
    model = mlp()
    sparse = sparsify(model, 0.2, scope="global")
    kernels = {n: to_numpy(model.get_layer(n).kernel) for n in ("fc1", "fc2", "out")}
    scores = np.concatenate([np.abs(k).ravel() for k in kernels.values()])
    total = scores.size
    budget = int(np.floor(0.2 * total + 1e-9))
    threshold = np.sort(scores)[::-1][budget - 1]
    kept = 0
    for name, k in kernels.items():
        mask = sparse.get_layer(name).connectivity.to_dense()
        kept += mask.sum()
        if mask.sum() > 1:
            assert np.abs(k[mask]).min() >= threshold
            assert np.abs(k[~mask]).max() <= threshold
    assert kept == budget


def test_convolutions_keep_whole_kernels_by_norm():
    model = cnn()
    x = np.random.default_rng(2).normal(size=(2, 10, 10, 4)).astype("float32")
    sparse = sparsify(model, 0.5, layers=["c1", "c2"])
    assert type(sparse.get_layer("out")) is keras.layers.Dense
    for name, cls in (("c1", SparseConv2D), ("c2", SparseConv2D)):
        kernel = to_numpy(model.get_layer(name).kernel)
        norms = np.sqrt((kernel**2).sum(axis=(0, 1)))
        k = round(0.5 * norms.size)
        layer = sparse.get_layer(name)
        assert isinstance(layer, cls) and layer.nnz == k
        mask = keep_top(norms, k)
        np.testing.assert_array_equal(layer.connectivity.to_dense(), mask)
        np.testing.assert_allclose(to_numpy(layer.kernel), kernel * mask, atol=1e-7)
    # the BN statistics were copied: same output as the masked dense model
    dense_masked = keras.models.clone_model(model)
    dense_masked.set_weights(model.get_weights())
    for name in ("c1", "c2"):
        layer = dense_masked.get_layer(name)
        layer.kernel.assign(to_numpy(sparse.get_layer(name).kernel))
    np.testing.assert_allclose(
        to_numpy(sparse(x)), to_numpy(dense_masked(x)), rtol=1e-4, atol=1e-4
    )


def test_conv1d_and_densify_round_trip():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((9, 3)),
            keras.layers.Conv1D(4, 3, name="c"),
            keras.layers.Dense(2),
        ]
    )
    sparse = sparsify(model, 0.5)
    assert isinstance(sparse.get_layer("c"), SparseConv1D)
    x = np.random.default_rng(0).normal(size=(2, 9, 3)).astype("float32")
    back = densify(sparse)
    assert type(back.get_layer("c")) is keras.layers.Conv1D
    np.testing.assert_allclose(
        to_numpy(back(x)), to_numpy(sparse(x)), rtol=1e-5, atol=1e-6
    )
    full = sparsify(model, 1.0)
    np.testing.assert_allclose(
        to_numpy(full(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )


def test_densify_mlp_equals_sparse():
    sparse = sparsify(mlp(), 0.2)
    x = np.random.default_rng(3).normal(size=(4, 12)).astype("float32")
    dense = densify(sparse)
    for name in ("fc1", "fc2", "out"):
        assert type(dense.get_layer(name)) is keras.layers.Dense
    np.testing.assert_allclose(
        to_numpy(dense(x)), to_numpy(sparse(x)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("convert", ["sparsify", "densify"])
def test_compiled_model_gives_a_compiled_copy_with_fresh_optimizer(convert):
    model = mlp()
    x, y = np.zeros((4, 12), "float32"), np.zeros((4, 3), "float32")
    assert not sparsify(model, 0.5).compiled
    model.compile(keras.optimizers.Adam(0.0123), "mse", metrics=["mae"])
    model.fit(x, y, verbose=0)
    if convert == "densify":
        model = sparsify(model, 0.5)
    copy = sparsify(model, 0.5) if convert == "sparsify" else densify(model)
    assert copy.compiled
    assert copy.optimizer is not model.optimizer
    assert int(to_numpy(copy.optimizer.iterations)) == 0
    np.testing.assert_allclose(float(copy.optimizer.learning_rate), 0.0123)
    assert copy.get_compile_config()["metrics"] == ["mae"]
    copy.fit(x, y, verbose=0)


def test_compression_report():
    model = mlp()
    sparse = sparsify(model, 0.1)
    report = compression_report(model, sparse)
    assert list(report.columns) == ["before", "after", "ratio"]
    assert report.loc["parameters", "before"] == model.count_params()
    assert report.loc["parameters", "after"] == sparse.count_params()
    nnz = sum(sparse.get_layer(n).nnz for n in ("fc1", "fc2", "out"))
    biases = 16 + 8 + 3
    assert report.loc["weight_bytes", "after"] == 4 * (nnz + biases)
    assert report.loc["weight_bytes", "before"] == 4 * model.count_params()
    assert report.loc["keras_file_bytes", "after"] > 0


def test_compact_without_masks_is_a_copy():
    sparse = sparsify(mlp(), 0.3)
    x = np.random.default_rng(0).normal(size=(3, 12)).astype("float32")
    copy = compact(sparse)
    np.testing.assert_allclose(to_numpy(copy(x)), to_numpy(sparse(x)), rtol=1e-6)


@pytest.mark.parametrize("density", [0, -1, 1.01, float("inf"), None, "half"])
def test_bad_density(density):
    with pytest.raises(ValueError, match="invalid value for `density`"):
        sparsify(mlp(), density)
    with pytest.raises(ValueError, match="density\\['fc1'\\]"):
        sparsify(mlp(), {"fc1": density})


def test_bad_arguments():
    model = mlp()
    with pytest.raises(ValueError, match="unknown layer name 'nope'.*fc1"):
        sparsify(model, {"nope": 0.5})
    with pytest.raises(ValueError, match="unknown layer name"):
        sparsify(model, 0.5, layers=["fc1", "nope"])
    with pytest.raises(
        ValueError, match="'drop' cannot be sparsified: it is a Dropout"
    ):
        sparsify(model, 0.5, layers=["drop"])
    with pytest.raises(ValueError, match="`distribution`"):
        sparsify(model, 0.5, distribution="er")
    with pytest.raises(ValueError, match="`scope`"):
        sparsify(model, 0.5, scope="model")
    with pytest.raises(ValueError, match="scope='global'"):
        sparsify(model, 0.5, scope="global", distribution="erk")
    with pytest.raises(TypeError, match="list of layer"):
        sparsify(model, 0.5, layers="fc1")
    with pytest.raises(TypeError, match="keras.Model"):
        sparsify(keras.layers.Dense(3), 0.5)
    grouped = keras.Sequential(
        [keras.Input((5, 5, 4)), keras.layers.Conv2D(4, 3, groups=2, name="g")]
    )
    with pytest.raises(ValueError, match="grouped convolution"):
        sparsify(grouped, 0.5, layers=["g"])


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(3)

        def call(self, x):
            return self.fc(x)

    net = Net()
    net(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="subclassed model"):
        sparsify(net, 0.5)
