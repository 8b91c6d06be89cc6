"""End-to-end experiments built on the library (used by the command line)."""

from keras_sparse.experiments.pathways import (
    ComparisonResult,
    ExperimentConfig,
    run_pathway_experiment,
)

__all__ = ["ComparisonResult", "ExperimentConfig", "run_pathway_experiment"]
