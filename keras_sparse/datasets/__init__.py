"""Loaders for the real data sets the demos use."""

from keras_sparse.datasets.cifar import load_cifar
from keras_sparse.datasets.fashion_mnist import load_fashion_mnist
from keras_sparse.datasets.flu_challenge import (
    FluChallenge,
    fetch_qusage,
    find_qusage_data,
    load_flu_challenge,
)
from keras_sparse.datasets.reactome import fetch_reactome, load_reactome
from keras_sparse.datasets.tcga_crc import TcgaCrc, fetch_netsam, load_tcga_crc

__all__ = [
    "FluChallenge",
    "TcgaCrc",
    "fetch_netsam",
    "fetch_qusage",
    "fetch_reactome",
    "find_qusage_data",
    "load_cifar",
    "load_fashion_mnist",
    "load_flu_challenge",
    "load_reactome",
    "load_tcga_crc",
]
