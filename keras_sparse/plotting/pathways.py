"""The pathway network's summary figure."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity

__all__ = ["plot_pathway_summary"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            'Figures need matplotlib: pip install "keras-sparse[plot]"'
        ) from err
    return plt


def plot_pathway_summary(
    importance: Any,
    connectivity: Connectivity,
    comparison: Any,
    path: str | os.PathLike[str],
    top: int = 20,
) -> None:
    """Writes a PNG: top pathways, the connectivity at a glance, the comparison.

    Args:
        importance: DataFrame with `pathway`, `importance_mean`,
            `importance_sd` and optionally `q` (as from
            `run_pathway_experiment`); bars with q >= 0.05 are grey.
        connectivity: the gene -> pathway `Connectivity`.
        comparison: DataFrame with `model`, `mean`, `sd`, `metric`.
        path: output `.png` path.
        top: number of pathways in the bar chart.

    Raises:
        ImportError: without matplotlib.
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(15, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.35, 1])
    ax_imp = fig.add_subplot(grid[:, 0])
    head = importance.head(top).iloc[::-1]
    labels = [str(p)[:48] for p in head["pathway"]]
    significant = (
        (head["q"] < 0.05).to_numpy() if "q" in head else np.zeros(len(head), bool)
    )
    ax_imp.barh(
        labels,
        head["importance_mean"],
        xerr=head["importance_sd"],
        color=np.where(significant, "#3b75af", "#bdbdbd"),
    )
    ax_imp.axvline(0, color="black", lw=0.8)
    ax_imp.set_xlabel(
        "held-out permutation importance (drop in score), mean ± sd over folds"
    )
    n_sig = int((importance["q"] < 0.05).sum()) if "q" in importance else 0
    ax_imp.set_title(
        f"Top {min(top, len(importance))} pathways by mean importance: {n_sig} of "
        f"{len(importance)} above 0 at BH q < 0.05\n(one-sided t-test over folds; "
        "grey = not significant)",
        fontsize=9,
    )
    ax_imp.tick_params(axis="y", labelsize=8)

    ax_conn = fig.add_subplot(grid[0, 1])
    order_out = np.argsort(-connectivity.fan_in, kind="stable")
    rank_out = np.empty_like(order_out)
    rank_out[order_out] = np.arange(order_out.size)
    order_in = np.argsort(-connectivity.fan_out, kind="stable")
    rank_in = np.empty_like(order_in)
    rank_in[order_in] = np.arange(order_in.size)
    ax_conn.scatter(
        rank_in[connectivity.input_indices],
        rank_out[connectivity.output_indices],
        s=0.2,
        marker=".",
        color="#1b1b1b",
        rasterized=True,
    )
    ax_conn.set_xlim(0, connectivity.num_inputs)
    ax_conn.set_ylim(connectivity.num_outputs, 0)
    ax_conn.set_xlabel(f"inputs (sorted by fan-out), {connectivity.num_inputs:,}")
    ax_conn.set_ylabel(f"pathways (sorted by fan-in), {connectivity.num_outputs:,}")
    ax_conn.set_title(
        f"Connectivity: nnz={connectivity.nnz:,}, density={connectivity.density:.2%},\n"
        f"fan-in median {int(np.median(connectivity.fan_in))}"
    )

    ax_cmp = fig.add_subplot(grid[1, 1])
    ax_cmp.barh(
        list(comparison["model"])[::-1],
        list(comparison["mean"])[::-1],
        xerr=list(comparison["sd"])[::-1],
        color="#d08c2f",
    )
    metric = str(comparison["metric"].iloc[0])
    ax_cmp.set_xlabel(f"{metric}, mean ± sd over folds")
    ax_cmp.set_title("Grouped cross-validation")
    if metric == "ROC AUC":
        ax_cmp.set_xlim(0.4, 1.0)
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
