"""Writes docs/benchmarks.md from the JSON files in benchmarks/results/.

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _load(pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "results", pattern))):
        with open(path) as fh:
            out.append(json.load(fh))
    return out


def _env_line(meta):
    return (
        f"{meta['backend']}: {meta['framework']}, keras {meta['keras']}, Python "
        f"{meta['python']}, {meta['cpu']} ({meta['cores']} cores)"
    )


def _ms(v):
    return "skipped" if v is None else f"{v:.2f}"


def dense_section(results):
    lines = [
        "## SparseDense: 9180 -> 230, batch 256 (`benchmarks/sparse_dense_step.py`)",
        "",
        "Median training step (`train_on_batch`, SGD, MSE) and forward pass",
        "(`predict_on_batch`) in ms; `masked_dense` is the full kernel times a",
        "0/1 mask that users write today.",
        "",
    ]
    for res in results:
        meta, rows = res["meta"], res["rows"]
        lines += [f"### {meta['backend']}", "", _env_line(meta), ""]
        lines += ["| density | nnz | case | step ms | forward ms | step speed-up vs masked |",
                  "|---|---|---|---|---|---|"]
        base = {r["density"]: r["step_ms"] for r in rows if r["case"] == "masked_dense"}
        for r in rows:
            ratio = "" if r["step_ms"] is None else f"x{base[r['density']] / r['step_ms']:.2f}"
            lines.append(
                f"| {r['density']:g} | {r['nnz']:,} | {r['case']} | {_ms(r['step_ms'])} | "
                f"{_ms(r['forward_ms'])} | {ratio} |"
            )
        lines.append("")
    return lines


def conv_section(results):
    lines = [
        "## SparseConv2D vs dense Conv2D (`benchmarks/sparse_conv_step.py`)",
        "",
        "Median training step in ms; 64 -> 64 channels, 3x3, 32x32 images,",
        "batch 32 (LeNet-5 C3: 6 -> 16 maps, 5x5, 14x14). Speed-up > 1 means",
        "the sparse layer is faster than the dense convolution of the same shape.",
        "",
    ]
    for res in results:
        meta, rows = res["meta"], res["rows"]
        lines += [f"### {meta['backend']}", "", _env_line(meta), ""]
        lines += ["| pattern | density | implementation | dense ms | sparse ms | speed-up |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(
                f"| {r['case']} | {r['density']:.3f} | {r['implementation']} | "
                f"{r['dense_step_ms']:.2f} | {r['sparse_step_ms']:.2f} | x{r['speedup']:.2f} |"
            )
        lines.append("")
    return lines


def main():
    header = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/report.py` from `benchmarks/results/*.json`;",
        "regenerate everything with `bash benchmarks/run_all.sh` (one process per",
        "backend). Machines are shared and noisy: compare ratios within one run.",
        "",
        "## Rules that `implementation=\"auto\"` follows",
        "",
        "- `SparseDense`: the gather/segment-sum kernel when the dense kernel would",
        "  exceed 2^24 entries or the density is at most 1 % (TensorFlow), 0.5 % (JAX),",
        "  0.2 % (PyTorch); the masked dense kernel otherwise",
        "  (`keras_sparse.layers.sparse_dense.choose_implementation`).",
        "- `SparseConv*D`: one grouped convolution when the connectivity is",
        "  block-diagonal with more than one group after permuting channels (run as",
        "  per-group convolutions on TensorFlow and JAX, whose XLA CPU grouped",
        "  convolution is 10-50x slower than dense, and natively on PyTorch); the",
        "  masked dense kernel otherwise",
        "  (`keras_sparse.layers.base_sparse_conv.choose_conv_implementation`).",
        "",
    ]
    lines = header + dense_section(_load("sparse_dense_step_*.json")) + conv_section(
        _load("sparse_conv_step_*.json")
    )
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
