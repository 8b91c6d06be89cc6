"""The main job: the Reactome pathway-network study on the influenza challenge.

Data: GSE30550 (qusage's `fluExample`), 252 blood samples of 17 people,
label "symptomatic and >= 45 h after inoculation". Hierarchy: Reactome
(CC0), genes -> 3 levels. Pre-declared positive set: the Reactome
"Interferon Signaling" subtree (R-HSA-913531 and descendants) plus every
node enriched for qusage's interferon-stimulated genes (`ISG.geneSet`;
hypergeometric test, BH q < 0.05), declared from the hierarchy and the
gene list alone, before any training.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.experiments.pathways import publish_outputs
from keras_sparse.experiments.study import StudyConfig, StudyResult, run_study

__all__ = ["INTERFERON", "positive_set", "run_flu_study", "write_study_outputs"]

INTERFERON = "R-HSA-913531"  # Reactome "Interferon Signaling"


def node_gene_sets(levels: list[Connectivity]) -> dict[str, set[str]]:
    """Node id (base id, copies merged) -> the genes below it."""
    genes = np.array(levels[0].input_names)
    reach = levels[0].to_scipy("csc").astype(bool)
    out: dict[str, set[str]] = {}
    for j, c in enumerate(levels):
        if j:
            reach = (reach @ c.to_scipy("csc").astype(bool)).astype(bool)
        for k, name in enumerate(c.output_names or ()):
            out.setdefault(name.split("_copy")[0], set()).update(
                genes[reach[:, k].nonzero()[0]]
            )
    return out


def positive_set(
    levels: list[Connectivity],
    subtree: set[str],
    marker_genes: set[str],
    q_threshold: float = 0.05,
) -> tuple[set[str], pd.DataFrame]:
    """The pre-declared positive nodes: a subtree plus marker-enriched nodes.

    Enrichment: one-sided hypergeometric test of each node's genes for
    `marker_genes`, the universe being the genes with at least one
    pathway; Benjamini-Hochberg over the nodes.

    Returns:
        `(positive node ids, enrichment table)`.
    """
    from scipy.stats import hypergeom

    from keras_sparse.interpret.statistics import benjamini_hochberg

    sets = node_gene_sets(levels)
    names = np.array(levels[0].input_names)
    universe = set(names[levels[0].fan_out > 0])
    markers = marker_genes & universe
    rows = []
    for node, genes in sets.items():
        hits = len(genes & markers)
        p = hypergeom.sf(hits - 1, len(universe), len(markers), len(genes))
        rows.append(dict(node=node, genes=len(genes), marker_genes=hits, p=p))
    table = pd.DataFrame(rows)
    table["q"] = benjamini_hochberg(table["p"].to_numpy())
    table["in_subtree"] = table["node"].isin(subtree)
    table["positive"] = table["in_subtree"] | (table["q"] < q_threshold)
    return set(table.loc[table.positive, "node"]), table


def run_flu_study(
    config: StudyConfig,
    data: str | None = None,
    fetch: bool = True,
    progress: Callable[[str], None] | None = print,
) -> tuple[StudyResult, dict[str, Any], Any]:
    """Loads the data and the hierarchy, declares the positive set, runs the study.

    Returns:
        `(result, info dict, (levels, metadata, names, enrichment))`.
    """
    from keras_sparse.connectivity.hierarchy import hierarchy_connectivities
    from keras_sparse.datasets import fetch_qusage, find_qusage_data, load_flu_challenge
    from keras_sparse.datasets.flu_challenge import LATE_SYMPTOMATIC
    from keras_sparse.datasets.reactome import load_reactome

    say = progress or (lambda _m: None)
    try:
        folder = find_qusage_data(data)
    except FileNotFoundError:
        if not fetch or data is not None:
            raise
        say("fetching Bioconductor qusage data (Debian package r-bioc-qusage) ...")
        folder = fetch_qusage(quiet=True)
    flu = load_flu_challenge(folder)
    say(
        "loading Reactome (fetched once: PyPI wheel binn 0.1.1 + Debian "
        "org.Hs.eg.db) ..."
    )
    reactome = load_reactome(fetch=fetch)
    levels = hierarchy_connectivities(
        reactome.relations,
        reactome.annotations,
        flu.genes,
        num_levels=3,
        min_size=5,
        max_size=300,
    )
    isg = set(flu.gene_sets["ISG"]["ISG"])
    subtree = reactome.descendants(INTERFERON)
    positive, enrichment = positive_set(levels, subtree, isg)
    meta = flu.metadata
    y = flu.late_symptomatic()
    groups = meta["Subject"].astype(str).to_numpy()
    hours = meta["Hours.Numeric"].astype(float).to_numpy()
    condition = meta["Condition"].astype(str).to_numpy()
    subjects = sorted(set(groups))
    subject_condition = {s: condition[groups == s][0] for s in subjects}

    def permute_labels(rng: np.random.Generator) -> np.ndarray:
        # Between subjects: the sx/asx status moves with the whole subject;
        # the time rule (>= 45 h) stays.
        shuffled = dict(
            zip(
                subjects,
                rng.permutation([subject_condition[s] for s in subjects]),
                strict=True,
            )
        )
        sx = np.array([shuffled[g] == "sx" for g in groups])
        return (sx & (hours >= 45)).astype(np.int64)

    n_genes_used = int((levels[0].fan_out > 0).sum())
    n_positive_nodes = sum(
        n.split("_copy")[0] in positive for c in levels for n in c.output_names or ()
    )
    say(
        f"data: {flu.expression.shape[0]} samples x {flu.expression.shape[1]} genes "
        f"({flu.source}); {len(subjects)} subjects; target 'symptomatic and >= 45 h': "
        f"{int(y.sum())} positive, {int((1 - y).sum())} negative"
    )
    say(
        f"hierarchy: Reactome, {n_genes_used} genes in pathways -> "
        + " -> ".join(f"{c.num_outputs} nodes" for c in levels)
        + f" (nnz {', '.join(str(c.nnz) for c in levels)}; bottom pathways with 5-300 "
        "genes; shallow branches copied down)"
    )
    say(
        f"positive set (declared before training): {len(positive)} pathways = the "
        f"Interferon Signaling subtree ({len(subtree)}) + pathways enriched for "
        "qusage's "
        f"{len(isg & set(flu.genes))} ISGs (hypergeometric, q < 0.05); "
        f"{n_positive_nodes} "
        "network nodes"
    )
    say(f"study: {config.describe()}")
    result = run_study(
        flu.expression,
        y,
        groups,
        levels,
        permute_labels,
        positive,
        node_names=reactome.names,
        config=config,
        track_node=INTERFERON,
        orient_genes=sorted(isg),
        positive_genes=isg,
        progress=progress,
    )
    if result.activation is not None:
        act = result.activation
        act["hours"] = hours[act["sample"].to_numpy()]
        act["condition"] = condition[act["sample"].to_numpy()]
        act["subject"] = act.pop("group")
    info = dict(
        command="demo flu",
        data=flu.source,
        reactome=reactome.source,
        target=LATE_SYMPTOMATIC,
        n_samples=int(y.size),
        n_positive=int(y.sum()),
        n_subjects=len(subjects),
        hierarchy=[dict(nodes=c.num_outputs, nnz=c.nnz) for c in levels],
        positive_set_size=len(positive),
        config=dict(vars(config)),
        summary=result.summary,
        planted=result.planted_summary,
    )
    return result, info, (levels, meta, reactome.names, enrichment)


def write_study_outputs(
    result: StudyResult,
    levels: list[Connectivity],
    out_dir: str,
    info: dict[str, Any],
    extra: dict[str, pd.DataFrame] | None = None,
    track_label: str = "Interferon Signaling (R-HSA-913531)",
    positive_label: str = "interferon subtree + ISG-enriched",
    null_label: str = "labels permuted between subjects",
    group_label: str = "subjects",
) -> list[str]:
    """Writes the tables, figures and run info; nothing partial on failure."""
    from keras_sparse.plotting import study as plots

    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".partial-", dir=out_dir)
    try:
        result.nodes.to_csv(os.path.join(tmp, "nodes.csv"), index=False)
        result.genes.to_csv(os.path.join(tmp, "genes.csv"), index=False)
        if result.curve is not None and result.curve_tests is not None:
            result.curve.to_csv(os.path.join(tmp, "learning_curve.csv"), index=False)
            result.curve_tests.to_csv(
                os.path.join(tmp, "learning_curve_tests.csv"), index=False
            )
            plots.plot_learning_curve(
                result.curve,
                result.curve_tests,
                os.path.join(tmp, "learning_curve.png"),
                group_label=group_label,
            )
        result.accuracy.to_csv(os.path.join(tmp, "accuracy_folds.csv"), index=False)
        result.comparisons.to_csv(os.path.join(tmp, "accuracy_tests.csv"), index=False)
        result.controls.to_csv(
            os.path.join(tmp, "positive_set_vs_controls.csv"), index=False
        )
        if result.planted is not None:
            result.planted.to_csv(
                os.path.join(tmp, "planted_recovery.csv"), index=False
            )
        if result.activation is not None:
            result.activation.to_csv(
                os.path.join(tmp, "tracked_activation.csv"), index=False
            )
        for name, table in (extra or {}).items():
            table.to_csv(os.path.join(tmp, name), index=False)
        plots.plot_sankey(
            result.nodes, levels, os.path.join(tmp, "sankey.png"), null_label=null_label
        )
        plots.plot_volcano(result.nodes, os.path.join(tmp, "volcano.png"))
        if result.summary["n_positive"] > 0:
            plots.plot_positive_set(
                result.controls,
                result.summary,
                os.path.join(tmp, "positive_set_vs_controls.png"),
                label=positive_label,
            )
        plots.plot_accuracy(
            result.accuracy,
            result.planted,
            result.planted_summary,
            os.path.join(tmp, "accuracy_and_planted.png"),
        )
        if result.activation is not None:
            plots.plot_activation(
                result.activation,
                track_label,
                os.path.join(tmp, "interferon_activation.png"),
            )
        if result.curve_tests is not None:
            info = dict(info, learning_curve=result.curve_tests.to_dict("records"))
        with open(os.path.join(tmp, "run_info.json"), "w") as fh:
            json.dump(info, fh, indent=1, default=str)
        return publish_outputs(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
