"""Many independent pathway networks trained as one Keras model.

A study trains dozens of small networks of the same shape (replicate
seeds, control hierarchies, permuted labels). Packing `K` of them side by
side into one model — level 0 concatenated along its outputs (the genes
are shared inputs), every later level and the head block-diagonal — runs
them in one compiled training loop. The blocks share no parameter and
the loss is the *sum* of the blocks' losses, so every block receives
exactly the gradient it would receive alone (Adam and L2 act per
parameter); what they share is the minibatch order and the input-dropout
mask. `tests/experiments/test_packed.py` checks that each block's output
equals the stand-alone network with the same weights.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.layers.sparse_dense import SparseDense
from keras_sparse.models.pathway_network import level_name

__all__ = [
    "PackedTrainer",
    "build_packed_network",
    "pack_levels",
    "packed_loss",
    "unpack",
]


def pack_levels(chains: Sequence[Sequence[Connectivity]]) -> list[Connectivity]:
    """Packs `K` connectivity chains of equal shapes into one chain.

    Args:
        chains: `K` chains `[inputs -> level 0, level 0 -> level 1, ...]`
            with equal shapes level by level.

    Returns:
        One chain: level 0 `(num_inputs, K * n_0)` (inputs shared), level
        `j` `(K * n_{j-1}, K * n_j)` block-diagonal; block `k` holds
        chain `k`'s units `k * n_j ... (k + 1) * n_j - 1`.
    """
    first = chains[0]
    for k, chain in enumerate(chains):
        if [c.shape for c in chain] != [c.shape for c in first]:
            raise ValueError(
                f"Every chain must have the same level shapes. Chain 0: "
                f"{[c.shape for c in first]}; chain {k}: {[c.shape for c in chain]}."
            )
    K = len(chains)
    out = []
    for j, level in enumerate(first):
        n_in, n_out = level.shape
        rows, cols = [], []
        for k, chain in enumerate(chains):
            c = chain[j]
            rows.append(c.input_indices + (0 if j == 0 else k * n_in))
            cols.append(c.output_indices + k * n_out)
        shape = (n_in if j == 0 else K * n_in, K * n_out)
        out.append(
            Connectivity(
                np.concatenate(rows),
                np.concatenate(cols),
                shape=shape,
                empty_outputs="ignore",
            )
        )
    return out


def build_packed_network(
    chains: Sequence[Sequence[Connectivity]],
    input_mean: Any = None,
    input_variance: Any = None,
    task: str = "classification",
    input_dropout: float = 0.2,
    l2: float = 1e-3,
    level_heads: bool = False,
) -> keras.Model:
    """`K` pathway networks (binary or regression head each) in one model.

    Layers are named like `build_pathway_network`'s (`"standardize"`,
    `"pathways"`, `"level_1"`, ..., `"head"`; with `level_heads`, also
    `"head_0"`, `"head_1"`, ...), so
    `keras_sparse.interpret.node_attributions(..., output_index="sum")`
    gives every block's own attributions.

    Args:
        chains: `K` connectivity chains of equal shapes (`pack_levels`).
        input_mean, input_variance: `(num_inputs,)` arrays for a fixed
            `"standardize"` layer; both None: the model takes inputs
            standardized already.
        task: `"classification"` (sigmoid heads) or `"regression"`.
        input_dropout: dropout rate on the (shared) inputs.
        l2: L2 penalty on every kernel.
        level_heads: one head per level in every network, the prediction
            being their average (`build_pathway_network(level_heads=True)`:
            BINN's heads ensemble; P-NET's per-level outputs, here trained
            through their average rather than with per-head loss weights).

    Returns:
        A model mapping `(batch, num_inputs)` inputs to `(batch, K)`
        (sigmoid probabilities, or linear outputs for regression).
    """
    packed = pack_levels(chains)
    K = len(chains)
    reg = keras.regularizers.L2(l2)
    inputs = keras.Input((packed[0].num_inputs,), name="inputs")
    x = inputs
    if input_mean is not None:
        x = keras.layers.Normalization(
            mean=np.asarray(input_mean, "float32"),
            variance=np.asarray(input_variance, "float32"),
            name="standardize",
        )(x)
    if input_dropout:
        # An explicit seed (drawn from the global seed) makes the dropout
        # masks follow the layer's seed state on every backend (unseeded,
        # torch draws from its global generator).
        x = keras.layers.Dropout(
            input_dropout, seed=random.randrange(2**31), name="input_dropout"
        )(x)

    def head(h: Any, units: int, name: str) -> Any:
        # Block k's `units` units -> output k.
        conn = Connectivity(
            np.arange(K * units), np.repeat(np.arange(K), units), shape=(K * units, K)
        )
        return SparseDense(
            K,
            conn,
            activation=None if task == "regression" else "sigmoid",
            kernel_regularizer=reg,
            name=name,
        )(h)

    heads = []
    for j, level in enumerate(packed):
        x = SparseDense(
            level.num_outputs,
            level,
            activation="tanh",
            kernel_regularizer=reg,
            name=level_name(j),
        )(x)
        if level_heads:
            heads.append(head(x, chains[0][j].num_outputs, f"head_{j}"))
    if level_heads and len(heads) > 1:
        out = keras.layers.Average(name="head")(heads)
    elif level_heads:
        out = heads[0]
    else:
        out = head(x, chains[0][-1].num_outputs, "head")
    return keras.Model(inputs, out, name=f"packed_{K}_networks")


def packed_loss(task: str, K: int) -> Any:
    """The sum over blocks of the per-block loss (mean over samples)."""
    base = (
        keras.losses.MeanSquaredError(reduction=None)
        if task == "regression"
        else keras.losses.BinaryCrossentropy(reduction=None)
    )

    def loss(y_true: Any, y_pred: Any) -> Any:
        # (batch, K) -> per-sample sum over blocks; Keras then averages over
        # the batch.
        yt = keras.ops.expand_dims(y_true, -1)
        yp = keras.ops.expand_dims(y_pred, -1)
        return keras.ops.sum(base(yt, yp), axis=-1)

    del K
    return loss


class PackedTrainer:
    """Trains a packed model again and again with one compiled train step.

    Every `fit` starts from fresh weights (drawn as a newly built model
    with the given seed would draw them) and a fresh optimizer state, so
    repeated fits (folds, label sets) are independent trainings that reuse
    the compiled functions instead of compiling anew (seconds each on CPU).
    Inputs must be standardized by the caller.

    Args:
        build: a function `() -> keras.Model` building the (uncompiled)
            model; called once per `fit` for the fresh weights.
        task: `"classification"` or `"regression"`.
        learning_rate, epochs, batch_size: Adam training settings.
    """

    def __init__(
        self,
        build: Any,
        task: str = "classification",
        learning_rate: float = 3e-3,
        epochs: int = 40,
        batch_size: int = 32,
    ):
        self._build = build
        self.model = build()
        self.K = int(self.model.output.shape[-1])
        self.model.compile(
            keras.optimizers.Adam(learning_rate), packed_loss(task, self.K)
        )
        self.model.optimizer.build(self.model.trainable_variables)
        self._opt_init = [np.array(v.numpy()) for v in self.model.optimizer.variables]
        self.epochs = epochs
        self.batch_size = batch_size

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> keras.Model:
        """Trains from fresh weights on `x` `(n, inputs)`, `y` `(n, K)`."""
        keras.utils.set_random_seed(seed)
        fresh = self._build()
        # `variables` also holds the dropout layers' seed states.
        for var, value in zip(self.model.variables, fresh.variables, strict=True):
            var.assign(value)
        for var, value in zip(
            self.model.optimizer.variables, self._opt_init, strict=True
        ):
            var.assign(value)
        # Shuffled here, from `seed`: Keras's own shuffling draws from global
        # state that its first fit (tracing) also consumes, so a refit would
        # not repeat.
        x = np.asarray(x, "float32")
        y = np.asarray(y, "float32")
        # Every batch has `batch_size` rows, so one compiled train step
        # serves every training-set size (a new last-batch shape costs a
        # compilation of seconds): a short last batch is padded with
        # zero-weight rows, and its real rows get weight batch_size / rows,
        # so its loss (summed, divided by batch_size) is still the mean over
        # its real rows, as in an unpadded fit.
        n, b = len(x), self.batch_size
        padded = -(-n // b) * b
        weight = np.ones(padded, "float32")
        tail = n % b
        if tail:
            weight[n - tail : n] = b / tail
            weight[n:] = 0.0
        x_pad = np.zeros((padded, *x.shape[1:]), "float32")
        y_pad = np.zeros((padded, *y.shape[1:]), "float32")
        order = np.random.default_rng(seed)
        for _ in range(self.epochs):
            perm = order.permutation(n)
            x_pad[:n], y_pad[:n] = x[perm], y[perm]
            self.model.fit(
                x_pad,
                y_pad,
                sample_weight=weight,
                epochs=1,
                batch_size=b,
                verbose=0,
                shuffle=False,
            )
        return self.model


def unpack(values: np.ndarray, K: int) -> np.ndarray:
    """`(n, K * units)` packed level values -> `(K, n, units)`."""
    n, width = values.shape
    return values.reshape(n, K, width // K).transpose(1, 0, 2)
