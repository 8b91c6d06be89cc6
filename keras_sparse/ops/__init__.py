"""Sparse kernels: `x @ W` for a sparse `W`, in portable `keras.ops`."""

from keras_sparse.ops.portable import densify, masked_dense_matmul, sparse_matmul

__all__ = ["densify", "masked_dense_matmul", "sparse_matmul"]
