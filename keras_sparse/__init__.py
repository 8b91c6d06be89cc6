"""keras-sparse: sparsely connected Keras 3 layers for TensorFlow, JAX and PyTorch."""

from keras_sparse import connectivity, initializers, layers, models, ops
from keras_sparse.connectivity import Connectivity
from keras_sparse.layers import SparseDense

__version__ = "0.1.0"

__all__ = [
    "Connectivity",
    "SparseDense",
    "connectivity",
    "initializers",
    "layers",
    "models",
    "ops",
    "__version__",
]
