"""Grouped cross-validated comparison of a pathway network with controls.

This is the engine of `keras-sparse demo` and `keras-sparse fit`: the same
folds, the same preprocessing and the same training budget for

- the pathway network (inputs -> `SparseDense` pathways -> head),
- its density-matched random control (`shuffled_connectivity`),
- a dense MLP with as many hidden units as there are pathways,
- logistic regression (ridge regression for regression tasks),

then a final pathway network on all samples, its named edge weights and a
held-out per-pathway importance.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.connectivity.generators import shuffled_connectivity
from keras_sparse.models.pathway_network import (
    build_pathway_network,
    head_loss,
    prediction_head,
    split_at,
)
from keras_sparse.models.utils import trainable_param_count

__all__ = ["ExperimentConfig", "ComparisonResult", "run_pathway_experiment"]

# Model key -> display label (the label is only ever printed or written).
MODELS = {
    "pathway": "pathway network",
    "control": "random control (density-matched)",
    "mlp": "dense MLP",
    "linear": "linear baseline",
}


@dataclasses.dataclass
class ExperimentConfig:
    """Training settings shared by every model of the comparison.

    Attributes:
        task: `"classification"` (binary or multiclass) or `"regression"`.
        folds: number of cross-validation folds (grouped when groups are
            given).
        epochs: training epochs of the neural networks.
        batch_size: minibatch size.
        learning_rate: Adam learning rate.
        l2: L2 penalty on every kernel of the neural networks; the linear
            baseline uses the matching `C = 1 / (l2 * n_samples)`.
        input_dropout: dropout on the inputs of the neural networks.
        importance_repeats: permutations per pathway for the importance.
        seed: seed of folds, connectivity control, weights and permutations.
    """

    task: str = "classification"
    folds: int = 5
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 3e-3
    l2: float = 1e-3
    input_dropout: float = 0.2
    importance_repeats: int = 10
    seed: int = 0


@dataclasses.dataclass
class ComparisonResult:
    """What `run_pathway_experiment` returns.

    Attributes:
        table: one row per model: `model`, `metric`, `mean`, `sd`,
            `trainable_params`, `train_seconds` (mean per fold).
        folds: long table of per-fold scores.
        importance: per-pathway held-out permutation importance.
        edge_table: named edge weights of the final pathway network.
        model: the final pathway network (trained on all samples).
    """

    table: pd.DataFrame
    folds: pd.DataFrame
    importance: pd.DataFrame
    edge_table: pd.DataFrame
    model: keras.Model


def _score(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import r2_score, roc_auc_score

    if task == "regression":
        return float(r2_score(y_true, y_pred))
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        return float(roc_auc_score(y_true, y_pred, multi_class="ovr"))
    return float(roc_auc_score(y_true, y_pred.reshape(-1)))


def _splits(
    y: np.ndarray, groups: np.ndarray | None, config: ExperimentConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import (
        GroupKFold,
        KFold,
        StratifiedGroupKFold,
        StratifiedKFold,
    )

    classify = config.task == "classification"
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < config.folds:
            raise ValueError(
                f"Grouped cross-validation needs at least as many groups as folds: "
                f"{n_groups} groups for folds={config.folds}. Lower --folds."
            )
        splitter: Any = (
            StratifiedGroupKFold(config.folds, shuffle=True, random_state=config.seed)
            if classify
            else GroupKFold(config.folds)
        )
        splits = list(splitter.split(np.zeros(len(y)), y, groups))
    else:
        splitter = (
            StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
            if classify
            else KFold(config.folds, shuffle=True, random_state=config.seed)
        )
        splits = list(splitter.split(np.zeros(len(y)), y))
    if classify:
        for k, (_, test) in enumerate(splits):
            if len(np.unique(y[test])) < 2:
                raise ValueError(
                    f"Fold {k + 1} of {config.folds} has a single class in its test "
                    "samples, so ROC AUC is undefined. Lower --folds or check the "
                    "labels and groups."
                )
    return splits


def _num_classes(y: np.ndarray, task: str) -> int:
    return int(len(np.unique(y))) if task == "classification" else 1


def _dense_mlp(
    units: int,
    num_classes: int,
    config: ExperimentConfig,
    mean: np.ndarray,
    var: np.ndarray,
) -> keras.Model:
    """The dense comparator: same width, head and training as the pathway net."""
    reg = keras.regularizers.L2(config.l2)
    inputs = keras.Input((mean.size,))
    x = keras.layers.Normalization(mean=mean, variance=var, name="standardize")(inputs)
    if config.input_dropout:
        x = keras.layers.Dropout(config.input_dropout)(x)
    x = keras.layers.Dense(
        units, activation="tanh", kernel_regularizer=reg, name="hidden"
    )(x)
    out = prediction_head(config.task, num_classes, reg)(x)
    return keras.Model(inputs, out, name="dense_mlp")


def _fit_keras(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    config: ExperimentConfig,
) -> None:
    loss = head_loss(config.task, max(num_classes, 2))
    model.compile(keras.optimizers.Adam(config.learning_rate), loss)
    model.fit(
        x.astype("float32"),
        y.astype("float32")
        if config.task != "classification" or num_classes == 2
        else y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=0,
        shuffle=True,
    )


def _linear_baseline(config: ExperimentConfig, n_samples: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if config.task == "regression":
        return make_pipeline(StandardScaler(), Ridge(alpha=config.l2 * n_samples))
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=1.0 / (config.l2 * n_samples), max_iter=5000),
    )


def _pathway_importance(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    config: ExperimentConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out permutation importance of each pathway unit.

    Breiman's permutation importance (as in scikit-learn's
    `permutation_importance`) applied to the pathway layer's activations:
    the drop of the test score when one pathway's activation is permuted
    across the test samples, averaged over `importance_repeats`.
    """
    from sklearn.inspection import permutation_importance

    encoder, head = split_at(model, "pathways")
    hidden = np.asarray(encoder.predict(x.astype("float32"), verbose=0))

    class _Head:
        def fit(self, *args: Any) -> _Head:  # pragma: no cover - never refit
            return self

    def scorer(_estimator: Any, h: np.ndarray, target: np.ndarray) -> float:
        return _score(config.task, target, np.asarray(head.predict(h, verbose=0)))

    result = permutation_importance(
        _Head(),
        hidden,
        y,
        scoring=scorer,
        n_repeats=config.importance_repeats,
        random_state=config.seed,
    )
    return result.importances_mean, result.importances_std


def publish_outputs(tmp: str, out_dir: str) -> list[str]:
    """Moves every file written into the staging folder `tmp` to `out_dir`
    (same file system: each move is atomic) and returns the paths, sorted.
    Writers stage a whole run first, so a failure leaves no partial output."""
    written = []
    for name in sorted(os.listdir(tmp)):
        dst = os.path.join(out_dir, name)
        os.replace(os.path.join(tmp, name), dst)
        written.append(dst)
    return written


def run_pathway_experiment(
    x: np.ndarray,
    y: np.ndarray,
    connectivity: Connectivity,
    groups: np.ndarray | None = None,
    config: ExperimentConfig | None = None,
    progress: Callable[[str], None] | None = print,
) -> ComparisonResult:
    """Runs the cross-validated comparison and trains the final model.

    Args:
        x: `(n_samples, num_inputs)` float array of raw features (e.g. log2
            expression); each model standardizes with its training fold's
            mean and variance.
        y: `(n_samples,)` labels (integers 0..k-1) or regression targets.
        connectivity: named `Connectivity` input -> pathway.
        groups: optional `(n_samples,)` group labels (e.g. subjects): a
            group's samples never straddle train and test.
        config: `ExperimentConfig`.
        progress: callable receiving one line per step, or None.

    Returns:
        A `ComparisonResult`.

    Raises:
        ValueError: for mismatched shapes, too few groups, or a fold with a
            single class.

    References:
        Permutation importance: Breiman, "Random Forests", Machine Learning
        45 (2001); Fisher, Rudin & Dominici, JMLR 20 (2019).
    """
    config = config or ExperimentConfig()
    say = progress or (lambda _msg: None)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != connectivity.num_inputs or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` must be (n_samples, {connectivity.num_inputs}) and `y` "
            f"(n_samples,). Received x {x.shape}, y {y.shape}."
        )
    num_classes = _num_classes(y, config.task)
    splits = _splits(y, groups, config)
    control = shuffled_connectivity(connectivity, seed=config.seed)
    reg = keras.regularizers.L2(config.l2)

    def make(key: str, mean: np.ndarray, var: np.ndarray) -> Any:
        mean, var = mean.astype("float32"), var.astype("float32")
        common = dict(
            task=config.task,
            num_classes=max(num_classes, 2),
            input_dropout=config.input_dropout,
            kernel_regularizer=reg,
            input_mean=mean,
            input_variance=var,
        )
        if key == "pathway":
            return build_pathway_network(connectivity, **common)
        if key == "control":
            return build_pathway_network(control, name="random_control", **common)
        if key == "mlp":
            return _dense_mlp(
                connectivity.num_outputs, max(num_classes, 2), config, mean, var
            )
        return _linear_baseline(config, len(y))

    fold_rows = []
    importances = []
    params: dict[str, int] = {}
    for k, (train, test) in enumerate(splits):
        mean = x[train].mean(axis=0)
        var = x[train].var(axis=0)
        for key, name in MODELS.items():
            keras.utils.set_random_seed(config.seed + k)
            t0 = time.perf_counter()
            model = make(key, mean, var)
            if isinstance(model, keras.Model):
                _fit_keras(model, x[train], y[train], num_classes, config)
                pred = np.asarray(model.predict(x[test].astype("float32"), verbose=0))
                params[name] = trainable_param_count(model)
            else:
                model.fit(x[train], y[train])
                pred = (
                    model.predict(x[test])
                    if config.task == "regression"
                    else model.predict_proba(x[test])
                )
                if pred.ndim == 2 and pred.shape[1] == 2:
                    pred = pred[:, 1]
                est = model[-1]
                params[name] = int(np.size(est.coef_) + np.size(est.intercept_))
            seconds = time.perf_counter() - t0
            score = _score(config.task, y[test], pred)
            fold_rows.append(
                dict(fold=k + 1, model=name, score=score, train_seconds=seconds)
            )
            say(
                f"[fold {k + 1}/{len(splits)}] {name:34s} "
                f"{'R2' if config.task == 'regression' else 'ROC AUC'} {score:.3f}  "
                f"({seconds:.1f} s)"
            )
            if key == "pathway":
                imp_mean, _ = _pathway_importance(model, x[test], y[test], config)
                importances.append(imp_mean)
    folds = pd.DataFrame(fold_rows)
    metric = "R2" if config.task == "regression" else "ROC AUC"
    table = (
        folds.groupby("model", sort=False)
        .agg(
            mean=("score", "mean"),
            sd=("score", "std"),
            train_seconds=("train_seconds", "mean"),
        )
        .reset_index()
    )
    table.insert(1, "metric", metric)
    table.insert(4, "trainable_params", [params[m] for m in table["model"]])

    say("training the final pathway network on all samples ...")
    keras.utils.set_random_seed(config.seed)
    final = make("pathway", x.mean(axis=0), x.var(axis=0))
    _fit_keras(final, x, y, num_classes, config)
    imp = np.stack(importances)
    names = connectivity.output_names or tuple(
        str(j) for j in range(connectivity.num_outputs)
    )
    # Is a pathway's importance above 0? One-sided t-test over the folds,
    # Benjamini-Hochberg over the pathways.
    if imp.shape[0] > 1:
        from scipy.stats import ttest_1samp

        from keras_sparse.interpret.statistics import benjamini_hochberg

        with np.errstate(invalid="ignore", divide="ignore"):
            p = ttest_1samp(imp, 0.0, axis=0, alternative="greater").pvalue
        p = np.where(np.isfinite(p), p, 1.0)
        q = benjamini_hochberg(p)
    else:
        p = q = np.ones(imp.shape[1])
    importance = pd.DataFrame(
        {
            "pathway": names,
            "importance_mean": imp.mean(axis=0),
            "importance_sd": imp.std(axis=0, ddof=1) if imp.shape[0] > 1 else 0.0,
            "p": p,
            "q": q,
            "fan_in": connectivity.fan_in,
        }
    ).sort_values("importance_mean", ascending=False, kind="stable")
    importance.insert(0, "rank", np.arange(1, len(importance) + 1))
    edges = final.get_layer("pathways").edge_table()
    edges = edges.rename(columns={"input": "gene", "output": "pathway"})
    return ComparisonResult(
        table=table, folds=folds, importance=importance, edge_table=edges, model=final
    )


def format_table(table: pd.DataFrame) -> str:
    """The comparison table as aligned text."""
    lines = [
        f"{'model':34s} {'metric':8s} {'mean':>6s} {'sd':>6s} {'params':>9s} "
        f"{'train s':>8s}"
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"{row.model:34s} {row.metric:8s} {row.mean:6.3f} {row.sd:6.3f} "
            f"{row.trainable_params:9,d} {row.train_seconds:8.1f}"
        )
    return "\n".join(lines)


def write_outputs(
    result: ComparisonResult,
    connectivity: Connectivity,
    out_dir: str | os.PathLike[str],
    info: dict[str, Any],
    figure: bool = True,
) -> list[str]:
    """Writes the CSVs, figure, model and run info atomically.

    Files are written to a temporary folder inside `out_dir` and moved in
    place only when all are complete, so a failed run leaves no partial
    result behind.

    Returns:
        The paths written.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".partial-", dir=out_dir)
    try:
        result.table.to_csv(os.path.join(tmp, "comparison.csv"), index=False)
        result.folds.to_csv(os.path.join(tmp, "comparison_folds.csv"), index=False)
        result.edge_table[["gene", "pathway", "weight"]].to_csv(
            os.path.join(tmp, "edge_weights.csv"), index=False
        )
        result.importance.to_csv(
            os.path.join(tmp, "pathway_importance.csv"), index=False
        )
        result.model.save(os.path.join(tmp, "model.keras"))
        if figure:
            from keras_sparse.plotting.pathways import plot_pathway_summary

            plot_pathway_summary(
                result.importance,
                connectivity,
                result.table,
                os.path.join(tmp, "pathways.png"),
            )
        with open(os.path.join(tmp, "run_info.json"), "w") as fh:
            json.dump(info, fh, indent=1, default=str)
        return publish_outputs(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
