"""The wide layer's training step with the code of earlier revisions and of
the working tree, on the same machine, in alternating fresh processes.

    .venv/bin/python benchmarks/wide_layer_ab.py --base abb2905 e79ce77 \
        --backends tensorflow jax torch --pairs 3 --out-dir benchmarks/results

Step times of different machines cannot be compared, and the figures a
target was set against were measured with older code on another machine.
This script runs that older code here: each `--base` revision is extracted
with `git archive` into a temporary folder, and `benchmarks/wide_layer.py`
of the working tree (the same measurement for every version: 200,000 ->
20,000, 2,000,000 connections, batch 64, Adam, `implementation="auto"`,
median of `--steps` `train_on_batch` steps after 2 untimed ones, peak
resident memory of the process) runs once per version in every pair, with
`PYTHONPATH` pointing at that version's `keras_sparse`. The versions take
turns in an order shuffled per pair, so load from other tenants falls on
all alike. `speedup` is a base version's median step over the working
tree's; `head_faster_in` counts the pairs where the working tree was
faster. One results file per backend, `wide_layer_ab_<backend>.json`,
whose machine and versions are those the working tree's runs recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import child_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDE = os.path.join(ROOT, "benchmarks", "wide_layer.py")


def git(*args: str) -> str:
    """`git args` in the repository; its standard output."""
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def extract(rev: str, into: str) -> tuple[str, str]:
    """`rev`'s `keras_sparse` under `into`; returns (folder, full commit hash)."""
    full = git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    folder = os.path.join(into, full[:12])
    os.makedirs(folder)
    archive = subprocess.run(
        ["git", "archive", full, "keras_sparse"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder, full


def run_once(
    backend: str, source: str, case: str, steps: int, out: str
) -> tuple[dict, dict]:
    """One `wide_layer.py` process on `backend` with the `keras_sparse` in
    `source`: (its machine and versions, its result)."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=source)
    cmd = [sys.executable, WIDE, "--case", case, "--impl", "auto",
           "--steps", str(steps), "--out", out]  # fmt: skip
    result = child_json(cmd, f"wide_layer.py on {backend} with {source}", env=env)
    if result.get("error"):
        raise RuntimeError(f"{backend}, {source}: {result['error']}")
    with open(out) as fh:  # written by that process, with its meta
        return json.load(fh)["meta"], result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", nargs="+", required=True, help="earlier revisions")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--case", default="2M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="where the results files go")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    head = git("rev-parse", "HEAD").strip()
    dirty = bool(git("status", "--porcelain", "keras_sparse").strip())
    load = list(os.getloadavg())
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"working tree": ROOT}
        commits = {"working tree": head + (" + uncommitted changes" if dirty else "")}
        for rev in args.base:
            folder, full = extract(rev, tmp)
            versions[rev] = folder
            commits[rev] = full
        runs: dict = {b: {v: [] for v in versions} for b in args.backends}
        metas: dict = {}
        for pair in range(args.pairs):
            for backend in args.backends:
                order = list(versions)
                rng.shuffle(order)
                for name in order:
                    out = os.path.join(
                        tmp, f"{backend}_{pair}_{order.index(name)}.json"
                    )
                    meta, r = run_once(
                        backend, versions[name], args.case, args.steps, out
                    )
                    if name == "working tree":
                        metas[backend] = meta
                    runs[backend][name].append(
                        {
                            "step_ms": r["step_ms"],
                            "peak_rss_mb": r["peak_rss_mb"],
                            "implementation": r["implementation"],
                        }
                    )
                    print(
                        f"pair {pair} {backend} {name}: {r['step_ms']} ms, "
                        f"{r['peak_rss_mb']} MiB",
                        flush=True,
                    )
    for backend in args.backends:
        cases = []
        head_steps = [r["step_ms"] for r in runs[backend]["working tree"]]
        for name in versions:
            steps = [r["step_ms"] for r in runs[backend][name]]
            row = {
                "backend": backend,
                "version": name,
                "commit": commits[name],
                "implementation": runs[backend][name][0]["implementation"],
                "step_ms": steps,
                "median_step_ms": statistics.median(steps),
                "peak_rss_mb": [r["peak_rss_mb"] for r in runs[backend][name]],
            }
            if name != "working tree":
                row["speedup"] = round(
                    statistics.median(steps) / statistics.median(head_steps), 2
                )
                row["head_faster_in"] = sum(
                    h < b for h, b in zip(head_steps, steps, strict=True)
                )
            cases.append(row)
        result = {
            "case": args.case,
            "pairs": args.pairs,
            "steps": args.steps,
            "load_average_at_start": load,
            "minutes_all_backends": round((time.time() - started) / 60, 1),
            "cases": cases,
        }
        print(json.dumps(result))
        if args.out_dir:
            path = os.path.join(args.out_dir, f"wide_layer_ab_{backend}.json")
            with open(path, "w") as fh:
                json.dump({"meta": metas[backend], "result": result}, fh, indent=1)


if __name__ == "__main__":
    main()
