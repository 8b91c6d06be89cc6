"""A short real run: a small SparseNet on Fashion-MNIST (offline data).

    KERAS_BACKEND=tensorflow .venv/bin/python examples/sparsenet_fashion_mnist.py --epochs 3

Needs Debian's dataset-fashion-mnist (or KERAS_SPARSE_FASHION_MNIST_DIR).
Uses the paper's CIFAR recipe (SGD + Nesterov, lr 0.1 / 10 at 50 % and 75 %,
weight decay 1e-4, pad-4 crop + flip) on 28x28x1 images.
"""

import argparse
import json

import keras

from keras_sparse.datasets import load_fashion_mnist
from keras_sparse.experiments.cifar import train_cifar
from keras_sparse.models import SparseNet

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--depth", type=int, default=22)
parser.add_argument("--growth-rate", type=int, default=12)
args = parser.parse_args()

(x_train, y_train), (x_test, y_test) = load_fashion_mnist()
data = ((x_train[..., None], y_train.astype("int64")), (x_test[..., None], y_test.astype("int64")))
keras.utils.set_random_seed(0)
model = SparseNet(depth=args.depth, growth_rate=args.growth_rate, num_classes=10, input_shape=(28, 28, 1))

metrics = train_cifar(model, data, epochs=args.epochs, batch_size=64)
print(json.dumps(dict(metrics, backend=keras.backend.backend(), depth=args.depth,
                      growth_rate=args.growth_rate, params=model.count_params())))
