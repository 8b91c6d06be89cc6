"""Statistics for node attributions: stability, specificity, controls.

The tests a reviewer of a pathway network asks for (Fortelny & Bock 2020;
Esser-Skala & Fortelny 2023): do replicate networks agree (rank
stability), is a node's score higher with the real labels than with
permuted labels (one-sided tests with Benjamini-Hochberg FDR), does a
pre-declared set of nodes rank higher in the real hierarchy than in
control hierarchies (empirical p), and paired accuracy differences
(Wilcoxon signed-rank).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "benjamini_hochberg",
    "empirical_p",
    "paired_wilcoxon",
    "rank_normalize",
    "rank_stability",
    "recall_at_k",
    "set_auroc",
    "specificity_test",
]


def _as_2d(scores: Any, argument: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"Received an invalid value for `{argument}`, expected a 2-D array "
            f"(replicates, nodes). Received: shape {arr.shape}"
        )
    return arr


def rank_normalize(scores: Any) -> np.ndarray:
    """Ranks within each row, scaled to (0, 1]: `rank / n_nodes` (ties averaged).

    Makes scores of different replicate networks comparable.

    Example:

    >>> rank_normalize([[0.1, 5.0, 2.0, 2.0]]).tolist()
    [[0.25, 1.0, 0.625, 0.625]]
    """
    from scipy.stats import rankdata

    arr = _as_2d(scores, "scores")
    return rankdata(arr, axis=1) / arr.shape[1]


def rank_stability(scores: Any) -> tuple[float, np.ndarray]:
    """Spearman correlation of node scores between every pair of replicates.

    Args:
        scores: `(replicates, nodes)` array, >= 2 replicates.

    Returns:
        `(median correlation, (pairs,) array of all pairwise correlations)`.

    Example:

    >>> med, pairs = rank_stability([[1, 2, 3, 4], [1, 2, 4, 3], [4, 3, 2, 1]])
    >>> round(med, 2), pairs.round(2).tolist()
    (-0.8, [0.8, -1.0, -0.8])

    References:
        Fortelny & Bock, Genome Biology 21:190 (2020), Fig. 4 (node-weight
        correlation across replicate networks).
    """
    arr = rank_normalize(scores)
    if arr.shape[0] < 2:
        raise ValueError(
            "Received an invalid value for `scores`, expected at least 2 "
            f"replicates (rows). Received: {arr.shape[0]}"
        )
    corr = np.corrcoef(arr)
    iu = np.triu_indices(arr.shape[0], k=1)
    pairs = corr[iu]
    return float(np.median(pairs)), pairs


def specificity_test(real: Any, null: Any) -> np.ndarray:
    """One-sided p per node: are real-label scores above permuted-label scores?

    A Mann-Whitney U test per node (column) of the real replicates' scores
    against the null replicates' scores, alternative "greater". Scores
    should be comparable across networks (e.g. `rank_normalize`d).

    Args:
        real: `(n_real, nodes)` scores with the real labels.
        null: `(n_null, nodes)` scores with permuted labels.

    Returns:
        `(nodes,)` p-values.

    Example:

    >>> real = [[5.0, 1.0], [6.0, 2.0], [7.0, 1.5]]
    >>> null = [[1.0, 1.0], [2.0, 2.0], [3.0, 1.5]]
    >>> specificity_test(real, null).round(3).tolist()
    [0.04, 0.59]

    References:
        Mann & Whitney, Ann. Math. Statist. 18 (1947); as used by Fortelny &
        Bock (2020) for node weights on real vs control inputs.
    """
    from scipy.stats import mannwhitneyu

    real = _as_2d(real, "real")
    null = _as_2d(null, "null")
    if real.shape[1] != null.shape[1]:
        raise ValueError(
            f"`real` and `null` must score the same nodes. Received: "
            f"{real.shape[1]} and {null.shape[1]} columns."
        )
    return np.asarray(mannwhitneyu(real, null, alternative="greater", axis=0).pvalue)


def empirical_p(observed: Any, null: Any) -> np.ndarray:
    """One-sided empirical p-value: `(1 + #{null >= observed}) / (1 + n_null)`.

    Args:
        observed: scalar or `(k,)` observed statistics.
        null: `(n_null,)` or `(n_null, k)` statistics under the null (e.g.
            permuted labels, or control hierarchies).

    Returns:
        p-value(s) of `observed`'s shape; never below `1 / (1 + n_null)`.

    Example:

    >>> float(empirical_p(0.9, [0.5, 0.6, 0.95, 0.7]))
    0.4

    References:
        Phipson & Smyth, "Permutation p-values should never be zero",
        Stat. Appl. Genet. Mol. Biol. 9 (2010).
    """
    obs = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if null.ndim == 0 or null.shape[0] == 0:
        raise ValueError(
            "Received an invalid value for `null`, expected at least one null "
            f"statistic. Received: shape {null.shape}"
        )
    return (1.0 + (null >= obs).sum(axis=0)) / (1.0 + null.shape[0])


def benjamini_hochberg(p: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), via statsmodels.

    Example:

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.2]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.2]

    References:
        Benjamini & Hochberg, J. R. Stat. Soc. B 57 (1995).
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    return multipletests(p, method="fdr_bh")[1]


def set_auroc(scores: Any, members: Any) -> float:
    """How highly a set of nodes ranks: AUROC of members vs the other nodes.

    0.5 = a random placement, 1 = all members above all other nodes
    (ties count one half).

    Example:

    >>> set_auroc([0.9, 0.1, 0.8, 0.3], [True, False, False, True])
    0.75
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(members, dtype=bool)
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            "Received an invalid value for `members`, expected at least one "
            f"member and one non-member. Received: {n_pos} members of {m.size}"
        )
    ranks = rankdata(s)
    return float((ranks[m].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def recall_at_k(scores: Any, members: Any, k: int) -> float:
    """Fraction of the members among the `k` highest-scoring nodes.

    Example:

    >>> recall_at_k([0.9, 0.1, 0.8, 0.3], [True, False, False, True], k=2)
    0.5
    """
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(members, dtype=bool)
    if not m.any():
        raise ValueError("Received an invalid value for `members`: no member.")
    top = np.argsort(-s, kind="stable")[:k]
    return float(m[top].sum() / m.sum())


def paired_wilcoxon(a: Any, b: Any) -> dict[str, float]:
    """Paired comparison `a - b` with the Wilcoxon signed-rank test.

    Returns:
        Dict with `mean_difference`, `median_difference`, `n_pairs`,
        `wins` (pairs with a > b) and the two-sided `p`.

    Example:

    >>> r = paired_wilcoxon([0.9, 0.8, 0.85, 0.7, 0.95], [0.8, 0.7, 0.8, 0.6, 0.9])
    >>> r["wins"], round(r["p"], 4)
    (5, 0.0625)

    References:
        Wilcoxon, "Individual comparisons by ranking methods", Biometrics
        Bulletin 1 (1945).
    """
    from scipy.stats import wilcoxon

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"`a` and `b` must be 1-D and paired (same length). Received: shapes "
            f"{a.shape} and {b.shape}"
        )
    d = a - b
    p = float(wilcoxon(a, b).pvalue) if np.any(d != 0) else 1.0
    return dict(
        mean_difference=float(d.mean()),
        median_difference=float(np.median(d)),
        n_pairs=int(d.size),
        wins=int((d > 0).sum()),
        p=p,
    )
