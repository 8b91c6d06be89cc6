"""A whole `model.fit` epoch: `SparseDense` (`implementation="auto"`) vs
masked dense, as users see it.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/sparse_dense_fit.py \
        --out benchmarks/results/sparse_dense_fit_torch.json

Model `Input(9180) -> layer(230) -> Dense(1)`, Adam, MSE, `model.fit` on
NumPy arrays of 40 batches of 256 (one epoch, `verbose=0`, the backend's
default jit). For each density the models take turns, one epoch each, for
`--rounds` rounds after one untimed epoch each (compilation), so foreign
load falls on all of them alike; the time is the median epoch. `--data`
also feeds the arrays with `shuffle=False` or as a cached
`tf.data.Dataset` of batches (every model and way of feeding then takes
turns), which shows what Keras's pipeline for NumPy arrays costs. "masked_dense"
is the peer approach (a full kernel times a 0/1 mask,
`sparse_dense_step.MaskedDense`); "keras_dense" a plain `Dense`;
"fit_floor" the same model with only a bias in the layer's place
(`sparse_dense_step.BiasOnly`): what `fit` costs around any product (data
pipeline, head, loss, optimizer), so masked dense's epoch over the floor's
bounds every speed-up (the `ceiling`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_result  # noqa: E402
from sparse_dense_step import BiasOnly, MaskedDense  # noqa: E402

from keras_sparse import SparseDense  # noqa: E402
from keras_sparse.connectivity import random_connectivity  # noqa: E402


def make_models(n_in: int, units: int, density: float) -> dict:
    conn = random_connectivity(n_in, units, density=density, seed=0)
    layers = {
        "sparse_dense[auto]": lambda: SparseDense(units, conn),
        "masked_dense": lambda: MaskedDense(conn.to_dense()),
        "keras_dense": lambda: keras.layers.Dense(units),
        "fit_floor": lambda: BiasOnly(units),
    }
    models = {}
    for name, layer in layers.items():
        model = keras.Sequential([keras.Input((n_in,)), layer(), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        models[name] = model
    return models


# How the data reach `fit` (`--data`): the comparison is on NumPy
# arrays (Keras shuffles them by default); the others show what Keras's
# array pipeline costs on a backend.
DATA = {
    "numpy": "NumPy arrays",
    "numpy_unshuffled": "NumPy arrays, shuffle=False",
    "tf_dataset": "a cached tf.data.Dataset of batches",
}


def fit_functions(data: list[str], x: np.ndarray, y: np.ndarray, batch: int) -> dict:
    """`data` name -> `fn(model)` running one epoch of `fit` on the data
    given that way."""
    fns = {}
    for name in data:
        if name == "numpy":
            fns[name] = lambda m: m.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        elif name == "numpy_unshuffled":
            fns[name] = lambda m: m.fit(
                x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False
            )
        elif name == "tf_dataset":
            import tensorflow as tf

            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
            fns[name] = lambda m, ds=ds: m.fit(ds, epochs=1, verbose=0)
        else:
            raise ValueError(
                "Received an invalid value for `data`, expected one of "
                f"{sorted(DATA)}. Received: data={name!r}"
            )
    return fns


def time_epochs(models: dict, fits: dict, rounds: int) -> dict:
    """(model, data) -> median epoch seconds, all pairs taking turns."""
    pairs = [(name, data) for name in models for data in fits]
    for name, data in pairs:  # compilation, first-call and cache-filling costs
        fits[data](models[name])
    times: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
    for r in range(rounds):
        for name, data in pairs[r % len(pairs) :] + pairs[: r % len(pairs)]:
            t0 = time.perf_counter()
            fits[data](models[name])
            times[(name, data)].append(time.perf_counter() - t0)
    return {pair: statistics.median(t) for pair, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-in", type=int, default=9180)
    parser.add_argument("--units", type=int, default=230)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--densities", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument(
        "--data",
        nargs="+",
        default=["numpy"],
        choices=list(DATA),
        help="how the data reach fit; several take turns in one process",
    )
    parser.add_argument("--out")
    parser.add_argument("--remark", help="a sentence the report prints under the table")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.batch * args.batches
    x = rng.standard_normal((n, args.n_in)).astype(np.float32)
    y = rng.standard_normal((n, 1)).astype(np.float32)
    rows = []
    fits = fit_functions(args.data, x, y, args.batch)
    for density in args.densities:
        models = make_models(args.n_in, args.units, density)
        epoch = time_epochs(models, fits, args.rounds)
        for (name, data), seconds in epoch.items():
            auto = epoch[("sparse_dense[auto]", data)]
            rows.append(
                dict(
                    density=density,
                    data=data,
                    case=name,
                    epoch_s=round(seconds, 4),
                    step_ms=round(1e3 * seconds / args.batches, 3),
                    speedup_of_auto=round(seconds / auto, 2),
                    implementation=(
                        models[name].layers[0].resolved_implementation
                        if name == "sparse_dense[auto]"
                        else None
                    ),
                )
            )
            print(rows[-1], flush=True)
    write_result(
        args.out,
        dict(
            command=" ".join(["python"] + sys.argv),
            setting=(
                f"Input({args.n_in}) -> layer({args.units}) -> Dense(1), Adam, MSE, "
                f"fit on {' / '.join(DATA[d] for d in args.data)}: {args.batches} "
                f"batches of {args.batch}, {args.rounds} alternating epochs per model "
                "and data after one untimed"
            ),
            data=args.data,
            load_average=os.getloadavg(),
            rows=rows,
            **({"remark": args.remark} if args.remark else {}),
        ),
    )


if __name__ == "__main__":
    main()
