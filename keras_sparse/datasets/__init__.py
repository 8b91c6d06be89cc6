"""Loaders for the real data sets the demos use."""

from keras_sparse.datasets.fashion_mnist import load_fashion_mnist
from keras_sparse.datasets.flu_challenge import (
    FluChallenge,
    fetch_qusage,
    find_qusage_data,
    load_flu_challenge,
)

__all__ = [
    "FluChallenge",
    "fetch_qusage",
    "find_qusage_data",
    "load_fashion_mnist",
    "load_flu_challenge",
]
