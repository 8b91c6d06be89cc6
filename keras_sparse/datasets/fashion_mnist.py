"""Fashion-MNIST from local files (Debian's dataset-fashion-mnist or Keras's cache)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["load_fashion_mnist", "FASHION_MNIST_ENV_VAR"]

FASHION_MNIST_ENV_VAR = "KERAS_SPARSE_FASHION_MNIST_DIR"
_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_PLACES = (
    "/usr/share/datasets/fashion-mnist",  # Debian: dataset-fashion-mnist
    os.path.join(os.path.expanduser("~"), ".keras", "datasets", "fashion-mnist"),
)


def _read_idx(path: Path, images: bool) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    magic = int.from_bytes(raw[:4], "big")
    expected = 2051 if images else 2049
    if magic != expected:
        raise ValueError(f"{path} is not an IDX {'image' if images else 'label'} file.")
    count = int.from_bytes(raw[4:8], "big")
    if images:
        rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        data = np.frombuffer(raw, dtype=np.uint8, offset=16)
        if data.size != count * rows * cols:
            raise ValueError(
                f"{path} is truncated: {data.size} of {count * rows * cols} bytes."
            )
        return data.reshape(count, rows, cols)
    data = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if data.size != count:
        raise ValueError(f"{path} is truncated: {data.size} of {count} labels.")
    return data


def load_fashion_mnist(
    path: str | os.PathLike[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads Fashion-MNIST from its four original `.gz` IDX files.

    Looked up in: `path`, `$KERAS_SPARSE_FASHION_MNIST_DIR`, Debian's
    `/usr/share/datasets/fashion-mnist` (`apt-get install
    dataset-fashion-mnist`), and Keras's cache `~/.keras/datasets/fashion-mnist`.

    Returns:
        `((x_train, y_train), (x_test, y_test))` as in
        `keras.datasets.fashion_mnist.load_data()`: uint8 images `(n, 28, 28)`
        and uint8 labels `(n,)`; 60,000 training and 10,000 test images.

    Raises:
        FileNotFoundError: naming the places looked in and the install command.
        ValueError: for a truncated or foreign file.

    References:
        Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
        Benchmarking Machine Learning Algorithms", arXiv:1708.07747 (2017).
    """
    places = [Path(path)] if path is not None else []
    if os.environ.get(FASHION_MNIST_ENV_VAR):
        places.append(Path(os.environ[FASHION_MNIST_ENV_VAR]))
    places += [Path(p) for p in _PLACES]
    for folder in places:
        if all((folder / f).is_file() for f in _FILES.values()):
            arrays = {
                key: _read_idx(folder / name, images=key.startswith("x"))
                for key, name in _FILES.items()
            }
            return (arrays["x_train"], arrays["y_train"]), (
                arrays["x_test"],
                arrays["y_test"],
            )
    looked = "\n".join(f"  {p}" for p in places)
    raise FileNotFoundError(
        "Could not find the Fashion-MNIST files "
        f"({', '.join(_FILES.values())}); looked in:\n{looked}\n"
        "Install them with `sudo apt-get install dataset-fashion-mnist` "
        "(Debian/Ubuntu), "
        f"or set {FASHION_MNIST_ENV_VAR} to a folder holding the four files."
    )
