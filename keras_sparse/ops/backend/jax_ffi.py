"""The compiled CPU kernels as XLA FFI custom calls (JAX on the CPU).

`jax.pure_callback` costs about 0.7 ms per call on top of the kernel
(the call leaves compiled code for Python and back), more than the whole
forward product of a 1 % layer. XLA's FFI calls a C function in place, on
the buffers XLA already holds: here that function is a Numba `cfunc`
that reads the FFI call frame (`xla/ffi/api/c_api.h`, shipped with jaxlib
under `jax.ffi.include_dir()`) and runs the same kernels as
`keras_sparse.ops.csr_cpu`. Nothing is copied and Python is not entered.

The targets (`keras_sparse_csr_spmm`, `..._spmm_t`, `..._sddmm`) are
registered on first use, then checked once against the NumPy-called
kernels on a small case (evaluated eagerly, also when the first layer is
built inside a trace). If registration or that check fails (e.g. a future
XLA drops the FFI API version used here), `available()` is False with the
reason in `unavailable_reason()`, and the JAX binding
(`keras_sparse.ops.backend.jax`) calls the kernels through
`jax.pure_callback` instead.

Buffers are passed as FFI arguments: the dense operand, the values in
canonical order (the kernels gather them through `perm` themselves), the
plan's int32 index arrays and an int32 `meta`
vector `(num_inputs, num_outputs, block, chunks)`; shapes come from the
buffers.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from keras_sparse.ops import csr_cpu

__all__ = ["available", "unavailable_reason", "spmm", "spmm_t", "sddmm"]

_STATE: dict[str, Any] = {"checked": False, "ok": False, "reason": "not checked yet"}
_NAMES = {
    "spmm": "keras_sparse_csr_spmm",
    "spmm_t": "keras_sparse_csr_spmm_t",
    "sddmm": "keras_sparse_csr_sddmm",
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
            ptr = builder.inttoptr(
                args[0], context.get_value_type(types.CPointer(types.int64))
            )
            return builder.load(ptr)

        return sig, codegen

    @intrinsic
    def store_i32(typingctx, addr, value):  # pragma: no cover - compiled
        sig = types.void(types.int64, types.int32)

        def codegen(context, builder, signature, args):
            ptr = builder.inttoptr(
                args[0], context.get_value_type(types.CPointer(types.int32))
            )
            builder.store(args[1], ptr)
            return context.get_dummy_value()

        return sig, codegen

    def pointer_to(dtype):
        @intrinsic
        def cast(typingctx, addr):  # pragma: no cover - compiled
            sig = types.CPointer(dtype)(types.int64)

            def codegen(context, builder, signature, args):
                return builder.inttoptr(
                    args[0], context.get_value_type(sig.return_type)
                )

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

    @numba.cfunc(handler)
    def forward(frame):  # pragma: no cover - compiled
        # args: x, values (canonical), indptr, indices, perm, meta
        if skip(frame):
            return 0
        meta = i32_1d(arg(frame, 5))
        csr_cpu._forward(
            f32_2d(arg(frame, 0)),
            i32_1d(arg(frame, 2)),
            i32_1d(arg(frame, 3)),
            f32_1d(arg(frame, 1)),
            i32_1d(arg(frame, 4)),
            meta[1],
            meta[2],
            f32_2d(ret(frame, 0)),
        )
        return 0

    @numba.cfunc(handler)
    def input_grad(frame):  # pragma: no cover - compiled
        # args: dy, values (canonical), indptr, indices, perm, meta
        if skip(frame):
            return 0
        meta = i32_1d(arg(frame, 5))
        csr_cpu._input_grad(
            f32_2d(arg(frame, 0)),
            i32_1d(arg(frame, 2)),
            i32_1d(arg(frame, 3)),
            f32_1d(arg(frame, 1)),
            i32_1d(arg(frame, 4)),
            meta[0],
            meta[2],
            f32_2d(ret(frame, 0)),
        )
        return 0

    @numba.cfunc(handler)
    def values_grad(frame):  # pragma: no cover - compiled
        # args: x, dy, indptr, indices, perm, meta
        if skip(frame):
            return 0
        meta = i32_1d(arg(frame, 5))
        out = f32_1d(ret(frame, 0))  # every entry written by the kernel
        csr_cpu._values_grad(
            f32_2d(arg(frame, 0)),
            f32_2d(arg(frame, 1)),
            i32_1d(arg(frame, 2)),
            i32_1d(arg(frame, 3)),
            i32_1d(arg(frame, 4)),
            meta[2],
            meta[3],
            out,
        )
        return 0

    _HANDLERS = {"spmm": forward, "spmm_t": input_grad, "sddmm": values_grad}


def _register() -> None:
    import jax
    import numba

    # Concurrent launches (XLA may run independent custom calls at once) need
    # a thread-safe Numba threading layer; `workqueue` is not one.
    probe = np.zeros(1, np.float32)
    csr_cpu._forward(
        np.zeros((1, 1), np.float32),
        np.array([0, 1], np.int32),
        np.array([0], np.int32),
        np.ones(1, np.float32),
        np.array([0], np.int32),
        1,
        1,
        probe.reshape(1, 1),
    )
    layer = numba.threading_layer()
    if layer not in ("omp", "tbb"):
        raise RuntimeError(f"Numba's {layer!r} threading layer is not thread-safe")
    for key, name in _NAMES.items():
        jax.ffi.register_ffi_target(
            name, jax.ffi.pycapsule(_HANDLERS[key].address), platform="cpu"
        )


def _self_check() -> None:
    import jax

    from keras_sparse.connectivity.generators import random_connectivity

    conn = random_connectivity(37, 5, density=0.3, seed=0)
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    arrays = plan.arrays
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 37)).astype(np.float32)
    dy = rng.standard_normal((9, 5)).astype(np.float32)
    v = rng.standard_normal(conn.nnz).astype(np.float32)
    # Evaluated now even when the first layer is built inside a trace.
    with jax.ensure_compile_time_eval():
        got = [
            np.asarray(spmm(x, v, *arrays, num_outputs=5)),
            np.asarray(spmm_t(dy, v, *arrays, num_inputs=37)),
            np.asarray(sddmm(x, dy, *arrays)),
        ]
    want = [
        csr_cpu.spmm(x, v, *arrays, 5),
        csr_cpu.spmm_t(dy, v, *arrays, 37),
        csr_cpu.sddmm(x, dy, *arrays),
    ]
    for g, w in zip(got, want, strict=True):
        if g.shape != w.shape or not np.allclose(g, w, rtol=1e-5, atol=1e-5):
            raise RuntimeError("the FFI kernels disagree with the NumPy-called kernels")


def available() -> bool:
    """Whether the FFI kernels run here (JAX on the CPU, Numba, check passed)."""
    if not _STATE["checked"]:
        _STATE["checked"] = True
        try:
            import jax

            if jax.default_backend() != "cpu" or not csr_cpu.available():
                raise RuntimeError(
                    f"JAX computes on {jax.default_backend()!r}, not the CPU"
                )
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


def _meta(n_in: int, n_out: int, block: int) -> Any:
    return np.array([n_in, n_out, block, csr_cpu.chunks()], dtype=np.int32)


def spmm(
    x: Any,
    values: Any,
    indptr: Any,
    indices: Any,
    perm: Any,
    num_outputs: int,
) -> Any:
    """`x @ W` for float32 `x` `(batch, num_inputs)`, `values` canonical."""
    import jax
    import jax.numpy as jnp

    out = jax.ShapeDtypeStruct((x.shape[0], num_outputs), jnp.float32)
    n_in = x.shape[1]
    return jax.ffi.ffi_call(_NAMES["spmm"], out)(
        x,
        values,
        indptr,
        indices,
        perm,
        _meta(n_in, num_outputs, csr_cpu.block(x.shape[0])),
    )


def spmm_t(
    dy: Any, values: Any, indptr: Any, indices: Any, perm: Any, num_inputs: int
) -> Any:
    """`dy @ W.T` for float32 `dy` `(batch, num_outputs)`."""
    import jax
    import jax.numpy as jnp

    out = jax.ShapeDtypeStruct((dy.shape[0], num_inputs), jnp.float32)
    return jax.ffi.ffi_call(_NAMES["spmm_t"], out)(
        dy,
        values,
        indptr,
        indices,
        perm,
        _meta(num_inputs, dy.shape[1], csr_cpu.block(dy.shape[0])),
    )


def sddmm(x: Any, dy: Any, indptr: Any, indices: Any, perm: Any) -> Any:
    """`(nnz,)` sampled product `sum_b x[b, i_e] * dy[b, j_e]`, canonical order."""
    import jax
    import jax.numpy as jnp

    out = jax.ShapeDtypeStruct((perm.shape[0],), jnp.float32)
    return jax.ffi.ffi_call(_NAMES["sddmm"], out)(
        x,
        dy,
        indptr,
        indices,
        perm,
        _meta(x.shape[1], dy.shape[1], csr_cpu.sddmm_block(x.shape[0])),
    )
