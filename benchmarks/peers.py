"""The alternatives `SparseDense` is measured against (benchmarks only).

Each peer is a Keras layer computing `x @ W + bias` for the same sparse
`W` (one trainable value per connection, in the connectivity's canonical
order: by output, then input) with a framework's own sparse product, so it
trains with the same `train_on_batch` and optimizer as `SparseDense`:

- `tf_sparse`: `tf.sparse.sparse_dense_matmul` (TensorFlow);
- `jax_bcoo`, `jax_bcsr`: `jax.experimental.sparse` BCOO / BCSR (JAX);
- `torch_sparse_csr`: `torch.sparse.mm` on a CSR tensor (PyTorch);
- `sparselinear`: the PyPI `sparselinear` layer (PyTorch; needs
  `torch-scatter` and `torch-sparse` built from source, so it is not a
  dependency: see benchmarks/README.md).

The plain `keras.ops` gather + segment-sum is `SparseDense(...,
implementation="sparse")` itself.
"""

from __future__ import annotations

import keras
import numpy as np

# peer name -> backend it runs on
PEERS = {
    "tf_sparse": "tensorflow",
    "jax_bcoo": "jax",
    "jax_bcsr": "jax",
    "torch_sparse_csr": "torch",
    "sparselinear": "torch",
}


class _SparsePeer(keras.layers.Layer):
    """Values + bias as Keras weights; `_product(x, values)` per peer."""

    def __init__(self, connectivity, **kwargs):
        super().__init__(**kwargs)
        self.conn = connectivity
        self.units = connectivity.num_outputs
        # canonical order = output-major = CSR of W.T (units, num_inputs)
        self.rows = connectivity.input_indices.astype(np.int32)
        self.cols = connectivity.output_indices.astype(np.int32)

    def build(self, input_shape):
        fan_in = np.maximum(self.conn.fan_in, 1)[self.cols]
        limit = np.sqrt(6.0 / (fan_in + 1)).astype("float32")
        init = np.random.default_rng(0).uniform(-limit, limit).astype("float32")
        self.kernel_values = self.add_weight(
            shape=(self.conn.nnz,), initializer=keras.initializers.Constant(init), name="kernel_values"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return self._product(x, self.kernel_values) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)


class TFSparse(_SparsePeer):
    def build(self, input_shape):
        super().build(input_shape)
        import tensorflow as tf

        self.indices = tf.constant(np.stack([self.cols, self.rows], axis=1).astype(np.int64))

    def _product(self, x, values):
        import tensorflow as tf

        w_t = tf.SparseTensor(self.indices, values, (self.units, self.conn.num_inputs))
        return tf.transpose(tf.sparse.sparse_dense_matmul(w_t, x, adjoint_b=True))


class JaxBCOO(_SparsePeer):
    def _product(self, x, values):
        from jax.experimental import sparse

        indices = np.stack([self.rows, self.cols], axis=1)
        w = sparse.BCOO((values, indices), shape=self.conn.shape)
        return x @ w


class JaxBCSR(_SparsePeer):
    def _product(self, x, values):
        from jax.experimental import sparse

        indptr = np.zeros(self.units + 1, np.int32)
        np.cumsum(np.bincount(self.cols, minlength=self.units), out=indptr[1:])
        w_t = sparse.BCSR((values, self.rows, indptr), shape=(self.units, self.conn.num_inputs))
        return (w_t @ x.T).T


class TorchSparseCSR(_SparsePeer):
    def build(self, input_shape):
        super().build(input_shape)
        import torch

        indptr = np.zeros(self.units + 1, np.int64)
        np.cumsum(np.bincount(self.cols, minlength=self.units), out=indptr[1:])
        self.crow = torch.from_numpy(indptr)
        self.col = torch.from_numpy(self.rows.astype(np.int64))

    def _product(self, x, values):
        import torch

        w_t = torch.sparse_csr_tensor(
            self.crow, self.col, keras.ops.convert_to_tensor(values),
            size=(self.units, self.conn.num_inputs),
        )
        return torch.sparse.mm(w_t, x.T).T


def make_sparselinear(connectivity):
    """The PyPI `sparselinear.SparseLinear` wrapped for Keras."""
    import sparselinear
    import torch

    pairs = np.stack([connectivity.output_indices, connectivity.input_indices]).astype(np.int64)
    module = sparselinear.SparseLinear(
        connectivity.num_inputs, connectivity.num_outputs, connectivity=torch.from_numpy(pairs)
    )
    return keras.layers.TorchModuleWrapper(module)


def make_peer(name, connectivity):
    """A Keras layer for peer `name` (see `PEERS`)."""
    backend = keras.backend.backend()
    if PEERS[name] != backend:
        raise ValueError(f"peer {name!r} runs on {PEERS[name]}, not on {backend}")
    if name == "sparselinear":
        return make_sparselinear(connectivity)
    cls = {"tf_sparse": TFSparse, "jax_bcoo": JaxBCOO, "jax_bcsr": JaxBCSR,
           "torch_sparse_csr": TorchSparseCSR}[name]
    return cls(connectivity)
