"""Statistics helpers on synthetic inputs with known answers."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from keras_sparse.interpret.statistics import (
    benjamini_hochberg,
    empirical_p,
    paired_wilcoxon,
    rank_normalize,
    rank_stability,
    recall_at_k,
    set_auroc,
    specificity_test,
)


def test_rank_stability_known_cases():
    rng = np.random.default_rng(0)
    base = rng.normal(size=500)
    same = np.stack([base, base * 3 + 1, np.exp(base)])  # monotone transforms
    med, pairs = rank_stability(same)
    assert med == pytest.approx(1.0) and pairs.shape == (3,)
    med, _ = rank_stability(np.stack([base, -base]))
    assert med == pytest.approx(-1.0)
    med, _ = rank_stability(rng.normal(size=(6, 2000)))  # independent replicates
    assert abs(med) < 0.08
    noisy = base + rng.normal(scale=1.0, size=(8, 500))  # true rho = 1/sqrt(2)^2 ~ 0.48
    med, _ = rank_stability(noisy)
    assert 0.38 < med < 0.58
    with pytest.raises(ValueError, match="at least 2 replicates"):
        rank_stability([[1.0, 2.0]])


def test_specificity_exact_and_calibrated():
    # Complete separation of 5 vs 5: exact one-sided p = 1 / C(10, 5).
    real = np.arange(5, 10, dtype=float)[:, None] + np.zeros((1, 3))
    null = np.arange(0, 5, dtype=float)[:, None] + np.zeros((1, 3))
    p = specificity_test(real, null)
    np.testing.assert_allclose(p, 1 / math.comb(10, 5))
    np.testing.assert_allclose(specificity_test(null, real), 1.0)
    # Calibration under the null, and power where a shift is planted.
    rng = np.random.default_rng(1)
    real, null = rng.normal(size=(10, 4000)), rng.normal(size=(10, 4000))
    real[:, :200] += 2.0
    p = specificity_test(real, null)
    assert 0.035 < np.mean(p[200:] < 0.05) < 0.065
    assert np.mean(p[:200] < 0.05) > 0.9
    q = benjamini_hochberg(p)
    discovered = q < 0.05
    assert discovered[:200].mean() > 0.6
    # FDR control: false discoveries among discoveries well under ~5 %.
    assert discovered[200:].sum() / max(discovered.sum(), 1) < 0.1
    with pytest.raises(ValueError, match="same nodes"):
        specificity_test(real, null[:, :5])


def test_benjamini_hochberg_matches_hand_computation():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=50) ** 3
    order = np.argsort(p)
    m = p.size
    stepped = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(1, np.minimum.accumulate(stepped[::-1])[::-1])
    want = np.empty(m)
    want[order] = q_sorted
    np.testing.assert_allclose(benjamini_hochberg(p), want)
    assert benjamini_hochberg([]).size == 0


def test_empirical_p():
    assert empirical_p(5.0, [1, 2, 3]) == pytest.approx(0.25)  # never 0
    assert empirical_p(2.0, [1, 2, 3]) == pytest.approx(0.75)  # ties count
    np.testing.assert_allclose(
        empirical_p([0.0, 10.0], np.array([[1.0, 1.0], [2.0, 20.0]])), [1.0, 2 / 3]
    )
    # Uniform under the null: P(p <= 0.05) ~ 0.05 with 19 controls.
    rng = np.random.default_rng(3)
    stats = rng.normal(size=(20, 5000))
    p = empirical_p(stats[0], stats[1:])
    assert 0.04 < np.mean(p <= 0.05) < 0.06
    with pytest.raises(ValueError, match="at least one null statistic"):
        empirical_p(1.0, [])


def test_set_auroc_and_recall_match_sklearn():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=300)
    scores[:3] = scores[5]  # ties
    members = rng.uniform(size=300) < 0.2
    assert set_auroc(scores, members) == pytest.approx(roc_auc_score(members, scores))
    assert set_auroc([3, 2, 1], [True, False, False]) == 1.0
    assert recall_at_k([0.1, 0.9, 0.8, 0.2], [False, True, False, True], k=2) == 0.5
    assert recall_at_k([0.1, 0.9, 0.8, 0.2], [False, True, False, True], k=4) == 1.0
    with pytest.raises(ValueError, match="at least one member and one non-member"):
        set_auroc([1, 2], [True, True])
    np.testing.assert_allclose(rank_normalize([[3.0, 1.0, 2.0]]), [[1.0, 1 / 3, 2 / 3]])


def test_paired_wilcoxon():
    r = paired_wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95], [0.8, 0.7, 0.8, 0.6, 0.9])
    assert r["wins"] == 5 and r["n_pairs"] == 5
    assert r["p"] == pytest.approx(2 / 2**5)  # exact two-sided, all positive
    assert r["mean_difference"] == pytest.approx(0.08)
    assert paired_wilcoxon([1.0, 2.0], [1.0, 2.0])["p"] == 1.0
    with pytest.raises(ValueError, match="paired"):
        paired_wilcoxon([1.0, 2.0], [1.0])
