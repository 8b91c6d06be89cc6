"""Connectivity-aware initializers."""

from keras_sparse.initializers.sparse_variance_scaling import SparseVarianceScaling

__all__ = ["SparseVarianceScaling"]
