import json
import os
import zipfile

import keras
import numpy as np
import pytest
from keras import ops

from helpers import BACKEND, apply, gradients, reference_forward, to_numpy
from keras_sparse import Connectivity, SparseDense
from keras_sparse.connectivity import random_connectivity
from keras_sparse.initializers import SparseVarianceScaling
from keras_sparse.layers.sparse_dense import choose_implementation

IMPLS = ["sparse", "csr", "dense"]


def make_layer(conn, impl="sparse", **kwargs):
    layer = SparseDense(conn.num_outputs, conn, implementation=impl, **kwargs)
    layer.build((None, conn.num_inputs))
    return layer


def dense_kernel_from_values(layer):
    """The reference kernel built in NumPy from the layer's raw values."""
    conn = layer.connectivity
    w = np.zeros(conn.shape, dtype=np.float64)
    w[conn.input_indices, conn.output_indices] = to_numpy(layer.kernel_values)
    return w


# ------------------------------------------------------------ numerical match
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "shape, density",
    # (2000, 30) at 0.05 %: few inputs have a connection (most skipped).
    [((7, 5), 0.3), ((64, 33), 0.05), ((40, 12), 1.0), ((9180, 230), 0.01), ((2000, 30), 0.0005)],
)
def test_forward_and_gradients_match_numpy(impl, shape, density):
    conn = random_connectivity(*shape, density=density, seed=11)
    layer = make_layer(conn, impl, bias_initializer="random_normal")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, shape[0])).astype("float32")
    g = rng.standard_normal((16, shape[1])).astype("float32")
    w = dense_kernel_from_values(layer)
    b = to_numpy(layer.bias)
    out = to_numpy(layer(x))
    np.testing.assert_allclose(out, reference_forward(x, w, b), rtol=1e-4, atol=1e-4)
    # The effective kernel is the masked dense one.
    np.testing.assert_array_equal(to_numpy(layer.kernel), w.astype("float32"))

    def loss(xt, values, bias):
        y = apply(layer, xt, values, bias)
        return ops.sum(y * ops.convert_to_tensor(g))

    gx, gv, gb = gradients(
        loss,
        ops.convert_to_tensor(x),
        ops.convert_to_tensor(to_numpy(layer.kernel_values)),
        ops.convert_to_tensor(b),
    )
    np.testing.assert_allclose(gx, g @ w.T, rtol=1e-4, atol=1e-4)
    dense_gw = x.astype(np.float64).T @ g
    np.testing.assert_allclose(
        gv, dense_gw[conn.input_indices, conn.output_indices], rtol=1e-4, atol=1e-3
    )
    np.testing.assert_allclose(gb, g.sum(0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
def test_input_gradient_with_frozen_values(impl):
    # Only x is differentiated (values constant), on a plan whose csr forward
    # pass saves x: the value-gradient path must not be needed.
    conn = random_connectivity(2000, 30, density=0.0005, seed=11)
    layer = make_layer(conn, impl)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 2000)).astype("float32")
    g = rng.standard_normal((9, 30)).astype("float32")
    values = ops.convert_to_tensor(to_numpy(layer.kernel_values))

    def loss(xt):
        y = apply(layer, xt, layer.kernel_values.value)
        return ops.sum(y * ops.convert_to_tensor(g))

    (gx,) = gradients(loss, ops.convert_to_tensor(x))
    np.testing.assert_allclose(gx, g @ dense_kernel_from_values(layer).T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("density", [0.4, 1.0])
def test_leading_batch_dims_and_activation(impl, density):
    # density 1.0 takes the full-connectivity path (no indices).
    conn = random_connectivity(10, 6, density=density, seed=1)
    layer = make_layer(conn, impl, activation="relu")
    x = np.random.default_rng(1).standard_normal((2, 3, 10)).astype("float32")
    out = to_numpy(layer(x))
    assert out.shape == (2, 3, 6)
    ref = np.maximum(reference_forward(x, dense_kernel_from_values(layer)), 0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_empty_output_gives_bias_only():
    mask = np.array([[1, 0], [1, 0]])
    conn = Connectivity.from_dense(mask, empty_outputs="ignore")
    for impl in IMPLS:
        layer = make_layer(conn, impl, bias_initializer="ones")
        out = to_numpy(layer(np.ones((3, 2), "float32")))
        np.testing.assert_allclose(out[:, 1], 1.0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("impl", IMPLS)
def test_mixed_precision(policy, impl):
    keras.config.set_dtype_policy(policy)
    conn = random_connectivity(50, 8, density=0.2, seed=0)
    layer = make_layer(conn, impl)
    assert layer.kernel_values.dtype == "float32"
    x = np.random.default_rng(0).standard_normal((4, 50)).astype("float32")
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    ref = reference_forward(x, dense_kernel_from_values(layer))
    np.testing.assert_allclose(to_numpy(out).astype("float64"), ref, rtol=0.05, atol=0.05)


# --------------------------------------------------------- parameters/summary
def test_issue_model_param_count_and_fit():
    conn = random_connectivity(9180, 230, density=0.01, seed=0)
    model = keras.Sequential(
        [keras.Input((9180,)), SparseDense(230, conn, activation="relu"), keras.layers.Dense(1)]
    )
    assert model.layers[0].count_params() == conn.nnz + 230
    assert model.count_params() == conn.nnz + 230 + 231
    assert 21_000 < conn.nnz < 21_200
    lines = []
    model.summary(print_fn=lambda s, **k: lines.append(s))
    text = "\n".join(lines)
    assert f"{conn.nnz + 230:,}" in text
    assert "Non-trainable params: 0" in text
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 9180)).astype("float32")
    y = (x[:, :50].sum(1, keepdims=True) > 0).astype("float32")
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_no_bias():
    conn = random_connectivity(20, 5, density=0.3, seed=0)
    layer = make_layer(conn, use_bias=False)
    assert layer.count_params() == conn.nnz
    assert layer.bias is None


# ------------------------------------------- absent connections never appear
@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        lambda: keras.optimizers.Adam(0.01),
        lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    ],
    ids=["sgd_momentum", "adam", "adamw"],
)
def test_absent_weights_stay_zero_after_fit(optimizer, tmp_path):
    conn = random_connectivity(30, 10, density=0.2, seed=4)
    absent = ~conn.to_dense()
    model = keras.Sequential(
        [
            keras.Input((30,)),
            SparseDense(
                10,
                conn,
                activation="tanh",
                kernel_regularizer=keras.regularizers.L1L2(1e-3, 1e-3),
                kernel_constraint=keras.constraints.NonNeg(),
            ),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer(), "mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 30)).astype("float32")
    y = rng.standard_normal((64, 1)).astype("float32")
    before = to_numpy(model.layers[0].kernel_values).copy()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    kernel = to_numpy(model.layers[0].kernel)
    assert np.all(kernel[absent] == 0)
    assert np.all(kernel >= 0)  # the constraint reached the values
    assert not np.allclose(to_numpy(model.layers[0].kernel_values), before)
    # Save -> load -> fine-tune keeps them absent.
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded.compile(optimizer(), "mse")
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    layer = loaded.layers[0]
    assert layer.connectivity == conn
    assert np.all(to_numpy(layer.kernel)[absent] == 0)
    assert layer.count_params() == conn.nnz + 10


# ---------------------------------------------------------------- save/load
def named_conn(n_in=40, n_out=7, density=0.2, seed=0):
    c = random_connectivity(n_in, n_out, density=density, seed=seed)
    return c.with_names([f"gene_{i}" for i in range(n_in)], [f"pw_{j}" for j in range(n_out)])


def test_get_config_from_config_keeps_connectivity():
    conn = named_conn()
    layer = make_layer(conn, activation="relu", kernel_regularizer="l2")
    config = layer.get_config()
    json.dumps(config)  # JSON-safe
    clone = SparseDense.from_config(config)
    assert clone.connectivity == conn
    assert clone.get_config() == config


def test_keras_round_trip_exact(tmp_path):
    conn = named_conn()
    inputs = keras.Input((40,))
    outputs = keras.layers.Dense(1)(SparseDense(7, conn, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).standard_normal((5, 40)).astype("float32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    src, dst = model.layers[1], loaded.layers[1]
    assert dst.connectivity == conn
    assert dst.connectivity.input_names == conn.input_names
    np.testing.assert_array_equal(to_numpy(dst.kernel_values), to_numpy(src.kernel_values))
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    table = dst.edge_table()
    assert list(table.columns[:3]) == ["input", "output", "weight"]
    assert len(table) == conn.nnz


def test_weights_h5_round_trip_and_mismatch(tmp_path):
    conn = named_conn()

    def build(c):
        return keras.Sequential([keras.Input((40,)), SparseDense(7, c)])

    model = build(conn)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    other = build(conn)
    other.load_weights(path)
    np.testing.assert_array_equal(
        to_numpy(other.layers[0].kernel_values), to_numpy(model.layers[0].kernel_values)
    )
    # Same nnz, different connections: refused, not silently re-wired.
    different = named_conn(seed=1)
    assert different.nnz == conn.nnz and not different.same_edges(conn)
    with pytest.raises(ValueError, match="different connections"):
        build(different).load_weights(path)
    renamed = conn.with_names(output_names=[f"other_{j}" for j in range(7)])
    with pytest.raises(ValueError, match="output_names"):
        build(renamed).load_weights(path)


def test_large_connectivity_lives_in_variables_not_json(tmp_path):
    conn = random_connectivity(100_000, 2_000, nnz=400_000, seed=0)
    model = keras.Sequential([keras.Input((100_000,)), SparseDense(2_000, conn)])
    config = model.layers[0].get_config()
    assert config["connectivity"]["stored_with_weights"] is True
    assert len(json.dumps(config)) < 10_000
    path = str(tmp_path / "big.keras")
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert len(zf.read("config.json")) < 20_000
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].connectivity == conn
    np.testing.assert_array_equal(
        to_numpy(loaded.layers[0].kernel_values), to_numpy(model.layers[0].kernel_values)
    )
    # In this process, a layer rebuilt from the config (clone_model,
    # model_from_json) finds the connectivity of the layer it came from.
    clone = SparseDense.from_config(config)
    assert clone.connectivity is conn
    # In a new process (no such layer), it refuses to run until weights arrive.
    config["connectivity"].pop("key")
    pending = SparseDense.from_config(config)
    pending.build((None, 100_000))
    with pytest.raises(RuntimeError, match="load the saved weights"):
        pending(np.zeros((1, 100_000), "float32"))
    assert os.path.getsize(path) < 3 * (conn.nnz * (4 + 4 + 4))


# -------------------------------------------------------- model construction
class Subclassed(keras.Model):
    def __init__(self, conn, **kwargs):
        super().__init__(**kwargs)
        self.sparse = SparseDense(conn.num_outputs, conn, activation="relu")
        self.head = keras.layers.Dense(1)

    def call(self, x):
        return self.head(self.sparse(x))


def test_subclassed_model_fits():
    conn = random_connectivity(20, 6, density=0.3, seed=0)
    model = Subclassed(conn)
    model.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((32, 20)).astype("float32")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    assert model.count_params() == conn.nnz + 6 + 7


# ---------------------------------------------------- hand-written training
def test_hand_written_training_loop():
    conn = random_connectivity(30, 8, density=0.25, seed=0)
    absent = ~conn.to_dense()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 30)).astype("float32")
    y = rng.standard_normal((32, 8)).astype("float32")
    layer = make_layer(conn)
    optimizer = keras.optimizers.Adam(0.05)
    loss_values = []
    if BACKEND == "tensorflow":
        import tensorflow as tf

        for _ in range(10):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((layer(x) - y) ** 2)
            grads = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply_gradients(zip(grads, layer.trainable_variables))
            loss_values.append(float(loss))
    elif BACKEND == "jax":
        import jax

        optimizer.build(layer.trainable_variables)
        tv = [v.value for v in layer.trainable_variables]
        ntv = [v.value for v in layer.non_trainable_variables]
        ov = [v.value for v in optimizer.variables]

        def loss_fn(tv, ntv):
            out, _ = layer.stateless_call(tv, ntv, x)
            return jax.numpy.mean((out - y) ** 2)

        @jax.jit
        def step(tv, ntv, ov):
            loss, grads = jax.value_and_grad(loss_fn)(tv, ntv)
            tv, ov = optimizer.stateless_apply(ov, grads, tv)
            return loss, tv, ov

        for _ in range(10):
            loss, tv, ov = step(tv, ntv, ov)
            loss_values.append(float(loss))
        for v, value in zip(layer.trainable_variables, tv):
            v.assign(value)
    else:
        import torch

        params = [v.value for v in layer.trainable_variables]
        torch_opt = torch.optim.Adam(params, lr=0.05)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(10):
            torch_opt.zero_grad()
            loss = ((layer(xt) - yt) ** 2).mean()
            loss.backward()
            torch_opt.step()
            loss_values.append(float(loss))
    assert loss_values[-1] < loss_values[0] * 0.9
    assert np.all(to_numpy(layer.kernel)[absent] == 0)


# ---------------------------------------------------------- initialization
def test_fan_in_aware_init_gives_target_variance():
    # Outputs 0-49 have fan-in 8, outputs 50-99 fan-in 300.
    n_in = 2000
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for j in range(100):
        k = 8 if j < 50 else 300
        rows.append(rng.choice(n_in, size=k, replace=False))
        cols.append(np.full(k, j))
    conn = Connectivity(np.concatenate(rows), np.concatenate(cols), shape=(n_in, 100))
    x = rng.standard_normal((4000, n_in)).astype("float32")

    def preactivation_variance(initializer):
        layer = make_layer(conn, kernel_initializer=initializer, use_bias=False)
        out = to_numpy(layer(x))
        return out[:, :50].var(), out[:, 50:].var()

    small, large = preactivation_variance(SparseVarianceScaling(seed=1))
    assert small == pytest.approx(1.0, rel=0.2) and large == pytest.approx(1.0, rel=0.2)
    g_small, g_large = preactivation_variance(keras.initializers.GlorotUniform(seed=1))
    target_dense = 2.0 / (n_in + 100)  # dense Glorot variance per weight
    assert g_small == pytest.approx(8 * target_dense, rel=0.3)
    assert g_large == pytest.approx(300 * target_dense, rel=0.3)
    assert g_small < 0.05 and g_large < 0.5  # far from the unit target


def test_initializer_is_backend_independent_and_seeded():
    conn = random_connectivity(100, 10, density=0.1, seed=0)
    a = to_numpy(make_layer(conn, kernel_initializer=SparseVarianceScaling(seed=3)).kernel_values)
    b = to_numpy(make_layer(conn, kernel_initializer=SparseVarianceScaling(seed=3)).kernel_values)
    np.testing.assert_array_equal(a, b)
    expected = SparseVarianceScaling(seed=3).sample(conn).ravel().astype("float32")
    np.testing.assert_array_equal(a, expected)


@pytest.mark.parametrize("init", ["zeros", "random_normal", keras.initializers.Constant(0.5)])
def test_elementwise_initializers(init):
    conn = random_connectivity(10, 4, density=0.5, seed=0)
    values = to_numpy(make_layer(conn, kernel_initializer=init).kernel_values)
    assert values.shape == (conn.nnz,)


# ------------------------------------------------------------ bad arguments
@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(units=0), ValueError, r"`units`.*Received: units=0"),
        (dict(units=4), ValueError, r"`units` must equal `connectivity.num_outputs`.*units=4"),
        (dict(implementation="fast"), ValueError, r"`implementation`.*implementation='fast'"),
        (dict(connectivity="abc"), TypeError, r"`connectivity` must be"),
        (dict(connectivity=np.array([[2, 0, 1]])), ValueError, r"only 0 and 1"),
    ],
)
def test_bad_arguments(kwargs, error, pattern):
    args = dict(units=3, connectivity=np.eye(3))
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        SparseDense(**args)


def test_input_width_mismatch():
    layer = SparseDense(3, np.eye(3))
    with pytest.raises(ValueError, match=r"expected axis -1.*value 3|connectivity.num_inputs"):
        layer(np.zeros((2, 5), "float32"))


def test_sparse_initializer_alone_is_refused():
    with pytest.raises(ValueError, match="needs the layer's connectivity"):
        SparseVarianceScaling()((3, 3))
    with pytest.raises(ValueError, match="`mode`.*mode='fan_x'"):
        SparseVarianceScaling(mode="fan_x")


def test_kernel_refuses_huge_dense():
    conn = random_connectivity(200_000, 20_000, nnz=1000, seed=0)
    layer = make_layer(conn)
    with pytest.raises(ValueError, match="use `kernel_values`"):
        layer.kernel  # noqa: B018


def test_auto_rule():
    small_dense = random_connectivity(100, 50, density=0.5, seed=0)
    one_percent = random_connectivity(9180, 230, density=0.01, seed=0)
    tenth = random_connectivity(9180, 230, density=0.001, seed=0)
    huge = random_connectivity(200_000, 20_000, nnz=1000, seed=0)
    for backend in ("tensorflow", "jax", "torch"):
        assert choose_implementation(huge, backend, csr=False) == "sparse"
        assert choose_implementation(huge, backend, csr=True) == "csr"
        assert choose_implementation(small_dense, backend, csr=True) == "dense"
        assert choose_implementation(one_percent, backend, csr=True) == "csr"
    assert choose_implementation(tenth, "jax", csr=True) == "csr"
    assert choose_implementation(tenth, "torch", csr=True) == "csr"
    assert choose_implementation(tenth, "tensorflow", csr=True) == "csr"
    ten = random_connectivity(9180, 230, density=0.1, seed=0)
    twenty = random_connectivity(9180, 230, density=0.2, seed=0)
    twenty_two = random_connectivity(9180, 230, density=0.22, seed=0)
    thirty = random_connectivity(9180, 230, density=0.3, seed=0)
    thirty_two = random_connectivity(9180, 230, density=0.32, seed=0)
    # csr up to 20 % on TensorFlow and JAX, 30 % on PyTorch (docs/benchmarks.md)
    for backend in ("tensorflow", "jax", "torch"):
        assert choose_implementation(ten, backend, csr=True) == "csr"
        assert choose_implementation(twenty, backend, csr=True) == "csr"
        assert choose_implementation(thirty_two, backend, csr=True) == "dense"
    for backend in ("tensorflow", "jax"):
        assert choose_implementation(twenty_two, backend, csr=True) == "dense"
    assert choose_implementation(twenty_two, "torch", csr=True) == "csr"
    assert choose_implementation(thirty, "torch", csr=True) == "csr"
    assert choose_implementation(one_percent, "tensorflow", csr=False) == "sparse"
    assert choose_implementation(one_percent, "torch", csr=False) == "dense"
    layer = make_layer(one_percent, impl="auto")
    assert layer.resolved_implementation == choose_implementation(one_percent)


def test_csr_unavailable_is_explained(monkeypatch):
    from keras_sparse.ops import backend

    monkeypatch.setattr(backend, "csr_available", lambda: False)
    with pytest.raises(NotImplementedError, match=f"'{BACKEND}' backend"):
        SparseDense(3, np.eye(3), implementation="csr")
