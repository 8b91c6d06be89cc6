"""The compiled CPU kernels as differentiable ops of each Keras backend.

Each backend reaches `keras_sparse.ops.csr_cpu` through its host-call
mechanism, with a hand-written gradient (the input gradient is skipped when
nothing needs it):

- JAX: `jax.custom_vjp` around XLA FFI custom calls into the same kernels
  (`keras_sparse.ops.xla_ffi`: no copy, Python not entered), or around
  `jax.pure_callback` where the FFI kernels are unavailable (both work
  under `jax.jit`);
- TensorFlow: `tf.custom_gradient` around `tf.numpy_function` (works under
  `tf.function`, not under XLA `jit_compile=True`, so the layer reports
  `supports_jit = False` there);
- PyTorch: a `torch.autograd.Function` on CPU tensors (shared memory).

Only CPU placements use it: `csr_available()` says whether the current
backend computes on the CPU with Numba present; otherwise callers fall
back to the portable `keras.ops` kernel.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_sparse.ops import csr_cpu

__all__ = ["csr_available", "make_csr_matmul"]


def csr_available(backend: str | None = None) -> bool:
    """Whether the compiled CPU kernel can run on the current backend/device."""
    if not csr_cpu.available():
        return False
    backend = backend or keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() == "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.config.list_logical_devices("GPU")
    if backend == "torch":
        import torch

        # Keras's torch backend places tensors on CUDA whenever it exists.
        return not torch.cuda.is_available()
    return False


def make_csr_matmul(plan: csr_cpu.CSRPlan) -> Callable[..., Any]:
    """Returns `f(x, values, save_x=True) -> x @ W` for 2-D float32 `x`.

    `f` is differentiable in both arguments. When `plan.saves_x`, the
    forward pass keeps `x`'s active columns for the value gradient unless
    `save_x=False` (inference: nothing will be differentiated, so the extra
    writes are skipped; a gradient is still correct, from `x`).
    """
    backend = keras.backend.backend()
    makers = {"jax": _make_jax, "tensorflow": _make_tf, "torch": _make_torch}
    if backend not in makers:
        raise NotImplementedError(
            f"The compiled CSR kernel has no binding for the {backend!r} backend."
        )
    saving = makers[backend](plan)
    if not plan.saves_x:
        return lambda x, v, save_x=True: saving(x, v)
    plain_plan = copy.copy(plan)  # shares the index arrays
    plain_plan.saves_x = False
    plain = makers[backend](plain_plan)
    return lambda x, v, save_x=True: (saving if save_x else plain)(x, v)


def _make_jax(plan: csr_cpu.CSRPlan, use_ffi: bool | None = None) -> Callable[[Any, Any], Any]:
    """`use_ffi`: None = the FFI kernels when available, else pure_callback."""
    import jax

    from keras_sparse.ops import xla_ffi

    if use_ffi is None:
        use_ffi = xla_ffi.supports(plan) and xla_ffi.available()
    if use_ffi:
        return _jax_vjp(
            plan,
            lambda x, v: xla_ffi.call_forward(plan, x, v, save_x=plan.saves_x),
            lambda dy, v: xla_ffi.call_input_grad(plan, dy, v),
            lambda a, dy: xla_ffi.call_values_grad(plan, a, dy, saved=plan.saves_x),
            lambda x, v: xla_ffi.call_forward(plan, x, v),
        )
    n_in, n_out = plan.shape

    def host_forward(x: np.ndarray, v: np.ndarray) -> Any:
        return csr_cpu.forward(plan, np.asarray(x), np.asarray(v), save_x=plan.saves_x)

    def host_primal(x: np.ndarray, v: np.ndarray) -> Any:
        return csr_cpu.forward(plan, np.asarray(x), np.asarray(v))

    def host_input_grad(dy: np.ndarray, v: np.ndarray) -> np.ndarray:
        return csr_cpu.input_grad(plan, np.asarray(dy), np.asarray(v))

    def host_values_grad(a: np.ndarray, dy: np.ndarray) -> np.ndarray:
        grad = csr_cpu.values_grad_saved if plan.saves_x else csr_cpu.values_grad
        return grad(plan, np.asarray(a), np.asarray(dy))

    def call(host: Callable[..., Any], shape: Any, *args: Any) -> Any:
        return jax.pure_callback(host, shape, *args, vmap_method="sequential")

    def forward_shapes(x: Any) -> Any:
        y = jax.ShapeDtypeStruct((x.shape[0], n_out), x.dtype)
        return (y, jax.ShapeDtypeStruct((plan.active.size, x.shape[0]), x.dtype)) if plan.saves_x else y

    return _jax_vjp(
        plan,
        lambda x, v: call(host_forward, forward_shapes(x), x, v),
        lambda dy, v: call(host_input_grad, jax.ShapeDtypeStruct((dy.shape[0], n_in), dy.dtype), dy, v),
        lambda a, dy: call(host_values_grad, jax.ShapeDtypeStruct((plan.nnz,), dy.dtype), a, dy),
        lambda x, v: call(host_primal, jax.ShapeDtypeStruct((x.shape[0], n_out), x.dtype), x, v),
    )


def _jax_vjp(
    plan: csr_cpu.CSRPlan,
    forward: Callable,
    input_grad: Callable,
    values_grad: Callable,
    primal: Callable,
) -> Callable:
    """`x @ W` with a custom VJP from the products.

    `forward(x, v)` returns `y`, or `(y, xt)` when `plan.saves_x`;
    `values_grad(a, dy)` takes `x`, or that `xt`; `primal` is the forward
    pass alone (no saving), run when nothing is differentiated.
    """
    import jax

    @jax.custom_vjp
    def matmul(x: Any, v: Any) -> Any:
        return primal(x, v)

    def fwd(x: Any, v: Any) -> tuple[Any, tuple[Any, Any]]:
        if plan.saves_x:
            y, xt = forward(x, v)
            return y, (xt, v)
        return forward(x, v), (x, v)

    def bwd(res: tuple[Any, Any], dy: Any) -> tuple[Any, Any]:
        a, v = res
        # Each product is its own call without side effects, so XLA drops the
        # input gradient when nothing consumes it (a first layer).
        return input_grad(dy, v), values_grad(a, dy)

    matmul.defvjp(fwd, bwd)
    return matmul


def _make_tf(plan: csr_cpu.CSRPlan) -> Callable[[Any, Any], Any]:
    import tensorflow as tf

    n_in, n_out = plan.shape

    # With plan.saves_x the forward pass also returns xt, and the value
    # gradient reads it instead of x (csr_cpu.forward / values_grad_saved).
    values_grad = csr_cpu.values_grad_saved if plan.saves_x else csr_cpu.values_grad

    @tf.custom_gradient
    def matmul(x: Any, v: Any) -> Any:
        result = tf.numpy_function(
            lambda a, b: csr_cpu.forward(plan, a, b, save_x=plan.saves_x), [x, v],
            [x.dtype, x.dtype] if plan.saves_x else x.dtype, stateful=False,
        )
        y, a = result if plan.saves_x else (result, x)
        y.set_shape((x.shape[0], n_out))

        def grad(dy: Any) -> tuple[Any, Any]:
            dx = tf.numpy_function(
                lambda d, b: csr_cpu.input_grad(plan, d, b), [dy, v], dy.dtype, stateful=False
            )
            dx.set_shape((dy.shape[0], n_in))
            dv = tf.numpy_function(
                lambda a_, d: values_grad(plan, a_, d), [a, dy], v.dtype, stateful=False
            )
            dv.set_shape(v.shape)
            return dx, dv

        return y, grad

    return matmul


def _make_torch(plan: csr_cpu.CSRPlan) -> Callable[[Any, Any], Any]:
    import torch

    class CSRMatmul(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, v: Any, grad_enabled: bool) -> Any:
            # (grad mode is always off inside forward: the caller's is passed in)
            save = plan.saves_x and grad_enabled and ctx.needs_input_grad[1]
            out = csr_cpu.forward(plan, x.detach().numpy(), v.detach().numpy(), save_x=save)
            if save:
                out, xt = out
                ctx.save_for_backward(torch.from_numpy(xt), v)
            else:
                ctx.save_for_backward(x, v)
            ctx.saved_x = save
            return torch.from_numpy(out)

        @staticmethod
        def backward(ctx: Any, dy: Any) -> tuple[Any, Any, None]:
            a, v = ctx.saved_tensors  # a: x, or xt when the forward pass saved it
            dy_np = dy.detach().contiguous().numpy()
            dx = dv = None
            if ctx.needs_input_grad[0]:
                dx = torch.from_numpy(csr_cpu.input_grad(plan, dy_np, v.detach().numpy()))
            if ctx.needs_input_grad[1]:
                grad = csr_cpu.values_grad_saved if ctx.saved_x else csr_cpu.values_grad
                dv = torch.from_numpy(grad(plan, a.detach().numpy(), dy_np))
            return dx, dv, None

    def matmul(x: Any, v: Any) -> Any:
        if x.device.type != "cpu":
            raise NotImplementedError(
                "implementation='csr' runs on the CPU only; the PyTorch tensor is on "
                f"{x.device}. Use implementation='sparse' or 'auto' on accelerators."
            )
        return CSRMatmul.apply(x, v, torch.is_grad_enabled())

    return matmul
