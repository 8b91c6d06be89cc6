"""Attribution on the nodes of sparse networks, and the statistics around it."""

from keras_sparse.interpret.integrated_gradients import (
    degree_adjusted,
    input_attributions,
    integrated_gradients,
    node_attributions,
    node_degrees,
)
from keras_sparse.interpret.statistics import (
    benjamini_hochberg,
    empirical_p,
    paired_wilcoxon,
    rank_normalize,
    rank_stability,
    recall_at_k,
    set_auroc,
    specificity_test,
)

__all__ = [
    "benjamini_hochberg",
    "degree_adjusted",
    "empirical_p",
    "input_attributions",
    "integrated_gradients",
    "node_attributions",
    "node_degrees",
    "paired_wilcoxon",
    "rank_normalize",
    "rank_stability",
    "recall_at_k",
    "set_auroc",
    "specificity_test",
]
