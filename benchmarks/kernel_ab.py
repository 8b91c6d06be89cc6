"""The compiled CSR kernels of a git revision vs the working tree, side by
side in one process.

    .venv/bin/python benchmarks/kernel_ab.py --base HEAD \
        --out benchmarks/results/kernel_ab_<machine>.json

Both versions of `keras_sparse/ops/csr_cpu.py` (the base revision's from
`git show`, the working tree's from disk) are compiled in this process
without Numba's cache, then every kernel (`spmm` forward, `spmm_t` input
gradient, `sddmm` value gradient) of both takes turns in a shuffled order
(`--rounds` turns of two calls each) on the same arrays, so that load from
other tenants of a shared machine falls on both alike. Before timing, the
two versions' outputs are compared (`max_abs_diff`). Times are medians in
ms; `speedup` is base / working tree. No Keras backend is involved.
With `--gap-ms`, each timed call starts after the process slept that long,
as a kernel starts inside a training step (`kernel_threads.py` measures
those gaps and what they cost).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_result  # noqa: E402

from keras_sparse.connectivity import random_connectivity  # noqa: E402
from keras_sparse.ops import csr_cpu  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = "keras_sparse/ops/csr_cpu.py"
# name: (num_inputs, num_outputs, density, batch, dtype)
CASES = {
    "ref": (9180, 230, 0.01, 256, "float32"),
    "ref_0.1%": (9180, 230, 0.001, 256, "float32"),
    "ref_b32": (9180, 230, 0.01, 32, "float32"),
    "ref_b2048": (9180, 230, 0.01, 2048, "float32"),
    "ref_float64": (9180, 230, 0.01, 256, "float64"),
    "ref_10%": (9180, 230, 0.1, 256, "float32"),
    "wide": (200_000, 20_000, 0.0005, 64, "float32"),
    "quick": (300, 20, 0.05, 16, "float32"),
}
KERNELS = ("forward", "input_grad", "values_grad")


def compile_version(name: str, source: str) -> types.ModuleType:
    """`source` (a version of csr_cpu.py) as a module, compiled uncached."""
    if "cache=True" not in source:
        raise ValueError(f"{name}: no 'cache=True' to switch off in {PATH}")
    module = types.ModuleType(f"csr_cpu_{name}")
    sys.modules[module.__name__] = module
    code = compile(source.replace("cache=True", "cache=False"), module.__name__, "exec")
    exec(code, module.__dict__)
    return module


def calls(module: types.ModuleType, plan, x, dy, v, n_in: int, n_out: int) -> dict:
    return {
        "forward": lambda: module.spmm(x, v, *plan.arrays, n_out),
        "input_grad": lambda: module.spmm_t(dy, v, *plan.arrays, n_in),
        "values_grad": lambda: module.sddmm(x, dy, *plan.arrays),
    }


def run_case(name: str, versions: dict, rounds: int, gap_ms: float = 0.0) -> dict:
    n_in, n_out, density, batch, dtype = CASES[name]
    conn = random_connectivity(n_in, n_out, density=density, seed=0)
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    dy = rng.standard_normal((batch, n_out)).astype(dtype)
    v = rng.standard_normal(conn.nnz).astype(dtype)
    fns = {
        (version, kernel): fn
        for version, module in versions.items()
        for kernel, fn in calls(module, plan, x, dy, v, n_in, n_out).items()
    }
    outputs = {key: fn() for key, fn in fns.items()}  # also compiles
    diff = {
        k: float(np.max(np.abs(outputs[("base", k)] - outputs[("tree", k)]), initial=0))
        for k in KERNELS
    }
    times: dict = {key: [] for key in fns}
    order = list(fns)
    for r in range(rounds):
        random.Random(r).shuffle(order)
        for key in order:
            fns[key]()  # one untimed call: the switch between kernels
            if gap_ms:  # as inside a step: the call starts after an idle gap
                time.sleep(gap_ms / 1e3)
            t0 = time.perf_counter()
            fns[key]()
            times[key].append(time.perf_counter() - t0)
    ms = {key: statistics.median(t) * 1e3 for key, t in times.items()}
    return {
        "case": name,
        "n_in": n_in,
        "n_out": n_out,
        "density": density,
        "batch": batch,
        "dtype": dtype,
        "nnz": conn.nnz,
        "base_ms": {k: round(ms[("base", k)], 3) for k in KERNELS},
        "tree_ms": {k: round(ms[("tree", k)], 3) for k in KERNELS},
        "speedup": {k: round(ms[("base", k)] / ms[("tree", k)], 2) for k in KERNELS},
        "max_abs_diff": diff,
        "gap_ms": gap_ms,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=[c for c in CASES if c != "quick"],
        choices=list(CASES),
    )
    parser.add_argument(
        "--rounds", type=int, default=30, help="turns (wide: a quarter)"
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="idle milliseconds before each timed call (as inside a training "
        "step; kernel_threads.py measures the gaps there)",
    )
    parser.add_argument("--remark", help="a sentence the report prints under the table")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    base = subprocess.run(
        ["git", "show", f"{args.base}:{PATH}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    revision = subprocess.run(
        ["git", "rev-parse", "--short", args.base],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()
    with open(os.path.join(ROOT, PATH)) as fh:
        tree = fh.read()
    versions = {
        "base": compile_version("base", base),
        "tree": compile_version("tree", tree),
    }
    results = []
    for name in args.cases:
        rounds = max(2, args.rounds // 4) if CASES[name][0] > 100_000 else args.rounds
        results.append(run_case(name, versions, rounds, args.gap_ms))
        print(results[-1], flush=True)
    write_result(
        args.out,
        {
            "command": " ".join(["python"] + sys.argv),
            "base": revision,
            "transpose_sides_tree": [
                getattr(versions["tree"], "_SIDE_F32", None),
                getattr(versions["tree"], "_SIDE_F64", None),
            ],
            "rounds": args.rounds,
            "load_average_at_start": load,
            "cases": results,
            **({"remark": args.remark} if args.remark else {}),
        },
    )


if __name__ == "__main__":
    main()
