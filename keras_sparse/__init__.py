"""keras-sparse: sparsely connected Keras 3 layers for TensorFlow, JAX and PyTorch.

`import keras_sparse` registers the package's Keras classes (layers,
initializer, models), so that `keras.saving.load_model` finds them. The
`keras-sparse` command (`keras-sparse ...`, `python -m keras_sparse.cli`)
is the exception: there the public names are imported on first use (PEP
562), so that `--help` is instant and the backend is chosen (`--backend`)
before Keras is imported.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "connectivity",
    "initializers",
    "interpret",
    "layers",
    "models",
    "ops",
    "training",
)
_NAMES = {
    "Connectivity": "keras_sparse.connectivity",
    "SparseDense": "keras_sparse.layers",
    "sparsify": "keras_sparse.training",
    "densify": "keras_sparse.training",
}

__all__ = [
    "Connectivity",
    "SparseDense",
    "densify",
    "sparsify",
    *_SUBMODULES,
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_sparse.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'keras_sparse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def _command_line_tool() -> bool:
    """Whether this process is the `keras-sparse` command starting up."""
    argv0 = sys.argv[0] if sys.argv else ""
    # `python -m pkg.mod` shows "-m" while the module is being located.
    return os.path.basename(argv0) == "keras-sparse" or argv0 == "-m"


if not _command_line_tool():
    from keras_sparse import initializers, layers, models  # noqa: E402,F401 (registers)
