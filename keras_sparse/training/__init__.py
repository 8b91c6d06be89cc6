"""Sparse training and compression: sparsify, GMP, SET, RigL.

One-shot compression (`sparsify`, `densify`, `compact`,
`compression_report`), layer-wise density budgets (`layer_densities`:
uniform, ERK), optimizer-state remapping (`optimizer_slots`,
`remap_optimizer_slots`) and the callbacks that change a sparse layer's
connectivity while it trains (`GradualMagnitudePruning`, `SET`, `RigL`).
"""

from keras_sparse.training.callbacks import SET, GradualMagnitudePruning, RigL
from keras_sparse.training.densities import layer_densities
from keras_sparse.training.optimizer_state import optimizer_slots, remap_optimizer_slots
from keras_sparse.training.sparsify import (
    compact,
    compression_report,
    densify,
    sparsify,
)

__all__ = [
    "GradualMagnitudePruning",
    "RigL",
    "SET",
    "compact",
    "compression_report",
    "densify",
    "layer_densities",
    "optimizer_slots",
    "remap_optimizer_slots",
    "sparsify",
]
