import gzip

import numpy as np
import pytest

from keras_sparse.datasets import load_fashion_mnist
from keras_sparse.experiments.lenet5 import run_lenet5_comparison
from keras_sparse.models import build_lenet5


def write_idx(folder, name, array, images):
    header = (2051 if images else 2049).to_bytes(4, "big") + len(array).to_bytes(
        4, "big"
    )
    if images:
        header += array.shape[1].to_bytes(4, "big") + array.shape[2].to_bytes(4, "big")
    with gzip.open(folder / name, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion(tmp_path):
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 10, 64), rng.integers(0, 10, 32)
    # Class-dependent brightness so the task is learnable.
    x_train = (rng.random((64, 28, 28)) * 40 + y_train[:, None, None] * 20).astype(
        np.uint8
    )
    x_test = (rng.random((32, 28, 28)) * 40 + y_test[:, None, None] * 20).astype(
        np.uint8
    )
    write_idx(tmp_path, "train-images-idx3-ubyte.gz", x_train, True)
    write_idx(tmp_path, "train-labels-idx1-ubyte.gz", y_train, False)
    write_idx(tmp_path, "t10k-images-idx3-ubyte.gz", x_test, True)
    write_idx(tmp_path, "t10k-labels-idx1-ubyte.gz", y_test, False)
    return tmp_path, (x_train, y_train), (x_test, y_test)


def test_loader_reads_idx_files(fake_fashion):
    folder, (x_train, y_train), (x_test, y_test) = fake_fashion
    (a, b), (c, d) = load_fashion_mnist(folder)
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(b, y_train)
    np.testing.assert_array_equal(c, x_test)
    np.testing.assert_array_equal(d, y_test)


def test_loader_errors(tmp_path, monkeypatch, fake_fashion):
    import keras_sparse.datasets.fashion_mnist as fm

    monkeypatch.setattr(fm, "_PLACES", ())
    monkeypatch.delenv(fm.FASHION_MNIST_ENV_VAR, raising=False)
    with pytest.raises(
        FileNotFoundError, match="apt-get install dataset-fashion-mnist"
    ):
        load_fashion_mnist(tmp_path / "empty")
    folder = fake_fashion[0]
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write((2049).to_bytes(4, "big") + (32).to_bytes(4, "big") + b"\x01" * 5)
    with pytest.raises(ValueError, match="truncated: 5 of 32"):
        load_fashion_mnist(folder)


def test_lenet5_parameter_counts():
    sparse, full = build_lenet5("lenet5"), build_lenet5("full")
    assert sparse.get_layer("C3").count_params() == 1516  # LeCun et al. 1998
    assert full.get_layer("C3").count_params() == 2416
    assert full.count_params() - sparse.count_params() == 900
    with pytest.raises(ValueError, match="`c3` must be"):
        build_lenet5("half")


def test_comparison_runs_on_small_data(fake_fashion):
    _, train, test = fake_fashion
    rows = run_lenet5_comparison((train, test), epochs=1, batch_size=32, progress=None)
    assert [r["c3_params"] for r in rows] == [1516, 2416]
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["seconds_per_epoch"] > 0
