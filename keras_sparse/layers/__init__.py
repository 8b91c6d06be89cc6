"""Sparsely connected Keras layers."""

from keras_sparse.layers.sparse_dense import SparseDense

__all__ = ["SparseDense"]
