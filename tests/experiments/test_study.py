"""The study engine end to end on a small synthetic data set (no network)."""

import numpy as np
import pandas as pd

from keras_sparse.connectivity import random_connectivity
from keras_sparse.experiments.study import StudyConfig, run_study


def test_study_runs_and_reports_consistent_numbers(tmp_path):
    rng = np.random.default_rng(0)
    n_groups, per_group, n_genes = 12, 5, 40
    groups = np.repeat([f"s{g}" for g in range(n_groups)], per_group)
    x = rng.normal(5.0, 1.0, (n_groups * per_group, n_genes))
    status = np.repeat(rng.permutation([0, 1] * (n_groups // 2)), per_group)
    x[:, :6] += 1.5 * status[:, None]  # signal in genes 0-5
    y = status.copy()
    bottom = random_connectivity(n_genes, 10, density=0.2, seed=1, min_fan_in=3)
    bottom = bottom.with_names(
        [f"g{i}" for i in range(n_genes)], [f"P{j}" for j in range(10)]
    )
    top = random_connectivity(10, 3, density=0.5, seed=2, min_fan_in=1)
    top = top.with_names(bottom.output_names, ["T0", "T1", "T2"])

    def permute(r):
        flip = dict(
            zip(np.unique(groups), r.permutation([0, 1] * (n_groups // 2)), strict=True)
        )
        return np.array([flip[g] for g in groups])

    config = StudyConfig(
        folds=3,
        seeds=2,
        permutations=2,
        controls=3,
        epochs=2,
        ig_steps=4,
        planted=True,
        planted_pathways=1,
    )
    result = run_study(
        x,
        y,
        groups,
        [bottom, top],
        permute,
        positive={"P0", "T1"},
        config=config,
        planted_candidates=["P3", "P4"],
        track_node="P0",
        orient_genes=["g0", "g1"],
        progress=None,
    )
    s = result.summary
    assert s["n_networks"] == dict(real=6, permuted_labels=6, control=9, planted=21)
    assert s["n_nodes"] == 13 and s["n_positive"] == 2
    nodes = result.nodes
    assert len(nodes) == 13 and set(nodes.node) == set(bottom.output_names) | {
        "T0",
        "T1",
        "T2",
    }
    assert nodes.p.between(0, 1).all() and (nodes.q >= nodes.p - 1e-12).all()
    assert nodes.score.between(0, 1).all()
    assert s["n_significant_q05"] == int((nodes.q < 0.05).sum())
    assert len(result.controls) == 4
    assert 1 <= s["positive_set_rank"] <= 4
    assert s["positive_set_p"] >= 1 / 4
    acc = result.accuracy
    real = acc[acc["labels"] == "real"]
    assert (real.arm == "real").sum() == 6 and (real.arm == "control").sum() == 9
    assert (real.arm == "logistic regression").sum() == 3 and (
        real.arm == "dense MLP"
    ).sum() == 6
    assert acc.auc.between(0, 1).all()
    comp = result.comparisons
    assert set(comp.comparison) >= {
        "real hierarchy - control",
        "real hierarchy - dense MLP",
    }
    assert comp.wilcoxon_p.between(0, 1).all()
    p = result.planted_summary
    assert p["k"] == 1 and 0 <= p["real_auroc_mean"] <= 1 and p["empirical_p"] >= 0.25
    assert set(result.planted.arm) == {"real", "control"}
    assert isinstance(result.activation, pd.DataFrame)
    assert sorted(result.activation["sample"]) == list(
        range(len(y))
    )  # every sample held out once
