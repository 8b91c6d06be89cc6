"""CIFAR-10 / CIFAR-100 from local "python version" files or keras.datasets."""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

__all__ = ["load_cifar"]


def _read_pickle(path: str) -> dict[Any, Any]:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


def _as_images(data: np.ndarray) -> np.ndarray:
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def load_cifar(
    dataset: str = "cifar10", data_dir: str | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads CIFAR-10 or CIFAR-100 (fine labels).

    Args:
        dataset: `"cifar10"` or `"cifar100"`.
        data_dir: optional folder holding the extracted "python version"
            archives (`cifar-10-batches-py/` with `data_batch_1..5` and
            `test_batch`, or `cifar-100-python/` with `train` and `test`),
            or those files directly. Without it, `keras.datasets` downloads
            the data into Keras's cache.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 `(n, 32, 32, 3)`
        images and int64 `(n,)` labels.

    Raises:
        ValueError: for an unknown `dataset`.
        FileNotFoundError: when `data_dir` lacks the files.
        RuntimeError: when the download fails (e.g. offline) and no
            `data_dir` was given; the message says how to provide the data.
    """
    if dataset not in ("cifar10", "cifar100"):
        raise ValueError(
            f"`dataset` must be 'cifar10' or 'cifar100'. Received: dataset={dataset!r}"
        )
    if data_dir is None:
        import keras

        module = (
            keras.datasets.cifar10 if dataset == "cifar10" else keras.datasets.cifar100
        )
        try:
            (x_train, y_train), (x_test, y_test) = module.load_data()
        except Exception as err:  # noqa: BLE001 - any download failure
            raise RuntimeError(
                f"Could not download {dataset} with keras.datasets ({err}). When "
                "offline, download the 'python version' archive from "
                "https://www.cs.toronto.edu/~kriz/cifar.html elsewhere, extract it, "
                "and pass its folder with --data-dir."
            ) from None
        return (x_train, y_train.reshape(-1).astype(np.int64)), (
            x_test,
            y_test.reshape(-1).astype(np.int64),
        )
    sub = "cifar-10-batches-py" if dataset == "cifar10" else "cifar-100-python"
    folder = (
        os.path.join(data_dir, sub)
        if os.path.isdir(os.path.join(data_dir, sub))
        else data_dir
    )
    if dataset == "cifar10":
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, label_key = ["test_batch"], b"labels"
    else:
        train_files, test_files, label_key = ["train"], ["test"], b"fine_labels"
    missing = [
        f
        for f in train_files + test_files
        if not os.path.isfile(os.path.join(folder, f))
    ]
    if missing:
        raise FileNotFoundError(
            f"{folder!r} lacks the {dataset} files {missing}; expected the extracted "
            f"'python version' archive ({sub}/)."
        )

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_read_pickle(os.path.join(folder, f)) for f in files]
        x = np.concatenate([_as_images(p[b"data"]) for p in parts])
        y = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
        return x, y

    return read(train_files), read(test_files)
