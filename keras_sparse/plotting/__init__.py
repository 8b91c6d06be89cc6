"""Figures (matplotlib is imported lazily: `pip install "keras-sparse[plot]"`)."""

from keras_sparse.plotting.pathways import plot_pathway_summary

__all__ = ["plot_pathway_summary"]
