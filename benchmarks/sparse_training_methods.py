"""GMP vs RigL vs SET vs static sparse on Fashion-MNIST (LeNet-300-100 MLP).

    KERAS_BACKEND=jax .venv/bin/python benchmarks/sparse_training_methods.py \
        --out benchmarks/results/sparse_training_methods_jax.json

MLP 784-300-100-10 (ReLU, softmax), Adam 1e-3, batch 128, the first
`--train` training images for `--epochs` epochs, test accuracy on all 10,000
test images, at each `--densities` (ERK layer budgets for every method):

- static: random connectivity at the ERK densities, never changed;
- SET: the same start, 30 % of each layer replaced every `--update-interval`
  steps (default 25) until 75 % of training (random regrowth);
- RigL: the same start and schedule, cosine-decayed fraction, growth by the
  dense gradient of a 128-image batch from the training set;
- GMP: dense start (`sparsify(model, 1.0, mutable_connectivity=True)`),
  cubic schedule from step 0 to 75 % of training, same interval, ERK final
  densities, then `compact` (accuracy of the compacted model).

One seed per cell: a short, small run, not the papers' setting.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_result  # noqa: E402

from keras_sparse.connectivity import random_connectivity  # noqa: E402
from keras_sparse.datasets import load_fashion_mnist  # noqa: E402
from keras_sparse.layers import SparseDense  # noqa: E402
from keras_sparse.training import (  # noqa: E402
    SET,
    GradualMagnitudePruning,
    RigL,
    compact,
    layer_densities,
    sparsify,
)

SIZES = (784, 300, 100, 10)
NAMES = ("fc1", "fc2", "out")


def compile_(model: keras.Model) -> None:
    model.compile(
        keras.optimizers.Adam(1e-3),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def sparse_model(densities: dict, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers: list = [keras.Input((784,))]
    for k, name in enumerate(NAMES):
        conn = random_connectivity(
            SIZES[k], SIZES[k + 1], density=densities[name], seed=seed * 10 + k
        )
        activation = "softmax" if name == "out" else "relu"
        layers.append(
            SparseDense(
                SIZES[k + 1],
                conn,
                activation=activation,
                name=name,
                mutable_connectivity=True,
            )
        )
    return keras.Sequential(layers)


def dense_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((784,))]
        + [
            keras.layers.Dense(
                SIZES[k + 1], activation="softmax" if n == "out" else "relu", name=n
            )
            for k, n in enumerate(NAMES)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.02])
    parser.add_argument(
        "--methods", nargs="+", default=["static", "set", "rigl", "gmp"]
    )
    parser.add_argument("--update-interval", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x = x_train[: args.train].reshape(args.train, -1).astype("float32") / 255.0
    y = y_train[: args.train].astype("int32")
    xt = x_test.reshape(len(x_test), -1).astype("float32") / 255.0
    yt = y_test.astype("int32")
    steps = args.epochs * (-(-args.train // 128))
    end = int(0.75 * steps)
    shapes = {n: (SIZES[k], SIZES[k + 1]) for k, n in enumerate(NAMES)}

    rows = []
    for density in args.densities:
        budget = layer_densities(shapes, density, "erk")
        for method in args.methods:
            if method == "gmp":
                model = sparsify(dense_model(args.seed), 1.0, mutable_connectivity=True)
                callbacks = [
                    GradualMagnitudePruning(
                        density,
                        begin_step=0,
                        end_step=end,
                        frequency=args.update_interval,
                        distribution="erk",
                    )
                ]
            else:
                model = sparse_model(budget, args.seed)
                callbacks = {
                    "static": [],
                    "set": [
                        SET(0.3, args.update_interval, end_step=end, seed=args.seed)
                    ],
                    "rigl": [
                        RigL(
                            0.3,
                            args.update_interval,
                            end_step=end,
                            data=(x, y),
                            batch_size=128,
                            seed=args.seed,
                        )
                    ],
                }[method]
            compile_(model)
            t0 = time.perf_counter()
            model.fit(
                x, y, batch_size=128, epochs=args.epochs, verbose=0, callbacks=callbacks
            )
            seconds = time.perf_counter() - t0
            if method == "gmp":
                model = compact(model)
            _, acc = model.evaluate(xt, yt, batch_size=1000, verbose=0)
            nnz = {n: model.get_layer(n).nnz for n in NAMES}
            row = {
                "density": density,
                "method": method,
                "test_accuracy": round(float(acc), 4),
                "train_seconds": round(seconds, 1),
                "nnz": nnz,
                "updates": len({r["step"] for cb in callbacks for r in cb.history}),
            }
            print(row, flush=True)
            rows.append(row)
    write_result(
        args.out,
        {
            "setting": (
                f"MLP 784-300-100-10, Adam 1e-3, batch 128, {args.train} training "
                f"images, {args.epochs} epochs ({steps} steps; updates every "
                f"{args.update_interval} "
                f"steps until step {end}), ERK budgets, seed {args.seed}"
            ),
            "rows": rows,
            "command": "KERAS_BACKEND="
            + keras.backend.backend()
            + " .venv/bin/python benchmarks/sparse_training_methods.py",
        },
    )


if __name__ == "__main__":
    main()
