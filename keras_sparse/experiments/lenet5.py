"""LeNet-5 with the original C3 table vs a full C3, on Fashion-MNIST."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_sparse.models.lenet5 import build_lenet5
from keras_sparse.models.utils import trainable_param_count

__all__ = ["run_lenet5_comparison"]


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._t0)


def run_lenet5_comparison(
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    epochs: int = 3,
    batch_size: int = 128,
    seed: int = 0,
    progress: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Trains both LeNet-5 variants on the same data, same seed, same budget.

    Args:
        data: `((x_train, y_train), (x_test, y_test))`, uint8 images
            `(n, 28, 28)` and integer labels.
        epochs, batch_size, seed: training settings (Adam, lr 1e-3).
        progress: callable receiving one line per finished model, or None.

    Returns:
        One dict per model: `model`, `test_accuracy`, `trainable_params`,
        `c3_params`, `seconds_per_epoch` (mean over epochs after the first,
        which includes compilation, when there are several).
    """
    (x_train, y_train), (x_test, y_test) = data
    x_train = (x_train.astype("float32") / 255.0)[..., None]
    x_test = (x_test.astype("float32") / 255.0)[..., None]
    rows = []
    for variant, label in (
        ("lenet5", "LeNet-5, C3 table (60 of 96 kernels)"),
        ("full", "LeNet-5, full C3"),
    ):
        keras.utils.set_random_seed(seed)
        model = build_lenet5(variant)
        model.compile(
            keras.optimizers.Adam(1e-3),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        timer = _EpochTimer()
        model.fit(
            x_train,
            y_train,
            epochs=epochs,
            batch_size=batch_size,
            verbose=0,
            callbacks=[timer],
        )
        _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
        per_epoch = timer.seconds[1:] or timer.seconds
        row = {
            "model": label,
            "test_accuracy": float(accuracy),
            "trainable_params": trainable_param_count(model),
            "c3_params": int(model.get_layer("C3").count_params()),
            "seconds_per_epoch": float(np.mean(per_epoch)),
        }
        rows.append(row)
        if progress:
            progress(
                f"{label:38s} test accuracy {row['test_accuracy']:.4f}  params "
                f"{row['trainable_params']:,} (C3 {row['c3_params']:,})  "
                f"{row['seconds_per_epoch']:.1f} s/epoch"
            )
    return rows
