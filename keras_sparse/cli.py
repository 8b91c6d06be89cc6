"""The `keras-sparse` command line: demo, fit, fetch-data."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-sparse",
        description="Sparsely connected Keras networks: pathway-informed models "
        "with named, inspectable connections.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, out_default: str) -> None:
        p.add_argument(
            "--backend",
            choices=BACKENDS,
            default=None,
            help="Keras backend (default: $KERAS_BACKEND, else jax).",
        )
        p.add_argument("--output", default=out_default, help=f"output folder (default {out_default})")
        p.add_argument(
            "--epochs", type=int, default=None, help="training epochs (default 60; lenet5: 3)"
        )
        p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument(
            "--importance-repeats",
            type=int,
            default=10,
            help="permutations per pathway for the importance (default 10)",
        )

    demo = sub.add_parser(
        "demo",
        help="pathway network on the bundled influenza-challenge data",
        description="Trains a KEGG-pathway network on the qusage influenza-challenge "
        "expression data (4,147 genes x 252 samples, 17 subjects) to tell "
        "symptomatic samples at >= 45 h from the rest, compares it in grouped "
        "cross-validation with a density-matched random control, a dense MLP and "
        "logistic regression, then writes the edge weights, pathway importance, "
        "a figure and the model.",
    )
    demo.add_argument(
        "dataset",
        nargs="?",
        default="flu",
        choices=["flu", "lenet5"],
        help="flu (default): pathway network on the influenza data; lenet5: LeNet-5 "
        "with its original C3 table vs a full C3 on Fashion-MNIST",
    )
    demo.add_argument(
        "--data",
        default=None,
        help="flu: folder with fluExample.RData and GeneSets.RData; lenet5: folder "
        "with the four Fashion-MNIST .gz files",
    )
    demo.add_argument(
        "--gene-sets",
        default="KEGG",
        choices=["KEGG", "BTM"],
        help="collection used as pathways (default KEGG)",
    )
    demo.add_argument(
        "--no-fetch", action="store_true", help="fail instead of downloading missing data"
    )
    common(demo, "keras-sparse-demo")

    fit = sub.add_parser(
        "fit",
        help="the same analysis on your own files",
        description="Grouped/stratified cross-validated comparison and a final "
        "pathway network on your expression matrix, labels and gene sets.",
    )
    fit.add_argument("--expression", required=True, help="samples x genes CSV/TSV (first column: sample id) or .h5ad")
    fit.add_argument("--labels", required=True, help="CSV/TSV with a sample id column and the label column")
    fit.add_argument("--label-column", required=True, help="column of --labels holding the target")
    fit.add_argument("--sample-column", default=None, help="sample id column of --labels (default: first)")
    fit.add_argument("--group-column", default=None, help="column of --labels with groups for grouped CV")
    fit.add_argument("--gene-sets", required=True, help="GMT, gene/pathway edge table (CSV/TSV), or Connectivity .npz")
    fit.add_argument("--task", choices=["classification", "regression"], default="classification")
    fit.add_argument("--min-genes", type=int, default=1, help="drop sets with fewer data genes (default 1)")
    common(fit, "keras-sparse-fit")

    cifar = sub.add_parser(
        "train-cifar",
        help="train SparseNet/DenseNet on CIFAR with the paper's recipe",
        description="SGD + Nesterov 0.9, batch 64, lr 0.1 (/10 at 50%% and 75%%), "
        "weight decay 1e-4, pad-4 crop + flip, per-channel normalisation.",
    )
    cifar.add_argument("--model", default="SparseNet-40-24", help="a preset name, e.g. "
                       "'SparseNet-BC-100-{16,32,64}' or 'DenseNet-40-12'")
    cifar.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10")
    cifar.add_argument("--data-dir", default=None, help="extracted CIFAR 'python version' "
                       "folder (default: download with keras.datasets)")
    cifar.add_argument("--epochs", type=int, default=300)
    cifar.add_argument("--batch-size", type=int, default=64)
    cifar.add_argument("--steps-per-epoch", type=int, default=None, help="limit (smoke runs)")
    cifar.add_argument("--seed", type=int, default=0)
    cifar.add_argument("--backend", choices=BACKENDS, default=None)
    cifar.add_argument("--output", default="keras-sparse-cifar")

    fetch = sub.add_parser("fetch-data", help="download the qusage data into the cache")
    fetch.add_argument("--cache-dir", default=None)
    return parser


def _select_backend(requested: str | None, argv: Sequence[str]) -> None:
    """Makes Keras use `requested`, re-executing if Keras is loaded already."""
    wanted = requested or os.environ.get("KERAS_BACKEND") or "jax"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != wanted:
            env = dict(os.environ, KERAS_BACKEND=wanted)
            os.execve(
                sys.executable, [sys.executable, "-m", "keras_sparse.cli", *argv], env
            )
    os.environ["KERAS_BACKEND"] = wanted


def _config(args: argparse.Namespace, task: str) -> Any:
    from keras_sparse.experiments.pathways import ExperimentConfig

    for name in ("epochs", "folds", "importance_repeats"):
        value = getattr(args, name)
        if value < (2 if name == "folds" else 1):
            raise ValueError(
                f"--{name.replace('_', '-')} must be at least "
                f"{2 if name == 'folds' else 1}. Received: {value}"
            )
    return ExperimentConfig(
        task=task,
        folds=args.folds,
        epochs=args.epochs,
        importance_repeats=args.importance_repeats,
        seed=args.seed,
    )


def _run(args: argparse.Namespace, x: Any, y: Any, groups: Any, connectivity: Any,
         task: str, info: dict[str, Any]) -> int:
    import keras

    from keras_sparse.experiments.pathways import (
        format_table,
        run_pathway_experiment,
        write_outputs,
    )

    config = _config(args, task)
    start = time.perf_counter()
    print(f"backend: {keras.backend.backend()} (keras {keras.__version__})", flush=True)
    print(f"connectivity: {connectivity}", flush=True)
    result = run_pathway_experiment(
        x, y, connectivity, groups, config, progress=lambda m: print(m, flush=True)
    )
    print()
    print(format_table(result.table))
    info.update(
        backend=keras.backend.backend(),
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


def _demo_lenet5(args: argparse.Namespace) -> int:
    import json

    import keras

    from keras_sparse.datasets import load_fashion_mnist
    from keras_sparse.experiments.lenet5 import run_lenet5_comparison

    data = load_fashion_mnist(args.data)
    epochs = args.epochs if args.epochs_given else 3
    print(
        f"backend: {keras.backend.backend()}; Fashion-MNIST: {len(data[0][0]):,} training, "
        f"{len(data[1][0]):,} test images; {epochs} epochs",
        flush=True,
    )
    rows = run_lenet5_comparison(data, epochs=epochs, seed=args.seed)
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "lenet5_comparison.json")
    with open(path, "w") as fh:
        json.dump({"backend": keras.backend.backend(), "epochs": epochs, "rows": rows}, fh, indent=1)
    print(f"wrote {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import warnings

    if args.dataset == "lenet5":
        return _demo_lenet5(args)

    from keras_sparse.connectivity import from_gene_sets
    from keras_sparse.datasets import fetch_qusage, find_qusage_data, load_flu_challenge

    try:
        folder = find_qusage_data(args.data)
    except FileNotFoundError:
        if args.no_fetch or args.data is not None:
            raise
        print("fetching Bioconductor qusage data (Debian package r-bioc-qusage) ...", flush=True)
        folder = fetch_qusage()
    data = load_flu_challenge(folder)
    y = data.late_symptomatic()
    groups = data.metadata["Subject"].astype(str).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        connectivity = from_gene_sets(
            data.gene_sets[args.gene_sets], data.genes, drop_empty=True, report=False
        )
    print(
        f"data: {data.expression.shape[0]} samples x {data.expression.shape[1]} genes "
        f"from {data.source}; {len(set(groups))} subjects; target 'symptomatic and "
        f">= 45 h': {int(y.sum())} positive, {int((1 - y).sum())} negative",
        flush=True,
    )
    info = dict(
        command="demo",
        data=data.source,
        gene_sets=args.gene_sets,
        target="Condition == 'sx' and Hours.Numeric >= 45",
        n_samples=int(y.size),
        n_positive=int(y.sum()),
        n_subjects=int(len(set(groups))),
    )
    return _run(args, data.expression, y, groups, connectivity, "classification", info)


def _fit(args: argparse.Namespace) -> int:
    from keras_sparse.experiments.inputs import (
        read_expression,
        read_gene_sets,
        read_labels,
        summarize_labels,
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
    connectivity, report = read_gene_sets(args.gene_sets, genes, min_found=args.min_genes)
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
        **summarize_labels(labels),
    )
    return _run(args, x, labels.y, labels.groups, connectivity, args.task, info)


def _train_cifar(args: argparse.Namespace) -> int:
    import json

    import keras

    from keras_sparse.experiments.cifar import load_cifar, train_cifar
    from keras_sparse.models.densenet import AggregationNet

    data = load_cifar(args.dataset, args.data_dir)
    num_classes = 10 if args.dataset == "cifar10" else 100
    keras.utils.set_random_seed(args.seed)
    model = AggregationNet.from_name(args.model, num_classes=num_classes, input_shape=(32, 32, 3))
    params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    print(f"backend: {keras.backend.backend()}; {args.model}: {params:,} trainable "
          f"parameters; {args.dataset}: {len(data[0][0]):,} training images", flush=True)
    metrics = train_cifar(
        model, data, epochs=args.epochs, batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch, seed=args.seed,
        progress=lambda m: print(m, flush=True),
    )
    os.makedirs(args.output, exist_ok=True)
    model.save(os.path.join(args.output, "model.keras"))
    with open(os.path.join(args.output, "metrics.json"), "w") as fh:
        json.dump(dict(metrics, model=args.model, dataset=args.dataset, params=params), fh, indent=1)
    print(f"test accuracy {metrics['test_accuracy']:.4f}; wrote {os.path.abspath(args.output)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "fetch-data":
        from keras_sparse.datasets import fetch_qusage

        try:
            print(fetch_qusage(args.cache_dir))
        except RuntimeError as err:
            print(f"keras-sparse: error: {err}", file=sys.stderr)
            return 2
        return 0
    args.epochs_given = args.epochs is not None
    if args.epochs is None:
        args.epochs = 60
    _select_backend(args.backend, argv)
    try:
        if args.command == "train-cifar":
            return _train_cifar(args)
        return _demo(args) if args.command == "demo" else _fit(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"keras-sparse: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
