"""Models built from sparse layers."""

from keras_sparse.models.aggregation_net import (
    AggregationNet,
    DenseNet,
    SparseNet,
    count_trainable_params,
)
from keras_sparse.models.lenet5 import build_lenet5
from keras_sparse.models.pathway_network import build_pathway_network, split_at
from keras_sparse.models.utils import trainable_param_count

__all__ = [
    "AggregationNet",
    "DenseNet",
    "SparseNet",
    "build_lenet5",
    "build_pathway_network",
    "count_trainable_params",
    "split_at",
    "trainable_param_count",
]
