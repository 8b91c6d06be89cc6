"""Second data set: TCGA colorectal tumours, MSI-high vs microsatellite-stable.

Data: NetSAM's TCGA COAD/READ matrix (3,899 genes; 19 MSI-H and 53 MSS
tumours; MSI-L and unknown left out). Every tumour is its own group, so
folds are stratified and the permutation null permutes tumour labels.
Pre-declared positive set: the Reactome "DNA Repair" subtree (mismatch
repair is what fails in MSI-H tumours) and the "Interferon Signaling"
subtree (MSI-H tumours are heavily infiltrated by IFN-gamma-producing T
cells), declared from the hierarchy alone before any training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from keras_sparse.experiments.flu_study import positive_set
from keras_sparse.experiments.study import StudyConfig, StudyResult, run_study

__all__ = ["POSITIVE_ROOTS", "run_crc_study"]

POSITIVE_ROOTS = {
    "R-HSA-73894": "DNA Repair",
    "R-HSA-913531": "Interferon Signaling",
}


def run_crc_study(
    config: StudyConfig,
    data: str | None = None,
    fetch: bool = True,
    progress: Callable[[str], None] | None = print,
) -> tuple[StudyResult, dict[str, Any], Any]:
    """Loads the data and the hierarchy, declares the positive set, runs the study."""
    from keras_sparse.connectivity.hierarchy import hierarchy_connectivities
    from keras_sparse.datasets.reactome import load_reactome
    from keras_sparse.datasets.tcga_crc import load_tcga_crc

    say = progress or (lambda _m: None)
    say(
        "loading NetSAM's TCGA colorectal data (Debian r-bioc-netsam; fetched once) ..."
    )
    crc = load_tcga_crc(data, fetch=fetch)
    keep, y = crc.msi_high()
    x = crc.expression[keep]
    groups = np.array(crc.samples)[keep]
    reactome = load_reactome(fetch=fetch)
    levels = hierarchy_connectivities(
        reactome.relations,
        reactome.annotations,
        crc.genes,
        num_levels=3,
        min_size=5,
        max_size=300,
    )
    subtree: set[str] = set()
    for root in POSITIVE_ROOTS:
        subtree |= reactome.descendants(root)
    positive, table = positive_set(levels, subtree, set())

    def permute_labels(rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(y)

    say(
        f"data: {x.shape[0]} tumours x {x.shape[1]} genes ({crc.source}); MSI-H "
        f"{int(y.sum())}, MSS {int((1 - y).sum())} (MSI-L and unknown left out)"
    )
    say(
        f"hierarchy: Reactome, {int((levels[0].fan_out > 0).sum())} genes in pathways "
        "-> " + " -> ".join(f"{c.num_outputs} nodes" for c in levels)
    )
    n_nodes = sum(
        n.split("_copy")[0] in positive for c in levels for n in c.output_names or ()
    )
    say(
        f"positive set (declared before training): the DNA Repair and Interferon "
        f"Signaling subtrees, {n_nodes} network nodes"
    )
    say(f"study: {config.describe()}")
    result = run_study(
        x,
        y,
        groups,
        levels,
        permute_labels,
        positive,
        node_names=reactome.names,
        config=config,
        progress=progress,
    )
    info = dict(
        command="demo crc",
        data=crc.source,
        reactome=reactome.source,
        target="MSI_status_TCGAPaper_threegroup == 'MSI-H' (vs 'MSS')",
        n_samples=int(y.size),
        n_positive=int(y.sum()),
        hierarchy=[dict(nodes=c.num_outputs, nnz=c.nnz) for c in levels],
        positive_set_size=len(positive),
        config=dict(vars(config)),
        summary=result.summary,
        planted=result.planted_summary,
    )
    return result, info, (levels, table)
