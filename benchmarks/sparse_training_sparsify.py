"""One-shot `sparsify` + fine-tune curve on Fashion-MNIST (LeNet-300-100 MLP).

    KERAS_BACKEND=jax .venv/bin/python benchmarks/sparse_training_sparsify.py \
        --out benchmarks/results/sparse_training_sparsify_jax.json

A dense MLP 784-300-100-10 (ReLU, softmax) is trained with Adam on the first
`--train` Fashion-MNIST training images for `--epochs` epochs; then, for each
density, `sparsify` (uniform or ERK, layer-wise largest |w|) makes a sparse
copy, whose test accuracy (all 10,000 test images) is measured before and
after `--finetune-epochs` epochs of fine-tuning with the same optimizer
settings. Also reported: the `compression_report` of each copy and the wall
time of `sparsify` and of the fine-tuning.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import write_result  # noqa: E402

from keras_sparse.datasets import load_fashion_mnist  # noqa: E402
from keras_sparse.training import compression_report, sparsify  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument(
        "--densities", type=float, nargs="+", default=[0.5, 0.2, 0.1, 0.05, 0.02]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x_train = x_train[: args.train].reshape(args.train, -1).astype("float32") / 255.0
    y_train = y_train[: args.train].astype("int32")
    x_test = x_test.reshape(len(x_test), -1).astype("float32") / 255.0
    y_test = y_test.astype("int32")

    def compile_(model):
        model.compile(
            keras.optimizers.Adam(1e-3),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    keras.utils.set_random_seed(args.seed)
    dense = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(300, activation="relu", name="fc1"),
            keras.layers.Dense(100, activation="relu", name="fc2"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    compile_(dense)
    t0 = time.perf_counter()
    dense.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0)
    dense_seconds = time.perf_counter() - t0
    _, dense_acc = dense.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    print({"dense_test_accuracy": round(float(dense_acc), 4)}, flush=True)

    rows = []
    for distribution in ("uniform", "erk"):
        for density in args.densities:
            t0 = time.perf_counter()
            sparse = sparsify(dense, density, distribution=distribution)
            sparsify_seconds = time.perf_counter() - t0
            compile_(sparse)
            _, acc0 = sparse.evaluate(x_test, y_test, batch_size=1000, verbose=0)
            t0 = time.perf_counter()
            sparse.fit(
                x_train, y_train, batch_size=128, epochs=args.finetune_epochs, verbose=0
            )
            finetune_seconds = time.perf_counter() - t0
            _, acc1 = sparse.evaluate(x_test, y_test, batch_size=1000, verbose=0)
            report = compression_report(dense, sparse)
            row = {
                "distribution": distribution,
                "density": density,
                "nnz": {n: sparse.get_layer(n).nnz for n in ("fc1", "fc2", "out")},
                "test_accuracy_one_shot": round(float(acc0), 4),
                "test_accuracy_finetuned": round(float(acc1), 4),
                "parameters": int(report.loc["parameters", "after"]),
                "keras_file_bytes": int(report.loc["keras_file_bytes", "after"]),
                "sparsify_seconds": round(sparsify_seconds, 2),
                "finetune_seconds": round(finetune_seconds, 1),
            }
            print(row, flush=True)
            rows.append(row)
    write_result(
        args.out,
        {
            "setting": (
                f"MLP 784-300-100-10, Adam 1e-3, batch 128, {args.train} training "
                f"images, {args.epochs} dense epochs, {args.finetune_epochs} "
                "fine-tune epoch(s), 10,000 test images"
            ),
            "dense_test_accuracy": round(float(dense_acc), 4),
            "dense_parameters": dense.count_params(),
            "dense_train_seconds": round(dense_seconds, 1),
            "rows": rows,
            "command": "KERAS_BACKEND="
            + keras.backend.backend()
            + " .venv/bin/python benchmarks/sparse_training_sparsify.py",
        },
    )


if __name__ == "__main__":
    main()
