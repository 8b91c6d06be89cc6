"""keras-sparse: sparsely connected Keras 3 layers for TensorFlow, JAX and PyTorch.

The public names are imported on first use (PEP 562), so that importing the
package (e.g. the `keras-sparse` command's `--help`) does not import Keras
and its backend before the backend is chosen.
"""

from __future__ import annotations

import importlib
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
