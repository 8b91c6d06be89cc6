"""TensorFlow fast path of `densify` (the `"dense"` kernel of `SparseDense`).

Keras runs TensorFlow models without XLA on CPU-only machines, and there
TensorFlow's scatter ops (`tensor_scatter_nd_update`, `scatter_nd`, what
the portable `densify` becomes) write one entry at a time under a lock:
scattering the 422,280 values of a 20 % dense 9180 x 230 kernel took
13 ms of a 27 ms training step. Here the scatter (unique flat positions)
and the value gradient (a gather of the kernel gradient at the
connections) are each a small `jit_compile` function called from the
graph: at 50 % of 9180 x 230, TensorFlow's own `tf.gather` of the 1.06 M
values took 4.4-6.4 ms and the XLA one 1.3 ms; `SparseToDense` (the
fastest native scatter) 2.9-3.3 ms and the XLA scatter 2.2 ms. The
training step, alternating in one process: 25.5 ms with both native,
22 ms with the XLA gather, 20 ms with both compiled, masked dense 17.5
ms (at 20 %: 21, 19 and 19.5 ms, masked dense 17.5 ms). While a SavedModel
is traced, the plain ops are used (`SparseToDense`, `tf.gather`), so that
exported models serve without XLA. Measured in
`benchmarks/sparse_dense_step.py` (docs/benchmarks.md); checked against
the portable path and NumPy in `tests/ops/test_backend_seam.py`.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["densify", "saving", "xla_gather"]


@functools.cache
def _scatter() -> Any:
    """`shape` zeros with `values` at the unique `indices`, compiled by XLA
    (one function, traced once; XLA compiles it once per operands' shapes
    and dtypes and `shape`'s value, a compile-time constant to it)."""
    import tensorflow as tf

    return tf.function(
        lambda values, indices, shape: tf.scatter_nd(indices[:, None], values, shape),
        jit_compile=True,
        reduce_retracing=True,
        autograph=False,
    )


@functools.cache
def xla_gather() -> Any:
    """`tf.gather(params, indices, axis=axis)` compiled by XLA (one per
    process; XLA compiles it once per shape, dtype and `axis`). Also the
    TensorFlow binding's `take_permutation`."""
    import tensorflow as tf

    return tf.function(
        lambda params, indices, axis: tf.gather(params, indices, axis=axis),
        jit_compile=True,
        reduce_retracing=True,
        autograph=False,
    )


def densify(values: Any, positions: Any, shape: tuple[int, int]) -> Any:
    """The dense `shape` matrix with `values` at the unique flat `positions`.

    Same contract as the seam's `densify` (`keras_sparse.ops.backend`);
    TensorFlow backend only.

    Args:
        values: `(nnz,)` float tensor.
        positions: `(nnz,)` int32/int64 array or tensor of unique flat
            (row-major) positions in `shape`, in any order.
        shape: the dense matrix's shape.

    Returns:
        `shape` tensor of `values`' dtype.
    """
    import tensorflow as tf

    flat = tf.convert_to_tensor(positions)
    size = tf.constant([shape[0] * shape[1]], dtype=flat.dtype)
    if saving():
        # A SavedModel with XLA functions needs XLA where it is served (TF
        # Serving refuses them by default): plain ops, same values.
        def scatter(v: Any) -> Any:
            return tf.raw_ops.SparseToDense(
                sparse_indices=flat,
                output_shape=size,
                sparse_values=v,
                default_value=tf.zeros((), dtype=v.dtype),
                validate_indices=False,
            )

        gather = tf.gather
    else:

        def scatter(v: Any) -> Any:
            return _scatter()(v, flat, size)

        def gather(params: Any, indices: Any) -> Any:
            return xla_gather()(params, indices, 0)

    @tf.custom_gradient
    def _densify(v: Any) -> Any:
        def grad(dkernel: Any) -> Any:
            return gather(tf.reshape(dkernel, [-1]), flat)

        return tf.reshape(scatter(v), shape), grad

    return _densify(tf.convert_to_tensor(values))


def saving() -> bool:
    """True while a SavedModel is traced (`model.export`, `tf.saved_model`);
    also read by the TensorFlow binding's `csr_matmul`."""
    try:  # A private TensorFlow module: without it, assume not saving.
        from tensorflow.python.saved_model import save_context
    except ImportError:  # pragma: no cover - depends on the TF version
        return False
    return bool(save_context.in_save_context())
