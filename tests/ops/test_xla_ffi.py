"""JAX's FFI fast path equals the pure_callback path and the NumPy reference."""

import numpy as np
import pytest

from conftest import BACKEND
from keras_sparse.connectivity import random_connectivity
from keras_sparse.ops import csr_cpu

pytestmark = pytest.mark.skipif(
    BACKEND != "jax", reason="XLA FFI custom calls are the JAX backend's fast path"
)


def test_ffi_is_available_here():
    from keras_sparse.ops import xla_ffi

    assert xla_ffi.available(), xla_ffi.unavailable_reason()


@pytest.mark.parametrize(
    "shape, density, batch",
    # (2000, 30): few active inputs, the forward pass saves them (plan.saves_x)
    [((9180, 230), 0.01, 259), ((37, 300), 0.3, 7), ((50, 4), 0.5, 1), ((2000, 30), 0.0005, 9)],
)
def test_ffi_matches_pure_callback_and_numpy(shape, density, batch):
    import jax
    import jax.numpy as jnp

    from keras_sparse.ops.csr_backend import _make_jax

    conn = random_connectivity(*shape, density=density, seed=3, min_fan_in=1)
    plan = csr_cpu.CSRPlan(conn)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, shape[0])).astype(np.float32)
    g = rng.standard_normal((batch, shape[1])).astype(np.float32)
    v = rng.standard_normal(conn.nnz).astype(np.float32)
    w = np.zeros(shape)
    w[conn.input_indices, conn.output_indices] = v

    results = {}
    for use_ffi in (True, False):
        mm = _make_jax(plan, use_ffi=use_ffi)

        def loss(xx, vv, mm=mm):
            return jnp.sum(mm(xx, vv) * g)

        out = jax.jit(mm)(x, v)
        gx, gv = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, v)
        results[use_ffi] = [np.asarray(a) for a in (out, gx, gv)]
    reference = [x @ w, g @ w.T, (x.astype(np.float64).T @ g)[conn.input_indices, conn.output_indices]]
    for got_ffi, got_cb, want in zip(results[True], results[False], reference):
        np.testing.assert_allclose(got_ffi, want, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(got_ffi, got_cb, rtol=1e-5, atol=1e-5)


def test_ffi_drops_unused_input_gradient():
    import jax
    import jax.numpy as jnp

    from keras_sparse.ops.csr_backend import _make_jax

    conn = random_connectivity(40, 6, density=0.3, seed=0)
    mm = _make_jax(csr_cpu.CSRPlan(conn), use_ffi=True)
    x = jnp.ones((3, 40), jnp.float32)
    v = jnp.ones((conn.nnz,), jnp.float32)
    hlo = jax.jit(jax.grad(lambda vv: jnp.sum(mm(x, vv)))).lower(v).compile().as_text()
    assert "keras_sparse_csr_values_grad" in hlo
    assert "keras_sparse_csr_input_grad" not in hlo
