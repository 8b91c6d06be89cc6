"""Attribution on the nodes of sparse networks, and the statistics around it."""

from keras_sparse.interpret.integrated_gradients import (
    degree_adjusted,
    integrated_gradients,
    node_attributions,
    node_degrees,
)

__all__ = [
    "degree_adjusted",
    "integrated_gradients",
    "node_attributions",
    "node_degrees",
]
