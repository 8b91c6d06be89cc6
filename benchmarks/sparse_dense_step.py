"""Training-step and forward time of `SparseDense` kernels vs masked dense.

Run one backend per process (Keras reads KERAS_BACKEND at import):

    KERAS_BACKEND=jax .venv/bin/python benchmarks/sparse_dense_step.py \
        --out benchmarks/results/sparse_dense_step_jax.json

or all three and the Markdown table in one go:

    bash benchmarks/run_all.sh

Each case is a model `Input(n_in) -> SparseDense(units)` trained with
`train_on_batch` (SGD, MSE) under the backend's default jit; the time is
the median of `--steps` calls after `--warmup` calls, the cases of one
density taking turns (`--rounds`) so that foreign load on a shared
machine falls on all of them alike. With `--memory-densities`, each case's
peak resident memory is measured in a process of its own. "masked_dense" is the
layer users write today: a full trainable kernel multiplied by a 0/1 mask;
"step_floor" a model with only a bias (what Keras's step costs around any
product: the ceiling of every speed-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    current_peak_rss_mb,
    environment,
    interleaved_medians,
    reset_peak_rss,
)

from keras_sparse import SparseDense
from keras_sparse.connectivity import random_connectivity


class MaskedDense(keras.layers.Layer):
    """The peer approach: dense kernel * constant mask, then matmul."""

    def __init__(self, mask, **kwargs):
        super().__init__(**kwargs)
        self.mask_np = mask.astype("float32")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=self.mask_np.shape, initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.mask_np.shape[1],), initializer="zeros")

    def call(self, x):
        mask = keras.ops.convert_to_tensor(self.mask_np)
        return keras.ops.matmul(x, self.kernel * mask) + self.bias


class BiasOnly(keras.layers.Layer):
    """The step's floor: a bias added to the first `units` inputs, so that
    `train_on_batch` does everything but the product (data handling, loss,
    gradient, optimizer, logs). No kernel can make a step faster than this."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, x):
        return x[:, : self.units] + self.bias


def make_cases(units, conn):
    """Case name -> layer factory, for one connectivity."""
    return {
        "step_floor": lambda: BiasOnly(units),
        "masked_dense": lambda: MaskedDense(conn.to_dense()),
        "keras_dense": lambda: keras.layers.Dense(units),
        "sparse_dense[sparse]": lambda: SparseDense(units, conn, implementation="sparse"),
        "sparse_dense[csr]": lambda: SparseDense(units, conn, implementation="csr"),
        "sparse_dense[dense]": lambda: SparseDense(units, conn, implementation="dense"),
        "sparse_dense[auto]": lambda: SparseDense(units, conn),
    }


def build_model(n_in, layer):
    model = keras.Sequential([keras.Input((n_in,)), layer])
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    return model


def memory_child(args):
    """Peak resident memory of one case, alone in this process: MiB above
    the resident memory once imports, data and backend tensors exist."""
    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.standard_normal((args.batch, args.n_in)).astype("float32"))
    y = keras.ops.convert_to_tensor(rng.standard_normal((args.batch, args.units)).astype("float32"))
    conn = random_connectivity(args.n_in, args.units, density=args.density, seed=0)
    keras.ops.sum(x)  # runtime initialised before the baseline
    before = reset_peak_rss()
    model = build_model(args.n_in, make_cases(args.units, conn)[args.memory_case]())
    for _ in range(3):
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    print(json.dumps(dict(peak_mb=current_peak_rss_mb() - before)))


def measure_memory(args, density, name):
    """Runs `memory_child` in a fresh process; MiB or None if it failed."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-case", name,
           "--density", str(density), "--batch", str(args.batch),
           "--n-in", str(args.n_in), "--units", str(args.units)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-in", type=int, default=9180)
    parser.add_argument("--units", type=int, default=230)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--densities", type=float, nargs="+", default=[0.001, 0.01, 0.05, 0.2, 1.0]
    )
    parser.add_argument("--steps", type=int, default=25, help="timed calls per case")
    parser.add_argument("--rounds", type=int, default=5, help="turns the cases take")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--max-sparse-work",
        type=float,
        default=6e7,
        help="skip the forced sparse kernel when nnz * batch exceeds this (memory)",
    )
    parser.add_argument(
        "--memory-densities", type=float, nargs="*", default=[],
        help="also measure each case's peak memory at these densities, one process per case",
    )
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--density", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--remark", help="a sentence the report prints under the table")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.memory_case:
        return memory_child(args)
    rows = []
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((args.batch, args.n_in)).astype("float32")
    x = keras.ops.convert_to_tensor(x_np)
    y = keras.ops.convert_to_tensor(rng.standard_normal((args.batch, args.units)).astype("float32"))
    for density in args.densities:
        conn = random_connectivity(args.n_in, args.units, density=density, seed=0)
        cases = make_cases(args.units, conn)
        fns, skipped = {}, []
        for name, make in cases.items():
            if name == "sparse_dense[sparse]" and conn.nnz * args.batch > args.max_sparse_work:
                print(f"skip {name} at density {density}: nnz*batch above --max-sparse-work")
                skipped.append(name)
                continue
            model = build_model(args.n_in, make())
            fns[name + "/step"] = lambda m=model: m.train_on_batch(x, y)
            fns[name + "/forward"] = lambda m=model: m.predict_on_batch(x)
        # The floor of the issue: SciPy's CSR product with the batch laid out
        # contiguously per connection (x transposed beforehand, not timed).
        w_t = conn.to_scipy().T.tocsr().astype(np.float32)
        x_t = np.ascontiguousarray(x_np.T)
        fns["scipy_csr_forward_floor/forward"] = lambda: w_t @ x_t
        med = interleaved_medians(fns, args.steps, args.warmup, args.rounds)
        for name in list(cases) + ["scipy_csr_forward_floor"]:
            step = med.get(name + "/step")
            fwd = med.get(name + "/forward")
            row = dict(case=name, density=density, nnz=conn.nnz,
                       step_ms=None if step is None else step * 1e3,
                       forward_ms=None if fwd is None else fwd * 1e3)
            if (density in args.memory_densities and name in cases
                    and name not in skipped and name != "step_floor"):
                row["peak_mb"] = measure_memory(args, density, name)
            rows.append(row)
            print(f"{keras.backend.backend():10s} density={density:<6} {name:24s} "
                  f"step {_fmt(row['step_ms'])} ms  forward {_fmt(row['forward_ms'])} ms"
                  + (f"  peak {row['peak_mb']:.0f} MiB" if row.get("peak_mb") is not None else ""),
                  flush=True)
    meta = dict(environment(), n_in=args.n_in, units=args.units, batch=args.batch,
                steps=args.steps, rounds=args.rounds, warmup=args.warmup,
                max_sparse_work=args.max_sparse_work,
                **({"remark": args.remark} if args.remark else {}))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(meta=meta, rows=rows), fh, indent=1)


def _fmt(v):
    return "       -" if v is None else f"{v:8.2f}"


if __name__ == "__main__":
    main()
