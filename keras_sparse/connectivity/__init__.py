"""Connectivity: which inputs feed which outputs, and how to build one."""

from keras_sparse.connectivity.connectivity import (
    Connectivity,
    EmptyOutputWarning,
    as_connectivity,
)
from keras_sparse.connectivity.gene_sets import (
    GeneSetCoverageWarning,
    from_gene_sets,
    read_gmt,
)
from keras_sparse.connectivity.generators import (
    banded_connectivity,
    block_diagonal_connectivity,
    erdos_renyi_connectivity,
    full_connectivity,
    lenet5_c3_connectivity,
    random_connectivity,
    shuffled_connectivity,
)

__all__ = [
    "Connectivity",
    "EmptyOutputWarning",
    "GeneSetCoverageWarning",
    "as_connectivity",
    "banded_connectivity",
    "block_diagonal_connectivity",
    "erdos_renyi_connectivity",
    "from_gene_sets",
    "full_connectivity",
    "lenet5_c3_connectivity",
    "random_connectivity",
    "read_gmt",
    "shuffled_connectivity",
]
