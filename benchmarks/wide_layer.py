"""Training step and peak memory of very wide SparseDense layers.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/wide_layer.py --impl csr \
        --out benchmarks/results/wide_layer_jax_csr.json

Cases: 200,000 -> 20,000 with 2,000,000 connections at batch 64, and
1,000,000 -> 50,000 with 10,000,000 connections at batch 32 (a masked dense
kernel would need 16 GB and 200 GB). One implementation per process, so the
peak resident memory (ru_maxrss) belongs to that implementation alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import environment, median_seconds, peak_rss_mb  # noqa: E402

from keras_sparse import SparseDense  # noqa: E402
from keras_sparse.connectivity import random_connectivity  # noqa: E402

CASES = {"2M": (200_000, 20_000, 2_000_000, 64), "10M": (1_000_000, 50_000, 10_000_000, 32)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=sorted(CASES), default="2M")
    parser.add_argument("--impl", default="auto", choices=["auto", "sparse", "csr"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    n_in, units, nnz, batch = CASES[args.case]
    conn = random_connectivity(n_in, units, nnz=nnz, seed=0)
    rss_before = peak_rss_mb()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in)).astype("float32")
    y = rng.standard_normal((batch, units)).astype("float32")
    layer = SparseDense(units, conn, implementation=args.impl)
    model = keras.Sequential([keras.Input((n_in,)), layer])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    step = median_seconds(lambda: model.train_on_batch(x, y), args.steps, args.warmup)
    result = dict(
        case=args.case,
        n_in=n_in,
        units=units,
        nnz=nnz,
        batch=batch,
        implementation=layer.resolved_implementation,
        step_ms=round(step * 1e3, 1),
        peak_rss_mb=round(peak_rss_mb()),
        rss_before_model_mb=round(rss_before),
    )
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(meta=environment(), result=result), fh, indent=1)


if __name__ == "__main__":
    main()
