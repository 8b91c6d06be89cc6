"""TensorFlow binding of the backend seam (`keras_sparse.ops.backend`).

- The compiled CPU kernels run through `tf.numpy_function` (about 20 us a
  call), launched from the library's kernel thread when Numba runs more
  than one thread (`KERNEL_THREAD`, `csr_cpu.set_kernel_thread`):
  TensorFlow calls them from several executor threads, and libgomp would
  give each a worker team of its own. `spmm`, `spmm_t` and `sddmm` each
  carry a `tf.custom_gradient` written with the other two (see
  `keras_sparse.ops.backend.jax` for the rules), so gradients of any
  order (gradient penalties, Hessian-vector products) run the same
  kernels.
- A `tf.numpy_function` can neither be compiled by XLA nor saved in a
  SavedModel. Under `jit_compile=True` and while `tf.saved_model.save`
  (so `model.export()`) traces, `csr_matmul` runs the portable formulas
  (`keras_sparse.ops.portable.csr_matmul`, same operands, same result)
  instead, so such models compile and serve from a fresh process.
- `densify` is a scatter with a gather gradient, each a small
  `jit_compile` function called from the graph: TensorFlow's own scatter
  ops write one entry at a time under a lock on the CPU, and its gather
  took 3-5x XLA's (`tf_densify`). `take_permutation` (the permuted
  groups of `SparseConv*D`) is likewise an XLA gather with the inverse
  permutation's gather as gradient.
- The density thresholds of `implementation="auto"` and the split grouped
  convolution (XLA's CPU grouped convolution is 10-50x slower) come from
  `docs/benchmarks.md`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from keras_sparse.ops import csr_cpu
from keras_sparse.ops.backend import portable as portable_binding
from keras_sparse.ops.backend.portable import (  # noqa: F401 (the seam)
    dense_input,
    segment_sum,
)

GROUPED_CONV_MODE = "split"
AUTO_SPARSE_MAX_DENSITY = 0.01
# `csr` up to 20 %: the 9180 -> 230 training step on a 2-core AMD EPYC (Zen
# 4), csr / dense vs masked dense at 20 %: 1.35x / 1.00x (batch 2048), 1.12x /
# 0.97x (256), 1.10x / 1.00x (32) in `run_all.sh`'s tables, and 17.8 / 25.2 /
# 17.6 ms (csr / dense / masked) in a rerun; at 30 % 21.4 / 20.5 / 19.6 ms
# (dense as fast), at 50 % csr 0.57-0.63x (docs/benchmarks.md). The next
# full `run_all.sh` run, at 20 %: 1.24x / 0.98x, 1.11x / 0.95x, 0.87x / 0.85x;
# at 30 % 0.88x / 0.94x, 0.85x / 0.92x, 0.86x / 0.87x (batch 2048 / 256 / 32).
# It was 10 % while the kernels were slower (0.6-0.7x at 20 %).
AUTO_CSR_MAX_DENSITY = 0.2
COND_ALLOCATES_BOTH_BRANCHES = False  # only the branch taken runs
DENSIFY_INDEX_DTYPE = "int32"
# TensorFlow calls the kernels from several executor threads: launch them
# all from the library's kernel thread (module doc, `csr_cpu.set_kernel_thread`).
KERNEL_THREAD = True


def csr_available() -> bool:
    """Whether the compiled kernels run here: Numba, and no GPU."""
    import tensorflow as tf

    return csr_cpu.available() and not tf.config.list_logical_devices("GPU")


def cond_true_gradient(pred: Any, true_fn: Any, false_fn: Any, *args: Any) -> Any:
    """`tf.cond` differentiated as `true_fn` (a `tf.custom_gradient`).

    A differentiated `tf.cond` outputs the intermediates of both branches
    (zeros for the one not taken) for its gradient; here the gradient is
    `true_fn`'s, taken again under a tape (in a `tf.function` its unused
    forward value is pruned), so higher orders differentiate it in turn.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def select(*operands: Any) -> Any:
        out = tf.cond(pred, lambda: true_fn(*operands), lambda: false_fn(*operands))

        def grad(upstream: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(operands)
                again = true_fn(*operands)
            # None where `true_fn` does not depend on an operand.
            return tape.gradient(again, operands, output_gradients=upstream)

        return out, grad

    return select(*[tf.convert_to_tensor(a) for a in args])


def matmul(a: Any, b: Any, transpose_b: bool = False) -> Any:
    """`tf.matmul(a, b)`; with `transpose_b`, `a @ b.T` as `tf.einsum`,
    which reads `b` transposed in place through TensorFlow's batch matmul
    kernel. On a 2-core AMD EPYC (Zen 4) `x @ K.T` (x 256 x 9180, K 230 x
    9180, float32) took 7.0-7.1 ms that way, 8.4-8.6 ms as
    `tf.matmul(..., transpose_b=True)` and 8.4-8.6 ms after a transpose op
    (6.5 ms for an untransposed `(9180, 230)` kernel; scratch A/Bs in one
    process, two runs). In the 9180 -> 230 step it was faster in 4 of 6
    side-by-side cases (20, 50, 100 % density, two runs), and the step
    tables in docs/benchmarks.md were re-run with it. A transpose op had
    also cost 3 ms of a step against `transpose_b` (24.8 vs 21.2 ms at
    20 % density)."""
    import tensorflow as tf

    if transpose_b and len(a.shape) == 2 and len(b.shape) == 2:
        return tf.einsum("bi,oi->bo", a, b)
    return tf.matmul(a, b, transpose_b=transpose_b)


@functools.cache
def _without_gpu() -> bool:
    """Whether TensorFlow sees no GPU (asked once)."""
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


def conv(
    x: Any,
    kernel: Any,
    strides: Any,
    padding: str,
    data_format: str,
    dilation_rate: Any,
) -> Any:
    """`keras.ops.conv`; `channels_first` without a GPU runs as
    `channels_last` between two transposes. TensorFlow's CPU convolution
    takes channels-first input only where it runs on oneDNN (on by default
    only on CPUs with features such as AVX512_VNNI or AMX); elsewhere
    Keras's own `Conv2D(data_format="channels_first")` fails with
    `UnimplementedError: The Conv2D op currently only supports the NHWC
    tensor format on the CPU` (seen with TensorFlow 2.21 on an AMD EPYC)."""
    if data_format != "channels_first" or not _without_gpu():
        return portable_binding.conv(
            x, kernel, strides, padding, data_format, dilation_rate
        )
    from keras import ops

    rank = len(x.shape) - 2
    x = ops.transpose(x, [0, *range(2, rank + 2), 1])
    y = portable_binding.conv(
        x, kernel, strides, padding, "channels_last", dilation_rate
    )
    return ops.transpose(y, [0, rank + 1, *range(1, rank + 1)])


def host_constant(array: np.ndarray) -> Any:
    """`array` as an eager tensor, made outside any `tf.function` trace."""
    import tensorflow as tf

    with tf.init_scope():
        return tf.constant(array)


def take_permutation(x: Any, order: Any, inverse: Any, axis: int) -> Any:
    """`x` with its `axis` reordered by the permutation `order`: an
    XLA-compiled gather whose gradient is this function with `inverse`
    (any order). On 32 x 30 x 30 x 64 float32 the gather and its gradient
    took 3.4 ms this way, 10.2 ms as `tf.gather` (whose gradient goes
    through `IndexedSlices`; a scratch A/B in one process, 2-core Xeon). While a
    SavedModel is traced, plain `tf.gather` (served without XLA)."""
    import tensorflow as tf

    from keras_sparse.ops.backend.tf_densify import saving, xla_gather

    axis = int(axis)
    plain = saving()

    @tf.custom_gradient
    def _take(t: Any) -> Any:
        def grad(dy: Any) -> Any:
            return take_permutation(dy, inverse, order, axis)

        if plain:
            return tf.gather(t, order, axis=axis), grad
        return xla_gather()(t, order, axis), grad

    return _take(tf.convert_to_tensor(x))


def densify(values: Any, positions: Any, shape: tuple[int, int]) -> Any:
    from keras_sparse.ops.backend import tf_densify

    return tf_densify.densify(values, positions, shape)


def _host_unusable() -> bool:
    """True while tracing for XLA or for a SavedModel (no Python there)."""
    import tensorflow as tf

    from keras_sparse.ops.backend.tf_densify import saving

    if tf.executing_eagerly():
        return False
    if saving():
        return True
    try:  # Private TensorFlow modules: without them, assume the host is usable.
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - depends on the TF version
        return False
    graph = tf_ops.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


def csr_matmul(x: Any, values: Any, arrays: Any, shape: tuple[int, int]) -> Any:
    """`x @ W` for 2-D `x`, differentiable to any order (see module doc)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    values = tf.cast(values, x.dtype)
    idx = [tf.convert_to_tensor(a) for a in arrays]
    if _host_unusable():
        from keras_sparse.ops import portable

        return portable.csr_matmul(x, values, idx, shape)
    return _spmm(x, values, idx, int(shape[1]))


def _call(fn: Any, args: list[Any], dtype: Any, out_shape: tuple[Any, ...]) -> Any:
    import tensorflow as tf

    out = tf.numpy_function(fn, args, dtype, stateful=False)
    out.set_shape(out_shape)
    return out


def _spmm(x: Any, v: Any, idx: list[Any], n_out: int) -> Any:
    import tensorflow as tf

    @tf.custom_gradient
    def spmm(x: Any, v: Any) -> Any:
        y = _call(
            lambda a, b, ptr, ind, perm: csr_cpu.spmm(
                a, b, ptr, ind, perm, n_out, kernel_thread=KERNEL_THREAD
            ),
            [x, v, *idx],
            x.dtype,
            (x.shape[0], n_out),
        )

        def grad(dy: Any) -> tuple[Any, Any]:
            return _spmm_t(dy, v, idx, int(x.shape[1])), _sddmm(x, dy, idx)

        return y, grad

    return spmm(x, v)


def _spmm_t(dy: Any, v: Any, idx: list[Any], n_in: int) -> Any:
    import tensorflow as tf

    @tf.custom_gradient
    def spmm_t(dy: Any, v: Any) -> Any:
        dx = _call(
            lambda a, b, ptr, ind, perm: csr_cpu.spmm_t(
                a, b, ptr, ind, perm, n_in, kernel_thread=KERNEL_THREAD
            ),
            [dy, v, *idx],
            dy.dtype,
            (dy.shape[0], n_in),
        )

        def grad(ct: Any) -> tuple[Any, Any]:
            return _spmm(ct, v, idx, int(dy.shape[1])), _sddmm(ct, dy, idx)

        return dx, grad

    return spmm_t(dy, v)


def _sddmm(x: Any, dy: Any, idx: list[Any]) -> Any:
    import tensorflow as tf

    @tf.custom_gradient
    def sddmm(x: Any, dy: Any) -> Any:
        dv = _call(
            lambda a, b, *i: csr_cpu.sddmm(a, b, *i, kernel_thread=KERNEL_THREAD),
            [x, dy, *idx],
            x.dtype,
            (idx[2].shape[0],),
        )

        def grad(ct: Any) -> tuple[Any, Any]:
            return _spmm_t(dy, ct, idx, int(x.shape[1])), _spmm(
                x, ct, idx, int(dy.shape[1])
            )

        return dv, grad

    return sddmm(x, dy)


def value_and_grad(fn: Any, args: list[Any]) -> tuple[tuple[Any, Any], list[Any]]:
    import tensorflow as tf

    args = [tf.convert_to_tensor(a) for a in args]
    with tf.GradientTape() as tape:
        for a in args:
            tape.watch(a)
        value, aux = fn(args)
    grads = tape.gradient(
        value, args, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return (value, aux), list(grads)
