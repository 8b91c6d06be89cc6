"""The `keras-sparse` command line (`keras_sparse.cli.main`)."""

from keras_sparse.cli.main import main

__all__ = ["main"]
