"""PyTorch binding of the backend seam (`keras_sparse.ops.backend`).

- The compiled CPU kernels are three `torch.library` custom operators,
  `keras_sparse::spmm`, `::spmm_t` and `::sddmm`, on CPU tensors (shared
  memory, no copy), each with a fake (meta) implementation so that
  `torch.compile(fullgraph=True)` traces through them. Each is wrapped in
  a `torch.autograd.Function` whose backward is written with the other two
  (see `keras_sparse.ops.backend.jax` for the rules), so double backward
  and Hessian-vector products run the same kernels, and with
  `setup_context` and a `vmap` rule, so `torch.func.grad` and
  `torch.func.vmap` (per-example gradients) work.
- On CUDA tensors (Keras's torch backend places tensors on CUDA whenever
  it exists) the same three operators run on `torch.sparse` (cuSPARSE):
  `torch.sparse.mm` on int32 CSR matrices of `W.T` (canonical order) and
  `W` (by input), and `torch.sparse.sampled_addmm` for the value
  gradient, never torch's own sparse backward (which forms a dense
  gradient). That code also runs on CPU tensors (`KERNELS =
  "torch_sparse"`), which is how it is tested against NumPy here.
- PyTorch's native grouped convolution is the fastest on the CPU
  (`GROUPED_CONV_MODE = "native"`, docs/benchmarks.md).
- `take_permutation` reorders the last axis as the columns of a 2-D view
  and differentiates into the inverse permutation's gather: a
  `SparseConv2D` whose groups need permuted channels spent most of its
  step in torch's `index_select` along the last axis.
"""

# No `from __future__ import annotations`: torch.library reads the
# custom operators' annotations as types.

from typing import Any

import numpy as np
import torch

from keras_sparse.ops import csr_cpu
from keras_sparse.ops.backend.portable import conv  # noqa: F401 (the seam)

GROUPED_CONV_MODE = "native"
AUTO_SPARSE_MAX_DENSITY = 0.002
# `csr` up to 30 %: the 9180 -> 230 training step on a 2-core AMD EPYC (Zen
# 4), csr / dense vs masked dense at 20 %: 2.11x / 1.19x (batch 2048), 1.88x /
# 1.10x (256), 1.75x / 1.24x (32) in `run_all.sh`'s tables; at 30 % the csr
# step was 1.42x / 1.35x / 1.16x faster than dense's (batch 2048 / 256 / 32),
# at 40 % 1.16x / 1.07x / 1.12x, at 50 % about equal (csr 0.97x, dense 1.00x
# of masked at batch 256; docs/benchmarks.md). The next full `run_all.sh`
# run, csr / dense at 30 %: 1.37x / 1.01x, 1.39x / 1.02x, 1.55x / 1.27x
# (batch 2048 / 256 / 32); at 50 % 0.90x / 0.98x, 1.00x / 1.04x, 1.02x /
# 1.06x. It was 10 % while the kernels were slower.
AUTO_CSR_MAX_DENSITY = 0.3
COND_ALLOCATES_BOTH_BRANCHES = False  # only the branch taken runs
# `index_copy_` takes int64 indices: casting int32 positions in every call
# cost 0.65 ms of densify + gradient at 50 % of 9180 x 230 (4.85 vs 4.21 ms,
# a scratch A/B in one process, not a step benchmark).
DENSIFY_INDEX_DTYPE = "int64"
# The kernels run on the thread that runs the step (forward and autograd
# on the CPU): one libgomp team; the hand-off would only add time.
KERNEL_THREAD = False

_OPS: dict[str, Any] = {}


# Which kernels the custom operators run: "auto" (the Numba CPU kernels on
# CPU tensors, torch.sparse on CUDA tensors) or "torch_sparse" (torch.sparse
# everywhere; how the CUDA path's code is tested on a CPU-only machine).
KERNELS = "auto"


def csr_available() -> bool:
    """Whether `implementation="csr"` runs here: on CUDA (torch.sparse, with
    cuSPARSE), or on the CPU with Numba."""
    return bool(torch.cuda.is_available() or csr_cpu.available())


def _torch_sparse(x: Any) -> bool:
    return KERNELS == "torch_sparse" or x.device.type != "cpu"


def _csr(crow: Any, col: Any, values: Any, shape: tuple[int, int]) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "beta" and invariant-check notices
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _by_output(indptr: Any, indices: Any, perm: Any, n_out: int) -> tuple[Any, Any]:
    """CSR pointers and column (input) indices of `W.T`, canonical order."""
    n_in = indptr.shape[0] - 1
    counts = indptr[1:] - indptr[:-1]
    inputs = torch.repeat_interleave(
        torch.arange(n_in, dtype=indptr.dtype, device=indptr.device), counts
    )
    col = torch.empty_like(inputs)
    col[perm.long()] = inputs
    fan_in = torch.bincount(indices.long(), minlength=n_out)
    crow = torch.zeros(n_out + 1, dtype=indptr.dtype, device=indptr.device)
    crow[1:] = torch.cumsum(fan_in, 0)
    return crow, col


def _sparse_spmm(
    x: Any, v: Any, indptr: Any, indices: Any, perm: Any, n_out: int
) -> Any:
    """`x @ W` with torch.sparse: `(W.T @ x.T).T`, `W.T` in CSR (the
    canonical order is its CSR order)."""
    crow, col = _by_output(indptr, indices, perm, n_out)
    wt = _csr(crow, col, v, (n_out, x.shape[1]))
    return torch.sparse.mm(wt, x.t()).t().contiguous()


def _sparse_spmm_t(
    dy: Any, v: Any, indptr: Any, indices: Any, perm: Any, n_in: int
) -> Any:
    """`dy @ W.T` with torch.sparse: `(W @ dy.T).T`, `W` in CSR by input."""
    w = _csr(indptr, indices, v[perm.long()], (n_in, dy.shape[1]))
    return torch.sparse.mm(w, dy.t()).t().contiguous()


def _sparse_sddmm(x: Any, dy: Any, indptr: Any, indices: Any, perm: Any) -> Any:
    """The sampled product with `torch.sparse.sampled_addmm` on the
    pattern of `W.T`: values come out in canonical order."""
    n_out = dy.shape[1]
    crow, col = _by_output(indptr, indices, perm, n_out)
    pattern = _csr(
        crow,
        col,
        torch.zeros(perm.shape[0], dtype=x.dtype, device=x.device),
        (n_out, x.shape[1]),
    )
    return torch.sparse.sampled_addmm(pattern, dy.t(), x, beta=0.0).values()


def densify(values: Any, positions: Any, shape: tuple[int, int]) -> Any:
    """The dense `shape` matrix with `values` at the unique flat `positions`:
    an in-place `index_copy_` into new zeros, whose gradient is an
    `index_select`. At 20 % of 9180 x 230, forward + gradient took 1.4 ms
    this way, 2.7 ms with `index_put_` (a gradient by advanced indexing)
    and 9.5 ms with Keras's `scatter_update` (row-column pairs cast to
    int64, cloned zeros). `values.new_zeros` keeps it working under
    `torch.func` transforms, also when `values` is vmapped (there by
    PyTorch's slower batching fallback)."""
    flat = values.new_zeros(shape[0] * shape[1])
    return flat.index_copy_(0, positions.long(), values).view(shape)


def host_constant(array: np.ndarray) -> Any:
    """A copy of `array` on Keras's device (made once, reused by calls;
    never on the `meta` device Keras may trace symbolic builds on)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.tensor(np.asarray(array), device=device)


def csr_matmul(x: Any, values: Any, arrays: Any, shape: tuple[int, int]) -> Any:
    """`x @ W` for 2-D `x`, differentiable to any order (see module doc)."""
    ops = _ops()
    idx = [
        a.to(x.device)
        if isinstance(a, torch.Tensor)
        else torch.as_tensor(a, device=x.device)
        for a in arrays
    ]
    if torch.compiler.is_compiling():
        return torch.ops.keras_sparse.spmm(x, values.to(x.dtype), *idx, int(shape[1]))
    return ops["spmm"](x, values.to(x.dtype), *idx, int(shape[1]))


class _ValueOfSecond(torch.autograd.Function):
    """`second`'s value with `first`'s derivatives (reverse mode, any
    order; forward mode in `_ValueOfSecondForward`)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(first: Any, second: Any) -> Any:
        return second.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        return grad, None


class _ValueOfSecondForward(_ValueOfSecond):
    """With forward mode (`torch.func.jvp`), which `torch.compile` refuses
    in a custom function."""

    @staticmethod
    def jvp(ctx: Any, first_tangent: Any, second_tangent: Any) -> Any:
        return first_tangent


def cond_true_gradient(pred: Any, true_fn: Any, false_fn: Any, *args: Any) -> Any:
    """`true_fn(*args)` where `pred` holds, else `false_fn(*args)`'s value
    with `true_fn`'s derivatives (`_ValueOfSecond`), as on JAX and
    TensorFlow. Python decides the branch in eager mode; `torch.cond` does
    under `torch.compile`; where the predicate is batched
    (`torch.func.vmap`), `false_fn`, the general branch, gives the value."""
    first = true_fn(*args)
    detached = tuple(a.detach() for a in args)
    if torch.compiler.is_compiling():
        # torch.cond refuses a branch that returns one of its operands.
        second = torch.cond(
            pred,
            lambda first, *a: first.clone(),
            lambda first, *a: false_fn(*a).clone(),
            (first.detach(), *detached),
        )
        return _ValueOfSecond.apply(first, second)
    try:
        taken = bool(pred)
    except RuntimeError:  # data-dependent under a functorch transform
        taken = False
    if taken:
        return first
    return _ValueOfSecondForward.apply(first, false_fn(*detached))


def _take_along(x: Any, order: Any, axis: int) -> Any:
    """`index_select(x, axis, order)`; along the last axis of an N-D
    tensor (N > 2) as the columns of its 2-D view: on 32 x 30 x 30 x 64
    float32, torch 2.13's `index_select` along the last axis took 10.2 ms
    and this 1.2 ms (a scratch A/B in one process, 2-core Xeon)."""
    axis = axis % x.dim()
    if axis == x.dim() - 1 and x.dim() > 2:
        flat = x.reshape(-1, x.shape[-1])
        return torch.index_select(flat, 1, order).reshape(x.shape)
    return torch.index_select(x, axis, order)


class _TakePermutation(torch.autograd.Function):
    """`x` reordered along `axis` by the permutation `order`; its gradient
    is the gather by `inverse`, itself this function, so gradients of any
    order run it. `index_select`'s own gradient is a scatter-add: 1.6 ms
    against 1.3 ms on the case above, and 14-16 ms against 1.7 ms while
    another process shared the 2 cores."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any, order: Any, inverse: Any, axis: int) -> Any:
        return _take_along(x, order, axis)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        _, ctx.order, ctx.inverse, ctx.axis = inputs

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        back = _TakePermutation.apply(grad, ctx.inverse, ctx.order, ctx.axis)
        return back, None, None, None


class _TakePermutationForward(_TakePermutation):
    """With forward mode (`torch.func.jvp`), which `torch.compile` refuses
    in a custom function."""

    @staticmethod
    def jvp(ctx: Any, tangent: Any, *_: Any) -> Any:
        return _take_along(tangent, ctx.order, ctx.axis)


def take_permutation(x: Any, order: Any, inverse: Any, axis: int) -> Any:
    """`x` with its `axis` reordered by the permutation `order`
    (`_TakePermutation`)."""
    if torch.compiler.is_compiling():
        return _TakePermutation.apply(x, order, inverse, int(axis))
    return _TakePermutationForward.apply(x, order, inverse, int(axis))


def segment_sum(data: Any, segment_ids: Any, num_segments: int) -> Any:
    """Sums rows of `data` by segment in `data`'s dtype (`index_add`)."""
    import torch

    out = torch.zeros(
        (num_segments, *data.shape[1:]), dtype=data.dtype, device=data.device
    )
    return out.index_add(0, segment_ids.to(torch.int64), data)


def matmul(a: Any, b: Any, transpose_b: bool = False) -> Any:
    import torch

    return torch.matmul(a, b.t() if transpose_b else b)


def dense_input(x: Any) -> Any:
    """Dense tensor of `x` (sparse COO/CSR/CSC tensors are densified)."""
    import torch
    from keras import ops

    if isinstance(x, torch.Tensor) and x.layout != torch.strided:
        return x.to_dense()
    return ops.convert_to_tensor(x)


def _np(t: Any) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _ops() -> dict[str, Any]:
    if _OPS:
        return _OPS
    from torch import Tensor

    @torch.library.custom_op("keras_sparse::spmm", mutates_args=())
    def spmm(
        x: Tensor,
        v: Tensor,
        indptr: Tensor,
        indices: Tensor,
        perm: Tensor,
        n_out: int,
    ) -> Tensor:
        if _torch_sparse(x):
            return _sparse_spmm(x, v, indptr, indices, perm, n_out)
        return torch.from_numpy(
            csr_cpu.spmm(_np(x), _np(v), _np(indptr), _np(indices), _np(perm), n_out)
        )

    @torch.library.custom_op("keras_sparse::spmm_t", mutates_args=())
    def spmm_t(
        dy: Tensor, v: Tensor, indptr: Tensor, indices: Tensor, perm: Tensor, n_in: int
    ) -> Tensor:
        if _torch_sparse(dy):
            return _sparse_spmm_t(dy, v, indptr, indices, perm, n_in)
        return torch.from_numpy(
            csr_cpu.spmm_t(_np(dy), _np(v), _np(indptr), _np(indices), _np(perm), n_in)
        )

    @torch.library.custom_op("keras_sparse::sddmm", mutates_args=())
    def sddmm(
        x: Tensor,
        dy: Tensor,
        indptr: Tensor,
        indices: Tensor,
        perm: Tensor,
    ) -> Tensor:
        if _torch_sparse(x):
            return _sparse_sddmm(x, dy, indptr, indices, perm)
        return torch.from_numpy(
            csr_cpu.sddmm(_np(x), _np(dy), _np(indptr), _np(indices), _np(perm))
        )

    @spmm.register_fake
    def _(x, v, indptr, indices, perm, n_out):  # type: ignore[no-untyped-def]
        return x.new_empty((x.shape[0], n_out))

    @spmm_t.register_fake
    def _(dy, v, indptr, indices, perm, n_in):  # type: ignore[no-untyped-def]
        return dy.new_empty((dy.shape[0], n_in))

    @sddmm.register_fake
    def _(x, dy, indptr, indices, perm):  # type: ignore[no-untyped-def]
        return x.new_empty((perm.shape[0],))

    # Under torch.compile the custom operators are called directly, with
    # their own autograd formulas (Dynamo traces those; the autograd.Function
    # classes below serve eager mode and torch.func transforms).
    def op_setup(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(*[a for a in inputs if isinstance(a, Tensor)])

    def spmm_op_backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:
        x, v, indptr, indices, perm = ctx.saved_tensors
        return (
            spmm_t(g, v, indptr, indices, perm, x.shape[1]),
            sddmm(x, g, indptr, indices, perm),
            None,
            None,
            None,
            None,
        )

    def spmm_t_op_backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:
        dy, v, indptr, indices, perm = ctx.saved_tensors
        return (
            spmm(g, v, indptr, indices, perm, dy.shape[1]),
            sddmm(g, dy, indptr, indices, perm),
            None,
            None,
            None,
            None,
        )

    def sddmm_op_backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:
        x, dy, indptr, indices, perm = ctx.saved_tensors
        return (
            spmm_t(dy, g, indptr, indices, perm, x.shape[1]),
            spmm(x, g, indptr, indices, perm, dy.shape[1]),
            None,
            None,
            None,
        )

    spmm.register_autograd(spmm_op_backward, setup_context=op_setup)
    spmm_t.register_autograd(spmm_t_op_backward, setup_context=op_setup)
    sddmm.register_autograd(sddmm_op_backward, setup_context=op_setup)

    def batched(op: Any, info: Any, in_dims: Any, args: Any) -> tuple[Any, int]:
        """vmap: a batched dense operand alone folds into the rows; other
        batchings run one call per batch entry."""
        dims = in_dims[:5]
        if op is not SddmmFn and all(d is None for d in dims[1:]):
            dense = args[0].movedim(dims[0], 0)
            k, b = dense.shape[0], dense.shape[1]
            out = op.apply(dense.reshape(k * b, dense.shape[2]), *args[1:])
            return out.reshape(k, b, out.shape[1]), 0
        outs = []
        for j in range(info.batch_size):
            picked = [
                a.select(d, j) if d is not None and isinstance(a, Tensor) else a
                for a, d in zip(args, in_dims, strict=True)
            ]
            outs.append(op.apply(*picked))
        return torch.stack(outs), 0

    class SpmmFn(torch.autograd.Function):
        # x @ W: dx = spmm_t(g, v), dv = sddmm(x, g)
        @staticmethod
        def forward(x, v, indptr, indices, perm, n_out):  # type: ignore[no-untyped-def]
            return spmm(x, v, indptr, indices, perm, n_out)

        @staticmethod
        def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
            ctx.save_for_backward(*inputs[:5])

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            x, v, indptr, indices, perm = ctx.saved_tensors
            dx = dv = None
            if ctx.needs_input_grad[0]:
                dx = SpmmTFn.apply(g, v, indptr, indices, perm, x.shape[1])
            if ctx.needs_input_grad[1]:
                dv = SddmmFn.apply(x, g, indptr, indices, perm)
            return dx, dv, None, None, None, None

        @staticmethod
        def vmap(info, in_dims, *args):  # type: ignore[no-untyped-def]
            return batched(SpmmFn, info, in_dims, args)

    class SpmmTFn(torch.autograd.Function):
        # dy @ W.T: ddy = spmm(g, v), dv = sddmm(g, dy)
        @staticmethod
        def forward(dy, v, indptr, indices, perm, n_in):  # type: ignore[no-untyped-def]
            return spmm_t(dy, v, indptr, indices, perm, n_in)

        @staticmethod
        def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
            ctx.save_for_backward(*inputs[:5])

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            dy, v, indptr, indices, perm = ctx.saved_tensors
            ddy = dv = None
            if ctx.needs_input_grad[0]:
                ddy = SpmmFn.apply(g, v, indptr, indices, perm, dy.shape[1])
            if ctx.needs_input_grad[1]:
                dv = SddmmFn.apply(g, dy, indptr, indices, perm)
            return ddy, dv, None, None, None, None

        @staticmethod
        def vmap(info, in_dims, *args):  # type: ignore[no-untyped-def]
            return batched(SpmmTFn, info, in_dims, args)

    class SddmmFn(torch.autograd.Function):
        # sampled x^T dy: dx = spmm_t(dy, g), ddy = spmm(x, g)
        @staticmethod
        def forward(x, dy, indptr, indices, perm):  # type: ignore[no-untyped-def]
            return sddmm(x, dy, indptr, indices, perm)

        @staticmethod
        def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def]
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            x, dy, indptr, indices, perm = ctx.saved_tensors
            dx = ddy = None
            if ctx.needs_input_grad[0]:
                dx = SpmmTFn.apply(dy, g, indptr, indices, perm, x.shape[1])
            if ctx.needs_input_grad[1]:
                ddy = SpmmFn.apply(x, g, indptr, indices, perm, dy.shape[1])
            return dx, ddy, None, None, None

        @staticmethod
        def vmap(info, in_dims, *args):  # type: ignore[no-untyped-def]
            return batched(SddmmFn, info, in_dims, args)

    _OPS.update(spmm=SpmmFn.apply, spmm_t=SpmmTFn.apply, sddmm=SddmmFn.apply)
    return _OPS


def value_and_grad(fn: Any, args: list[Any]) -> tuple[tuple[Any, Any], list[Any]]:
    from keras import ops

    leaves = [ops.convert_to_tensor(a).detach().requires_grad_(True) for a in args]
    with torch.enable_grad():
        value, aux = fn(leaves)
        raw = torch.autograd.grad(value, leaves, allow_unused=True)
    grads = [
        torch.zeros_like(p) if g is None else g
        for p, g in zip(leaves, raw, strict=True)
    ]
    import keras

    aux = keras.tree.map_structure(
        lambda a: a.detach() if isinstance(a, torch.Tensor) else a, aux
    )
    return (value.detach(), aux), list(grads)


# Registered on import: `import keras_sparse` is then all a process needs to
# load a `torch.export` program that calls the operators (`torch.export.load`
# fails on an unregistered custom operator).
_ops()
