"""`SparseDense` is a drop-in for `keras.layers.Dense` with the masked kernel,
on every implementation: higher-order gradients, dtypes, export, cloning,
function transforms, sparse inputs and non-finite inputs (issue 12).

Every numerical check is against NumPy (float64) or against `Dense` itself.
"""

import copy
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import BACKEND, apply, gradients, to_numpy
from keras import ops

from keras_sparse import SparseDense
from keras_sparse.connectivity import random_connectivity
from keras_sparse.ops import backend

IMPLS = ["sparse", "csr", "dense", "auto"]


def _layer(conn, impl, **kwargs):
    if impl == "csr" and not backend.csr_available():
        pytest.skip("no compiled kernels on this placement")
    layer = SparseDense(conn.num_outputs, conn, implementation=impl, **kwargs)
    layer.build((None, conn.num_inputs))
    return layer


def _kernel(layer):
    conn = layer.connectivity
    w = np.zeros(conn.shape)
    w[conn.input_indices, conn.output_indices] = to_numpy(layer.kernel_values)
    return w


# ------------------------------------------------------- higher-order gradients
def _penalty_grad(layer, x):
    """d/dvalues of |d sum(tanh(layer(x))) / dx|^2 (a gradient penalty)."""
    values0 = layer.kernel_values.value
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def penalty(v):
            gx = jax.grad(lambda xx: jnp.sum(jnp.tanh(apply(layer, xx, v))))(
                jnp.asarray(x)
            )
            return jnp.sum(gx**2)

        return np.asarray(jax.grad(penalty)(values0))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(to_numpy(values0))
        xx = tf.constant(x)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(xx)
                loss = tf.reduce_sum(tf.tanh(apply(layer, xx, v)))
            gx = inner.gradient(loss, xx)
            penalty = tf.reduce_sum(gx**2)
        grad = outer.gradient(penalty, v)
        assert grad is not None, "the gradient penalty was silently dropped"
        return grad.numpy()
    import torch

    v = values0.detach().clone().requires_grad_(True)
    xx = torch.tensor(x, requires_grad=True)
    loss = torch.sum(torch.tanh(apply(layer, xx, v)))
    (gx,) = torch.autograd.grad(loss, xx, create_graph=True)
    (grad,) = torch.autograd.grad(torch.sum(gx**2), v)
    return grad.detach().numpy()


def _numpy_penalty(x, w, b, v, conn):
    w = w.copy()
    w[conn.input_indices, conn.output_indices] = v
    y = x @ w + b
    gx = (1 - np.tanh(y) ** 2) @ w.T
    return np.sum(gx**2)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradient_penalty_matches_numpy(impl):
    conn = random_connectivity(12, 5, density=0.4, seed=0)
    layer = _layer(conn, impl, bias_initializer="random_normal")
    x = np.random.default_rng(0).standard_normal((3, 12)).astype("float32")
    got = _penalty_grad(layer, x)
    w, b = _kernel(layer), to_numpy(layer.bias).astype(np.float64)
    v = to_numpy(layer.kernel_values).astype(np.float64)
    eps = 1e-5
    want = np.array(
        [
            (
                _numpy_penalty(x, w, b, v + eps * e, conn)
                - _numpy_penalty(x, w, b, v - eps * e, conn)
            )
            / (2 * eps)
            for e in np.eye(conn.nnz)
        ]
    )
    assert np.abs(want).max() > 1e-2  # the penalty does depend on the weights
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


@pytest.mark.skipif(BACKEND != "jax", reason="forward mode (jvp, jacfwd) is JAX's")
@pytest.mark.parametrize("impl", IMPLS)
def test_jax_forward_mode_and_hessian_vector_product(impl):
    import jax
    import jax.numpy as jnp

    conn = random_connectivity(10, 4, density=0.5, seed=1)
    layer = _layer(conn, impl)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((3, 10)), jnp.float32)
    v0 = layer.kernel_values.value
    w = _kernel(layer)
    jac = jax.jacfwd(lambda v: apply(layer, x, v))(v0)  # (3, 4, nnz)
    xn = np.asarray(x, np.float64)
    want = np.zeros((3, 4, conn.nnz))
    for e, (i, j) in enumerate(
        zip(conn.input_indices, conn.output_indices, strict=True)
    ):
        want[:, j, e] = xn[:, i]
    np.testing.assert_allclose(np.asarray(jac), want, rtol=1e-5, atol=1e-5)
    # Hessian-vector product of sum(y^2) in v: H = 2 J^T J.
    direction = jnp.ones_like(v0)
    hvp = jax.jvp(
        jax.grad(lambda v: jnp.sum(apply(layer, x, v) ** 2)), (v0,), (direction,)
    )[1]
    jmat = want.reshape(-1, conn.nnz)
    np.testing.assert_allclose(
        np.asarray(hvp), 2 * jmat.T @ jmat @ np.ones(conn.nnz), rtol=1e-4, atol=1e-4
    )
    assert np.isfinite(w).all()


# ------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("impl", IMPLS)
def test_integer_inputs_compute_in_the_compute_dtype(impl):
    conn = random_connectivity(8, 3, density=0.5, seed=2)
    layer = _layer(conn, impl, bias_initializer="random_normal")
    counts = np.random.default_rng(2).integers(0, 50, size=(4, 8)).astype("int32")
    out = layer(counts)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    want = counts.astype(np.float64) @ _kernel(layer) + to_numpy(layer.bias)
    np.testing.assert_allclose(to_numpy(out), want, rtol=1e-5, atol=1e-4)


def test_subclassed_model_trains_on_integer_counts():
    conn = random_connectivity(8, 3, density=0.5, seed=3)

    class Model(keras.Model):
        def __init__(self):
            super().__init__()
            self.sparse = SparseDense(3, conn)

        def call(self, x):
            return self.sparse(x)

    model = Model()
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x = np.random.default_rng(3).integers(0, 5, size=(16, 8)).astype("int32")
    y = np.ones((16, 3), "float32")
    model(x[:1])
    before = to_numpy(model.sparse.kernel_values).copy()
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(before, to_numpy(model.sparse.kernel_values))


@pytest.mark.parametrize("impl", IMPLS)
def test_float64_is_exact(impl):
    conn = random_connectivity(30, 6, density=0.3, seed=4)
    layer = _layer(conn, impl, dtype="float64")
    x = np.random.default_rng(4).standard_normal((5, 30))
    out = layer(x)
    if BACKEND == "jax" and not keras.config.floatx() == "float64":
        import jax

        if not jax.config.jax_enable_x64:
            pytest.skip("JAX computes float64 only with jax_enable_x64")
    assert keras.backend.standardize_dtype(out.dtype) == "float64"
    np.testing.assert_allclose(
        to_numpy(out), x @ _kernel(layer), rtol=1e-12, atol=1e-12
    )


# ------------------------------------------------------- non-finite inputs
def test_non_finite_inputs_reach_only_their_outputs_on_every_kernel():
    conn = random_connectivity(20, 6, density=0.3, seed=5)
    x = np.random.default_rng(5).standard_normal((2, 20)).astype("float32")
    x[0, 3], x[1, 7] = np.nan, np.inf
    results = {}
    for impl in ("sparse", "csr", "dense"):
        if impl == "csr" and not backend.csr_available():
            continue
        layer = _layer(conn, impl, use_bias=False, kernel_initializer="ones")
        results[impl] = to_numpy(layer(x))
    # NumPy reference restricted to the connections (no 0 * NaN terms).
    want = np.zeros((2, 6))
    for i, j in zip(conn.input_indices, conn.output_indices, strict=True):
        want[:, j] += x[:, i].astype(np.float64)
    for impl, got in results.items():
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=impl)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=impl)
    assert np.isfinite(want[0]).any()  # some outputs are not connected to input 3


@pytest.mark.parametrize(
    "n_in, n_out, density",
    # The second is wide enough that "dense" sums over chunks of 64 inputs
    # (four and a tail) where it chunks.
    [(12, 7, 0.5), (300, 2048, 0.02)],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_non_finite_inputs_and_weights_give_the_ieee_sums_on_every_kernel(
    n_in, n_out, density, chunked, monkeypatch
):
    """Each output is the IEEE sum of its connections' terms: inf * 0 and
    inf * NaN weights are NaN, opposite infinities are NaN, one sign's are
    that infinity; compared with NumPy float64 sums over the connections.
    `chunked`: the guarded branch counts in chunks, as it does on JAX."""
    monkeypatch.setattr(backend, "COND_ALLOCATES_BOTH_BRANCHES", chunked)
    conn = random_connectivity(n_in, n_out, density=density, seed=9)
    rng = np.random.default_rng(9)
    v = rng.standard_normal(conn.nnz).astype("float32")
    rows, cols = conn.input_indices, conn.output_indices
    # The odd weights on four different outputs, so that an infinite weight
    # meeting an infinite input is not hidden behind a NaN weight's output.
    odd = [int(np.flatnonzero(cols == j)[0]) for j in range(4)]
    v[odd] = [0.0, np.nan, np.inf, -np.inf]
    x = rng.standard_normal((6, n_in)).astype("float32")
    for b, c in enumerate(odd):  # the odd weights' inputs, infinite
        x[b, rows[c]] = np.inf if b % 2 else -np.inf
    x[4, 2], x[4, n_in - 5], x[5, 0], x[5, n_in - 1] = np.inf, -np.inf, np.nan, np.inf
    with np.errstate(invalid="ignore"):
        terms = x[:, rows].astype(np.float64) * v
        want = np.zeros((6, n_out))
        np.add.at(want.T, cols, terms.T)
    for impl in ("sparse", "csr", "dense"):
        if impl == "csr" and not backend.csr_available():
            continue
        layer = _layer(conn, impl, use_bias=False)
        got = to_numpy(apply(layer, ops.convert_to_tensor(x), ops.convert_to_tensor(v)))
        for kind in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(kind(got), kind(want), err_msg=impl)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=impl)
    # Each kind of output occurs, and a finite one.
    assert np.isnan(want).any() and np.isposinf(want).any()
    assert np.isneginf(want).any() and np.isfinite(want).any()


def test_non_finite_inputs_gradients_agree_on_every_kernel():
    """Gradients with NaN/inf inputs: `"dense"` differentiates its dense
    branch (`cond_true_gradient`) also when the guarded branch ran, which is
    exact at the connections: compared with NumPy sums over connections."""
    conn = random_connectivity(20, 6, density=0.3, seed=5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 20)).astype("float32")
    x[0, 3], x[1, 7], x[2, 12] = np.nan, np.inf, -np.inf
    g = rng.standard_normal((3, 6)).astype("float32")
    v = rng.standard_normal(conn.nnz).astype("float32")
    rows, cols = conn.input_indices, conn.output_indices
    w = np.zeros(conn.shape)
    w[rows, cols] = v
    with np.errstate(invalid="ignore"):
        want_v = (x[:, rows].astype(np.float64) * g[:, cols]).sum(axis=0)
    want_x = g.astype(np.float64) @ w.T
    for impl in ("sparse", "csr", "dense"):
        if impl == "csr" and not backend.csr_available():
            continue
        layer = _layer(conn, impl, use_bias=False)
        gt = ops.convert_to_tensor(g)

        def loss(xx, vv, layer=layer, gt=gt):
            return ops.sum(apply(layer, xx, vv) * gt)

        gx, gv = gradients(loss, ops.convert_to_tensor(x), ops.convert_to_tensor(v))
        np.testing.assert_allclose(gx, want_x, rtol=1e-5, atol=1e-5, err_msg=impl)
        np.testing.assert_array_equal(np.isnan(gv), np.isnan(want_v), err_msg=impl)
        np.testing.assert_allclose(gv, want_v, rtol=1e-4, atol=1e-5, err_msg=impl)
    assert np.isnan(want_v).any() and np.isinf(want_v).any()


# ------------------------------------------------------------------ cloning
def test_clone_json_and_deepcopy_keep_a_large_connectivity():
    conn = random_connectivity(100_000, 300, nnz=300_000, seed=0)
    model = keras.Sequential(
        [keras.Input((100_000,)), SparseDense(300, conn, name="s")]
    )
    assert model.get_layer("s").get_config()["connectivity"]["stored_with_weights"]
    x = np.random.default_rng(0).standard_normal((2, 100_000)).astype("float32")
    for rebuilt in (
        keras.models.clone_model(model),
        keras.models.model_from_json(model.to_json()),
        copy.deepcopy(model),
    ):
        layer = rebuilt.get_layer("s")
        assert layer.connectivity.same_edges(conn)
        assert layer(x).shape == (2, 300)


# --------------------------------------------------------------- transforms
@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_per_example_gradients(impl):
    conn = random_connectivity(9, 4, density=0.5, seed=6)
    layer = _layer(conn, impl)
    x = np.random.default_rng(6).standard_normal((5, 9)).astype("float32")
    v0 = layer.kernel_values.value

    def loss(v, xi):
        return ops.sum(apply(layer, ops.expand_dims(xi, 0), v) ** 2)

    if BACKEND == "jax":
        import jax

        per_example = np.asarray(jax.vmap(jax.grad(loss), in_axes=(None, 0))(v0, x))
    elif BACKEND == "torch":
        import torch

        per_example = (
            torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(
                v0.detach(), torch.tensor(x)
            )
            .detach()
            .numpy()
        )
    else:
        # TensorFlow has no vmap of gradients; per-example gradients are
        # one tape per example (tf.vectorized_map of the forward pass is
        # tested below).
        import tensorflow as tf

        vv = tf.constant(to_numpy(v0))

        def grad_one(xi):
            with tf.GradientTape() as tape:
                tape.watch(vv)
                value = loss(vv, xi)
            return tape.gradient(value, vv)

        per_example = np.stack([grad_one(tf.constant(xi)).numpy() for xi in x])
    w = _kernel(layer)
    for k in range(5):
        y = x[k].astype(np.float64) @ w
        want = 2 * x[k][conn.input_indices] * y[conn.output_indices]
        np.testing.assert_allclose(per_example[k], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
def test_vectorized_map_matches_batched_call(impl):
    conn = random_connectivity(9, 4, density=0.5, seed=7)
    layer = _layer(conn, impl)
    x = np.random.default_rng(7).standard_normal((6, 9)).astype("float32")
    mapped = ops.vectorized_map(
        lambda xi: layer(ops.expand_dims(xi, 0))[0], ops.convert_to_tensor(x)
    )
    np.testing.assert_allclose(
        to_numpy(mapped), to_numpy(layer(x)), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("non_finite", [False, True])
@pytest.mark.parametrize("impl", IMPLS)
def test_compiled_step_matches_eager(impl, non_finite):
    """`tf.function(jit_compile=True)` (XLA) on TensorFlow,
    `torch.compile(fullgraph=True)` on PyTorch, `jax.jit` on JAX; with
    NaN/inf inputs the compiled non-finite branch (`"dense"`) runs."""
    conn = random_connectivity(16, 5, density=0.4, seed=8)
    layer = _layer(conn, impl)
    x = np.random.default_rng(8).standard_normal((4, 16)).astype("float32")
    if non_finite:
        x[1, 2], x[3, 9] = np.nan, np.inf
    eager = to_numpy(layer(x))
    if non_finite:
        assert np.isnan(eager).any() and np.isfinite(eager[1]).any()
    if BACKEND == "tensorflow":
        import tensorflow as tf

        v = layer.kernel_values

        @tf.function(jit_compile=True)
        def step(xx):
            with tf.GradientTape() as tape:
                y = layer(xx)
                loss = tf.reduce_sum(y**2)
            return y, tape.gradient(loss, v.value if hasattr(v, "value") else v)

        y, g = step(tf.constant(x))
        assert g is not None
    elif BACKEND == "torch":
        import torch

        compiled = torch.compile(lambda xx: layer(xx), fullgraph=True, backend="eager")
        y = compiled(torch.tensor(x))
    else:
        import jax

        y = jax.jit(lambda xx: layer(xx))(x)
    np.testing.assert_allclose(to_numpy(y), eager, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ sparse inputs
@pytest.mark.parametrize("impl", IMPLS)
def test_sparse_input_tensors(impl):
    conn = random_connectivity(12, 4, density=0.5, seed=9)
    layer = _layer(conn, impl)
    dense = np.zeros((3, 12), "float32")
    dense[0, 2], dense[1, 5], dense[2, 11] = 1.5, -2.0, 3.0
    want = to_numpy(layer(dense))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        sparse = tf.sparse.from_dense(dense)
    elif BACKEND == "jax":
        from jax.experimental import sparse as jsparse

        sparse = jsparse.BCOO.fromdense(dense)
    else:
        import torch

        sparse = torch.tensor(dense).to_sparse()
    np.testing.assert_allclose(to_numpy(layer(sparse)), want, rtol=1e-6, atol=1e-6)


def test_scipy_sparse_through_fit_and_sparse_keras_input():
    import scipy.sparse as sp

    conn = random_connectivity(12, 4, density=0.5, seed=10)
    if BACKEND == "torch":
        inputs = keras.Input((12,))  # Keras's torch backend has no sparse inputs
    else:
        inputs = keras.Input((12,), sparse=True)
    outputs = keras.layers.Dense(1)(SparseDense(4, conn)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    x = sp.random(32, 12, density=0.2, format="csr", random_state=0, dtype=np.float32)
    y = np.ones((32, 1), "float32")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    np.testing.assert_allclose(
        to_numpy(model.predict(x, verbose=0)),
        to_numpy(model(x.toarray())),
        rtol=1e-5,
        atol=1e-5,
    )


# ------------------------------------------------------------------- export
def _serve_in_fresh_process(script, code, args, env, expected):
    """Runs `code` (saved as `script`) with `args` in a fresh interpreter;
    it writes `<path>.out.npy` for each exported model `path`. `expected`
    maps a case name to `(path, the model's own output)`."""
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name, (path, want) in expected.items():
        got = np.load(f"{path}.out.npy")
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


_SERVE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    x = np.load(sys.argv[1])
    for path in sys.argv[2:]:
        restored = tf.saved_model.load(path)  # kept alive while it serves
        np.save(f"{path}.out.npy", restored.serve(tf.constant(x)).numpy())
    """
)


@pytest.mark.skipif(
    BACKEND == "torch", reason="tf_saved_model export is TF's and JAX's"
)
def test_exported_models_serve_in_a_fresh_process(tmp_path):
    """`model.export()` for every implementation; one fresh process (no
    keras_sparse, no Keras) loads and serves each SavedModel."""
    conn = random_connectivity(30, 5, density=0.3, seed=11)
    x = np.random.default_rng(11).standard_normal((4, 30)).astype("float32")
    impls = ["sparse", "dense"] + (["csr"] if backend.csr_available() else [])
    paths, wants = [], []
    for impl in impls:
        model = keras.Sequential(
            [
                keras.Input((30,)),
                SparseDense(5, conn, implementation=impl, activation="relu"),
            ]
        )
        wants.append(to_numpy(model(x)))
        paths.append(str(tmp_path / impl))
        model.export(paths[-1], verbose=False)
    np.save(tmp_path / "x.npy", x)
    _serve_in_fresh_process(
        tmp_path / "serve.py",
        _SERVE,
        [str(tmp_path / "x.npy"), *paths],
        dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        dict(zip(impls, zip(paths, wants, strict=True), strict=True)),
    )


_LOAD_TORCH = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    import keras_sparse  # registers the keras_sparse:: operators a program may call
    for path in sys.argv[1:]:
        x = np.load(f"{path}.x.npy")
        program = torch.export.load(path)
        np.save(f"{path}.out.npy", program.module()(torch.from_numpy(x)).numpy())
    """
)


@pytest.mark.skipif(BACKEND != "torch", reason="torch.export is PyTorch's")
def test_torch_exported_programs_serve_in_a_fresh_process(tmp_path):
    """`torch.export` of `SparseDense` on every implementation (with a NaN
    input, so the `"dense"` kernel's guarded branch runs) and of a
    `SparseConv2D` with permuted groups, with a dynamic batch axis; each
    program is saved, and one fresh process (`import keras_sparse`, no model
    code) loads and runs it on a larger batch."""
    import torch

    from keras_sparse import Connectivity
    from keras_sparse.connectivity import block_diagonal_connectivity
    from keras_sparse.layers import SparseConv2D

    conn = random_connectivity(30, 5, density=0.3, seed=11)
    x = np.random.default_rng(11).standard_normal((4, 30)).astype("float32")
    x[1, 3] = np.nan
    permuted = Connectivity.from_dense(
        block_diagonal_connectivity(6, 16, groups=2).to_dense()[[3, 0, 4, 1, 5, 2]][
            :, np.random.default_rng(0).permutation(16)
        ]
    )
    image = np.random.default_rng(12).standard_normal((2, 9, 9, 6)).astype("float32")
    cases = {
        impl: (
            [keras.Input((30,)), SparseDense(5, conn, implementation=impl)],
            x,
        )
        for impl in ["sparse", "dense"] + (["csr"] if backend.csr_available() else [])
    }
    cases["conv_grouped"] = (
        [
            keras.Input((9, 9, 6)),
            SparseConv2D(16, 3, permuted, implementation="grouped", padding="same"),
        ],
        image,
    )
    paths, wants = [], []
    for name, (layers, inputs) in cases.items():
        model = keras.Sequential(layers)
        if name == "conv_grouped":
            assert model.layers[0]._plan.input_permutation is not None
        wants.append(to_numpy(model(inputs)))
        # Exported on 2 samples, with a dynamic batch axis; served on more.
        batch = torch.export.Dim("batch")
        program = torch.export.export(
            model, (torch.from_numpy(inputs[:2]),), dynamic_shapes=(({0: batch},),)
        )
        paths.append(str(tmp_path / f"{name}.pt2"))
        torch.export.save(program, paths[-1])
        np.save(f"{paths[-1]}.x.npy", inputs)
    # The NaN reaches only the outputs input 3 is connected to.
    assert np.isnan(wants[0][1]).any() and np.isfinite(wants[0][1]).any()
    _serve_in_fresh_process(
        tmp_path / "load.py",
        _LOAD_TORCH,
        paths,
        dict(os.environ, KERAS_BACKEND="torch"),
        dict(zip(cases, zip(paths, wants, strict=True), strict=True)),
    )


# ---------------------------------------------------------------- JAX trace
@pytest.mark.skipif(BACKEND != "jax", reason="the XLA FFI kernels are JAX's")
def test_first_layer_built_inside_a_trace_keeps_the_ffi_kernels():
    import subprocess as sp

    code = textwrap.dedent(
        """
        import warnings, numpy as np, keras
        warnings.simplefilter("error", RuntimeWarning)
        from keras_sparse import SparseDense
        from keras_sparse.connectivity import random_connectivity
        from keras_sparse.ops.backend import jax_ffi
        conn = random_connectivity(20, 4, density=0.5, seed=0)
        class M(keras.Model):
            def __init__(self):
                super().__init__()
                self.s = SparseDense(4, conn, implementation="csr")
            def call(self, x):
                return self.s(x)
        m = M()
        m.compile("sgd", "mse")
        m.fit(np.ones((8, 20), "float32"), np.ones((8, 4), "float32"), verbose=0)
        assert jax_ffi.available(), jax_ffi.unavailable_reason()
        print("ok")
        """
    )
    out = sp.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, KERAS_BACKEND="jax"),
    )
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("impl", IMPLS)
def test_half_precision_sums_in_float32(policy, impl):
    if impl == "csr" and not backend.csr_available():
        pytest.skip("no compiled kernels on this placement")
    keras.config.set_dtype_policy(policy)
    mask = np.ones((4096, 4), bool)
    mask[0, 0] = False
    from keras_sparse import Connectivity

    layer = SparseDense(4, Connectivity.from_dense(mask), implementation=impl,
                        kernel_initializer="ones", use_bias=False)
    x = (np.random.default_rng(0).random((8, 4096)) + 0.5).astype("float32")
    out = to_numpy(layer(x)).astype(np.float64)
    want = x.astype(np.float64) @ mask
    dense = keras.layers.Dense(4, use_bias=False)
    dense.build((None, 4096))
    dense.kernel.assign(mask.astype("float32"))
    dense_error = np.abs(to_numpy(dense(x)).astype(np.float64) - want).max() / want.max()
    error = np.abs(out - want).max() / want.max()
    assert error <= max(2 * dense_error, 1e-2), (error, dense_error)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="SavedModel is TensorFlow's")
def test_exported_dense_kernel_has_no_xla_functions(tmp_path):
    """The TensorFlow `"dense"` kernel runs XLA-compiled scatter and gather
    functions in training, but a SavedModel must serve without XLA (TF
    Serving refuses `_XlaMustCompile` functions by default)."""
    conn = random_connectivity(30, 5, density=0.3, seed=12)
    model = keras.Sequential(
        [keras.Input((30,)), SparseDense(5, conn, implementation="dense")]
    )
    x = np.random.default_rng(12).standard_normal((4, 30)).astype("float32")
    want = to_numpy(model(x))
    path = str(tmp_path / "m")
    model.export(path, verbose=False)
    saved = open(os.path.join(path, "saved_model.pb"), "rb").read()
    assert b"_XlaMustCompile" not in saved
    import tensorflow as tf

    loaded = tf.saved_model.load(path)  # kept: its variables die with it
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, want, rtol=1e-6, atol=1e-6)
