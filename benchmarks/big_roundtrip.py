"""Save/load of a SparseDense with 10 million connections (issue: trust and scale).

    KERAS_BACKEND=jax .venv/bin/python benchmarks/big_roundtrip.py \
        --out benchmarks/results/big_roundtrip_jax.json

Builds 1,000,000 -> 50,000 with 10,000,000 random connections, saves the
model to `.keras`, loads it back, checks bit-exactness, and reports the
save/load times, the file size against the raw size of indices + weights,
and the size of the JSON config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import environment, peak_rss_mb  # noqa: E402

from keras_sparse import SparseDense  # noqa: E402
from keras_sparse.connectivity import random_connectivity  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-in", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=50_000)
    parser.add_argument("--nnz", type=int, default=10_000_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    conn = random_connectivity(args.n_in, args.units, nnz=args.nnz, seed=0)
    build_s = time.perf_counter() - t0
    model = keras.Sequential([keras.Input((args.n_in,)), SparseDense(args.units, conn)])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.keras")
        t0 = time.perf_counter()
        model.save(path)
        save_s = time.perf_counter() - t0
        size = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            config_bytes = len(zf.read("config.json"))
        t0 = time.perf_counter()
        loaded = keras.saving.load_model(path)
        load_s = time.perf_counter() - t0
    layer, back = model.layers[0], loaded.layers[0]
    exact = bool(
        back.connectivity == conn
        and np.array_equal(
            keras.ops.convert_to_numpy(back.kernel_values),
            keras.ops.convert_to_numpy(layer.kernel_values),
        )
        and np.array_equal(
            keras.ops.convert_to_numpy(back.bias), keras.ops.convert_to_numpy(layer.bias)
        )
    )
    raw = conn.nnz * (conn.input_indices.itemsize + conn.output_indices.itemsize + 4) + args.units * 4
    result = dict(
        nnz=conn.nnz,
        shape=list(conn.shape),
        connectivity_seconds=round(build_s, 2),
        save_seconds=round(save_s, 2),
        load_seconds=round(load_s, 2),
        file_mb=round(size / 2**20, 1),
        raw_mb=round(raw / 2**20, 1),
        file_over_raw=round(size / raw, 3),
        config_json_kb=round(config_bytes / 1024, 2),
        bit_exact=exact,
        peak_rss_mb=round(peak_rss_mb()),
    )
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(meta=environment(), result=result), fh, indent=1)


if __name__ == "__main__":
    main()
