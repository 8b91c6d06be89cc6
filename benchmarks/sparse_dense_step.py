"""Training-step and forward time of `SparseDense` kernels vs masked dense.

Run one backend per process (Keras reads KERAS_BACKEND at import):

    KERAS_BACKEND=jax .venv/bin/python benchmarks/sparse_dense_step.py \
        --out benchmarks/results/sparse_dense_step_jax.json

or all three and the Markdown table in one go:

    bash benchmarks/run_sparse_dense_step.sh

Each case is a model `Input(n_in) -> SparseDense(units)` trained with
`train_on_batch` (SGD, MSE) under the backend's default jit; the time is
the median of `--steps` steps after `--warmup` steps. "masked_dense" is the
layer users write today: a full trainable kernel multiplied by a 0/1 mask.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import environment, median_seconds, time_model  # noqa: E402

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-in", type=int, default=9180)
    parser.add_argument("--units", type=int, default=230)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--densities", type=float, nargs="+", default=[0.001, 0.01, 0.05, 0.2, 1.0]
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--max-sparse-work",
        type=float,
        default=6e7,
        help="skip the forced sparse kernel when nnz * batch exceeds this (memory)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = []
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.n_in)).astype("float32")
    y = rng.standard_normal((args.batch, args.units)).astype("float32")
    for density in args.densities:
        conn = random_connectivity(args.n_in, args.units, density=density, seed=0)
        cases = {
            "masked_dense": lambda conn=conn: MaskedDense(conn.to_dense()),
            "keras_dense": lambda: keras.layers.Dense(args.units),
            "sparse_dense[sparse]": lambda conn=conn: SparseDense(args.units, conn, implementation="sparse"),
            "sparse_dense[csr]": lambda conn=conn: SparseDense(args.units, conn, implementation="csr"),
            "sparse_dense[dense]": lambda conn=conn: SparseDense(args.units, conn, implementation="dense"),
            "sparse_dense[auto]": lambda conn=conn: SparseDense(args.units, conn),
        }
        for name, make in cases.items():
            if name == "sparse_dense[sparse]" and conn.nnz * args.batch > args.max_sparse_work:
                print(f"skip {name} at density {density}: nnz*batch above --max-sparse-work")
                rows.append(dict(case=name, density=density, nnz=conn.nnz, step_ms=None, forward_ms=None))
                continue
            model = keras.Sequential([keras.Input((args.n_in,)), make()])
            model.compile(keras.optimizers.SGD(1e-3), "mse")
            step, fwd = time_model(model, x, y, args.steps, args.warmup)
            rows.append(
                dict(case=name, density=density, nnz=conn.nnz, step_ms=step * 1e3, forward_ms=fwd * 1e3)
            )
            print(f"{keras.backend.backend():10s} density={density:<6} {name:22s} "
                  f"step {step * 1e3:8.2f} ms  forward {fwd * 1e3:8.2f} ms", flush=True)
        # The floor of the issue: SciPy's CSR product with the batch laid out
        # contiguously per connection (x transposed beforehand, not timed).
        w_t = conn.to_scipy().T.tocsr().astype(np.float32)
        x_t = np.ascontiguousarray(x.T)
        floor = median_seconds(lambda: w_t @ x_t, args.steps, args.warmup)
        rows.append(dict(case="scipy_csr_forward_floor", density=density, nnz=conn.nnz,
                         step_ms=None, forward_ms=floor * 1e3))
        print(f"{'scipy':10s} density={density:<6} {'scipy_csr_forward_floor':22s} "
              f"forward {floor * 1e3:8.2f} ms", flush=True)
    meta = dict(environment(), n_in=args.n_in, units=args.units, batch=args.batch)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(meta=meta, rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
