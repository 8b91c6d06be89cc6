"""Portable `keras.ops` kernels for `x @ W` with a sparse `W`.

`W` is a `(num_inputs, num_outputs)` matrix with `nnz` stored values in
COO form, sorted by output (CSC order): `values[e]` sits at
`(input_indices[e], output_indices[e])`.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from keras_sparse.ops import backend

__all__ = ["sparse_matmul", "csr_matmul", "masked_dense_matmul", "densify"]


def sparse_matmul(
    x: Any,
    values: Any,
    input_indices: Any,
    output_indices: Any,
    num_outputs: int,
) -> Any:
    """Computes `x @ W` by gather -> multiply -> segment-sum.

    Work and memory are `O(batch * nnz)`; no `(num_inputs, num_outputs)`
    array is formed, in the forward pass or in the gradients that the
    backend derives from it (a gather's gradient is a scatter-add into
    `x`'s shape, a segment-sum's a gather).

    Args:
        x: `(batch, num_inputs)` float tensor.
        values: `(nnz,)` tensor of the stored values, same dtype as `x`.
        input_indices: `(nnz,)` int32/int64 tensor.
        output_indices: `(nnz,)` int32/int64 tensor.
        num_outputs: Python int.

    Returns:
        `(batch, num_outputs)` tensor of `x`'s dtype.
    """
    # (nnz, batch): each connection reads one input across the batch.
    gathered = ops.take(ops.transpose(x), input_indices, axis=0)
    weighted = gathered * ops.expand_dims(values, 1)
    summed = backend.segment_sum(weighted, output_indices, num_outputs)
    return ops.transpose(summed)


def csr_matmul(x: Any, values: Any, arrays: Any, shape: tuple[int, int]) -> Any:
    """`x @ W` from the CSR index operands of `keras_sparse.ops.csr_cpu`.

    The portable twin of the compiled kernels (same operands, same result):
    what a backend runs where they cannot, e.g. under XLA compilation or
    when exporting.

    Args:
        x: `(batch, num_inputs)` float tensor.
        values: `(nnz,)` tensor in canonical order, `x`'s dtype.
        arrays: `(indptr, indices, perm)` of a `csr_cpu.CSRPlan`.
        shape: `(num_inputs, num_outputs)`.

    Returns:
        `(batch, num_outputs)` tensor of `x`'s dtype.
    """
    indptr, indices, perm = arrays
    nnz = perm.shape[0]
    # Input of each input-major connection, with a static shape (nnz,).
    rows = (
        ops.searchsorted(indptr, ops.arange(nnz, dtype=indptr.dtype), side="right") - 1
    )
    v = ops.take(values, perm, axis=0)
    return sparse_matmul(x, v, rows, indices, shape[1])


def densify(values: Any, indices: Any, shape: tuple[int, int]) -> Any:
    """Scatters `(nnz,)` values into a dense `shape` matrix (zeros elsewhere).

    Args:
        values: `(nnz,)` tensor.
        indices: `(nnz, 2)` integer tensor of `(input, output)` positions, or
            `None` for a full connectivity, whose canonical order (by output,
            then input) is the transposed kernel: no scatter is needed.
        shape: `(num_inputs, num_outputs)`.
    """
    if indices is None:
        return ops.transpose(ops.reshape(values, (shape[1], shape[0])))
    # `scatter_update` into zeros (indices are unique): vectorized on every
    # backend, unlike `ops.scatter`, which loops in Python on PyTorch.
    return ops.scatter_update(ops.zeros(shape, dtype=values.dtype), indices, values)


def masked_dense_matmul(
    x: Any, values: Any, indices: Any, shape: tuple[int, int]
) -> Any:
    """Computes `x @ W` by scattering `W` into a dense kernel first.

    `x` has shape `(batch, num_inputs)`; the result `(batch, num_outputs)`.
    Cost `O(num_inputs * num_outputs)` in memory and `O(batch * num_inputs *
    num_outputs)` in work: fastest at high density on small layers. A full
    connectivity (`indices=None`) multiplies by the values viewed as the
    `(num_outputs, num_inputs)` transposed kernel, with no copy.
    """
    if indices is None:
        # 2-D only: TensorFlow's gradient of an ellipsis einsum is ~100x
        # slower than this one.
        return ops.einsum("bi,oi->bo", x, ops.reshape(values, (shape[1], shape[0])))
    return backend.matmul(x, densify(values, indices, shape))
