"""Figures of the pathway-network study (matplotlib, imported lazily)."""

from __future__ import annotations

import os
import textwrap
from typing import Any

import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.plotting.pathways import _pyplot

__all__ = [
    "plot_accuracy",
    "plot_activation",
    "plot_learning_curve",
    "plot_positive_set",
    "plot_sankey",
    "plot_volcano",
]

LEVEL_COLORS = ("#3b75af", "#d08c2f", "#519e3e", "#8d69b8", "#c44e52")


def _short(name: str, width: int = 34) -> str:
    return textwrap.shorten(str(name), width=width, placeholder="…")


def plot_sankey(
    nodes: Any,
    levels: list[Connectivity],
    path: str | os.PathLike[str],
    q_threshold: float = 0.05,
    per_level: int = 12,
    null_label: str = "labels permuted between subjects",
) -> None:
    """Significant nodes per level (columns, genes side left) and their links.

    Each column shows up to `per_level` nodes of one level with q <
    `q_threshold` (largest effect first); box height is the node's mean
    score (within-level percentile); grey bands join a node to its parent
    when both are shown. A level without any significant node shows its
    largest effects in grey and says so.
    """
    plt = _pyplot()
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path as MplPath

    L = len(levels)
    fig, ax = plt.subplots(figsize=(4.6 * L + 1, 8.5), constrained_layout=True)
    positions: dict[tuple[int, str], tuple[float, float, float]] = {}
    col_w = 0.9
    for j in range(L):
        significant = nodes[(nodes.level == j) & (nodes.q < q_threshold)]
        shown_significant = len(significant) > 0
        sub = significant if shown_significant else nodes[nodes.level == j]
        sub = sub.sort_values("effect", ascending=False).head(
            per_level if shown_significant else 8
        )
        x0 = j * 3.0
        total = len(sub)
        n_sig = len(significant)
        title = f"level {j + 1}" + (" (bottom)" if j == 0 else "")
        title += " (top)" if j == L - 1 else ""
        title += f"\n{n_sig} of {int((nodes.level == j).sum())} nodes q<{q_threshold}"
        if not shown_significant:
            title += "\nnone significant: grey = largest effects"
        ax.text(x0 + col_w / 2, 1.04, title, ha="center", va="bottom", fontsize=9)
        slot = 1.0 / max(total, 6)
        for i, row in enumerate(sub.itertuples(index=False)):
            h = slot * (0.25 + 0.65 * float(row.score))
            y0 = 1.0 - (i + 0.5) * slot - h / 2
            color = (
                LEVEL_COLORS[j % len(LEVEL_COLORS)] if shown_significant else "#c8c8c8"
            )
            ax.add_patch(
                Rectangle(
                    (x0, y0),
                    col_w,
                    h,
                    color=color,
                    ec="black" if row.positive else "none",
                    lw=1.5,
                )
            )
            ax.text(
                x0 + col_w + 0.08,
                y0 + h / 2,
                f"{_short(row.name)}\nq={row.q:.1g}, Δ={row.effect:+.2f}",
                va="center",
                fontsize=7,
            )
            positions[(j, row.node)] = (x0, y0, h)
    for j in range(L - 1):
        conn = levels[j + 1]
        names_in = conn.input_names or ()
        names_out = conn.output_names or ()
        for i, o in zip(conn.input_indices, conn.output_indices, strict=True):
            a = positions.get((j, names_in[i]))
            b = positions.get((j + 1, names_out[o]))
            if a is None or b is None:
                continue
            xa, ya = a[0] + col_w, a[1] + a[2] / 2
            xb, yb = b[0], b[1] + b[2] / 2
            mid = (xa + xb) / 2
            verts = [(xa, ya), (mid, ya), (mid, yb), (xb, yb)]
            codes = [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4]
            ax.add_patch(
                PathPatch(
                    MplPath(verts, codes), fc="none", ec="grey", alpha=0.5, lw=1.2
                )
            )
    ax.set_xlim(-0.2, 3.0 * L)
    ax.set_ylim(0, 1.15)
    ax.axis("off")
    ax.set_title(
        f"Nodes scored higher with the real labels than with {null_label} "
        f"(one-sided Mann-Whitney, BH q < {q_threshold}); box height = mean "
        "within-level percentile;\nblack outline = pre-declared positive set; lines: "
        "child -> parent among the nodes shown",
        fontsize=9,
    )
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)


def plot_volcano(
    nodes: Any, path: str | os.PathLike[str], q_threshold: float = 0.05
) -> None:
    """Effect (real - permuted-label percentile) vs -log10 q, per level."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 6.2), constrained_layout=True)
    ylog = -np.log10(np.clip(nodes.q.to_numpy(float), 1e-300, 1))
    for j in sorted(nodes.level.unique()):
        m = (nodes.level == j).to_numpy()
        ax.scatter(
            nodes.effect[m],
            ylog[m],
            s=12,
            alpha=0.6,
            color=LEVEL_COLORS[j % len(LEVEL_COLORS)],
            label=f"level {j + 1}",
        )
    pos = nodes.positive.to_numpy(bool)
    ax.scatter(
        nodes.effect[pos],
        ylog[pos],
        s=40,
        facecolors="none",
        edgecolors="black",
        lw=1.0,
        label="positive set (declared)",
    )
    ax.axhline(-np.log10(q_threshold), color="grey", ls="--", lw=0.8)
    ax.text(
        ax.get_xlim()[1],
        -np.log10(q_threshold),
        f"q = {q_threshold} ",
        va="bottom",
        ha="right",
        fontsize=8,
        color="grey",
    )
    # Labels of the most significant nodes in a column at the upper left
    # (where no node can lie: a high -log10 q needs a positive effect), each
    # joined to its point by a leader line, so that none overlap.
    top = nodes[nodes.q < q_threshold].sort_values(["q", "effect"]).head(10)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=ax.get_ylim()[1] * 1.08)
    y0, y1 = ax.get_ylim()
    slot = 0.97
    for row in top.itertuples(index=False):
        y = -np.log10(max(row.q, 1e-300))
        slot = min(slot, (y - y0) / (y1 - y0))
        ax.annotate(
            _short(row.name, 40),
            (row.effect, y),
            xytext=(0.02, slot),
            textcoords="axes fraction",
            fontsize=7,
            va="center",
            arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5", shrinkB=3),
        )
        slot -= 0.045
    ax.set_xlabel("effect: mean within-level percentile, real labels − permuted labels")
    ax.set_ylabel("−log10 q (BH over all nodes)")
    ax.set_title(
        f"{int((nodes.q < q_threshold).sum())} of {len(nodes)} nodes at "
        f"q < {q_threshold}"
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)


def plot_positive_set(
    controls: Any,
    summary: dict[str, Any],
    path: str | os.PathLike[str],
    label: str = "interferon subtree + ISG-enriched",
) -> None:
    """The positive set's AUROC in the real hierarchy among the controls."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), constrained_layout=True)
    ctrl = controls.positive_set_auroc.to_numpy()[1:]
    real = float(controls.positive_set_auroc.iloc[0])
    ax.hist(
        ctrl,
        bins=min(20, max(5, len(ctrl) // 2)),
        color="#9a9a9a",
        label=f"{len(ctrl)} gene-permuted control hierarchies",
    )
    ax.axvline(real, color="#c44e52", lw=2.5, label=f"real Reactome: {real:.3f}")
    ax.axvline(0.5, color="black", lw=0.8, ls=":")
    ax.set_xlabel("AUROC of the positive-set nodes in the node ranking (0.5 = chance)")
    ax.set_ylabel("control hierarchies")
    ax.set_title(
        f"Positive set ({summary['n_positive']} nodes: {label})"
        f" — rank {summary['positive_set_rank']} of {len(ctrl) + 1}, empirical p = "
        f"{summary['positive_set_p']:.3f}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)


def plot_accuracy(
    accuracy: Any,
    planted: Any,
    planted_summary: dict[str, Any] | None,
    path: str | os.PathLike[str],
) -> None:
    """Held-out ROC AUC per arm (real and planted labels) and planted recovery."""
    plt = _pyplot()
    ncols = 3 if planted is not None else 1
    fig, axes = plt.subplots(
        1, ncols, figsize=(5.2 * ncols, 4.6), constrained_layout=True
    )
    axes = np.atleast_1d(axes)
    order = ["real", "control", "dense MLP", "logistic regression"]
    labels_of = {
        "real": "Reactome",
        "control": "gene-permuted\ncontrols",
        "dense MLP": "dense MLP",
        "logistic regression": "logistic\nregression",
    }
    for ax, which in zip(axes, ["real", "planted"], strict=False):
        acc = accuracy[accuracy["labels"] == which]
        arms = [a for a in order if a in set(acc.arm)]
        rng = np.random.default_rng(0)
        for i, arm in enumerate(arms):
            v = acc[acc.arm == arm].auc.to_numpy()
            ax.scatter(
                i + rng.uniform(-0.15, 0.15, v.size),
                v,
                s=10,
                alpha=0.5,
                color=LEVEL_COLORS[i % len(LEVEL_COLORS)],
            )
            ax.hlines(np.nanmean(v), i - 0.3, i + 0.3, color="black", lw=2)
        ax.set_xticks(range(len(arms)), [labels_of[a] for a in arms], fontsize=8)
        ax.set_ylabel("held-out ROC AUC (per fold x replicate)")
        ax.set_title("real labels" if which == "real" else "planted-signal labels")
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    if planted is not None and planted_summary is not None:
        ax = axes[2]
        for i, arm in enumerate(["real", "control"]):
            v = planted[planted.arm == arm].auroc.to_numpy()
            ax.scatter(
                i + np.random.default_rng(1).uniform(-0.15, 0.15, v.size),
                v,
                s=10,
                alpha=0.5,
                color=LEVEL_COLORS[i],
            )
            ax.hlines(v.mean(), i - 0.3, i + 0.3, color="black", lw=2)
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_xticks([0, 1], ["Reactome", "gene-permuted\ncontrols"], fontsize=8)
        ax.set_ylabel("AUROC of the planted pathways in the bottom-level ranking")
        ax.set_title(
            f"planted pathways recovered? p = {planted_summary['empirical_p']:.3f}",
            fontsize=10,
        )
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)


def plot_activation(activation: Any, label: str, path: str | os.PathLike[str]) -> None:
    """A node's held-out activation over time, one line per subject."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.0), constrained_layout=True)
    colors = {"sx": "#c44e52", "asx": "#3b75af"}
    seen = set()
    for _subject, sub in activation.groupby("subject"):
        sub = sub.sort_values("hours")
        cond = str(sub.condition.iloc[0])
        ax.plot(
            sub.hours,
            sub.activation,
            "-o",
            ms=2.5,
            lw=1,
            alpha=0.8,
            color=colors.get(cond, "grey"),
            label=None
            if cond in seen
            else {"sx": "symptomatic", "asx": "asymptomatic"}.get(cond, cond),
        )
        seen.add(cond)
    ax.axvline(45, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("hours after inoculation (dashed: 45 h, the label's time rule)")
    ax.set_ylabel("node activation (tanh), held-out")
    ax.set_title(
        f"{label}: activation in the network of the subject's held-out fold\n"
        "(one line per subject; sign fixed per fold to correlate positively with "
        "the ISGs' mean expression)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)


CURVE_STYLE = {
    "real": ("Reactome network", LEVEL_COLORS[0], "o", "-"),
    "control": ("gene-permuted control hierarchies", LEVEL_COLORS[1], "s", "--"),
    "dense MLP": ("dense MLP", LEVEL_COLORS[2], "^", "-."),
    "logistic regression": ("logistic regression", LEVEL_COLORS[3], "D", ":"),
}


def plot_learning_curve(
    curve: Any, tests: Any, path: str | os.PathLike[str], group_label: str = "subjects"
) -> None:
    """Held-out ROC AUC against the number of training subjects, per arm.

    One column per label set (real, planted). Top: the mean over folds of
    each arm's per-fold mean AUC, error bars the SD over folds (folds
    differ a lot in difficulty). Bottom: the paired differences Reactome −
    other (`tests`: mean ± SD over the pairs) with their Wilcoxon p.
    """
    plt = _pyplot()
    label_sets = [w for w in ("real", "planted") if w in set(curve["labels"])]
    fig, axes = plt.subplots(
        2,
        len(label_sets),
        figsize=(max(8.5, 6.6 * len(label_sets)), 8.8),
        constrained_layout=True,
        squeeze=False,
        gridspec_kw=dict(height_ratios=[1.25, 1]),
    )
    for col, which in enumerate(label_sets):
        ax, dax = axes[0, col], axes[1, col]
        part = curve[curve["labels"] == which]
        sizes = list(dict.fromkeys(part["size"]))
        xs = np.array(
            [
                part[part["size"] == s].groupby("fold").subjects.first().mean()
                for s in sizes
            ]
        )
        # Markers side by side, spaced relative to the x range.
        unit = max(float(xs.max() - xs.min()), 1.0) / 9.6
        offsets = {
            arm: d * unit
            for arm, d in zip(CURVE_STYLE, (-0.27, -0.09, 0.09, 0.27), strict=True)
        }
        ticks = [
            s if s != "all" else f"all\n({x:.1f} mean)"
            for s, x in zip(sizes, xs, strict=True)
        ]
        lows = []
        for arm, (label, color, marker, ls) in CURVE_STYLE.items():
            at = part[part.arm == arm]
            if at.empty:
                continue
            per_fold = [
                at[at["size"] == s].groupby("fold").auc.mean().to_numpy() for s in sizes
            ]
            mean = np.array([np.nanmean(v) for v in per_fold])
            sd = np.array([np.nanstd(v, ddof=1) if v.size > 1 else 0 for v in per_fold])
            lows.append(np.nanmin(mean - sd))
            n_networks = int(at.groupby(["size", "fold"]).size().max())
            ax.errorbar(
                xs + offsets[arm],
                mean,
                yerr=sd,
                color=color,
                marker=marker,
                ls=ls,
                lw=1.6,
                ms=6,
                capsize=3,
                label=f"{label} ({n_networks} per fold)",
            )
        ax.set_ylim(max(0.0, min(lows) - 0.03), min(1.0, ax.get_ylim()[1]) + 0.005)
        ax.set_xticks(xs, ticks)
        ax.set_ylabel("held-out ROC AUC\n(mean over folds ± SD over folds)")
        ax.set_title(
            (
                "real labels"
                if which == "real"
                else "planted-signal labels (ground truth)"
            )
            + f": {part.fold.nunique()} folds, held-out {group_label} fixed per fold",
            fontsize=10,
        )
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="y", lw=0.4, alpha=0.5)
        t = tests[tests["labels"] == which].set_index("size").reindex(sizes)
        shifts = {
            "control": -0.45 * unit,
            "dense MLP": 0.0,
            "logistic regression": 0.45 * unit,
        }
        for other in ("control", "dense MLP", "logistic regression"):
            label, color, marker, _ = CURVE_STYLE[other]
            delta = t[f"delta_vs_{other}"].to_numpy(float)
            spread = t[f"sd_vs_{other}"].to_numpy(float)
            pairs = int(t[f"pairs_vs_{other}"].max())
            dax.errorbar(
                xs + shifts[other],
                delta,
                yerr=spread,
                color=color,
                marker=marker,
                ls="none",
                ms=6,
                capsize=3,
                label=f"Reactome − {label} ({pairs} pairs)",
            )
            for x, d, s, p in zip(
                xs + shifts[other], delta, spread, t[f"p_vs_{other}"], strict=True
            ):
                dax.annotate(
                    f"p={p:.2f}",
                    (x, d + s),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    rotation=90,
                    fontsize=7.5,
                    color=color,
                )
        dax.axhline(0, color="black", lw=0.8)
        dax.set_xticks(xs, ticks)
        dax.set_xlabel(f"training {group_label} per fold")
        dax.set_ylabel("paired Δ AUC, Reactome − other\n(mean ± SD over pairs)")
        dax.set_title(
            "above 0: the Reactome network is better (Wilcoxon signed-rank p)",
            fontsize=9,
        )
        dax.legend(fontsize=8, loc="lower right")
        dax.grid(axis="y", lw=0.4, alpha=0.5)
        low, high = dax.get_ylim()
        dax.set_ylim(low - 0.35 * (high - low), high + 0.2 * (high - low))
    fig.suptitle(
        "Learning curve: Reactome network vs gene-permuted control hierarchies,\n"
        "dense MLP and logistic regression",
        fontsize=11,
    )
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
