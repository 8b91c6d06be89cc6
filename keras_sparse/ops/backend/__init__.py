"""The backend seam: everything a Keras backend does differently, in one place.

This is the only module of the package that asks which Keras backend runs
(`keras.backend.backend()`). It imports the binding of that backend once
and re-exports its names; every binding module (`jax`, `tensorflow`,
`torch`, and `portable` for any other backend) defines the same names,
`SIGNATURE` (checked by `tests/ops/test_backend_seam.py`); a binding
imports from `portable` the ones it does not do differently:

- `csr_available()`: whether the compiled CPU kernels
  (`keras_sparse.ops.csr_cpu`) can run (Numba present, CPU placement);
- `csr_matmul(x, values, arrays, shape)`: `x @ W` for 2-D `x` through
  those kernels, differentiable to any order in `x` and `values`; `arrays`
  are the index operands `(indptr, indices, perm)` of a
  `csr_cpu.CSRPlan` (NumPy constants, or integer variables for a
  connectivity that changes during training);
- `densify(values, positions, shape)`: the dense `shape` matrix with the
  `(nnz,)` values at the `(nnz,)` unique flat (row-major) `positions`,
  zeros elsewhere, differentiable to any order in `values` (its gradient
  is a gather);
- `segment_sum(data, segment_ids, num_segments)`: `keras.ops.segment_sum`
  in `data`'s dtype (Keras's torch version sums in float32);
- `matmul(a, b, transpose_b=False)`: `keras.ops.matmul` (of `b.T` with
  `transpose_b`, read in place where the backend can) in the operands'
  dtype (Keras's torch version returns float32 for float64 operands);
- `conv(x, kernel, strides, padding, data_format, dilation_rate)`:
  `keras.ops.conv` (TensorFlow runs `channels_first` through
  `channels_last` on CPUs whose convolution cannot take it);
- `take_permutation(x, order, inverse, axis)`: `keras.ops.take(x, order,
  axis=axis)` for a permutation `order` of `x`'s `axis` (`inverse` its
  inverse, which reorders the gradient), differentiable to any order
  (PyTorch and TensorFlow: the gradient is the `inverse` gather, not a
  scatter-add; JAX: the gather runs along the leading axis);
- `dense_input(x)`: `x` as a dense tensor (sparse input tensors of the
  backend densified);
- `value_and_grad(fn, args)`: `(fn(args), grads)` for `fn` taking a
  list of tensors and returning `(scalar, aux)`; `grads` are the
  gradients of the scalar w.r.t. each of `args` (zeros where unused).
  Keras 3 has no backend-neutral gradient; `keras_sparse.interpret` and
  `keras_sparse.training` use this one;
- `cond_true_gradient(pred, true_fn, false_fn, *args)`: `true_fn(*args)`
  where the boolean scalar `pred` holds, else `false_fn(*args)`,
  differentiated (any order) as `true_fn` whichever ran (JAX and
  TensorFlow would otherwise keep both branches' intermediates): for a
  `false_fn` that corrects `true_fn`'s value where it is wrong, and whose
  derivatives are `true_fn`'s. `true_fn` may run in either case (PyTorch
  runs it first), so it is the cheap one. Traces under the backend's
  compilers and transforms (the portable binding is a plain `cond`,
  differentiated as the branch that ran);
- `host_constant(array)`: a backend tensor made outside any trace, safe to
  keep in a plan and reuse in every later call and trace;
- `GROUPED_CONV_MODE`: `"native"` (one grouped convolution) or `"split"`
  (one convolution per group), whichever measured faster on the CPU;
- `AUTO_SPARSE_MAX_DENSITY`, `AUTO_CSR_MAX_DENSITY`: the density
  thresholds of `implementation="auto"` (docs/benchmarks.md);
- `COND_ALLOCATES_BOTH_BRANCHES`: whether a compiled step holds the
  buffers of both branches of a `cond`, whichever runs (XLA on JAX), so
  that a rarely taken branch must work in small chunks;
- `DENSIFY_INDEX_DTYPE`: the integer dtype (`"int32"` or `"int64"`) in
  which a plan keeps `densify`'s constant positions when they fit in
  int32: the one the backend's scatter reads without a per-call cast;
- `KERNEL_THREAD`: whether the binding's calls of the compiled kernels
  prefer the library's kernel thread (`csr_cpu.set_kernel_thread`; the
  preference holds while that setting is `None`, its default);

The numbers behind each choice are in `docs/benchmarks.md`; each binding's
docstring says what it does differently and why.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import keras

SIGNATURE = (
    "csr_available",
    "csr_matmul",
    "densify",
    "host_constant",
    "cond_true_gradient",
    "segment_sum",
    "matmul",
    "conv",
    "take_permutation",
    "dense_input",
    "value_and_grad",
    "GROUPED_CONV_MODE",
    "AUTO_SPARSE_MAX_DENSITY",
    "AUTO_CSR_MAX_DENSITY",
    "COND_ALLOCATES_BOTH_BRANCHES",
    "DENSIFY_INDEX_DTYPE",
    "KERNEL_THREAD",
)

__all__ = ["SIGNATURE", "NAME", "binding", *SIGNATURE]

_MODULES = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}

NAME: str = keras.backend.backend()


def binding(name: str) -> ModuleType:
    """The binding module of backend `name` (`"portable"` if it has none)."""
    module = _MODULES.get(name, "portable")
    return importlib.import_module(f"keras_sparse.ops.backend.{module}")


_current = binding(NAME)
csr_available = _current.csr_available
csr_matmul = _current.csr_matmul
densify = _current.densify
host_constant = _current.host_constant
cond_true_gradient = _current.cond_true_gradient
segment_sum = _current.segment_sum
matmul = _current.matmul
conv = _current.conv
take_permutation = _current.take_permutation
dense_input = _current.dense_input
value_and_grad = _current.value_and_grad
GROUPED_CONV_MODE: str = _current.GROUPED_CONV_MODE
AUTO_SPARSE_MAX_DENSITY: float = _current.AUTO_SPARSE_MAX_DENSITY
AUTO_CSR_MAX_DENSITY: float = _current.AUTO_CSR_MAX_DENSITY
COND_ALLOCATES_BOTH_BRANCHES: bool = _current.COND_ALLOCATES_BOTH_BRANCHES
DENSIFY_INDEX_DTYPE: str = _current.DENSIFY_INDEX_DTYPE
KERNEL_THREAD: bool = _current.KERNEL_THREAD
