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
        curve_controls=2,
        curve_labels=("real", "planted"),
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
        positive_genes={"g0", "g1", "g2", "g3"},
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
    # Gene level: the genes in the hierarchy, BH over them.
    genes = result.genes
    in_h = bottom.fan_out > 0
    assert set(genes.gene) == {f"g{i}" for i in np.flatnonzero(in_h)}
    assert genes.p.between(0, 1).all() and (genes.q >= genes.p - 1e-12).all()
    assert genes.score.between(0, 1).all()
    assert s["genes"]["n_genes"] == int(in_h.sum())
    assert s["genes"]["n_significant_q05"] == int((genes.q < 0.05).sum())
    g = s["genes"]
    assert g["n_positive"] == int(genes.positive.sum()) <= 4
    assert 0 <= g["positive_auroc"] <= 1 and g["positive_p"] >= 1 / 4
    assert 1 <= g["positive_rank"] <= 4
    assert 0 <= g["planted_real_auroc_mean"] <= 1 and g["planted_empirical_p"] >= 0.25
    # Learning curve: 12 subjects, 3 folds -> 8 training subjects at least:
    # sizes round([0.3, 0.53, 0.77] * 8) = 2, 4, 6, then "all".
    curve = result.curve
    assert list(curve["size"].unique()) == ["2", "4", "6", "all"]
    for size, at in curve[curve["labels"] == "real"].groupby("size"):
        counts = at.arm.value_counts().to_dict()
        assert counts == {
            "real": 3 * config.curve_seeds,
            "control": 3 * min(config.curve_controls, config.controls),
            "dense MLP": 3 * config.seeds,
            "logistic regression": 3,
        }, size
    # Nested, stratified subsets: fewer samples for fewer subjects.
    samples = curve.groupby("size").samples.mean()
    assert samples["2"] < samples["4"] < samples["6"] < samples["all"]
    # The "all" point is the main fit's own networks.
    main = acc[(acc["labels"] == "real") & (acc.arm == "real") & (acc.replicate < 2)]
    at_all = curve[(curve["size"] == "all") & (curve["labels"] == "real")]
    np.testing.assert_allclose(
        sorted(at_all[at_all.arm == "real"].auc), sorted(main.auc)
    )
    tests = result.curve_tests
    assert len(tests) == 8 and set(tests["labels"]) == {"real", "planted"}
    assert tests["p_vs_control"].between(0, 1).all()
    assert (tests["pairs_vs_control"] == 3 * config.curve_seeds).all()


def test_study_with_level_heads_and_no_curve():
    rng = np.random.default_rng(1)
    groups = np.repeat([f"s{g}" for g in range(8)], 4)
    status = np.repeat(rng.permutation([0, 1] * 4), 4)
    x = rng.normal(5.0, 1.0, (32, 20))
    x[:, :4] += 1.5 * status[:, None]
    bottom = random_connectivity(20, 6, density=0.3, seed=3, min_fan_in=2)
    bottom = bottom.with_names([f"g{i}" for i in range(20)], list("ABCDEF"))
    top = random_connectivity(6, 2, density=0.6, seed=4, min_fan_in=1)
    top = top.with_names(bottom.output_names, ["T0", "T1"])
    config = StudyConfig(
        folds=2,
        seeds=2,
        permutations=2,
        controls=1,
        epochs=1,
        ig_steps=2,
        planted=False,
        level_heads=True,
        curve_sizes=(),
    )
    result = run_study(
        x,
        status,
        groups,
        [bottom, top],
        lambda r: np.repeat(r.permutation(status[::4]), 4),
        positive=set(),
        config=config,
        progress=None,
    )
    assert result.curve is None and result.curve_tests is None
    assert len(result.nodes) == 8 and result.nodes.score.between(0, 1).all()
    assert len(result.genes) == int((bottom.fan_out > 0).sum())
    assert "one head per level" in config.describe()
