"""Models built from sparse layers."""

from keras_sparse.models.aggregation_net import (
    AggregationNet,
    DenseNet,
    SparseNet,
    count_trainable_params,
)
from keras_sparse.models.lenet5 import build_lenet5
from keras_sparse.models.pathway_network import build_pathway_network, split_at

__all__ = [
    "AggregationNet",
    "DenseNet",
    "SparseNet",
    "build_lenet5",
    "build_pathway_network",
    "count_trainable_params",
    "split_at",
]
