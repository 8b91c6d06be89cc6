"""Training step and peak memory of very wide sparse layers, and of the peers.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/wide_layer.py --impl csr \
        --out benchmarks/results/wide_layer_jax_2M_csr.json

Cases: 200,000 -> 20,000 with 2,000,000 connections at batch 64, and
1,000,000 -> 50,000 with 10,000,000 connections at batch 32 (a masked dense
kernel would need 16 GB and 200 GB). `--impl` is a `SparseDense`
implementation (`auto`, `csr`, `sparse` = the plain `keras.ops` gather +
segment-sum) or a peer of `benchmarks/peers.py` (framework sparse ops,
the PyPI `sparselinear` layer). One implementation per process, so the
peak resident memory belongs to it alone; the process's address space is
capped (`--max-memory-gb`) so that a peer which densifies fails with an
error in the results instead of exhausting the machine. Before timing, the
layer's output on a small problem is checked against NumPy.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import traceback

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median_seconds, peak_rss_mb, write_result  # noqa: E402
from peers import PEERS, make_peer  # noqa: E402

from keras_sparse import SparseDense  # noqa: E402
from keras_sparse.connectivity import random_connectivity  # noqa: E402

CASES = {
    "2M": (200_000, 20_000, 2_000_000, 64),
    "10M": (1_000_000, 50_000, 10_000_000, 32),
    "quick": (3_000, 200, 6_000, 8),  # tests of the harness, not a benchmark
}


def make_layer(impl, conn):
    if impl in PEERS:
        return make_peer(impl, conn)
    return SparseDense(conn.num_outputs, conn, implementation=impl)


def check_against_numpy(impl, gradient=False):
    """The layer computes x @ W + bias on a small problem (raises if not);
    with `gradient`, also one SGD step's change of the values (sparselinear:
    forward only)."""
    conn = random_connectivity(300, 40, density=0.05, seed=1)
    layer = make_layer(impl, conn)
    model = keras.Sequential([keras.Input((300,)), layer])
    x = np.random.default_rng(1).standard_normal((8, 300)).astype("float32")
    weights = {w.path.split("/")[-1]: keras.ops.convert_to_numpy(w) for w in layer.weights}
    if impl == "sparselinear":
        module = layer.module  # indices: (2, nnz) rows (output, input); weights: values
        out_idx, in_idx = module.indices.numpy()
        w = np.zeros(conn.shape, "float32")
        w[in_idx, out_idx] = module.weights.detach().numpy()
        expected = x @ w + module.bias.detach().numpy()
    else:
        w = np.zeros(conn.shape, "float32")
        w[conn.input_indices, conn.output_indices] = weights["kernel_values"]
        expected = x @ w + weights["bias"]
    got = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    if gradient and impl != "sparselinear":
        # One SGD step on sum(y * g) / n: values move by -lr * (x.T @ g)[in, out] / n.
        g = np.random.default_rng(2).standard_normal(expected.shape).astype("float32")
        model.compile(keras.optimizers.SGD(1.0), lambda y_true, y_pred: keras.ops.sum(
            y_pred * y_true, axis=-1))
        before = keras.ops.convert_to_numpy(layer.kernel_values)
        model.train_on_batch(x, g)
        moved = before - keras.ops.convert_to_numpy(layer.kernel_values)
        want = (x.T @ g)[conn.input_indices, conn.output_indices] / len(x)
        np.testing.assert_allclose(moved, want, rtol=1e-3, atol=1e-4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=sorted(CASES), default="2M")
    parser.add_argument("--impl", default="auto", choices=["auto", "sparse", "csr"] + sorted(PEERS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-memory-gb", type=float, default=16.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    limit = int(args.max_memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    n_in, units, nnz, batch = CASES[args.case]
    result = dict(case=args.case, n_in=n_in, units=units, nnz=nnz, batch=batch,
                  implementation=args.impl, step_ms=None)
    try:
        check_against_numpy(args.impl)
        conn = random_connectivity(n_in, units, nnz=nnz, seed=0)
        rng = np.random.default_rng(0)
        x = keras.ops.convert_to_tensor(rng.standard_normal((batch, n_in)).astype("float32"))
        y = keras.ops.convert_to_tensor(rng.standard_normal((batch, units)).astype("float32"))
        rss_before = peak_rss_mb()
        layer = make_layer(args.impl, conn)
        model = keras.Sequential([keras.Input((n_in,)), layer])
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        step = median_seconds(lambda: model.train_on_batch(x, y), args.steps, args.warmup)
        if isinstance(layer, SparseDense):
            result["implementation"] = f"{args.impl} ({layer.resolved_implementation})" \
                if args.impl == "auto" else args.impl
        result.update(step_ms=round(step * 1e3, 1), rss_before_model_mb=round(rss_before))
    except Exception as exc:  # recorded in the table: a peer that cannot train the case
        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    result["peak_rss_mb"] = round(peak_rss_mb())
    write_result(args.out, result)


if __name__ == "__main__":
    main()
