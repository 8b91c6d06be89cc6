"""Sparsely connected Keras layers."""

from keras_sparse.layers.sparse_conv1d import SparseConv1D
from keras_sparse.layers.sparse_conv2d import SparseConv2D
from keras_sparse.layers.sparse_conv3d import SparseConv3D
from keras_sparse.layers.sparse_dense import SparseDense

__all__ = ["SparseConv1D", "SparseConv2D", "SparseConv3D", "SparseDense"]
