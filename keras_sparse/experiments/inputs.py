"""Moved to `keras_sparse.cli.inputs` (the readers are command-line code)."""

from keras_sparse.cli.inputs import (  # noqa: F401
    InputFileError,
    Labels,
    read_expression,
    read_gene_sets,
    read_labels,
    summarize_labels,
)
