"""`model.fit` epochs of identically built models in one process.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/fit_instances.py \
        --out benchmarks/results/fit_instances_tensorflow.json

Not in `run_all.sh`: a check of `sparse_dense_fit.py`'s method. That
benchmark times models that take turns in one process and reads each
model's median epoch as its cost. Here every kind of model of that
benchmark (`sparse_dense_fit.make_models`: `SparseDense` `auto`, masked
dense, Keras `Dense`, the bias-only floor) is built `--copies` times with
the same settings (9180 -> 230 -> Dense(1), Adam, MSE, 40 batches of 256 from
NumPy arrays, one untimed epoch each), then all take `--rounds` turns of
one epoch in a rotated order. If the epoch depended only on the model,
copies of one kind would agree; `spread` is each kind's slowest copy's
median epoch over its fastest's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_result  # noqa: E402
from sparse_dense_fit import make_models  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--n-in", type=int, default=9180)
    parser.add_argument("--units", type=int, default=230)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    n_in, units, batch = args.n_in, args.units, args.batch
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch * args.batches, n_in)).astype(np.float32)
    y = rng.standard_normal((batch * args.batches, 1)).astype(np.float32)
    models = {}
    for copy in range(args.copies):  # the fit benchmark's models, built alike
        for kind, model in make_models(n_in, units, args.density).items():
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            models[(kind, copy)] = model
    kinds = list(dict.fromkeys(kind for kind, _ in models))
    keys = list(models)
    epochs: dict = {key: [] for key in keys}
    for r in range(args.rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t0 = time.perf_counter()
            models[key].fit(x, y, batch_size=batch, epochs=1, verbose=0)
            epochs[key].append(round(time.perf_counter() - t0, 4))
    rows = []
    for kind in kinds:
        medians = [statistics.median(epochs[(kind, c)]) for c in range(args.copies)]
        rows.append(
            dict(
                case=kind,
                epoch_s_per_copy=[epochs[(kind, c)] for c in range(args.copies)],
                median_epoch_s_per_copy=medians,
                spread=round(max(medians) / min(medians), 2),
            )
        )
        print(rows[-1], flush=True)
    write_result(
        args.out,
        dict(
            density=args.density,
            copies=args.copies,
            rounds=args.rounds,
            shape=[n_in, units],
            batch=batch,
            batches=args.batches,
            load_average=list(os.getloadavg()),
            rows=rows,
        ),
    )


if __name__ == "__main__":
    main()
