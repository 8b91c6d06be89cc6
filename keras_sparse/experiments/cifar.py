"""Training SparseNet / DenseNet on CIFAR with the paper's recipe.

Recipe (Huang et al. 2017, followed by Zhu et al. 2018): SGD with Nesterov
momentum 0.9, batch 64, learning rate 0.1 divided by 10 at 50 % and 75 %
of the epochs (300), weight decay 1e-4, 4-pixel zero padding + random
32x32 crop + horizontal flip, per-channel normalisation with the training
set's mean and standard deviation.

Keras's `SGD(weight_decay=...)` decays the weights outside the momentum
buffer, while the papers' PyTorch code adds the decay to the gradient;
with the paper's constants the two differ only in how decay enters the
momentum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_sparse.datasets.cifar import load_cifar

__all__ = ["load_cifar", "CifarBatches", "train_cifar"]  # load_cifar: re-exported


class CifarBatches(keras.utils.PyDataset):
    """Normalised, optionally augmented CIFAR batches (backend-independent).

    Augmentation: 4-pixel zero padding, a random crop back to the image size
    (32x32 for CIFAR) and a random horizontal flip per image, drawn from
    `numpy.random.default_rng(seed)`. Images are `(n, height, width,
    channels)` uint8.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        mean: np.ndarray,
        std: np.ndarray,
        augment: bool,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.mean, self.std = mean.astype("float32"), std.astype("float32")
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(x))
        if augment:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        ids = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = (self.x[ids].astype("float32") / 255.0 - self.mean) / self.std
        if self.augment:
            height, width = images.shape[1:3]
            padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
            out = np.empty_like(images)
            offsets = self.rng.integers(0, 9, size=(len(ids), 2))
            flips = self.rng.random(len(ids)) < 0.5
            for k, (dy, dx) in enumerate(offsets):
                crop = padded[k, dy : dy + height, dx : dx + width]
                out[k] = crop[:, ::-1] if flips[k] else crop
            images = out
        return images, self.y[ids]

    def on_epoch_end(self) -> None:
        if self.augment:
            self.rng.shuffle(self.order)


def train_cifar(
    model: keras.Model,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    epochs: int = 300,
    batch_size: int = 64,
    learning_rate: float = 0.1,
    weight_decay: float = 1e-4,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = print,
) -> dict[str, float]:
    """Trains `model` with the paper's recipe and returns test metrics.

    Args:
        model: a CIFAR classifier with softmax outputs, e.g.
            `SparseNet.from_name("SparseNet-40-24", num_classes=10)`.
        data: as returned by `load_cifar`.
        epochs, batch_size, learning_rate, weight_decay: the recipe's
            constants (300, 64, 0.1, 1e-4); the learning rate drops by 10x
            after 50 % and 75 % of the steps.
        steps_per_epoch: limit each epoch to this many batches (for smoke
            runs); default: the whole training set.
        seed: seed of the augmentation and shuffling.
        progress: callable receiving one line per epoch, or None.

    Returns:
        `{"test_accuracy": ..., "test_loss": ..., "epochs": ...}`.

    References:
        Huang et al., "Densely Connected Convolutional Networks", CVPR 2017;
        Zhu et al., "Sparsely Aggregated Convolutional Networks", ECCV 2018.
    """
    (x_train, y_train), (x_test, y_test) = data
    pixels = x_train.reshape(-1, x_train.shape[-1]).astype("float64") / 255.0
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    train = CifarBatches(
        x_train, y_train, batch_size, mean, std, augment=True, seed=seed
    )
    test = CifarBatches(x_test, y_test, 256, mean, std, augment=False)
    steps = steps_per_epoch or len(train)
    total = max(1, steps * epochs)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(0.5 * total), int(0.75 * total)],
        [learning_rate, learning_rate * 0.1, learning_rate * 0.01],
    )
    model.compile(
        keras.optimizers.SGD(
            schedule, momentum=0.9, nesterov=True, weight_decay=weight_decay
        ),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = []
    if progress:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: progress(
                    f"epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}, "
                    f"accuracy {logs['accuracy']:.4f}"
                )
            )
        )
    model.fit(
        train, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=callbacks
    )
    loss, accuracy = model.evaluate(test, verbose=0)
    return {
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "epochs": epochs,
    }
