"""Models built from sparse layers."""

from keras_sparse.models.lenet5 import build_lenet5
from keras_sparse.models.pathway_network import build_pathway_network, split_at

__all__ = ["build_lenet5", "build_pathway_network", "split_at"]
