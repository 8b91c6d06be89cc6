"""Training steps with and without the library's kernel thread, in
alternating processes.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/kernel_thread_step.py \
        --out benchmarks/results/kernel_thread_step_tensorflow.json

The kernel thread (`keras_sparse.ops.csr_cpu.set_kernel_thread`) cannot be
switched on and off inside one process and compared there: once several
threads have launched kernels, libgomp keeps a worker team for each and
both settings pay for them. So each `--pairs` pair runs two fresh
processes, kernel thread off then on, each training a 9180 -> 230
`SparseDense(implementation="csr")` model (a `Dense(1)` head, Adam, MSE,
batch 256) at every `--densities` density in turn and reporting the median
`train_on_batch` time over `--steps` steps (after 10 untimed ones).
`speedup` is the median over pairs of off / on; `on_faster_in` counts the
pairs where the kernel thread was faster. This is what
`KERNEL_THREAD` (TensorFlow's binding: on) rests on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DENSITIES = (0.001, 0.01, 0.1)
SHAPE = (9180, 230, 256)  # inputs, outputs, batch
QUICK = (300, 20, 16)  # `--quick` (tests)


def child(
    kernel_thread: bool, densities: list[float], steps: int, shape: tuple
) -> dict:
    import keras
    import numpy as np

    from keras_sparse.connectivity import random_connectivity
    from keras_sparse.layers import SparseDense
    from keras_sparse.ops import csr_cpu

    csr_cpu.set_kernel_thread(kernel_thread)
    n_in, n_out, batch = shape
    rng = np.random.default_rng(1)
    x = keras.ops.convert_to_tensor(
        rng.standard_normal((batch, n_in)).astype(np.float32)
    )
    y = keras.ops.convert_to_tensor(rng.standard_normal((batch, 1)).astype(np.float32))
    out = {}
    for density in densities:
        conn = random_connectivity(n_in, n_out, density=density, seed=0)
        model = keras.Sequential(
            [
                keras.Input((n_in,)),
                SparseDense(n_out, conn, implementation="csr"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer="adam", loss="mse")
        for _ in range(10):
            model.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - t0)
        out[str(density)] = statistics.median(times) * 1e3
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--densities", type=float, nargs="+", default=DENSITIES)
    parser.add_argument("--quick", action="store_true", help="tiny layer (tests)")
    parser.add_argument("--remark", help="a sentence the report prints")
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.child:
        shape = QUICK if args.quick else SHAPE
        result = child(args.child == "on", args.densities, args.steps, shape)
        print(json.dumps(result))
        return
    from common import child_json, write_result

    load = os.getloadavg()
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.pairs):
        for setting in ("off", "on"):
            cmd = [
                sys.executable, os.path.abspath(__file__), "--child", setting,
                "--steps", str(args.steps), "--densities",
                *[str(d) for d in args.densities],
            ] + (["--quick"] if args.quick else [])  # fmt: skip
            runs[setting].append(child_json(cmd, f"the {setting!r} run"))
    rows = []
    for density in args.densities:
        key = str(density)
        off = [r[key] for r in runs["off"]]
        on = [r[key] for r in runs["on"]]
        rows.append(
            {
                "density": density,
                "off_ms": [round(t, 3) for t in off],
                "on_ms": [round(t, 3) for t in on],
                "off_median_ms": round(statistics.median(off), 3),
                "on_median_ms": round(statistics.median(on), 3),
                "speedup": round(
                    statistics.median(a / b for a, b in zip(off, on, strict=True)), 2
                ),
                "on_faster_in": sum(b < a for a, b in zip(off, on, strict=True)),
            }
        )
    import numba

    write_result(
        args.out,
        {
            "command": " ".join(["python"] + sys.argv),
            "shape": list(QUICK if args.quick else SHAPE),
            "pairs": args.pairs,
            "steps": args.steps,
            "numba_threads": numba.get_num_threads(),
            "cpus_allowed": len(os.sched_getaffinity(0)),
            "load_average_at_start": load,
            "rows": rows,
            **({"remark": args.remark} if args.remark else {}),
        },
    )


if __name__ == "__main__":
    main()
