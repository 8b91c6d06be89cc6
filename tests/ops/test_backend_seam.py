"""The backend seam: every binding has the same names, and the compiled
kernels equal the portable formulas and NumPy, with gradients of any order."""

import keras
import numpy as np
import pytest
from keras import ops

from helpers import BACKEND, to_numpy
from keras_sparse.connectivity import random_connectivity
from keras_sparse.ops import backend, csr_cpu, portable


@pytest.mark.parametrize("name", ["jax", "tensorflow", "torch", "portable"])
def test_every_binding_implements_the_signature(name):
    import importlib

    module = importlib.import_module(f"keras_sparse.ops.backend.{name}")
    missing = [n for n in backend.SIGNATURE if not hasattr(module, n)]
    assert not missing, f"{name} lacks {missing}"
    assert module.GROUPED_CONV_MODE in ("native", "split")
    assert 0 <= module.AUTO_SPARSE_MAX_DENSITY <= 1
    assert 0 <= module.AUTO_CSR_MAX_DENSITY <= 1
    assert module.DENSIFY_INDEX_DTYPE in ("int32", "int64")
    # Only TensorFlow, which calls the kernels from several executor
    # threads, prefers the library's kernel thread.
    assert module.KERNEL_THREAD is (name == "tensorflow")


@pytest.mark.skipif(BACKEND == "jax", reason="JAX's FFI path never hands off")
def test_the_binding_launches_the_kernels_where_it_says(monkeypatch):
    """TensorFlow's calls run on the kernel thread (with more than one Numba
    thread), PyTorch's on the calling thread; results unchanged."""
    import threading

    if not csr_cpu.available() or not backend.csr_available():
        pytest.skip("no compiled kernels here")
    conn = random_connectivity(40, 6, density=0.3, seed=0)
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 40)).astype("float32")
    v = rng.standard_normal(conn.nnz).astype("float32")
    want = csr_cpu.spmm(x, v, *plan.arrays, 6)
    seen = []
    real = csr_cpu._forward

    def recording(*args):
        seen.append(threading.get_ident())
        real(*args)

    monkeypatch.setattr(csr_cpu, "_forward", recording)
    monkeypatch.setattr(csr_cpu.numba, "get_num_threads", lambda: 2)
    arrays = [backend.host_constant(a) for a in plan.arrays]
    got = backend.csr_matmul(
        keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(v), arrays, (40, 6)
    )
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-6, atol=1e-6)
    assert len(seen) == 1
    if backend.KERNEL_THREAD:
        assert seen[0] == csr_cpu._KERNEL_THREAD["ident"] != threading.get_ident()
    else:
        assert seen[0] == threading.get_ident()


def test_only_the_seam_asks_for_the_backend():
    import pathlib

    root = pathlib.Path(backend.__file__).parents[2]
    hits = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "backend.backend()" in p.read_text()
    ]
    assert hits == ["ops/backend/__init__.py"], hits


def test_a_dense_plan_keeps_its_positions_in_the_densify_index_dtype():
    """The positions a `"dense"` plan holds are already in the dtype the
    backend's scatter reads (no cast in every call), and place each value."""
    from keras_sparse.ops.plan import make_plan

    conn = random_connectivity(50, 8, density=0.3, seed=2)
    plan = make_plan(conn, "dense")
    positions = to_numpy(plan.positions)
    assert positions.dtype == np.dtype(backend.DENSIFY_INDEX_DTYPE)
    want = conn.output_indices.astype(np.int64) * 50 + conn.input_indices
    np.testing.assert_array_equal(positions, want)


def _case(shape, density, batch, dtype="float32", seed=0):
    conn = random_connectivity(*shape, density=density, seed=seed)
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, shape[0])).astype(dtype)
    v = rng.standard_normal(conn.nnz).astype(dtype)
    w = np.zeros(shape)
    w[conn.input_indices, conn.output_indices] = v
    return conn, plan, x, v, w


@pytest.mark.parametrize(
    "shape, density, batch", [((40, 7), 0.3, 5), ((300, 20), 0.02, 33)]
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_csr_matmul_matches_portable_and_numpy(shape, density, batch, dtype):
    if not backend.csr_available():
        pytest.skip("no compiled kernels on this placement")
    conn, plan, x, v, w = _case(shape, density, batch, dtype)
    arrays = tuple(backend.host_constant(a) for a in plan.arrays)
    xt, vt = ops.convert_to_tensor(x), ops.convert_to_tensor(v)
    if keras.backend.standardize_dtype(xt.dtype) != dtype:
        pytest.skip(f"{BACKEND} has no {dtype} here (JAX: jax_enable_x64 is off)")
    fast = to_numpy(backend.csr_matmul(xt, vt, arrays, shape))
    slow = to_numpy(portable.csr_matmul(xt, vt, arrays, shape))
    assert fast.dtype == np.dtype(dtype)
    assert slow.dtype == np.dtype(dtype)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(fast, x @ w, rtol=tol, atol=tol)
    np.testing.assert_allclose(slow, x @ w, rtol=tol, atol=tol)


@pytest.mark.parametrize("binding", ["current", "portable"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_densify_matches_numpy_with_gradients(binding, dtype):
    """The transposed dense kernel from flat positions (any order), and the
    dense product's second-order gradient, against NumPy."""
    module = backend if binding == "current" else backend.binding("portable")
    conn, _, x, v, w = _case((30, 6), 0.3, 4, dtype, seed=5)
    n_in, n_out = conn.shape
    order = np.random.default_rng(1).permutation(conn.nnz)
    positions = conn.output_indices[order] * n_in + conn.input_indices[order]
    pos = backend.host_constant(positions.astype(np.int32))
    vt = ops.convert_to_tensor(v[order])
    if keras.backend.standardize_dtype(vt.dtype) != dtype:
        pytest.skip(f"{BACKEND} has no {dtype} here (JAX: jax_enable_x64 is off)")
    kernel = to_numpy(module.densify(vt, pos, (n_out, n_in)))
    assert kernel.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(kernel, w.T.astype(dtype))

    def fn(xx, vv):
        kernel_t = module.densify(vv, pos, (n_out, n_in))
        return backend.matmul(xx, kernel_t, transpose_b=True)

    got = _second_order(fn, x, v[order])
    want = _numpy_penalty_gradient(x, v, conn)[order]
    tol = 1e-3 if dtype == "float32" else 1e-6
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _second_order(fn, x, v):
    """Gradient w.r.t. `v` of the gradient penalty |d sum(tanh(fn)) / dx|^2."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def penalty(vv):
            gx = jax.grad(lambda xx: jnp.sum(jnp.tanh(fn(xx, vv))))(x)
            return jnp.sum(gx**2)

        return np.asarray(jax.grad(penalty)(v))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        vv = tf.Variable(v)
        xx = tf.constant(x)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(xx)
                loss = tf.reduce_sum(tf.tanh(fn(xx, vv)))
            gx = inner.gradient(loss, xx)
            penalty = tf.reduce_sum(gx**2)
        grad = outer.gradient(penalty, vv)
        assert grad is not None, "the penalty's gradient was dropped"
        return grad.numpy()
    import torch

    vv = torch.tensor(v, requires_grad=True)
    xx = torch.tensor(x, requires_grad=True)
    loss = torch.sum(torch.tanh(fn(xx, vv)))
    (gx,) = torch.autograd.grad(loss, xx, create_graph=True)
    (grad,) = torch.autograd.grad(torch.sum(gx**2), vv)
    return grad.detach().numpy()


def _numpy_penalty(x, v, conn):
    w = np.zeros(conn.shape)
    w[conn.input_indices, conn.output_indices] = v
    y = x @ w
    gx = (1 - np.tanh(y) ** 2) @ w.T
    return np.sum(gx**2)


def _numpy_penalty_gradient(x, v, conn, eps=1e-6):
    """Central finite differences of `_numpy_penalty` in `v`, float64 NumPy."""
    x, v = x.astype(np.float64), v.astype(np.float64)
    return np.array(
        [
            (
                _numpy_penalty(x, v + eps * e, conn)
                - _numpy_penalty(x, v - eps * e, conn)
            )
            / (2 * eps)
            for e in np.eye(conn.nnz)
        ]
    )


def test_second_order_gradients_run_the_kernels_and_match_numpy():
    if not backend.csr_available():
        pytest.skip("no compiled kernels on this placement")
    conn, plan, x, v, w = _case((30, 6), 0.3, 4, "float64", seed=3)
    arrays = tuple(backend.host_constant(a) for a in plan.arrays)

    def fn(xx, vv):
        return backend.csr_matmul(xx, vv, arrays, conn.shape)

    got = _second_order(fn, x, v)
    np.testing.assert_allclose(
        got, _numpy_penalty_gradient(x, v, conn), rtol=1e-5, atol=1e-6
    )


@pytest.mark.skipif(
    BACKEND != "torch", reason="the torch.sparse (CUDA) path is PyTorch's"
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_sparse_path_matches_numpy_with_second_order(monkeypatch, dtype):
    """The CUDA path's code (torch.sparse.mm, sampled_addmm), run on the CPU."""
    from keras_sparse.ops.backend import torch as binding

    monkeypatch.setattr(binding, "KERNELS", "torch_sparse")
    conn, plan, x, v, w = _case((30, 6), 0.3, 4, dtype, seed=5)
    arrays = tuple(backend.host_constant(a) for a in plan.arrays)

    def fn(xx, vv):
        return backend.csr_matmul(xx, vv, arrays, conn.shape)

    tol = 1e-5 if dtype == "float32" else 1e-10
    y = to_numpy(fn(ops.convert_to_tensor(x), ops.convert_to_tensor(v)))
    np.testing.assert_allclose(y, x @ w, rtol=tol, atol=tol)
    got = _second_order(fn, x.astype(np.float64), v.astype(np.float64))
    np.testing.assert_allclose(
        got, _numpy_penalty_gradient(x, v, conn), rtol=1e-5, atol=1e-6
    )


@pytest.mark.skipif(
    BACKEND != "torch", reason="the torch.sparse (CUDA) path is PyTorch's"
)
def test_auto_picks_the_gpu_csr_path_on_cuda(monkeypatch):
    import torch

    from keras_sparse.ops import plan

    conn = random_connectivity(9180, 230, density=0.01, seed=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(csr_cpu, "available", lambda: False)
    assert backend.csr_available()
    assert plan.choose_implementation(conn) == "csr"
    from keras_sparse.ops.backend import torch as binding

    assert binding._torch_sparse(torch.zeros(1, device="meta"))


@pytest.mark.skipif(BACKEND != "jax", reason="the XLA FFI kernels are JAX's")
def test_jax_runs_ffi_kernels_and_exports_without_them():
    import jax
    from jax import export

    from keras_sparse.ops.backend import jax_ffi

    assert jax_ffi.available(), jax_ffi.unavailable_reason()
    conn, plan, x, v, w = _case((40, 6), 0.3, 3)
    arrays = tuple(backend.host_constant(a) for a in plan.arrays)

    def loss(xx, vv):
        return (backend.csr_matmul(xx, vv, arrays, conn.shape) ** 2).sum()

    hlo = jax.jit(jax.grad(loss, argnums=1)).lower(x, v).compile().as_text()
    assert "keras_sparse_csr_spmm" in hlo and "keras_sparse_csr_sddmm" in hlo
    # The input gradient is not needed here, and XLA drops it.
    assert "keras_sparse_csr_spmm_t" not in hlo
    exported = export.export(jax.jit(loss))(x, v)
    assert "keras_sparse_csr" not in exported.mlir_module()
    np.testing.assert_allclose(
        np.asarray(exported.call(x, v)), ((x @ w) ** 2).sum(), rtol=1e-4
    )


@pytest.mark.parametrize("binding", ["current", "portable"])
@pytest.mark.parametrize("axis", [-1, 1])
def test_take_permutation_matches_numpy_to_second_order(binding, axis):
    """Value, and the gradient (in `v`) of the gradient penalty
    |d sum(tanh(P(x * v))) / dx|^2, where P reorders `axis` by `order`,
    against NumPy (closed form and central differences, float64)."""
    module = backend if binding == "current" else backend.binding("portable")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 4, 5)).astype("float32")
    v = rng.standard_normal(5).astype("float32")
    order = rng.permutation(5)
    inverse = np.argsort(order)
    perm = (backend.host_constant(order), backend.host_constant(inverse))
    shape = [1, 1, 1, 1]
    shape[axis] = 5

    got = to_numpy(module.take_permutation(ops.convert_to_tensor(x), *perm, axis=axis))
    np.testing.assert_array_equal(got, np.take(x, order, axis=axis))

    def fn(xx, vv):
        return module.take_permutation(xx * ops.reshape(vv, shape), *perm, axis=axis)

    def penalty(vv):  # NumPy: dL/dx = P^-1(1 - tanh(P(x v))^2) * v
        y = np.take(x.astype(np.float64) * vv.reshape(shape), order, axis=axis)
        gx = np.take(1 - np.tanh(y) ** 2, inverse, axis=axis) * vv.reshape(shape)
        return np.sum(gx**2)

    eps = 1e-6
    v64 = v.astype(np.float64)
    want = np.array(
        [(penalty(v64 + eps * e) - penalty(v64 - eps * e)) / (2 * eps) for e in np.eye(5)]
    )
    got = _second_order(fn, x, v)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's own take_permutation")
def test_torch_take_permutation_under_func_transforms_and_compile():
    """`torch.func.vmap` of `grad`, `torch.func.jvp` and
    `torch.compile(fullgraph=True)` run it and agree with `index_select`."""
    import torch

    rng = np.random.default_rng(8)
    x = torch.tensor(rng.standard_normal((4, 3, 2, 6)), dtype=torch.float32)
    w = torch.tensor(rng.standard_normal((3, 2, 6)), dtype=torch.float32)
    order = torch.tensor(rng.permutation(6))
    inverse = torch.argsort(order)

    def f(xx):
        return torch.sum(torch.sin(backend.take_permutation(xx, order, inverse, -1)) * w)

    def ref(xx):
        return torch.sum(torch.sin(torch.index_select(xx, -1, order)) * w)

    per_example = torch.func.vmap(torch.func.grad(f))(x)
    np.testing.assert_allclose(per_example, torch.func.vmap(torch.func.grad(ref))(x), rtol=1e-6)
    t = torch.ones_like(x[0])
    _, got = torch.func.jvp(f, (x[0],), (t,))
    _, want = torch.func.jvp(ref, (x[0],), (t,))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    compiled = torch.compile(f, fullgraph=True)
    np.testing.assert_allclose(compiled(x[0]), f(x[0]), rtol=1e-6)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's own take_permutation")
@pytest.mark.parametrize("saving", [False, True])
def test_tensorflow_take_permutation_compiled_and_while_saving(monkeypatch, saving):
    """The XLA gather, and the plain `tf.gather` used while a SavedModel is
    traced, give the permutation and the inverse permutation as gradient,
    also inside `tf.function(jit_compile=True)`."""
    import tensorflow as tf

    from keras_sparse.ops.backend import tf_densify

    monkeypatch.setattr(tf_densify, "saving", lambda: saving)
    rng = np.random.default_rng(9)
    x = tf.constant(rng.standard_normal((2, 3, 7)).astype("float32"))
    g = rng.standard_normal((2, 3, 7)).astype("float32")
    order = rng.permutation(7)
    inverse = np.argsort(order)

    @tf.function(jit_compile=True)
    def step(xx):
        with tf.GradientTape() as tape:
            tape.watch(xx)
            y = backend.take_permutation(xx, tf.constant(order), tf.constant(inverse), -1)
            loss = tf.reduce_sum(y * g)
        return y, tape.gradient(loss, xx)

    y, dx = step(x)
    np.testing.assert_array_equal(y.numpy(), np.take(x.numpy(), order, axis=-1))
    np.testing.assert_array_equal(dx.numpy(), np.take(g, inverse, axis=-1))


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's own take_permutation")
def test_jax_take_permutation_forward_mode_and_vmap():
    """`jax.jvp`, `jax.jacfwd` and `jax.vmap` of it agree with NumPy."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4, 6)).astype("float32")
    t = rng.standard_normal((3, 4, 6)).astype("float32")
    order = rng.permutation(4)
    perm = (jnp.asarray(order), jnp.asarray(np.argsort(order)))

    def f(xx):
        return backend.take_permutation(xx, *perm, axis=1)

    y, ty = jax.jvp(f, (x,), (t,))
    np.testing.assert_array_equal(np.asarray(y), np.take(x, order, axis=1))
    np.testing.assert_array_equal(np.asarray(ty), np.take(t, order, axis=1))
    jac = np.asarray(jax.jacfwd(f)(x[:1, :, :2]))  # (1, 4, 2, 1, 4, 2)
    np.testing.assert_array_equal(jac.reshape(8, 8), np.eye(8).reshape(4, 2, 8)[order].reshape(8, 8))
    batched = jax.vmap(lambda xx: backend.take_permutation(xx, *perm, axis=0))(x)
    np.testing.assert_array_equal(np.asarray(batched), np.take(x, order, axis=1))
