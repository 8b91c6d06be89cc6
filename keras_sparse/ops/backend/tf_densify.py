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

    @tf.custom_gradient
    def _densify(v: Any) -> Any:
        kernel = tf.raw_ops.SparseToDense(
            sparse_indices=flat,
            output_shape=size,
            sparse_values=v,
            default_value=tf.zeros((), dtype=v.dtype),
            validate_indices=False,
        )

        def grad(dkernel: Any) -> Any:
            return tf.gather(tf.reshape(dkernel, [-1]), flat)

        return tf.reshape(kernel, shape), grad

    return _densify(tf.convert_to_tensor(values))
