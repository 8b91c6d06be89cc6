"""Training-step time of `SparseConv2D` patterns vs a dense `Conv2D`.

One backend per process:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/sparse_conv_step.py \
        --out benchmarks/results/sparse_conv_step_jax.json

Cases: full connectivity, block-diagonal (groups 2, 4, 8, and groups 4
after a random channel permutation, also with the channels permuted by
`keras.ops.take` instead of the backend seam's `take_permutation`, as
before it existed), LeNet-5's C3 table, random at densities 0.25 / 0.5 /
0.75. Each is `Input -> SparseConv2D(3x3 or 5x5)`
trained with `train_on_batch` (SGD, MSE) under the backend's default jit;
the dense `Conv2D` of the same shape is timed in the same run, so the
ratios compare like with like on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import environment, time_model  # noqa: E402

from keras_sparse import Connectivity  # noqa: E402
from keras_sparse.connectivity import (  # noqa: E402
    block_diagonal_connectivity,
    full_connectivity,
    lenet5_c3_connectivity,
    random_connectivity,
)
from keras_sparse.layers import SparseConv2D  # noqa: E402
from keras_sparse.ops import backend  # noqa: E402


def permuted(conn: Connectivity, seed: int) -> Connectivity:
    rng = np.random.default_rng(seed)
    dense = conn.to_dense()
    return Connectivity.from_dense(
        dense[rng.permutation(conn.num_inputs)][:, rng.permutation(conn.num_outputs)]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    c = args.channels
    cases = {
        "full": (full_connectivity(c, c), 3, c),
        "groups=2": (block_diagonal_connectivity(c, c, 2), 3, c),
        "groups=4": (block_diagonal_connectivity(c, c, 4), 3, c),
        "groups=8": (block_diagonal_connectivity(c, c, 8), 3, c),
        "groups=4 permuted": (permuted(block_diagonal_connectivity(c, c, 4), 0), 3, c),
        "groups=4 permuted, keras.ops.take": (
            permuted(block_diagonal_connectivity(c, c, 4), 0), 3, c
        ),
        "random 0.25": (random_connectivity(c, c, density=0.25, seed=0), 3, c),
        "random 0.5": (random_connectivity(c, c, density=0.5, seed=0), 3, c),
        "random 0.75": (random_connectivity(c, c, density=0.75, seed=0), 3, c),
        "LeNet-5 C3 (6->16, 5x5, 14x14)": (lenet5_c3_connectivity(), 5, 6),
    }
    rows = []
    rng = np.random.default_rng(0)
    seam_take = backend.take_permutation
    for name, (conn, k, c_in) in cases.items():
        backend.take_permutation = (
            backend.binding("portable").take_permutation
            if name.endswith("keras.ops.take")
            else seam_take
        )
        size = 14 if c_in == 6 else args.size
        x = rng.standard_normal((args.batch, size, size, c_in)).astype("float32")
        out = size - k + 1
        y = rng.standard_normal((args.batch, out, out, conn.num_outputs)).astype("float32")
        timings = {}
        for label, layer in (
            ("dense Conv2D", keras.layers.Conv2D(conn.num_outputs, k)),
            ("SparseConv2D", SparseConv2D(conn.num_outputs, k, conn)),
        ):
            model = keras.Sequential([keras.Input(x.shape[1:]), layer])
            model.compile(keras.optimizers.SGD(1e-3), "mse")
            timings[label] = time_model(model, x, y, args.steps, args.warmup)
            if label == "SparseConv2D":
                impl = layer.resolved_implementation
        dense_step, sparse_step = timings["dense Conv2D"][0], timings["SparseConv2D"][0]
        rows.append(
            dict(
                case=name,
                density=conn.density,
                implementation=impl,
                dense_step_ms=dense_step * 1e3,
                sparse_step_ms=sparse_step * 1e3,
                speedup=dense_step / sparse_step,
            )
        )
        print(
            f"{keras.backend.backend():10s} {name:32s} {impl:8s} dense {dense_step * 1e3:7.2f} ms "
            f" sparse {sparse_step * 1e3:7.2f} ms  speed-up x{dense_step / sparse_step:.2f}",
            flush=True,
        )
    meta = dict(environment(), channels=c, size=args.size, batch=args.batch)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(meta=meta, rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
