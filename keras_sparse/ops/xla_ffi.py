"""The compiled CPU kernels as XLA FFI custom calls (JAX on the CPU).

`jax.pure_callback` costs about 0.7 ms per call on top of the kernel
(the call leaves compiled code for Python and back), more than the whole
forward product of a 1 % layer. XLA's FFI calls a C function in place, on
the buffers XLA already holds: here that function is a Numba `cfunc`
that reads the FFI call frame (`xla/ffi/api/c_api.h`, shipped with jaxlib
under `jax.ffi.include_dir()`) and runs the same kernels as
`keras_sparse.ops.csr_cpu`. Nothing is copied and Python is not entered.

The targets (`keras_sparse_csr_forward`, `..._forward_save`,
`..._input_grad`, `..._values_grad`, `..._values_grad_saved`) are registered on first use, then checked once against
the NumPy kernels on a small case. If registration or that check fails
(e.g. a future XLA drops the FFI API version used here), `available()` is
False with the reason in `unavailable_reason()`, and callers use
`jax.pure_callback` instead (`keras_sparse.ops.csr_backend`).

Buffers are passed as FFI arguments: the dense operand, the input-major
values, the plan's int32 index arrays and an int32 `meta` vector
`(num_inputs, num_outputs, block, chunks)`; shapes come from the buffers.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from keras_sparse.ops import csr_cpu

__all__ = ["available", "unavailable_reason", "call_forward", "call_input_grad", "call_values_grad"]

_STATE: dict[str, Any] = {"checked": False, "ok": False, "reason": "not checked yet"}
_NAMES = {
    "forward": "keras_sparse_csr_forward",
    "forward_save": "keras_sparse_csr_forward_save",
    "input_grad": "keras_sparse_csr_input_grad",
    "values_grad": "keras_sparse_csr_values_grad",
    "values_grad_saved": "keras_sparse_csr_values_grad_saved",
}

# Byte offsets in the FFI structs (c_api.h, 64-bit): XLA_FFI_CallFrame.
_FRAME_EXTENSION, _FRAME_STAGE, _FRAME_ARGS, _FRAME_RETS = 8, 32, 72, 112
# XLA_FFI_Buffer: data pointer and dims pointer.
_BUFFER_DATA, _BUFFER_DIMS = 24, 40
# XLA_FFI_Extension_Base.type, XLA_FFI_Metadata_Extension.metadata, and in
# XLA_FFI_Metadata the api_version's major/minor and the traits.
_EXT_TYPE, _EXT_METADATA = 8, 24
_META_MAJOR, _META_MINOR, _META_TRAITS = 24, 28, 32
_EXTENSION_METADATA, _STAGE_EXECUTE = 1, 3
# The FFI API version these offsets follow (XLA_FFI_API_MAJOR.MINOR).
_API_MAJOR, _API_MINOR = 0, 1


if csr_cpu.available():
    import numba
    from numba import carray, types
    from numba.core.extending import intrinsic


    @intrinsic
    def load_i64(typingctx, addr):  # pragma: no cover - compiled
        sig = types.int64(types.int64)

        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.int64)))
            return builder.load(ptr)

        return sig, codegen

    @intrinsic
    def store_i32(typingctx, addr, value):  # pragma: no cover - compiled
        sig = types.void(types.int64, types.int32)

        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.int32)))
            builder.store(args[1], ptr)
            return context.get_dummy_value()

        return sig, codegen

    def pointer_to(dtype):
        @intrinsic
        def cast(typingctx, addr):  # pragma: no cover - compiled
            sig = types.CPointer(dtype)(types.int64)

            def codegen(context, builder, signature, args):
                return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

            return sig, codegen

        return cast

    f32_ptr = pointer_to(types.float32)
    i32_ptr = pointer_to(types.int32)

    @numba.njit(cache=True)
    def skip(frame):  # pragma: no cover - compiled
        # Answers XLA's metadata query (API version, no traits); runs only
        # in the EXECUTE stage.
        ext = load_i64(frame + _FRAME_EXTENSION)
        if ext != 0 and (load_i64(ext + _EXT_TYPE) & 0xFFFFFFFF) == _EXTENSION_METADATA:
            meta = load_i64(ext + _EXT_METADATA)
            store_i32(meta + _META_MAJOR, np.int32(_API_MAJOR))
            store_i32(meta + _META_MINOR, np.int32(_API_MINOR))
            store_i32(meta + _META_TRAITS, np.int32(0))
            return True
        return (load_i64(frame + _FRAME_STAGE) & 0xFFFFFFFF) != _STAGE_EXECUTE

    @numba.njit(cache=True)
    def arg(frame, n):  # pragma: no cover - compiled
        return load_i64(load_i64(frame + _FRAME_ARGS) + 8 * n)

    @numba.njit(cache=True)
    def ret(frame, n):  # pragma: no cover - compiled
        return load_i64(load_i64(frame + _FRAME_RETS) + 8 * n)

    @numba.njit(cache=True)
    def dim(buf, d):  # pragma: no cover - compiled
        return load_i64(load_i64(buf + _BUFFER_DIMS) + 8 * d)

    @numba.njit(cache=True)
    def f32_2d(buf):  # pragma: no cover - compiled
        return carray(f32_ptr(load_i64(buf + _BUFFER_DATA)), (dim(buf, 0), dim(buf, 1)))

    @numba.njit(cache=True)
    def f32_1d(buf):  # pragma: no cover - compiled
        return carray(f32_ptr(load_i64(buf + _BUFFER_DATA)), dim(buf, 0))

    @numba.njit(cache=True)
    def i32_1d(buf):  # pragma: no cover - compiled
        return carray(i32_ptr(load_i64(buf + _BUFFER_DATA)), dim(buf, 0))

    handler = types.intp(types.intp)

    # Not cached, like the cfuncs: a cached function that calls a parallel
    # kernel fails to load ("Symbol not found: allocate_sched").
    @numba.njit
    def run_forward(frame, xt):  # pragma: no cover - compiled
        # args: x, values (input-major), indptr, indices, active, meta
        meta = i32_1d(arg(frame, 5))
        csr_cpu._forward(
            f32_2d(arg(frame, 0)), i32_1d(arg(frame, 2)), i32_1d(arg(frame, 3)),
            f32_1d(arg(frame, 1)), i32_1d(arg(frame, 4)), meta[1], meta[2],
            f32_2d(ret(frame, 0)), xt,
        )

    @numba.cfunc(handler)
    def forward(frame):  # pragma: no cover - compiled
        if not skip(frame):
            run_forward(frame, np.empty((0, 0), np.float32))
        return 0

    @numba.cfunc(handler)
    def forward_save(frame):  # pragma: no cover - compiled
        # second result: xt (len(active), batch)
        if not skip(frame):
            run_forward(frame, f32_2d(ret(frame, 1)))
        return 0

    @numba.cfunc(handler)
    def input_grad(frame):  # pragma: no cover - compiled
        # args: dy, values (input-major), indptr, indices, meta
        if skip(frame):
            return 0
        meta = i32_1d(arg(frame, 4))
        csr_cpu._input_grad(
            f32_2d(arg(frame, 0)), i32_1d(arg(frame, 2)), i32_1d(arg(frame, 3)),
            f32_1d(arg(frame, 1)), meta[0], meta[2], f32_2d(ret(frame, 0)),
        )
        return 0

    @numba.cfunc(handler)
    def values_grad(frame):  # pragma: no cover - compiled
        # args: x, dy, indptr, indices, perm, active, meta
        if skip(frame):
            return 0
        meta = i32_1d(arg(frame, 6))
        out = f32_1d(ret(frame, 0))  # every entry written by the kernel
        csr_cpu._values_grad(
            f32_2d(arg(frame, 0)), f32_2d(arg(frame, 1)), i32_1d(arg(frame, 2)),
            i32_1d(arg(frame, 3)), i32_1d(arg(frame, 4)), i32_1d(arg(frame, 5)),
            meta[2], meta[3], out,
        )
        return 0

    @numba.cfunc(handler)
    def values_grad_saved(frame):  # pragma: no cover - compiled
        # args: xt, dy, indptr, indices, perm, active, meta
        if skip(frame):
            return 0
        meta = i32_1d(arg(frame, 6))
        csr_cpu._values_grad_saved(
            f32_2d(arg(frame, 0)), f32_2d(arg(frame, 1)), i32_1d(arg(frame, 2)),
            i32_1d(arg(frame, 3)), i32_1d(arg(frame, 4)), i32_1d(arg(frame, 5)),
            meta[3], f32_1d(ret(frame, 0)),
        )
        return 0

    _HANDLERS = {
        "forward": forward, "forward_save": forward_save, "input_grad": input_grad,
        "values_grad": values_grad, "values_grad_saved": values_grad_saved,
    }


def _register() -> None:
    import jax
    import numba

    # Concurrent launches (XLA may run independent custom calls at once) need
    # a thread-safe Numba threading layer; `workqueue` is not one.
    probe = np.zeros(1, np.float32)
    csr_cpu._forward(
        np.zeros((1, 1), np.float32), np.array([0, 1], np.int32), np.array([0], np.int32),
        np.ones(1, np.float32), np.array([0], np.int32), 1, 1, probe.reshape(1, 1),
        np.empty((0, 0), np.float32),
    )
    layer = numba.threading_layer()
    if layer not in ("omp", "tbb"):
        raise RuntimeError(f"Numba's {layer!r} threading layer is not thread-safe")
    for key, name in _NAMES.items():
        jax.ffi.register_ffi_target(
            name, jax.ffi.pycapsule(_HANDLERS[key].address), platform="cpu"
        )


def _self_check() -> None:
    from keras_sparse.connectivity.generators import random_connectivity

    conn = random_connectivity(37, 5, density=0.3, seed=0)
    plan = csr_cpu.CSRPlan(conn)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 37)).astype(np.float32)
    dy = rng.standard_normal((9, 5)).astype(np.float32)
    v = rng.standard_normal(conn.nnz).astype(np.float32)
    y_saved, xt = call_forward(plan, x, v, save_x=True)
    want_y, want_xt = csr_cpu.forward(plan, x, v, save_x=True)
    pairs = [
        (np.asarray(call_forward(plan, x, v)), csr_cpu.forward(plan, x, v)),
        (np.asarray(y_saved), want_y),
        (np.asarray(xt), want_xt),
        (np.asarray(call_values_grad(plan, xt, dy, saved=True)), csr_cpu.values_grad(plan, x, dy)),
        (np.asarray(call_input_grad(plan, dy, v)), csr_cpu.input_grad(plan, dy, v)),
        (np.asarray(call_values_grad(plan, x, dy)), csr_cpu.values_grad(plan, x, dy)),
    ]
    for got, want in pairs:
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-5):
            raise RuntimeError("the FFI kernels disagree with the NumPy-called kernels")


def available() -> bool:
    """Whether the FFI kernels run here (JAX on the CPU, Numba, check passed)."""
    if not _STATE["checked"]:
        _STATE["checked"] = True
        try:
            import jax

            if jax.default_backend() != "cpu" or not csr_cpu.available():
                raise RuntimeError(f"JAX computes on {jax.default_backend()!r}, not the CPU")
            _register()
            _STATE["ok"] = True  # so that the check can call the kernels
            _self_check()
            _STATE["reason"] = ""
        except Exception as exc:  # noqa: BLE001 - any failure means: fall back
            _STATE["ok"] = False
            _STATE["reason"] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                "keras_sparse: the XLA FFI kernels are unavailable "
                f"({_STATE['reason']}); implementation='csr' on JAX falls back to "
                "jax.pure_callback (correct, about 0.7 ms slower per call).",
                RuntimeWarning,
                stacklevel=2,
            )
    return bool(_STATE["ok"])


def unavailable_reason() -> str:
    """Why `available()` is False ("" when it is True)."""
    available()
    return str(_STATE["reason"])


def supports(plan: csr_cpu.CSRPlan) -> bool:
    """Whether a plan's indices fit the FFI kernels (int32)."""
    return plan.index_dtype == np.int32


def _plan_arrays(plan: csr_cpu.CSRPlan) -> dict[str, np.ndarray]:
    # NumPy arrays: constants of the traced computation.
    return {name: getattr(plan, name) for name in ("in_indptr", "in_indices", "in_perm", "active")}


def _meta(plan: csr_cpu.CSRPlan, block: int) -> np.ndarray:
    return np.array([*plan.shape, block, plan.chunks()], dtype=np.int32)


def call_forward(plan: csr_cpu.CSRPlan, x: Any, values: Any, save_x: bool = False) -> Any:
    """`x @ W` for float32 `x` `(batch, num_inputs)`, `values` canonical;
    with `save_x`, `(x @ W, xt)` as `csr_cpu.forward`."""
    import jax
    import jax.numpy as jnp

    a = _plan_arrays(plan)
    out = jax.ShapeDtypeStruct((x.shape[0], plan.shape[1]), jnp.float32)
    if save_x:
        xt = jax.ShapeDtypeStruct((plan.active.size, x.shape[0]), jnp.float32)
        out = (out, xt)
    return jax.ffi.ffi_call(_NAMES["forward_save" if save_x else "forward"], out)(
        x, jnp.take(values, a["in_perm"]), a["in_indptr"], a["in_indices"], a["active"],
        _meta(plan, plan.block(x.shape[0])),
    )


def call_input_grad(plan: csr_cpu.CSRPlan, dy: Any, values: Any) -> Any:
    """`dy @ W.T` for float32 `dy` `(batch, num_outputs)`."""
    import jax
    import jax.numpy as jnp

    a = _plan_arrays(plan)
    out = jax.ShapeDtypeStruct((dy.shape[0], plan.shape[0]), jnp.float32)
    return jax.ffi.ffi_call(_NAMES["input_grad"], out)(
        dy, jnp.take(values, a["in_perm"]), a["in_indptr"], a["in_indices"],
        _meta(plan, plan.block(dy.shape[0])),
    )


def call_values_grad(plan: csr_cpu.CSRPlan, a: Any, dy: Any, saved: bool = False) -> Any:
    """`(nnz,)` gradient of the canonical values from `a` = `x`, or, with
    `saved`, from the `xt` that `call_forward(..., save_x=True)` returned."""
    import jax
    import jax.numpy as jnp

    arrays = _plan_arrays(plan)
    out = jax.ShapeDtypeStruct((plan.nnz,), jnp.float32)
    block = dy.shape[0] if saved else plan.values_block(dy.shape[0])
    return jax.ffi.ffi_call(_NAMES["values_grad_saved" if saved else "values_grad"], out)(
        a, dy, arrays["in_indptr"], arrays["in_indices"], arrays["in_perm"], arrays["active"],
        _meta(plan, block),
    )
