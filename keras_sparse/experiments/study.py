"""The pathway-network study: accuracy, stability, specificity, controls, ground truth.

One study trains, for every subject-grouped fold, packed groups of
identical-shape networks (`keras_sparse.experiments.packed`):

- `seeds` replicates of the real hierarchy (real labels);
- `permutations` replicates of the real hierarchy on labels permuted
  between subjects (the specificity null);
- `controls` gene-label-permuted hierarchies (`gene_permuted_connectivity`:
  pathway sizes, gene degrees and overlaps kept), one per control;
- optionally, the same real/control networks on *planted* labels
  simulated from chosen pathways (ground truth).

Every network is scored on its held-out fold by integrated gradients on
every pathway node and on every gene (input; baseline: the training fold's
mean sample), mean |attribution| over the held-out samples, divided by
log2(fan_in + fan_out + 1), then ranked within its level (percentile). The
statistics are in `keras_sparse.interpret.statistics`.

A learning curve repeats the accuracy comparison with fewer training
subjects: in every fold, nested subsets of the training subjects
(stratified by whether a subject has positive samples; the held-out
subjects stay the same) train `curve_seeds` Reactome networks and the
first `curve_controls` control hierarchies packed in one model,
`curve_seeds` dense MLPs and logistic regression; the point "all training
subjects" is taken from the main fit (the same networks, trained the same
way). By default only the real labels get a curve (`curve_labels`).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.connectivity.hierarchy import gene_permuted_connectivity
from keras_sparse.experiments.packed import (
    PackedTrainer,
    build_packed_network,
    unpack,
)
from keras_sparse.interpret.integrated_gradients import (
    degree_adjusted,
    input_attributions,
    node_attributions,
)
from keras_sparse.interpret.statistics import (
    benjamini_hochberg,
    empirical_p,
    paired_wilcoxon,
    rank_stability,
    recall_at_k,
    set_auroc,
    specificity_test,
)
from keras_sparse.models.pathway_network import level_name

__all__ = ["STUDIES", "StudyConfig", "StudyResult", "group_permuter", "run_study"]


@dataclasses.dataclass
class StudyConfig:
    """Sizes and training settings of a study.

    Attributes:
        folds: subject-grouped cross-validation folds.
        seeds: real-hierarchy replicates per fold (networks = folds x seeds).
        permutations: permuted-label replicates per fold.
        controls: gene-permuted control hierarchies (each trained on every
            fold); >= 19 lets the empirical p reach 0.05.
        epochs, batch_size, learning_rate, l2, input_dropout: training.
        ig_steps: midpoint-rule steps of integrated gradients.
        level_heads: every network gets one sigmoid head per level and
            predicts their average (BINN's heads ensemble, P-NET's
            per-level outputs; `build_packed_network(level_heads=True)`).
        planted: run the planted-signal (ground truth) arm.
        planted_pathways: number of pathways the planted labels come from.
        curve_sizes: numbers of training subjects of the learning curve
            below "all"; `None`: 3 sizes evenly spaced from 30% of the
            smallest training fold's subjects up to (not including) all of
            them (flu: 4, 7, 10); `()`: no learning curve.
        curve_seeds: Reactome replicates (and dense MLPs) per fold and size
            of the curve.
        curve_controls: control hierarchies per fold and size of the curve
            (the first of the study's controls).
        curve_labels: the label sets with a learning curve: `"real"`,
            `"planted"` (default: the real labels only; the full study
            runs both).
        seed: master seed (folds, permutations, controls, weights).
    """

    folds: int = 5
    seeds: int = 2
    permutations: int = 2
    controls: int = 19
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 3e-3
    l2: float = 1e-3
    input_dropout: float = 0.2
    ig_steps: int = 16
    level_heads: bool = False
    planted: bool = True
    planted_pathways: int = 2
    curve_sizes: tuple[int, ...] | None = None
    curve_seeds: int = 2
    curve_controls: int = 4
    curve_labels: tuple[str, ...] = ("real",)
    seed: int = 0

    def describe(self) -> str:
        n = self.folds
        return (
            f"{n} grouped folds x {self.seeds} seeds = {n * self.seeds} "
            f"real-hierarchy networks; {n * self.permutations} on permuted labels; "
            f"{self.controls} gene-permuted control hierarchies x {n} folds = "
            f"{self.controls * n} networks"
            + (
                f"; planted signal: {n * self.seeds} + {self.controls * n} more"
                if self.planted
                else ""
            )
            + f"; {self.epochs} epochs each"
            + ("; one head per level, averaged" if self.level_heads else "")
            + (
                ""
                if self.curve_sizes == ()
                else f"; learning curve ({' and '.join(self.curve_labels)} labels): "
                f"{self.curve_seeds} Reactome + "
                f"{min(self.curve_controls, self.controls)} control networks, "
                f"{self.curve_seeds} dense MLPs and logistic regression per fold and "
                "size"
            )
        )


STUDIES = {
    "default": StudyConfig(),
    "full": StudyConfig(
        seeds=10, permutations=10, controls=49, curve_labels=("real", "planted")
    ),
}


@dataclasses.dataclass
class StudyResult:
    """Everything a study computes (tables are pandas DataFrames).

    Attributes:
        nodes: the node table (one row per pathway node).
        genes: the gene table (one row per input gene in the hierarchy):
            the same statistics as `nodes`, BH over the genes.
        accuracy: per fold x replicate ROC AUC of every arm.
        comparisons: paired tests of the real hierarchy against the others.
        controls: the positive set's AUROC in the real and control
            hierarchies.
        planted: the planted-signal recovery, per network (or None).
        planted_summary: dict of the planted-signal numbers (or None).
        activation: held-out activation of the tracked node per sample.
        curve: learning curve, per labels x fold x size x network (or None).
        curve_tests: the curve's mean AUCs and paired tests per size.
        summary: dict of the headline numbers.
    """

    nodes: pd.DataFrame
    genes: pd.DataFrame
    accuracy: pd.DataFrame
    comparisons: pd.DataFrame
    controls: pd.DataFrame
    planted: pd.DataFrame | None
    planted_summary: dict[str, Any] | None
    activation: pd.DataFrame | None
    curve: pd.DataFrame | None
    curve_tests: pd.DataFrame | None
    summary: dict[str, Any]


def group_permuter(
    y: np.ndarray, groups: np.ndarray
) -> tuple[Callable[[np.random.Generator], np.ndarray], str]:
    """A label permutation between groups, and a description of it.

    When every group has one label (e.g. patient-level status), the groups'
    labels are permuted among the groups. Labels that change within a group
    cannot be moved between groups in general; such data get a plain
    permutation of the sample labels, and the description says so.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    names = np.unique(groups)
    per_group = {g: np.unique(y[groups == g]) for g in names}
    if all(v.size == 1 for v in per_group.values()):
        values = np.array([per_group[g][0] for g in names])

        def between(rng: np.random.Generator) -> np.ndarray:
            mapping = dict(zip(names, rng.permutation(values), strict=True))
            return np.array([mapping[g] for g in groups])

        return between, "labels permuted between groups (one label per group)"

    def samples(rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(y)

    return samples, (
        "labels vary within groups, so the null permutes sample labels (not "
        "between groups; weaker than the demo's between-subject null)"
    )


def _splits(y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list:
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < folds:
        raise ValueError(
            f"Grouped cross-validation needs at least as many groups as folds: "
            f"{n_groups} groups for folds={folds}. Lower --folds."
        )
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(y)), y, groups))
    for k, (_, test) in enumerate(splits):
        if len(np.unique(y[test])) < 2:
            raise ValueError(
                f"Fold {k + 1} of {folds} has a single class in its test samples, "
                "so ROC AUC is undefined. Lower --folds."
            )
    return splits


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def _scores(
    model: keras.Model,
    x: np.ndarray,
    n: int,
    K: int,
    chains: Sequence[Sequence[Connectivity]],
    steps: int,
    level_heads: bool = False,
) -> list[np.ndarray]:
    """Per block: degree-adjusted mean |IG| of every node, levels concatenated.

    Returns `[raw, percentile, gene raw, gene percentile]`, each `(K, nodes)`
    or `(K, genes)`; a gene's degree is its number of bottom pathways in
    the block's own hierarchy (genes outside it score 0).
    """
    from scipy.stats import rankdata

    genes = input_attributions(
        model, x, np.zeros(x.shape[1]), steps=steps, output_index="sum", blocks=K
    )[:, :n]
    gene_raw = np.stack(
        [
            degree_adjusted(np.abs(genes[k]).mean(axis=0), 0, chains[k][0].fan_out)
            for k in range(K)
        ]
    )
    gene_pct = rankdata(gene_raw, axis=1) / gene_raw.shape[1]

    att = node_attributions(
        model,
        x,
        np.zeros(x.shape[1]),
        steps=steps,
        output_index="sum",
        include_inputs=False,
    )
    att = {name: values[:n] for name, values in att.items()}
    L = len(chains[0])
    out_raw, out_pct = [], []
    for k in range(K):
        raw_parts, pct_parts = [], []
        for j in range(L):
            values = unpack(att[level_name(j)], K)[k]  # (n, units)
            fan_in = chains[k][j].fan_in
            fan_out = (
                chains[k][j + 1].fan_out + int(level_heads)
                if j + 1 < L
                else np.ones_like(fan_in)
            )
            score = degree_adjusted(np.abs(values).mean(axis=0), fan_in, fan_out)
            raw_parts.append(score)
            pct_parts.append(rankdata(score) / score.size)
        out_raw.append(np.concatenate(raw_parts))
        out_pct.append(np.concatenate(pct_parts))
    return [np.stack(out_raw), np.stack(out_pct), gene_raw, gene_pct]


def run_study(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    levels: Sequence[Connectivity],
    permute_labels: Callable[[np.random.Generator], np.ndarray],
    positive: set[str],
    node_names: dict[str, str] | None = None,
    config: StudyConfig | None = None,
    planted_candidates: Sequence[str] | None = None,
    track_node: str | None = None,
    orient_genes: Sequence[str] | None = None,
    positive_genes: set[str] | None = None,
    progress: Callable[[str], None] | None = print,
) -> StudyResult:
    """Runs the study on one data set (binary labels, subject groups).

    Args:
        x: `(n_samples, n_genes)` raw expression.
        y: `(n_samples,)` 0/1 labels.
        groups: `(n_samples,)` subject ids (folds never split a subject).
        levels: the hierarchy, `[genes -> bottom, ..., -> top]`.
        permute_labels: returns one permuted label vector (permuted
            between subjects) from a NumPy generator.
        positive: pre-declared positive node ids (any level; copies of a
            positive node count as positive).
        node_names: node id -> display name.
        config: `StudyConfig`.
        planted_candidates: bottom-level node ids the planted labels may
            come from (default: every bottom node with 15-60 genes, at least
            half of them in no other bottom node, outside `positive`).
        track_node: a bottom-level node whose held-out activation is
            recorded per sample (e.g. Interferon Signaling).
        orient_genes: genes whose mean standardized expression fixes the
            sign of the tracked activation per fold (tanh units have an
            arbitrary sign).
        positive_genes: pre-declared positive genes (e.g. interferon-
            stimulated genes), marked in the gene table and ranked against
            the control hierarchies like the positive nodes.
        progress: callable receiving progress lines, or None.

    Returns:
        A `StudyResult`.
    """
    config = config or StudyConfig()
    say = progress or (lambda _m: None)
    node_names = node_names or {}
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    groups = np.asarray(groups)
    levels = list(levels)
    rng = np.random.default_rng(config.seed)
    splits = _splits(y, groups, config.folds, config.seed)
    controls = [
        [gene_permuted_connectivity(levels[0], seed=config.seed + 1 + c), *levels[1:]]
        for c in range(config.controls)
    ]
    perm_labels = [
        [permute_labels(rng) for _ in range(config.permutations)] for _ in splits
    ]
    # Nodes: (level index, id) in model order.
    node_level = np.concatenate(
        [np.full(c.num_outputs, j) for j, c in enumerate(levels)]
    )
    node_ids = [n for c in levels for n in c.output_names or ()]
    base_ids = [n.split("_copy")[0] for n in node_ids]
    is_positive = np.array([b in positive for b in base_ids])
    planted_nodes: list[str] = []
    if config.planted:
        planted_nodes, planted_y = _plant(
            x, levels[0], positive, planted_candidates, config, rng
        )
    # One packed layout for every fit: seeds + permutations copies of the
    # real hierarchy, then the controls. On the planted labels the
    # permutation slots are further real-hierarchy replicates.
    chains = [levels] * (config.seeds + config.permutations) + controls
    K = len(chains)
    n_real = config.seeds
    n_perm = config.permutations
    trainer = _trainer(_networks(chains, config), config)
    mlp = _trainer(
        lambda: _packed_mlp(x.shape[1], levels[0].num_outputs, config), config
    )
    pad = max(len(test) for _, test in splits)
    arms: dict[str, list] = dict(
        real=[], perm=[], control=[], planted_real=[], planted_control=[]
    )
    gene_arms: dict[str, list] = {key: [] for key in arms}
    raw_real, raw_real_genes = [], []
    sizes = _curve_sizes(config, splits, groups)
    curve_chains = [levels] * config.curve_seeds + controls[: config.curve_controls]
    curve_trainer = _trainer(_networks(curve_chains, config), config) if sizes else None
    # The curve's MLPs: as many as its Reactome replicates (the main fit's
    # trainer when that is `seeds`, so nothing more is compiled).
    curve_mlp = mlp
    if sizes and config.curve_seeds != config.seeds:
        curve_mlp = _trainer(
            lambda: _packed_mlp(
                x.shape[1], levels[0].num_outputs, config, config.curve_seeds
            ),
            config,
        )
    curve_rows: list[dict[str, Any]] = []
    acc_rows: list[dict[str, Any]] = []
    activation_rows: list[dict[str, Any]] = []
    label_sets = [("real", y)] + ([("planted", planted_y)] if config.planted else [])
    for f, (train, test) in enumerate(splits):
        mean, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
        xs = (x - mean) / sd
        # Held-out rows padded to one size with baseline rows (zeros, whose
        # attributions are exactly 0) so compiled shapes repeat.
        x_test = np.zeros((pad, x.shape[1]))
        x_test[: len(test)] = xs[test]
        for which, target in label_sets:
            t0 = time.perf_counter()
            if which == "real":
                labels = np.stack(
                    [target] * n_real + perm_labels[f] + [target] * config.controls,
                    axis=1,
                )
            else:
                labels = np.stack([target] * K, axis=1)
            model = trainer.fit(xs[train], labels[train], seed=config.seed + 1000 * f)
            pred = np.asarray(model.predict(x_test.astype("float32"), verbose=0))
            pred = pred[: len(test)]
            raw, pct, gene_raw, gene_pct = _scores(
                model, x_test, len(test), K, chains, config.ig_steps,
                config.level_heads,
            )  # fmt: skip
            for k in range(K):
                if k < n_real + n_perm and (which == "planted" or k < n_real):
                    arm, rep = "real", k
                elif k < n_real + n_perm:
                    arm, rep = "perm", k - n_real
                else:
                    arm, rep = "control", k - n_real - n_perm
                key = arm if which == "real" else f"planted_{arm}"
                arms[key].append((f, rep, pct[k]))
                gene_arms[key].append((f, rep, gene_pct[k]))
                if key == "real":
                    raw_real.append(raw[k])
                    raw_real_genes.append(gene_raw[k])
                if arm != "perm":
                    acc_rows.append(
                        dict(
                            labels=which,
                            fold=f + 1,
                            arm=arm,
                            replicate=rep,
                            auc=_auc(target[test], pred[:, k]),
                        )
                    )
            if which == "real" and track_node in (levels[0].output_names or ()):
                activation_rows += _track(
                    model, xs, train, test, levels[0], track_node, orient_genes, groups
                )
            rows = _baselines(xs, target, train, test, f, config, mlp, which)
            acc_rows += rows
            t_curve = time.perf_counter()
            if curve_trainer is not None and which in config.curve_labels:
                full = [
                    r for r in acc_rows if (r["labels"], r["fold"]) == (which, f + 1)
                ]
                curve_rows += _curve_fold(
                    x, target, y, groups, train, test, f, which, sizes, pad,
                    config, curve_trainer, curve_mlp, full,
                )  # fmt: skip
            t_curve = time.perf_counter() - t_curve
            real_cols = range(n_real if which == "real" else n_real + n_perm)
            real_auc = _mean_auc(target[test], pred, real_cols)
            control_auc = _mean_auc(target[test], pred, range(K - config.controls, K))
            say(
                f"[fold {f + 1}/{len(splits)}, {which} labels] {K} networks in one "
                f"packed model: Reactome AUC {real_auc:.3f}, controls {control_auc:.3f}"
                + "".join(
                    f", {r['arm']} {r['auc']:.3f}" for r in rows if r["replicate"] == 0
                )
                + f" ({time.perf_counter() - t0 - t_curve:.0f} s"
                + (
                    f"; learning curve at {', '.join(map(str, sizes))} subjects "
                    f"{t_curve:.0f} s)"
                    if curve_trainer is not None and which in config.curve_labels
                    else ")"
                )
            )
    accuracy = pd.DataFrame(acc_rows)
    real = np.stack([s for _, _, s in arms["real"]])
    perm = np.stack([s for _, _, s in arms["perm"]])
    # Stability: Spearman between real replicates.
    stability_median, pairs = rank_stability(np.stack(raw_real))
    # Specificity.
    p = specificity_test(real, perm)
    q = benjamini_hochberg(p)  # over all nodes of all levels at once
    nodes = pd.DataFrame(
        dict(
            level=node_level,
            level_name=[level_name(j) for j in node_level],
            node=node_ids,
            name=[
                node_names.get(b, b) + (" (copy)" if "_copy" in n else "")
                for n, b in zip(node_ids, base_ids, strict=True)
            ],
            genes=_genes_below(levels),
            score=real.mean(axis=0),
            score_sd=real.std(axis=0, ddof=1),
            null_score=perm.mean(axis=0),
            effect=real.mean(axis=0) - perm.mean(axis=0),
            p=p,
            q=q,
            positive=is_positive,
            planted=[n in planted_nodes for n in node_ids],
        )
    )
    nodes = nodes.sort_values(["q", "effect"], ascending=[True, False], kind="stable")
    gene_table, gene_summary = _gene_table(
        levels[0], [c[0] for c in controls], gene_arms, np.stack(raw_real_genes),
        positive_genes, planted_nodes, config,
    )  # fmt: skip
    # Positive set vs control hierarchies: protocol-matched (replicate 0 of
    # the real hierarchy over the folds vs each control over the folds).
    real0 = np.mean([s for f, r, s in arms["real"] if r == 0], axis=0)
    has_positive = 0 < is_positive.sum() < is_positive.size
    observed, control_stats, positive_p = float("nan"), [], float("nan")
    if has_positive:
        observed = set_auroc(real0, is_positive)
        for c in range(config.controls):
            sc = np.mean([s for f, r, s in arms["control"] if r == c], axis=0)
            control_stats.append(set_auroc(sc, is_positive))
        positive_p = float(empirical_p(observed, control_stats))
    control_table = pd.DataFrame(
        dict(
            hierarchy=["real"]
            + [f"control {c + 1}" for c in range(len(control_stats))],
            positive_set_auroc=[observed, *control_stats],
        )
    )
    comparisons = _comparisons(accuracy, config)
    summary = dict(
        n_networks=dict(
            real=len(arms["real"]),
            permuted_labels=len(arms["perm"]),
            control=len(arms["control"]),
            planted=len(arms["planted_real"]) + len(arms["planted_control"]),
        ),
        stability_median_spearman=stability_median,
        stability_pairs=int(pairs.size),
        n_nodes=int(len(node_ids)),
        n_significant_q05=int((q < 0.05).sum()),
        n_positive=int(is_positive.sum()),
        n_positive_significant=int(((q < 0.05) & is_positive).sum()),
        positive_set_auroc=observed,
        positive_set_control_auroc_mean=(
            float(np.mean(control_stats)) if control_stats else float("nan")
        ),
        positive_set_rank=int(1 + sum(c >= observed for c in control_stats)),
        positive_set_p=positive_p,
        min_possible_p=float(
            specificity_test(np.ones((len(real), 1)), np.zeros((len(perm), 1)))[0]
        ),
        genes=gene_summary,
    )
    planted_table, planted_summary = None, None
    if config.planted:
        planted_table, planted_summary = _planted_summary(
            arms, node_ids, node_level, planted_nodes, config, accuracy
        )
        planted_summary["nodes"] = [
            f"{n} {node_names.get(n, '')}".strip() for n in planted_nodes
        ]
    activation = pd.DataFrame(activation_rows) if activation_rows else None
    curve = pd.DataFrame(curve_rows) if curve_rows else None
    curve_tests = _curve_tests(curve) if curve is not None else None
    return StudyResult(
        nodes=nodes.reset_index(drop=True),
        genes=gene_table,
        accuracy=accuracy,
        comparisons=comparisons,
        controls=control_table,
        planted=planted_table,
        planted_summary=planted_summary,
        activation=activation,
        curve=curve,
        curve_tests=curve_tests,
        summary=summary,
    )


def _networks(
    chains: Sequence[Sequence[Connectivity]], config: StudyConfig
) -> Callable[[], keras.Model]:
    """Builds the packed model of `chains` with the study's settings."""
    return lambda: build_packed_network(
        chains,
        input_dropout=config.input_dropout,
        l2=config.l2,
        level_heads=config.level_heads,
    )


def _trainer(build: Callable[[], keras.Model], config: StudyConfig) -> PackedTrainer:
    return PackedTrainer(
        build,
        learning_rate=config.learning_rate,
        epochs=config.epochs,
        batch_size=config.batch_size,
    )


def _mean_auc(y: np.ndarray, pred: np.ndarray, columns: Any) -> float:
    return float(np.nanmean([_auc(y, pred[:, k]) for k in columns]))


def _genes_below(levels: Sequence[Connectivity]) -> np.ndarray:
    """Number of inputs (genes) below every node, levels concatenated."""
    reach = levels[0].to_scipy("csc").astype(bool)
    counts = [np.asarray(reach.sum(axis=0)).ravel()]
    for c in levels[1:]:
        reach = (reach @ c.to_scipy("csc").astype(bool)).astype(bool)
        counts.append(np.asarray(reach.sum(axis=0)).ravel())
    return np.concatenate(counts).astype(np.int64)


def _plant(
    x: np.ndarray,
    bottom: Connectivity,
    positive: set[str],
    candidates: Sequence[str] | None,
    config: StudyConfig,
    rng: np.random.Generator,
) -> tuple[list[str], np.ndarray]:
    """Labels from `planted_pathways` bottom pathways' mean expression + noise.

    The latent signal is the sum over the chosen pathways of their genes'
    mean standardized expression; the label is 1 where latent + noise is
    above its median, with the noise scaled so that the latent signal
    itself reaches ROC AUC ~0.85 on the labels.
    """
    names = bottom.output_names or ()
    fan_in = bottom.fan_in
    if candidates is None:
        # Identifiable in principle: 15-60 genes, at least half of them in
        # no other bottom pathway, not a copy, not in the positive set.
        member = bottom.to_scipy("csc").astype(bool)
        exclusive = np.asarray(member[bottom.fan_out == 1].sum(axis=0)).ravel()
        candidates = [
            n
            for j, n in enumerate(names)
            if 15 <= fan_in[j] <= 60
            and exclusive[j] >= 0.5 * fan_in[j]
            and "_copy" not in n
            and n.split("_copy")[0] not in positive
        ]
    candidates = sorted(candidates)
    if len(candidates) < config.planted_pathways:
        raise ValueError(
            f"The planted-signal arm needs {config.planted_pathways} candidate "
            f"pathways; only {len(candidates)} qualify."
        )
    chosen = list(rng.choice(candidates, size=config.planted_pathways, replace=False))
    z = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-12)
    dense = bottom.to_scipy("csc")
    latent = np.zeros(x.shape[0])
    for name in chosen:
        j = names.index(name)
        genes = dense[:, j].nonzero()[0]
        part = z[:, genes].mean(axis=1)
        latent += part / part.std()
    latent /= latent.std()
    noise = rng.standard_normal(x.shape[0])
    best = None
    for sigma in np.linspace(0.2, 2.0, 37):
        y = (latent + sigma * noise > np.median(latent + sigma * noise)).astype(
            np.int64
        )
        gap = abs(_auc(y, latent) - 0.85)
        if best is None or gap < best[0]:
            best = (gap, y)
    assert best is not None
    return [str(c) for c in chosen], best[1]


def _track(
    model: keras.Model,
    x: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    bottom: Connectivity,
    node: str,
    orient_genes: Sequence[str] | None,
    groups: np.ndarray,
) -> list[dict[str, Any]]:
    j = (bottom.output_names or ()).index(node)

    def act(rows: np.ndarray) -> np.ndarray:
        h = model.get_layer("pathways")(x[rows].astype("float32"))
        return np.asarray(keras.ops.convert_to_numpy(h))[:, j]

    sign = 1.0
    if orient_genes:
        names = list(bottom.input_names or ())
        cols = [names.index(g) for g in orient_genes if g in names]
        if cols:
            xt = x[train]
            z = (xt[:, cols] - xt[:, cols].mean(0)) / (xt[:, cols].std(0) + 1e-12)
            corr = np.corrcoef(act(train), z.mean(axis=1))[0, 1]
            sign = -1.0 if corr < 0 else 1.0
    values = sign * act(test)
    return [
        dict(sample=int(i), group=str(groups[i]), activation=float(v))
        for i, v in zip(test, values, strict=True)
    ]


def _packed_mlp(
    n_inputs: int, units: int, config: StudyConfig, replicates: int | None = None
) -> keras.Model:
    """`replicates` (default `seeds`) dense MLPs (one tanh layer of `units`)."""
    from keras_sparse.layers.sparse_dense import SparseDense

    S = config.seeds if replicates is None else replicates
    reg = keras.regularizers.L2(config.l2)
    inputs = keras.Input((n_inputs,))
    h = inputs
    if config.input_dropout:
        h = keras.layers.Dropout(config.input_dropout, seed=random.randrange(2**31))(h)
    h = keras.layers.Dense(S * units, activation="tanh", kernel_regularizer=reg)(h)
    head = Connectivity(
        np.arange(S * units), np.repeat(np.arange(S), units), shape=(S * units, S)
    )
    out = SparseDense(S, head, activation="sigmoid", kernel_regularizer=reg)(h)
    return keras.Model(inputs, out, name="packed_dense_mlps")


def _baselines(
    xs: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    fold: int,
    config: StudyConfig,
    mlp: PackedTrainer,
    labels: str,
) -> list[dict[str, Any]]:
    """Logistic regression and `seeds` dense MLPs on standardized inputs."""
    from sklearn.linear_model import LogisticRegression

    rows = []
    lr = LogisticRegression(C=1.0 / (config.l2 * len(train)), max_iter=5000)
    lr.fit(xs[train], y[train])
    rows.append(
        dict(
            labels=labels,
            fold=fold + 1,
            arm="logistic regression",
            replicate=0,
            auc=_auc(y[test], lr.predict_proba(xs[test])[:, 1]),
        )
    )
    model = mlp.fit(
        xs[train],
        np.repeat(y[train, None], mlp.K, axis=1),
        seed=config.seed + 1000 * fold,
    )
    pred = np.asarray(model.predict(xs[test].astype("float32"), verbose=0))
    for k in range(mlp.K):
        rows.append(
            dict(
                labels=labels,
                fold=fold + 1,
                arm="dense MLP",
                replicate=k,
                auc=_auc(y[test], pred[:, k]),
            )
        )
    return rows


def _comparisons(accuracy: pd.DataFrame, config: StudyConfig) -> pd.DataFrame:
    rows = []
    for labels in accuracy["labels"].unique():
        acc = accuracy[accuracy["labels"] == labels]
        real = acc[acc.arm == "real"].set_index(["fold", "replicate"])["auc"]
        for other in ("control", "dense MLP", "logistic regression"):
            theirs = acc[acc.arm == other]
            if theirs.empty:
                continue
            if other == "logistic regression":
                a = real.groupby(level="fold").mean()
                b = theirs.set_index("fold")["auc"].reindex(a.index)
                pairing = "fold (real: mean over seeds)"
            else:
                b = theirs.set_index(["fold", "replicate"])["auc"]
                common = real.index.intersection(b.index)
                a, b = real.loc[common], b.loc[common]
                pairing = "fold x replicate"
            test = paired_wilcoxon(a.to_numpy(), b.to_numpy())
            rows.append(
                dict(
                    labels=labels,
                    comparison=f"real hierarchy - {other}",
                    real_auc=float(a.mean()),
                    other_auc=float(b.mean()),
                    delta_auc=test["mean_difference"],
                    wins=test["wins"],
                    pairs=test["n_pairs"],
                    pairing=pairing,
                    wilcoxon_p=test["p"],
                )
            )
    return pd.DataFrame(rows)


def _planted_summary(
    arms: dict[str, list],
    node_ids: list[str],
    node_level: np.ndarray,
    planted_nodes: list[str],
    config: StudyConfig,
    accuracy: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    bottom = node_level == 0
    ids = np.array(node_ids)[bottom]
    members = np.isin(ids, planted_nodes)
    k = max(1, int(round(0.05 * bottom.sum())))
    rows = []
    for arm in ("planted_real", "planted_control"):
        for f, rep, pct in arms[arm]:
            s = pct[bottom]
            rows.append(
                dict(
                    arm=arm.split("_")[1],
                    fold=f + 1,
                    replicate=rep,
                    auroc=set_auroc(s, members),
                    recall_at_k=recall_at_k(s, members, k),
                )
            )
    table = pd.DataFrame(rows)

    def pooled(arm: str, rep: int) -> np.ndarray:
        return np.mean([p[bottom] for f, r, p in arms[arm] if r == rep], axis=0)

    observed = set_auroc(pooled("planted_real", 0), members)
    controls = [
        set_auroc(pooled("planted_control", c), members) for c in range(config.controls)
    ]
    real_tab = table[table.arm == "real"]
    ctrl_tab = table[table.arm == "control"]
    acc = accuracy[accuracy["labels"] == "planted"]
    summary = dict(
        k=k,
        real_auroc_mean=float(real_tab.auroc.mean()),
        real_recall_at_k_mean=float(real_tab.recall_at_k.mean()),
        control_auroc_mean=float(ctrl_tab.auroc.mean()),
        control_recall_at_k_mean=float(ctrl_tab.recall_at_k.mean()),
        pooled_real_auroc=observed,
        pooled_control_auroc_mean=float(np.mean(controls)),
        empirical_p=float(empirical_p(observed, controls)),
        real_accuracy_auc=float(acc[acc.arm == "real"].auc.mean()),
        control_accuracy_auc=float(acc[acc.arm == "control"].auc.mean()),
        logistic_regression_auc=float(acc[acc.arm == "logistic regression"].auc.mean()),
    )
    return table, summary


def _gene_table(
    bottom: Connectivity,
    control_bottoms: Sequence[Connectivity],
    gene_arms: dict[str, list],
    raw_real: np.ndarray,
    positive_genes: set[str] | None,
    planted_nodes: Sequence[str],
    config: StudyConfig,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The gene (input) level: the node statistics, BH over the genes.

    Only genes with at least one bottom pathway in the real hierarchy are
    listed and tested (the others score exactly 0 there). The comparisons
    with the control hierarchies rank, in each hierarchy, the genes that
    have a pathway in it (a control places other genes in pathways; ranking
    all inputs would count the positive genes without any annotation
    against the real hierarchy only).
    """
    names = np.array(
        bottom.input_names or [str(i) for i in range(bottom.num_inputs)], dtype=object
    )
    in_h = bottom.fan_out > 0
    real = np.stack([s for _, _, s in gene_arms["real"]])
    perm = np.stack([s for _, _, s in gene_arms["perm"]])
    p = specificity_test(real[:, in_h], perm[:, in_h])
    q = benjamini_hochberg(p)
    stability, pairs = rank_stability(raw_real[:, in_h])
    positive = np.isin(names, sorted(positive_genes or ()))
    planted = np.zeros(bottom.num_inputs, bool)
    out_names = list(bottom.output_names or ())
    member = bottom.to_scipy("csc")
    for node in planted_nodes:
        planted[member[:, out_names.index(node)].nonzero()[0]] = True
    table = pd.DataFrame(
        dict(
            gene=names[in_h],
            pathways=bottom.fan_out[in_h],
            score=real[:, in_h].mean(axis=0),
            score_sd=real[:, in_h].std(axis=0, ddof=1),
            null_score=perm[:, in_h].mean(axis=0),
            effect=real[:, in_h].mean(axis=0) - perm[:, in_h].mean(axis=0),
            p=p,
            q=q,
            positive=positive[in_h],
            planted=planted[in_h],
        )
    ).sort_values(["q", "effect"], ascending=[True, False], kind="stable")
    summary: dict[str, Any] = dict(
        n_genes=int(in_h.sum()),
        n_significant_q05=int((q < 0.05).sum()),
        stability_median_spearman=stability,
        n_positive=int(positive[in_h].sum()),
        n_positive_significant=int(((q < 0.05) & positive[in_h]).sum()),
    )

    def pooled(arm: str, rep: int) -> np.ndarray:
        return np.mean([s for _, r, s in gene_arms[arm] if r == rep], axis=0)

    in_control = [c.fan_out > 0 for c in control_bottoms]

    def auroc(scores: np.ndarray, members: np.ndarray, control: int | None) -> float:
        m = in_h if control is None else in_control[control]
        return set_auroc(scores[m], members[m])

    if 0 < positive[in_h].sum() < in_h.sum() and config.controls:
        observed = auroc(pooled("real", 0), positive, None)
        controls = [
            auroc(pooled("control", c), positive, c) for c in range(config.controls)
        ]
        summary.update(
            positive_auroc=observed,
            positive_control_auroc_mean=float(np.mean(controls)),
            positive_rank=int(1 + sum(c >= observed for c in controls)),
            positive_p=float(empirical_p(observed, controls)),
        )
    if planted.any() and gene_arms["planted_real"] and config.controls:
        per = dict(
            real=[auroc(s, planted, None) for _, _, s in gene_arms["planted_real"]],
            control=[auroc(s, planted, c) for _, c, s in gene_arms["planted_control"]],
        )
        observed = auroc(pooled("planted_real", 0), planted, None)
        controls = [
            auroc(pooled("planted_control", c), planted, c)
            for c in range(config.controls)
        ]
        summary.update(
            planted_genes=int(planted.sum()),
            planted_real_auroc_mean=float(np.mean(per["real"])),
            planted_control_auroc_mean=float(np.mean(per["control"])),
            planted_pooled_real_auroc=observed,
            planted_pooled_control_auroc_mean=float(np.mean(controls)),
            planted_empirical_p=float(empirical_p(observed, controls)),
        )
    return table.reset_index(drop=True), summary


def _curve_sizes(
    config: StudyConfig, splits: Sequence[Any], groups: np.ndarray
) -> list[int]:
    """The learning curve's numbers of training subjects below "all"."""
    if config.curve_sizes == ():
        return []
    smallest = min(len(np.unique(groups[train])) for train, _ in splits)
    if config.curve_sizes is None:
        grid = np.round(np.linspace(0.3, 1.0, 4) * smallest).astype(int)
        return sorted({int(n) for n in grid if 2 <= n < smallest})
    sizes = sorted({int(n) for n in config.curve_sizes})
    if sizes[0] < 2 or sizes[-1] >= smallest:
        raise ValueError(
            f"`curve_sizes` must be numbers of training subjects in [2, {smallest}) "
            f"(the smallest training fold has {smallest} subjects). Received: "
            f"{tuple(config.curve_sizes)}"
        )
    return sizes


def _nested_order(
    train: np.ndarray, y: np.ndarray, groups: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The training subjects in an order whose every prefix is stratified.

    Subjects with and without positive samples are shuffled within their
    class and interleaved by their within-class position `(i + 0.5) / n`,
    so a prefix of `m` subjects holds about `m * n_class / n` of each.
    """
    names = np.unique(groups[train])
    has_positive = np.array([y[train][groups[train] == g].max() > 0 for g in names])
    key = np.empty(names.size)
    for cls in (False, True):
        idx = rng.permutation(np.flatnonzero(has_positive == cls))
        key[idx] = (np.arange(idx.size) + 0.5) / max(idx.size, 1)
    return names[np.argsort(key, kind="stable")]


def _curve_fold(
    x: np.ndarray,
    target: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    fold: int,
    labels: str,
    sizes: Sequence[int],
    pad: int,
    config: StudyConfig,
    trainer: PackedTrainer,
    mlp: PackedTrainer,
    full_rows: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One fold of the learning curve: fits on nested subsets of subjects.

    Each subset is standardized with its own mean and SD (as if only those
    subjects had been measured); the held-out subjects are the fold's.
    """
    # The same subsets for every label set of a fold.
    order = _nested_order(train, y, groups, np.random.default_rng([config.seed, fold]))
    out: list[dict[str, Any]] = []
    for n in sizes:
        rows = train[np.isin(groups[train], order[:n])]
        mean, sd = x[rows].mean(axis=0), x[rows].std(axis=0) + 1e-6
        xs = (x - mean) / sd
        info = dict(size=str(n), subjects=n, samples=int(rows.size))
        if len(np.unique(target[rows])) < 2:
            continue  # a single class: nothing to learn (not expected)
        x_test = np.zeros((pad, x.shape[1]))
        x_test[: len(test)] = xs[test]
        model = trainer.fit(
            xs[rows],
            np.repeat(target[rows, None], trainer.K, axis=1),
            seed=config.seed + 1000 * fold + n,
        )
        pred = np.asarray(model.predict(x_test.astype("float32"), verbose=0))
        for k in range(trainer.K):
            real = k < config.curve_seeds
            out.append(
                dict(
                    labels=labels,
                    fold=fold + 1,
                    **info,
                    arm="real" if real else "control",
                    replicate=k if real else k - config.curve_seeds,
                    auc=_auc(target[test], pred[: len(test), k]),
                )
            )
        for row in _baselines(xs, target, rows, test, fold, config, mlp, labels):
            out.append(dict(row, **info))
    n_all = len(np.unique(groups[train]))
    for row in full_rows:
        limit = {
            "real": config.curve_seeds,
            "control": config.curve_controls,
            "dense MLP": config.curve_seeds,
        }
        if row["replicate"] < limit.get(row["arm"], row["replicate"] + 1):
            out.append(dict(row, size="all", subjects=n_all, samples=int(train.size)))
    return out


CURVE_ARMS = ("real", "control", "dense MLP", "logistic regression")


def _curve_tests(curve: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC per arm and size, and paired tests of the Reactome networks.

    Pairs: Reactome replicate `r` of a fold vs the fold's mean over the
    control hierarchies, vs dense MLP replicate `r`; the fold's mean over
    Reactome replicates vs logistic regression.
    """
    rows = []
    for labels in curve["labels"].unique():
        part = curve[curve["labels"] == labels]
        for size in part["size"].unique():
            at = part[part["size"] == size]
            row: dict[str, Any] = dict(
                labels=labels,
                size=size,
                subjects=float(at.groupby("fold").subjects.first().mean()),
                samples=float(at.groupby("fold").samples.first().mean()),
            )
            for arm in CURVE_ARMS:
                row[f"{arm}_auc"] = float(at[at.arm == arm].auc.mean())
            real = at[at.arm == "real"].set_index(["fold", "replicate"])["auc"]
            ctrl = at[at.arm == "control"].groupby("fold")["auc"].mean()
            mlp = at[at.arm == "dense MLP"].set_index(["fold", "replicate"])["auc"]
            lr = at[at.arm == "logistic regression"].set_index("fold")["auc"]
            pairs = dict(
                control=(real, ctrl.reindex(real.index.get_level_values("fold"))),
                **{"dense MLP": (real, mlp.reindex(real.index))},
                **{
                    "logistic regression": (
                        real.groupby(level="fold").mean(),
                        lr.reindex(real.groupby(level="fold").mean().index),
                    )
                },
            )
            for other, (a, b) in pairs.items():
                a, b = np.asarray(a, float), np.asarray(b, float)
                ok = np.isfinite(a) & np.isfinite(b)
                test = paired_wilcoxon(a[ok], b[ok])
                row[f"delta_vs_{other}"] = test["mean_difference"]
                row[f"sd_vs_{other}"] = (
                    float(np.std(a[ok] - b[ok], ddof=1)) if ok.sum() > 1 else 0.0
                )
                row[f"pairs_vs_{other}"] = test["n_pairs"]
                row[f"p_vs_{other}"] = test["p"]
            rows.append(row)
    return pd.DataFrame(rows)
