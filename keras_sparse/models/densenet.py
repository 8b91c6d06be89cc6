"""Former home of the aggregation-net family (kept for old import paths).

The models now live in `keras_sparse.models.aggregation_net` and the named
configurations in `keras_sparse.models.aggregation_net_presets`; import them
from `keras_sparse.models`. This module re-exports them so that
`from keras_sparse.models.densenet import AggregationNet` keeps working. The
registered names (`keras_sparse>AggregationNet`, `keras_sparse>SparseNet`,
`keras_sparse>DenseNet`) did not change, so saved files load as before.
"""

from keras_sparse.models.aggregation_net import (
    AggregationNet,
    DenseNet,
    SparseNet,
    aggregated_indices,
    count_trainable_params,
)
from keras_sparse.models.aggregation_net_presets import PRESETS

__all__ = [
    "AggregationNet",
    "DenseNet",
    "PRESETS",
    "SparseNet",
    "aggregated_indices",
    "count_trainable_params",
]
