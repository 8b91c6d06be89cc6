"""TensorFlow fast path of `densify` (the `"dense"` kernel of `SparseDense`).

Keras runs TensorFlow models without XLA on CPU-only machines, and there
TensorFlow's scatter ops (`tensor_scatter_nd_update`, `scatter_nd`, what
the portable `densify` becomes) write one entry at a time under a lock:
scattering the 422,280 values of a 20 % dense 9180 x 230 kernel took
13 ms of a 27 ms training step. `SparseToDense` with unvalidated indices
writes them in one pass, and the value gradient is a gather of the
kernel gradient at the connections (the registered gradients of the
scatter ops are slower gathers by index pairs). Measured in
`benchmarks/sparse_dense_step.py` (docs/benchmarks.md); checked against
the portable path and NumPy in `tests/ops/test_backend_seam.py`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["densify"]


def densify(values: Any, indices: Any, shape: tuple[int, int]) -> Any:
    """Scatters `(nnz,)` values into a dense `shape` matrix (zeros elsewhere).

    Same contract as `keras_sparse.ops.portable.densify` with explicit
    indices; TensorFlow backend only.

    Args:
        values: `(nnz,)` float tensor.
        indices: `(nnz, 2)` integer array or tensor of unique `(input,
            output)` positions, in any order.
        shape: `(num_inputs, num_outputs)`.

    Returns:
        `shape` tensor of `values`' dtype.
    """
    import tensorflow as tf

    pairs_t = tf.cast(tf.convert_to_tensor(indices), tf.int64)
    flat = pairs_t[:, 0] * shape[1] + pairs_t[:, 1]
    dense_shape = tf.constant(shape, dtype=tf.int64)

    @tf.custom_gradient
    def _densify(v: Any) -> Any:
        kernel = tf.raw_ops.SparseToDense(
            sparse_indices=pairs_t,
            output_shape=dense_shape,
            sparse_values=v,
            default_value=tf.zeros((), dtype=v.dtype),
            validate_indices=False,
        )

        def grad(dkernel: Any) -> Any:
            return tf.gather(tf.reshape(dkernel, [-1]), flat)

        return kernel, grad

    return _densify(tf.convert_to_tensor(values))
