"""End-to-end experiments built on the library (used by the command line)."""

from keras_sparse.experiments.pathways import (
    ComparisonResult,
    ExperimentConfig,
    run_pathway_experiment,
)
from keras_sparse.experiments.study import (
    STUDIES,
    StudyConfig,
    StudyResult,
    group_permuter,
    run_study,
)

__all__ = [
    "STUDIES",
    "ComparisonResult",
    "ExperimentConfig",
    "StudyConfig",
    "StudyResult",
    "group_permuter",
    "run_pathway_experiment",
    "run_study",
]
