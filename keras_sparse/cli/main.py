"""The `keras-sparse` command line: demo, fit, train-cifar, fetch-data.

Nothing heavy is imported at module level: `keras-sparse --help` and
argument errors need neither Keras nor a backend, and the backend named by
`--backend` is set before Keras is first imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")
STUDY_PRESETS = ("default", "full")


class _ArgumentError(ValueError):
    """A command-line value refused before any work starts."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-sparse",
        description="Sparsely connected Keras networks: pathway-informed models "
        "with named, inspectable connections.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, out_default: str, epochs_help: str) -> None:
        p.add_argument(
            "--backend",
            choices=BACKENDS,
            default=None,
            help="Keras backend (default: $KERAS_BACKEND, else jax).",
        )
        p.add_argument(
            "--output",
            default=out_default,
            help=f"output folder (default {out_default})",
        )
        p.add_argument("--epochs", type=int, default=None, help=epochs_help)
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    demo = sub.add_parser(
        "demo",
        help="the main job: a Reactome pathway-network study on real data",
        description="flu (default): a 3-level Reactome network on the qusage "
        "influenza-challenge data (GSE30550; 252 samples of 17 people) predicting "
        "'symptomatic and >= 45 h', with replicate networks, labels permuted between "
        "subjects, gene-permuted control hierarchies, a planted-signal ground truth, "
        "integrated-gradient node scores and paired accuracy tests. lenet5: LeNet-5 "
        "with its original C3 table vs a full C3 on Fashion-MNIST.",
    )
    demo.add_argument(
        "dataset",
        nargs="?",
        default="flu",
        choices=["flu", "crc", "lenet5"],
        help="flu (default, the main job), crc (the same study on TCGA colorectal "
        "tumours, MSI-H vs MSS), lenet5",
    )
    demo.add_argument(
        "--study",
        choices=STUDY_PRESETS,
        default="default",
        help="study size: default (5 folds x 2 seeds, 2 permutations, 19 controls; "
        "minutes) or full (5 x 10, 10 permutations, 49 controls)",
    )
    demo.add_argument("--folds", type=int, default=None, help="override: folds")
    demo.add_argument(
        "--seeds", type=int, default=None, help="override: seeds per fold"
    )
    demo.add_argument(
        "--permutations",
        type=int,
        default=None,
        help="override: permuted-label networks per fold",
    )
    demo.add_argument(
        "--controls",
        type=int,
        default=None,
        help="override: gene-permuted control hierarchies",
    )
    demo.add_argument(
        "--no-planted", action="store_true", help="skip the planted-signal arm"
    )
    demo.add_argument(
        "--level-heads",
        action="store_true",
        help="one prediction head per level, averaged (BINN's heads ensemble)",
    )
    demo.add_argument("--no-curve", action="store_true", help="skip the learning curve")
    demo.add_argument(
        "--curve-planted",
        action="store_true",
        help="learning curve on the planted labels too (the full study has it)",
    )
    demo.add_argument(
        "--data",
        default=None,
        help="flu: folder with fluExample.RData and GeneSets.RData; lenet5: folder "
        "with the four Fashion-MNIST .gz files",
    )
    demo.add_argument(
        "--no-fetch",
        action="store_true",
        help="fail instead of downloading missing data",
    )
    common(demo, "keras-sparse-demo", "training epochs (default: flu 40, lenet5 3)")

    fit = sub.add_parser(
        "fit",
        help="grouped cross-validated pathway network on your own files",
        description="Grouped/stratified cross-validated comparison (pathway network, "
        "density-matched random control, dense MLP, linear baseline) and a final "
        "pathway network on your expression matrix, labels and gene sets.",
    )
    fit.add_argument(
        "--expression",
        required=True,
        help="samples x genes CSV/TSV (first column: sample id) or .h5ad",
    )
    fit.add_argument(
        "--labels",
        required=True,
        help="CSV/TSV with a sample id column and the label column",
    )
    fit.add_argument(
        "--label-column", required=True, help="column of --labels with the target"
    )
    fit.add_argument(
        "--sample-column",
        default=None,
        help="sample id column of --labels (default: first)",
    )
    fit.add_argument(
        "--group-column",
        default=None,
        help="column of --labels with groups for grouped CV",
    )
    fit.add_argument(
        "--gene-sets",
        default=None,
        help="GMT, gene/pathway edge table (CSV/TSV), or Connectivity .npz (required "
        "unless --hierarchy reactome)",
    )
    fit.add_argument(
        "--task", choices=["classification", "regression"], default="classification"
    )
    fit.add_argument(
        "--min-genes",
        type=int,
        default=1,
        help="drop sets with fewer data genes (default 1)",
    )
    fit.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds (default 5)"
    )
    fit.add_argument(
        "--importance-repeats",
        type=int,
        default=10,
        help="permutations per pathway for the importance (default 10)",
    )
    study = fit.add_argument_group(
        "study (the demo's analysis on your files; binary labels and --group-column)"
    )
    study.add_argument(
        "--study",
        choices=STUDY_PRESETS,
        default=None,
        help="run the pathway-network study instead of the comparison",
    )
    study.add_argument(
        "--hierarchy",
        default=None,
        help="'reactome' (gene symbols; fetched once), or a parent -> child pathway "
        "table (CSV/TSV, first two columns) layered over --gene-sets; default: "
        "--gene-sets as one level",
    )
    study.add_argument(
        "--levels", type=int, default=3, help="hierarchy levels (default 3)"
    )
    study.add_argument(
        "--min-size", type=int, default=5, help="bottom pathway min genes"
    )
    study.add_argument(
        "--max-size", type=int, default=300, help="bottom pathway max genes"
    )
    study.add_argument(
        "--positive",
        default=None,
        help="comma-separated pathway ids declared positive before the run",
    )
    study.add_argument("--seeds", type=int, default=None, help="override: seeds")
    study.add_argument("--permutations", type=int, default=None, help="override")
    study.add_argument("--controls", type=int, default=None, help="override")
    study.add_argument("--no-planted", action="store_true", help="skip the planted arm")
    study.add_argument(
        "--level-heads",
        action="store_true",
        help="one prediction head per level, averaged (BINN's heads ensemble)",
    )
    study.add_argument(
        "--no-curve", action="store_true", help="skip the learning curve"
    )
    common(fit, "keras-sparse-fit", "training epochs (default 60; study 40)")

    cifar = sub.add_parser(
        "train-cifar",
        help="train SparseNet/DenseNet on CIFAR with the paper's recipe",
        description="SGD + Nesterov 0.9, batch 64, lr 0.1 (/10 at 50%% and 75%%), "
        "weight decay 1e-4, pad-4 crop + flip, per-channel normalisation.",
    )
    cifar.add_argument(
        "--model",
        default="SparseNet-40-24",
        help="a preset name, e.g. 'SparseNet-BC-100-{16,32,64}' or 'DenseNet-40-12'",
    )
    cifar.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    cifar.add_argument(
        "--data-dir",
        default=None,
        help="extracted CIFAR 'python version' folder (default: download with "
        "keras.datasets)",
    )
    cifar.add_argument("--batch-size", type=int, default=64)
    cifar.add_argument(
        "--steps-per-epoch", type=int, default=None, help="limit (smoke runs)"
    )
    common(cifar, "keras-sparse-cifar", "training epochs (default 300)")

    fetch = sub.add_parser(
        "fetch-data",
        help="download the qusage data, the Reactome hierarchy and NetSAM's TCGA "
        "colorectal data into the cache",
    )
    fetch.add_argument("--cache-dir", default=None, help="folder for the qusage files")
    return parser


def _select_backend(requested: str | None, argv: Sequence[str]) -> None:
    """Makes Keras use `requested` (re-executes only if Keras is loaded already)."""
    wanted = requested or os.environ.get("KERAS_BACKEND") or "jax"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" in sys.modules:
        import keras

        if keras.config.backend() != wanted:
            env = dict(os.environ, KERAS_BACKEND=wanted)
            os.execve(
                sys.executable, [sys.executable, "-m", "keras_sparse.cli", *argv], env
            )
    os.environ["KERAS_BACKEND"] = wanted


def _check_args(args: argparse.Namespace) -> None:
    """Refuses bad values before any data is read or any model trained."""
    out = getattr(args, "output", None)
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise _ArgumentError(
            f"--output: {out!r} exists and is not a folder. Name a new or existing "
            "folder (results are written into it)."
        )
    minimum = dict(
        levels=1,
        min_size=1,
        epochs=1,
        folds=2,
        seeds=1,
        permutations=2,
        controls=1,
        importance_repeats=1,
        batch_size=1,
    )
    for name, low in minimum.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise _ArgumentError(
                f"--{name.replace('_', '-')} must be at least {low}. Received: {value}"
            )


def _study_config(args: argparse.Namespace) -> Any:
    import dataclasses

    from keras_sparse.experiments.study import STUDIES

    overrides = {
        k: getattr(args, k)
        for k in ("folds", "seeds", "permutations", "controls", "epochs")
        if getattr(args, k) is not None
    }
    if args.no_planted:
        overrides["planted"] = False
    if getattr(args, "level_heads", False):
        overrides["level_heads"] = True
    if getattr(args, "no_curve", False):
        overrides["curve_sizes"] = ()
    if getattr(args, "curve_planted", False):
        overrides["curve_labels"] = ("real", "planted")
    if getattr(args, "command", None) == "fit":
        overrides.pop("folds", None)
        overrides["folds"] = args.folds
    return dataclasses.replace(STUDIES[args.study], seed=args.seed, **overrides)


def _print_study(result: Any, config: Any, elapsed: float) -> None:
    s = result.summary
    print("\n=== accuracy (held-out ROC AUC; paired Wilcoxon signed-rank tests) ===")
    cols = [
        "labels",
        "comparison",
        "real_auc",
        "other_auc",
        "delta_auc",
        "wins",
        "pairs",
        "pairing",
        "wilcoxon_p",
    ]
    print(
        result.comparisons[cols].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )
    if result.curve_tests is not None:
        _print_curve(result.curve_tests)
    print("\n=== interpretation ===")
    print(
        f"networks trained: {s['n_networks']['real']} real-hierarchy, "
        f"{s['n_networks']['permuted_labels']} on permuted labels, "
        f"{s['n_networks']['control']} control-hierarchy, {s['n_networks']['planted']} "
        "on planted labels"
    )
    print(
        f"stability: median Spearman correlation of node scores between real "
        f"replicates = {s['stability_median_spearman']:.3f} "
        f"({s['stability_pairs']} pairs)"
    )
    print(
        f"specificity: {s['n_significant_q05']} of {s['n_nodes']} nodes score higher "
        f"with real than with permuted labels at BH q < 0.05 (one-sided Mann-Whitney; "
        f"smallest p possible with these replicate counts: {s['min_possible_p']:.2g}); "
        f"{s['n_positive_significant']} of the {s['n_positive']} positive-set nodes"
    )
    if s["n_positive"]:
        print(
            f"positive set vs {len(result.controls) - 1} gene-permuted control "
            f"hierarchies: AUROC {s['positive_set_auroc']:.3f} (controls mean "
            f"{s['positive_set_control_auroc_mean']:.3f}), rank "
            f"{s['positive_set_rank']} of {len(result.controls)}, empirical p = "
            f"{s['positive_set_p']:.3f}"
        )
    else:
        print("positive set: none declared (--positive), so no control-hierarchy test")
    g = s["genes"]
    print(
        f"genes (integrated gradients on the inputs, same statistics, BH over the "
        f"{g['n_genes']} genes in the hierarchy): stability (median Spearman) "
        f"{g['stability_median_spearman']:.3f}; {g['n_significant_q05']} genes at "
        f"q < 0.05"
        + (
            f" ({g['n_positive_significant']} of the {g['n_positive']} declared "
            "positive genes)"
            if g["n_positive"]
            else ""
        )
    )
    if "positive_auroc" in g:
        print(
            f"positive genes vs the control hierarchies (among each hierarchy's "
            f"annotated genes): AUROC "
            f"{g['positive_auroc']:.3f} (controls mean "
            f"{g['positive_control_auroc_mean']:.3f}), rank {g['positive_rank']} of "
            f"{len(result.controls)}, empirical p = {g['positive_p']:.3f}"
        )
    top = result.nodes.head(12)
    print("\ntop nodes (by q, then effect = real - permuted-label mean percentile):")
    print(
        top[["level", "node", "name", "genes", "score", "effect", "p", "q", "positive"]]
        .assign(name=top["name"].str.slice(0, 48))
        .to_string(index=False, float_format=lambda v: f"{v:.3g}")
    )
    if result.planted_summary is not None:
        p = result.planted_summary
        print("\n=== planted signal (ground truth) ===")
        print(f"labels simulated from: {'; '.join(p['nodes'])}")
        print(
            f"held-out AUC: Reactome {p['real_accuracy_auc']:.3f}, controls "
            f"{p['control_accuracy_auc']:.3f}, logistic regression "
            f"{p['logistic_regression_auc']:.3f}"
        )
        print(
            f"recovery of the planted pathways in the bottom-level ranking: AUROC "
            f"{p['real_auroc_mean']:.3f} (Reactome networks) vs "
            f"{p['control_auroc_mean']:.3f} "
            f"(controls); recall@{p['k']} {p['real_recall_at_k_mean']:.2f} vs "
            f"{p['control_recall_at_k_mean']:.2f}; pooled over folds "
            f"{p['pooled_real_auroc']:.3f} "
            f"vs controls {p['pooled_control_auroc_mean']:.3f}, empirical p = "
            f"{p['empirical_p']:.3f}"
        )
    if result.planted_summary is not None and "planted_genes" in g:
        print(
            f"recovery of the {g['planted_genes']} planted genes in the gene ranking: "
            f"AUROC {g['planted_real_auroc_mean']:.3f} (Reactome networks) vs "
            f"{g['planted_control_auroc_mean']:.3f} (controls); pooled over folds "
            f"{g['planted_pooled_real_auroc']:.3f} vs controls "
            f"{g['planted_pooled_control_auroc_mean']:.3f}, empirical p = "
            f"{g['planted_empirical_p']:.3f}"
        )
    print(f"\nstudy: {config.describe()}; {elapsed:.0f} s")


def _print_curve(tests: Any) -> None:
    print(
        "\n=== learning curve (held-out ROC AUC, mean over folds and replicates; "
        "fewer training subjects, same held-out subjects) ==="
    )
    table = tests.assign(
        subjects=tests.subjects.round(1),
        samples=tests.samples.round(0).astype(int),
    ).rename(
        columns={
            "real_auc": "Reactome",
            "control_auc": "controls",
            "dense MLP_auc": "MLP",
            "logistic regression_auc": "LR",
            "delta_vs_control": "d_ctrl",
            "p_vs_control": "p_ctrl",
            "delta_vs_dense MLP": "d_MLP",
            "p_vs_dense MLP": "p_MLP",
            "delta_vs_logistic regression": "d_LR",
            "p_vs_logistic regression": "p_LR",
        }
    )
    cols = ["labels", "size", "subjects", "samples", "Reactome", "controls", "MLP"]
    cols += ["LR", "d_ctrl", "p_ctrl", "d_MLP", "p_MLP", "d_LR", "p_LR"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    pairs = tests.iloc[0]
    print(
        "d_* = Reactome − other (paired Wilcoxon signed-rank p): vs controls per "
        f"fold x Reactome replicate against the fold's control mean "
        f"({int(pairs['pairs_vs_control'])} pairs), vs MLP per fold x replicate "
        f"({int(pairs['pairs_vs_dense MLP'])}), vs LR per fold "
        f"({int(pairs['pairs_vs_logistic regression'])} pairs)"
    )


def _demo_study(args: argparse.Namespace) -> int:
    import keras

    from keras_sparse.experiments.flu_study import write_study_outputs

    config = _study_config(args)
    start = time.perf_counter()
    print(f"backend: {keras.config.backend()} (keras {keras.__version__})", flush=True)
    if args.study == "default":
        print(
            "running the default (smaller) study; the full study is "
            f"`bash scripts/demo.sh {'crc ' if args.dataset == 'crc' else ''}"
            "--study full`",
            flush=True,
        )
    say = lambda m: print(m, flush=True)  # noqa: E731
    if args.dataset == "crc":
        from keras_sparse.experiments.crc_study import run_crc_study

        result, info, (levels, table) = run_crc_study(
            config, data=args.data, fetch=not args.no_fetch, progress=say
        )
    else:
        from keras_sparse.experiments.flu_study import run_flu_study

        result, info, (levels, _meta, _names, table) = run_flu_study(
            config, data=args.data, fetch=not args.no_fetch, progress=say
        )
    elapsed = time.perf_counter() - start
    _print_study(result, config, elapsed)
    info.update(
        backend=keras.config.backend(),
        keras=keras.__version__,
        study=args.study,
        seconds=round(elapsed, 1),
    )
    labels = (
        dict(
            positive_label="DNA Repair + Interferon Signaling subtrees",
            null_label="permuted labels",
            group_label="tumours",
        )
        if args.dataset == "crc"
        else {}
    )
    written = write_study_outputs(
        result,
        levels,
        args.output,
        info,
        extra={"positive_set_enrichment.csv": table},
        **labels,
    )
    print(f"\nwrote {len(written)} files to {os.path.abspath(args.output)}:")
    for path in written:
        print(f"  {os.path.basename(path)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _demo_lenet5(args: argparse.Namespace) -> int:
    import json

    import keras

    from keras_sparse.datasets import load_fashion_mnist
    from keras_sparse.experiments.lenet5 import run_lenet5_comparison

    data = load_fashion_mnist(args.data)
    epochs = args.epochs if args.epochs is not None else 3
    print(
        f"backend: {keras.config.backend()}; Fashion-MNIST: "
        f"{len(data[0][0]):,} training, "
        f"{len(data[1][0]):,} test images; {epochs} epochs",
        flush=True,
    )
    rows = run_lenet5_comparison(data, epochs=epochs, seed=args.seed)
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "lenet5_comparison.json")
    with open(path, "w") as fh:
        json.dump(
            {"backend": keras.config.backend(), "epochs": epochs, "rows": rows},
            fh,
            indent=1,
        )
    print(f"wrote {path}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import keras

    from keras_sparse.cli.inputs import (
        read_expression,
        read_gene_sets,
        read_labels,
        summarize_labels,
    )
    from keras_sparse.experiments.pathways import (
        ExperimentConfig,
        format_table,
        run_pathway_experiment,
        write_outputs,
    )

    if args.gene_sets is None and args.hierarchy != "reactome":
        raise _ArgumentError(
            "--gene-sets is required (GMT, gene/pathway table or .npz) unless "
            "--hierarchy reactome."
        )
    if args.study is not None and (
        args.task != "classification" or not args.group_column
    ):
        raise _ArgumentError(
            "--study needs binary classification labels and --group-column (folds "
            "and permutations keep each group together)."
        )
    x, samples, genes = read_expression(args.expression)
    labels = read_labels(
        args.labels,
        samples,
        args.label_column,
        args.task,
        group_column=args.group_column,
        sample_column=args.sample_column,
    )
    summary = summarize_labels(labels)
    if "classes" in summary:
        counts = ", ".join(f"{c!r}: {n}" for c, n in summary["classes"].items())
        print(f"classes of {args.label_column!r}: {counts}", flush=True)
    if args.study is not None:
        return _fit_study(args, x, genes, labels, summary)
    connectivity, report = read_gene_sets(
        args.gene_sets, genes, min_found=args.min_genes
    )
    print(f"data: {x.shape[0]} samples x {x.shape[1]} genes; {report}", flush=True)
    info = dict(
        command="fit",
        expression=os.path.abspath(args.expression),
        labels=os.path.abspath(args.labels),
        gene_sets=os.path.abspath(args.gene_sets),
        label_column=args.label_column,
        group_column=args.group_column,
        task=args.task,
        coverage=report,
        **summary,
    )
    config = ExperimentConfig(
        task=args.task,
        folds=args.folds,
        epochs=args.epochs if args.epochs is not None else 60,
        importance_repeats=args.importance_repeats,
        seed=args.seed,
    )
    start = time.perf_counter()
    print(f"backend: {keras.config.backend()} (keras {keras.__version__})", flush=True)
    print(f"connectivity: {connectivity}", flush=True)
    result = run_pathway_experiment(
        x,
        labels.y,
        connectivity,
        labels.groups,
        config,
        progress=lambda m: print(m, flush=True),
    )
    print()
    print(format_table(result.table))
    info.update(
        backend=keras.config.backend(),
        keras=keras.__version__,
        config=vars(config),
        seconds=round(time.perf_counter() - start, 1),
    )
    written = write_outputs(result, connectivity, args.output, info)
    print(f"\nwrote {len(written)} files to {os.path.abspath(args.output)}:")
    for path in written:
        print(f"  {os.path.basename(path)}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _fit_study(
    args: argparse.Namespace, x: Any, genes: list[str], labels: Any, summary: dict
) -> int:
    import keras

    from keras_sparse.cli.inputs import _read_table, read_gene_sets
    from keras_sparse.connectivity.hierarchy import hierarchy_connectivities
    from keras_sparse.experiments.flu_study import write_study_outputs
    from keras_sparse.experiments.study import group_permuter, run_study

    if labels.classes is None or len(labels.classes) != 2:
        raise _ArgumentError(
            f"--study needs two classes in --label-column {args.label_column!r}. "
            f"Received: {labels.classes}"
        )
    names: dict[str, str] = {}
    if args.hierarchy == "reactome":
        from keras_sparse.datasets.reactome import load_reactome

        reactome = load_reactome()
        relations, annotations, names = (
            reactome.relations,
            reactome.annotations,
            reactome.names,
        )
    else:
        if args.hierarchy is not None:
            table = _read_table(args.hierarchy, "--hierarchy", index_col=None)
            relations = list(table.iloc[:, :2].itertuples(index=False, name=None))
        conn, report = read_gene_sets(args.gene_sets, genes, min_found=1)
        print(f"gene sets: {report}", flush=True)
        edges = conn.to_edge_table()
        annotations = list(
            edges[["input", "output"]].itertuples(index=False, name=None)
        )
    if args.hierarchy is None:
        levels = hierarchy_connectivities(
            [],
            annotations,
            genes,
            num_levels=1,
            min_size=args.min_size,
            max_size=args.max_size,
        )
    else:
        levels = hierarchy_connectivities(
            relations,
            annotations,
            genes,
            num_levels=args.levels,
            min_size=args.min_size,
            max_size=args.max_size,
        )
    nodes = {n.split("_copy")[0] for c in levels for n in c.output_names or ()}
    positive = set(filter(None, (p.strip() for p in (args.positive or "").split(","))))
    unknown = sorted(positive - nodes)
    if unknown:
        raise _ArgumentError(
            f"--positive: {len(unknown)} id(s) are not nodes of the hierarchy: "
            f"{unknown[:10]}. Node ids look like {sorted(nodes)[:5]}."
        )
    permute, how = group_permuter(labels.y, labels.groups)
    config = _study_config(args)
    print(f"backend: {keras.config.backend()} (keras {keras.__version__})", flush=True)
    print(
        "hierarchy: "
        + " -> ".join(f"{c.num_outputs} nodes" for c in levels)
        + f"; null: {how}; study: {config.describe()}",
        flush=True,
    )
    start = time.perf_counter()
    result = run_study(
        x,
        labels.y,
        labels.groups,
        levels,
        permute,
        positive,
        node_names=names,
        config=config,
        progress=lambda m: print(m, flush=True),
    )
    elapsed = time.perf_counter() - start
    _print_study(result, config, elapsed)
    info = dict(
        command="fit --study",
        expression=os.path.abspath(args.expression),
        labels=os.path.abspath(args.labels),
        hierarchy=args.hierarchy,
        gene_sets=args.gene_sets,
        null=how,
        positive=sorted(positive),
        backend=keras.config.backend(),
        config=dict(vars(config)),
        summary=result.summary,
        planted=result.planted_summary,
        seconds=round(elapsed, 1),
        **summary,
    )
    written = write_study_outputs(
        result,
        levels,
        args.output,
        info,
        positive_label="declared with --positive",
        null_label="permuted labels",
        group_label="groups",
    )
    print(f"\nwrote {len(written)} files to {os.path.abspath(args.output)}")
    return 0


def _train_cifar(args: argparse.Namespace) -> int:
    import json

    import keras

    from keras_sparse.datasets import load_cifar
    from keras_sparse.experiments.cifar import train_cifar
    from keras_sparse.models import AggregationNet, trainable_param_count

    data = load_cifar(args.dataset, args.data_dir)
    num_classes = 10 if args.dataset == "cifar10" else 100
    keras.utils.set_random_seed(args.seed)
    model = AggregationNet.from_name(
        args.model, num_classes=num_classes, input_shape=(32, 32, 3)
    )
    params = trainable_param_count(model)
    print(
        f"backend: {keras.config.backend()}; {args.model}: {params:,} trainable "
        "parameters; "
        f"{args.dataset}: {len(data[0][0]):,} training images",
        flush=True,
    )
    metrics = train_cifar(
        model,
        data,
        epochs=args.epochs if args.epochs is not None else 300,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        seed=args.seed,
        progress=lambda m: print(m, flush=True),
    )
    os.makedirs(args.output, exist_ok=True)
    model.save(os.path.join(args.output, "model.keras"))
    with open(os.path.join(args.output, "metrics.json"), "w") as fh:
        json.dump(
            dict(metrics, model=args.model, dataset=args.dataset, params=params),
            fh,
            indent=1,
        )
    print(
        f"test accuracy {metrics['test_accuracy']:.4f}; wrote "
        f"{os.path.abspath(args.output)}"
    )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from keras_sparse.datasets.flu_challenge import fetch_qusage
    from keras_sparse.datasets.reactome import fetch_reactome
    from keras_sparse.datasets.tcga_crc import fetch_netsam

    print(fetch_qusage(args.cache_dir))
    print(fetch_reactome())
    print(fetch_netsam())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `keras-sparse` command; returns the exit status (2: bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        _check_args(args)
        if args.command == "fetch-data":
            return _fetch(args)
        _select_backend(args.backend, argv)
        if args.command == "train-cifar":
            return _train_cifar(args)
        if args.command == "fit":
            return _fit(args)
        return _demo_lenet5(args) if args.dataset == "lenet5" else _demo_study(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"keras-sparse: error: {err}", file=sys.stderr)
        return 2
