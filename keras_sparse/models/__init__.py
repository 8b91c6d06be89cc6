"""Models built from sparse layers."""

from keras_sparse.models.pathway_network import build_pathway_network, split_at

__all__ = ["build_pathway_network", "split_at"]
