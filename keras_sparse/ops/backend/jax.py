"""JAX binding of the backend seam (`keras_sparse.ops.backend`).

The compiled CPU kernels are three JAX primitives, `spmm` (`x @ W`),
`spmm_t` (`dy @ W.T`) and `sddmm` (the sampled product that is the value
gradient). Each is bilinear, and each one's derivatives are the other two:

- `spmm(x, v)`: d/dx -> `spmm_t(ct, v)`, d/dv -> `sddmm(x, ct)`;
- `spmm_t(dy, v)`: d/ddy -> `spmm(ct, v)`, d/dv -> `sddmm(ct, dy)`;
- `sddmm(x, dy)`: d/dx -> `spmm_t(dy, ct)`, d/ddy -> `spmm(x, ct)`.

So JVP and transpose rules close over the family: forward and reverse
mode, to any order, run the same kernels. `vmap` folds a batched dense
operand into the rows; any other batching runs the portable `keras.ops`
formulas under `jax.vmap`. The lowering calls the kernels as XLA FFI
custom calls (`jax_ffi`, float32, int32 indices), through
`jax.pure_callback` otherwise (float64, or FFI unavailable), and as the
portable formulas when lowering for export (`jax.export`, `model.export`),
so an exported model carries no custom call and runs anywhere.

The index operands (`indptr, indices, perm`, see
`keras_sparse.ops.csr_cpu.CSRPlan`) are ordinary operands: constants for a
fixed connectivity, variables for one that changes during training (no
retrace when they change).

`take_permutation` (the permuted groups of `SparseConv*D`) gathers along
the leading axis between two `moveaxis`, whose VJP XLA runs 4x faster
than that of a gather along the last axis.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from keras_sparse.ops import csr_cpu
from keras_sparse.ops.backend.portable import (  # noqa: F401 (the seam)
    conv,
    dense_input,
    matmul,
    segment_sum,
)

GROUPED_CONV_MODE = "split"
AUTO_SPARSE_MAX_DENSITY = 0.005
# `csr` up to 20 %: the 9180 -> 230 training step on a 2-core AMD EPYC (Zen
# 4), csr / dense vs masked dense at 20 %: 1.42x / 0.97x (batch 2048), 1.40x /
# 1.04x (256), 1.32x / 1.12x (32) in `run_all.sh`'s tables, and 13.4 / 18.3 /
# 19.1 ms (csr / dense / masked) in a rerun; at 30 % 18.3 / 16.9 / 17.5 ms
# (dense faster), at 50 % csr 0.63x (docs/benchmarks.md). The next full
# `run_all.sh` run, at 20 %: 1.40x / 0.96x, 1.38x / 1.10x, 1.19x / 1.18x; at
# 30 % 1.02x / 1.02x, 1.11x / 1.11x, 0.93x / 1.35x (batch 2048 / 256 / 32).
# It was 10 % while the kernels were slower (30 / 22 / 18 ms at 20 %).
AUTO_CSR_MAX_DENSITY = 0.2
# XLA assigns buffers to every branch of a conditional in every execution
# (the non-finite branch of "dense" once took 1.1 GB of each step).
COND_ALLOCATES_BOTH_BRANCHES = True
DENSIFY_INDEX_DTYPE = "int32"  # JAX without x64 has no int64
# The FFI calls launch in place on XLA's thread; the `pure_callback` path
# too (XLA's threads; not measured faster through the kernel thread).
KERNEL_THREAD = False

_PRIMS: dict[str, Any] = {}
_EAGER: dict[tuple[Any, ...], Any] = {}


def take_permutation(x: Any, order: Any, inverse: Any, axis: int) -> Any:
    """`x` with its `axis` reordered by the permutation `order`, gathered
    along the leading axis between two `moveaxis`: XLA transposes a gather
    along the last axis into a scatter-add of strided slices. On 32 x 30 x
    30 x 64 float32 the gather's VJP took 13.8 ms that way and 3.4 ms this
    way, the forward 0.59 ms both (a scratch A/B in one process, 2-core
    Xeon). Plain `jax.numpy` ops: every transform applies."""
    import jax.numpy as jnp

    moved = jnp.moveaxis(x, axis, 0)
    return jnp.moveaxis(jnp.take(moved, order, axis=0), 0, axis)


def csr_available() -> bool:
    """Whether the compiled kernels run here: Numba, and JAX on the CPU."""
    import jax

    return csr_cpu.available() and jax.default_backend() == "cpu"


def cond_true_gradient(pred: Any, true_fn: Any, false_fn: Any, *args: Any) -> Any:
    """`lax.cond` differentiated as `true_fn` (a `custom_jvp`).

    JAX differentiates a `cond` by keeping the intermediates of every branch
    as residuals, taken or not: the non-finite branch of `"dense"` (then
    two `x`-sized arrays and a sparse product's operands) cost 10-15 ms of
    a 9180 -> 230 training step at 20 % density whose masked dense step
    took 12-16 ms. Here only the taken branch's residuals are kept, and
    derivatives of any order and mode are those of `true_fn`. (XLA still
    assigns buffers to both branches: `COND_ALLOCATES_BOTH_BRANCHES`.)
    """
    import jax

    @jax.custom_jvp
    def select(flag: Any, *operands: Any) -> Any:
        return jax.lax.cond(flag, true_fn, false_fn, *operands)

    @select.defjvp
    def select_jvp(primals: Any, tangents: Any) -> Any:
        _, tangent = jax.jvp(true_fn, tuple(primals[1:]), tuple(tangents[1:]))
        return select(*primals), tangent

    return select(pred, *args)


def densify(values: Any, positions: Any, shape: tuple[int, int]) -> Any:
    """The dense `shape` matrix with `values` at the unique flat
    `positions`, zeros elsewhere.

    A scatter declared `unique_indices`: its derivatives are a scatter and a
    gather of the cotangent. Keras's `scatter_update` makes no such promise,
    and JAX differentiates it through the general non-unique scatter: a
    9180 -> 230 training step at 20 % density took 362 ms with it and
    about 10 ms with this (masked dense: 10 ms).
    """
    import jax.numpy as jnp

    flat = jnp.zeros(shape[0] * shape[1], dtype=values.dtype)
    return flat.at[positions].set(values, unique_indices=True).reshape(shape)


def host_constant(array: np.ndarray) -> Any:
    """`array` as a JAX array made outside any trace."""
    import jax
    import jax.numpy as jnp

    with jax.ensure_compile_time_eval():
        return jnp.asarray(array)


def csr_matmul(x: Any, values: Any, arrays: Any, shape: tuple[int, int]) -> Any:
    """`x @ W` for 2-D `x`, differentiable to any order (see module doc)."""
    import jax.numpy as jnp

    from keras_sparse.ops.backend import jax_ffi

    prims = _primitives()
    jax_ffi.available()  # registers and checks (eagerly) before any lowering
    x = jnp.asarray(x)
    values = jnp.asarray(values, dtype=x.dtype)
    idx = [jnp.asarray(a) for a in arrays]
    return prims["spmm"].bind(x, values, *idx, n_out=int(shape[1]))


# ----------------------------------------------------------------- primitives
def _portable(name: str, *args: Any, **params: Any) -> Any:
    """The same product with `jax.numpy` (export, odd batching)."""
    import jax.numpy as jnp

    if name == "spmm":
        x, v, indptr, indices, perm = args
        rows = jnp.searchsorted(indptr, jnp.arange(perm.shape[0]), side="right") - 1
        contrib = jnp.take(x, rows, axis=1) * jnp.take(v, perm)[None, :]
        out = jnp.zeros((x.shape[0], params["n_out"]), x.dtype)
        return out.at[:, indices].add(contrib)
    if name == "spmm_t":
        dy, v, indptr, indices, perm = args
        rows = jnp.searchsorted(indptr, jnp.arange(perm.shape[0]), side="right") - 1
        contrib = jnp.take(dy, indices, axis=1) * jnp.take(v, perm)[None, :]
        out = jnp.zeros((dy.shape[0], params["n_in"]), dy.dtype)
        return out.at[:, rows].add(contrib)
    x, dy, indptr, indices, perm = args
    rows = jnp.searchsorted(indptr, jnp.arange(perm.shape[0]), side="right") - 1
    prod = jnp.sum(jnp.take(x, rows, axis=1) * jnp.take(dy, indices, axis=1), axis=0)
    return jnp.zeros(perm.shape[0], x.dtype).at[perm].set(prod)


def _host(name: str, *args: Any, **params: Any) -> np.ndarray:
    a = [np.asarray(arg) for arg in args]
    if name == "spmm":
        return csr_cpu.spmm(a[0], a[1], a[2], a[3], a[4], params["n_out"])
    if name == "spmm_t":
        return csr_cpu.spmm_t(a[0], a[1], a[2], a[3], a[4], params["n_in"])
    return csr_cpu.sddmm(a[0], a[1], a[2], a[3], a[4])


def _out_aval(name: str, *avals: Any, **params: Any) -> Any:
    import jax

    if name == "spmm":
        return jax.core.ShapedArray(
            (avals[0].shape[0], params["n_out"]), avals[0].dtype
        )
    if name == "spmm_t":
        return jax.core.ShapedArray((avals[0].shape[0], params["n_in"]), avals[0].dtype)
    return jax.core.ShapedArray((avals[4].shape[0],), avals[0].dtype)


def _compiled(name: str, *args: Any, **params: Any) -> Any:
    """The kernel call inside a lowering: FFI when it can, else a callback."""
    import jax

    from keras_sparse.ops.backend import jax_ffi

    ffi = (
        jax_ffi.available()
        and args[0].dtype == np.float32
        and all(a.dtype == np.int32 for a in args[2:])
    )
    if ffi:
        return getattr(jax_ffi, name)(*args, **_kernel_params(name, params))
    aval = _out_aval(name, *args, **params)
    return jax.pure_callback(
        partial(_host, name, **params),
        jax.ShapeDtypeStruct(aval.shape, aval.dtype),
        *args,
    )


def _kernel_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    if name == "spmm":
        return {"num_outputs": params["n_out"]}
    if name == "spmm_t":
        return {"num_inputs": params["n_in"]}
    return {}


def _eager(name: str, *args: Any, **params: Any) -> Any:
    """A primitive called outside any trace: one jitted function per
    primitive and parameters, so eager calls compile once, not every time."""
    import jax

    key = (name, tuple(sorted(params.items())))
    fn = _EAGER.get(key)
    if fn is None:
        fn = _EAGER[key] = jax.jit(partial(_PRIMS[name].bind, **params))
    return fn(*args)


def _primitives() -> dict[str, Any]:
    if _PRIMS:
        return _PRIMS
    from jax.extend.core import Primitive
    from jax.interpreters import ad, batching, mlir

    for name in ("spmm", "spmm_t", "sddmm"):
        prim = Primitive(f"keras_sparse_{name}")
        _PRIMS[name] = prim
        prim.def_impl(partial(_eager, name))
        prim.def_abstract_eval(partial(_out_aval, name))

        def lowering(ctx: Any, *args: Any, _name: str = name, **params: Any) -> Any:
            export = ctx.module_context.lowering_parameters.for_export
            fn = partial(_portable if export else _compiled, _name, **params)
            return mlir.lower_fun(fn, multiple_results=False)(ctx, *args)

        mlir.register_lowering(prim, lowering)
        batching.primitive_batchers[prim] = partial(_batch, name)

    spmm, spmm_t, sddmm = _PRIMS["spmm"], _PRIMS["spmm_t"], _PRIMS["sddmm"]

    # JVPs: bilinear, so the tangent is the op applied to each tangent.
    ad.defjvp(
        spmm,
        lambda g, x, v, *idx, n_out: spmm.bind(g, v, *idx, n_out=n_out),
        lambda g, x, v, *idx, n_out: spmm.bind(x, g, *idx, n_out=n_out),
        None,
        None,
        None,
    )
    ad.defjvp(
        spmm_t,
        lambda g, dy, v, *idx, n_in: spmm_t.bind(g, v, *idx, n_in=n_in),
        lambda g, dy, v, *idx, n_in: spmm_t.bind(dy, g, *idx, n_in=n_in),
        None,
        None,
        None,
    )
    ad.defjvp(
        sddmm,
        lambda g, x, dy, *idx: sddmm.bind(g, dy, *idx),
        lambda g, x, dy, *idx: sddmm.bind(x, g, *idx),
        None,
        None,
        None,
    )

    def spmm_transpose(
        ct: Any,
        x: Any,
        v: Any,
        indptr: Any,
        indices: Any,
        perm: Any,
        *,
        n_out: int,
    ) -> list[Any]:
        ct = ad.instantiate_zeros(ct)
        dx = dv = None
        if ad.is_undefined_primal(x):
            dx = spmm_t.bind(ct, v, indptr, indices, perm, n_in=x.aval.shape[1])
        if ad.is_undefined_primal(v):
            dv = sddmm.bind(x, ct, indptr, indices, perm)
        return [dx, dv, None, None, None]

    def spmm_t_transpose(
        ct: Any, dy: Any, v: Any, indptr: Any, indices: Any, perm: Any, *, n_in: int
    ) -> list[Any]:
        ct = ad.instantiate_zeros(ct)
        ddy = dv = None
        if ad.is_undefined_primal(dy):
            ddy = spmm.bind(ct, v, indptr, indices, perm, n_out=dy.aval.shape[1])
        if ad.is_undefined_primal(v):
            dv = sddmm.bind(ct, dy, indptr, indices, perm)
        return [ddy, dv, None, None, None]

    def sddmm_transpose(
        ct: Any, x: Any, dy: Any, indptr: Any, indices: Any, perm: Any
    ) -> list[Any]:
        ct = ad.instantiate_zeros(ct)
        dx = ddy = None
        if ad.is_undefined_primal(x):
            dx = spmm_t.bind(dy, ct, indptr, indices, perm, n_in=x.aval.shape[1])
        if ad.is_undefined_primal(dy):
            ddy = spmm.bind(x, ct, indptr, indices, perm, n_out=dy.aval.shape[1])
        return [dx, ddy, None, None, None]

    ad.primitive_transposes[spmm] = spmm_transpose
    ad.primitive_transposes[spmm_t] = spmm_t_transpose
    ad.primitive_transposes[sddmm] = sddmm_transpose
    return _PRIMS


def _batch(name: str, args: Any, dims: Any, **params: Any) -> tuple[Any, int]:
    """`vmap`: a batched dense operand alone folds into the rows; anything
    else maps the portable formulas."""
    import jax
    import jax.numpy as jnp

    not_mapped = None  # the batch dimension of an unbatched operand
    prim = _PRIMS[name]
    if name in ("spmm", "spmm_t") and all(d is not_mapped for d in dims[1:]):
        dense = jnp.moveaxis(args[0], dims[0], 0)
        k, b = dense.shape[0], dense.shape[1]
        out = prim.bind(dense.reshape(k * b, dense.shape[2]), *args[1:], **params)
        return out.reshape(k, b, out.shape[1]), 0
    size = next(
        a.shape[d] for a, d in zip(args, dims, strict=True) if d is not not_mapped
    )
    moved = [
        a if d is not_mapped else jnp.moveaxis(a, d, 0)
        for a, d in zip(args, dims, strict=True)
    ]
    in_axes = tuple(None if d is not_mapped else 0 for d in dims)
    out = jax.vmap(partial(_portable, name, **params), in_axes=in_axes, axis_size=size)(
        *moved
    )
    return out, 0


def value_and_grad(fn: Any, args: list[Any]) -> tuple[tuple[Any, Any], list[Any]]:
    import jax

    (value, aux), grads = jax.value_and_grad(fn, has_aux=True)(list(args))
    return (value, aux), list(grads)
