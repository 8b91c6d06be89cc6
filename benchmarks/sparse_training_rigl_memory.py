"""Peak memory and time of one RigL update on the 200,000 -> 20,000 layer.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/sparse_training_rigl_memory.py \
        --out benchmarks/results/sparse_training_rigl_memory_jax.json

The layer has 2,000,000 connections (0.05 % of 4e9 positions); its dense
kernel, or its dense gradient, would take 16 GB in float32. One process runs
one update, so the peak resident memory measured belongs to it: the model is
built and trained for one step, the peak is reset (`/proc/self/clear_refs`),
then `RigL` does one update (gradient side pass on one batch, drop by
`|w|`, growth by the blocked `x^T @ dz` with a running top-k, new
connectivity, optimizer slots remapped), and the peak resident memory since
the reset is read (`VmHWM`). The process's address space is capped
(`--max-memory-gb`, default 3) so that an accidental dense gradient fails
instead of exhausting the machine.

If the layers do not accept `mutable_connectivity=True` yet, the script
measures everything except `set_connectivity` and the slot remapping (the
growth selection and the new `Connectivity`) and says so in the result.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import current_peak_rss_mb, reset_peak_rss, write_result  # noqa: E402

from keras_sparse.connectivity import random_connectivity  # noqa: E402
from keras_sparse.layers import SparseDense  # noqa: E402
from keras_sparse.training import RigL  # noqa: E402
from keras_sparse.training import algorithms as alg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-inputs", type=int, default=200_000)
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--nnz", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--drop-fraction", type=float, default=0.3)
    parser.add_argument("--block-size", type=int, default=1 << 22)
    parser.add_argument("--max-memory-gb", type=float, default=3.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    n_in, n_out = args.num_inputs, args.units
    density = args.nnz / (n_in * n_out)
    conn = random_connectivity(n_in, n_out, density=density, seed=0)
    try:
        layer = SparseDense(n_out, conn, name="wide", mutable_connectivity=True)
        mutable = True
    except (TypeError, ValueError):
        layer = SparseDense(n_out, conn, name="wide")
        mutable = False
    model = keras.Sequential([keras.Input((n_in,)), layer, keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch * 2, n_in)).astype("float32")
    y = rng.normal(size=(args.batch * 2, 10)).astype("float32")
    model.fit(x[: args.batch], y[: args.batch], batch_size=args.batch, verbose=0)

    cap = int(args.max_memory_gb * 2**30)
    before = reset_peak_rss()
    # Cap the address space at what is mapped now + the budget.
    with open("/proc/self/status") as fh:
        vm = next(
            int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize")
        )
    resource.setrlimit(resource.RLIMIT_AS, (vm + cap, resource.RLIM_INFINITY))

    cb = RigL(
        drop_fraction=args.drop_fraction,
        update_interval=1,
        end_step=1000,
        data=(x, y),
        batch_size=args.batch,
        block_size=args.block_size,
        seed=0,
    )
    cb.set_model(model)
    t0 = time.perf_counter()
    if mutable:
        cb.on_train_begin()
        cb.on_train_batch_end(0)
        record = cb.history[0]
        part = "whole update (side pass, drop, blocked growth, set_connectivity, slots)"
    else:
        cb._layers = [layer]
        step = 1
        values = keras.ops.convert_to_numpy(layer.kernel_values)
        count = int(np.floor(cb.drop_fraction_at(step) * conn.nnz))
        keep = np.setdiff1d(
            np.arange(conn.nnz), alg.drop_smallest(alg.kernel_scores(values), count)
        )
        grown = cb._grow(step, [(0, layer, keep, count)])[0]
        new, source = alg.rebuild_connectivity(conn, keep, grown)
        record = {"nnz": new.nnz, "grown": int((source < 0).sum()), "dropped": count}
        part = (
            "side pass, drop, blocked growth and the new Connectivity "
            "(layers without mutable_connectivity: set_connectivity and slot "
            "remapping not measured)"
        )
    seconds = time.perf_counter() - t0
    peak = current_peak_rss_mb()
    dense_gradient_gb = n_in * n_out * 4 / 1e9
    result = {
        "case": f"{n_in} -> {n_out}, nnz {conn.nnz}, batch {args.batch}",
        "measured": part,
        "mutable_connectivity": mutable,
        "update_seconds": round(seconds, 2),
        "rss_before_update_mib": round(before, 1),
        "peak_rss_during_update_mib": round(peak, 1),
        "peak_extra_mib": round(peak - before, 1),
        "address_space_cap_gb_over_baseline": args.max_memory_gb,
        "block_size": args.block_size,
        "grown": record["grown"],
        "nnz_after": record["nnz"],
        "dense_gradient_would_be_gb": round(dense_gradient_gb, 1),
        "command": "KERAS_BACKEND=" + keras.backend.backend() + " .venv/bin/python "
        "benchmarks/sparse_training_rigl_memory.py",
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
