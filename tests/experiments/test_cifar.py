import pickle

import numpy as np
import pytest

from keras_sparse.cli import main
from keras_sparse.experiments.cifar import CifarBatches, load_cifar, train_cifar
from keras_sparse.models.densenet import AggregationNet


@pytest.fixture
def cifar10_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in [(f"data_batch_{i}", 8) for i in range(1, 6)] + [("test_batch", 16)]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
    return tmp_path


def test_load_local_folder(cifar10_dir):
    (x, y), (xt, yt) = load_cifar("cifar10", str(cifar10_dir))
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (40,) and xt.shape == (16, 32, 32, 3) and yt.shape == (16,)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks the cifar100 files"):
        load_cifar("cifar100", str(tmp_path))
    with pytest.raises(ValueError, match="`dataset` must be"):
        load_cifar("svhn", str(tmp_path))


def test_offline_download_failure_is_explained(monkeypatch):
    import keras

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(RuntimeError, match="pass its folder with --data-dir"):
        load_cifar("cifar10")


def test_augmentation_crops_and_flips():
    x = np.arange(2 * 32 * 32 * 3, dtype=np.uint8).reshape(2, 32, 32, 3)
    batches = CifarBatches(
        x, np.zeros(2, np.int64), 2, np.zeros(3), np.ones(3), augment=True
    )
    images, labels = batches[0]
    assert images.shape == (2, 32, 32, 3) and labels.shape == (2,)
    plain = CifarBatches(
        x, np.zeros(2, np.int64), 2, np.zeros(3), np.ones(3), augment=False
    )
    np.testing.assert_allclose(plain[0][0], x.astype("float32") / 255.0)


def test_train_a_few_steps(cifar10_dir):
    data = load_cifar("cifar10", str(cifar10_dir))
    model = AggregationNet(
        depth=7, growth_rate=2, num_classes=10, input_shape=(32, 32, 3)
    )
    metrics = train_cifar(
        model, data, epochs=1, batch_size=8, steps_per_epoch=2, progress=None
    )
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and np.isfinite(metrics["test_loss"])


def test_cli_missing_data_dir(tmp_path, capsys):
    rc = main(["train-cifar", "--data-dir", str(tmp_path), "--epochs", "1"])
    assert rc == 2
    assert "lacks the cifar10 files" in capsys.readouterr().err
