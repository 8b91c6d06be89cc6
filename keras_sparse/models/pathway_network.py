"""Pathway-informed networks: hidden units are named biological sets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity, as_connectivity
from keras_sparse.layers.sparse_dense import SparseDense

__all__ = [
    "build_pathway_network",
    "head_loss",
    "level_name",
    "pathway_levels",
    "prediction_head",
    "split_at",
]

TASKS = ("classification", "regression")


def build_pathway_network(
    connectivity: Any,
    hierarchy: Sequence[Any] = (),
    task: str = "classification",
    num_classes: int = 2,
    hidden_activation: str = "tanh",
    input_dropout: float = 0.0,
    kernel_regularizer: Any = None,
    input_mean: Any = None,
    input_variance: Any = None,
    level_heads: bool = False,
    name: str = "pathway_network",
) -> keras.Model:
    """Builds inputs -> pathways -> (parent pathways ...) -> prediction head.

    The first hidden layer is a `SparseDense` named `"pathways"` whose
    units are the outputs of `connectivity` (e.g. gene -> pathway
    membership); each entry of `hierarchy` adds a further sparse level
    (`"level_1"`, `"level_2"`, ...) whose connectivity maps the previous
    level's units to parent units (e.g. pathway -> parent pathway). The
    head is dense: one sigmoid unit for two classes, `num_classes` softmax
    units for more, one linear unit for regression. With `level_heads`,
    every level has its own head (`"head_0"`, `"head_1"`, ...) and the
    prediction `"head"` is their average (P-NET's per-level outputs,
    BINN's heads ensemble).

    Args:
        connectivity: `Connectivity` (or anything `as_connectivity`
            accepts) of shape `(num_inputs, num_pathways)`.
        hierarchy: sequence of connectivities; level `k` must have as many
            inputs as level `k - 1` has outputs (and the same names when
            both are named).
        task: `"classification"` or `"regression"`.
        num_classes: int >= 2 for classification.
        hidden_activation: activation of the sparse levels (default tanh).
        input_dropout: float in [0, 1), dropout rate on the inputs.
        kernel_regularizer: regularizer for every kernel.
        input_mean, input_variance: optional `(num_inputs,)` arrays; when
            given, a fixed `keras.layers.Normalization` layer named
            `"standardize"` comes first, so the model takes raw inputs.
        level_heads: bool, one head per level, averaged (default False:
            one head on the last level).
        name: the model's name.

    Returns:
        A functional `keras.Model` taking `(batch, num_inputs)` float inputs.

    Raises:
        ValueError: for an unknown `task`, `num_classes < 2`, a dropout
            rate outside [0, 1), or hierarchy levels that do not chain.

    Example:

    >>> from keras_sparse.connectivity import random_connectivity
    >>> genes = random_connectivity(20, 4, density=0.3, seed=0, min_fan_in=1)
    >>> parents = random_connectivity(4, 2, density=0.5, seed=0, min_fan_in=1)
    >>> model = build_pathway_network(genes, [parents], level_heads=True)
    >>> pathway_levels(model)
    ['pathways', 'level_1']
    >>> model.output.shape
    (None, 1)

    References:
        Elmarakeby et al., "Biologically informed deep neural network for
        prostate cancer discovery" (P-NET), Nature 598 (2021); van Hilten
        et al., "GenNet framework", Communications Biology 4 (2021).
    """
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
    if task == "classification" and (
        not isinstance(num_classes, int) or num_classes < 2
    ):
        raise ValueError(
            "`num_classes` must be an integer >= 2 for classification. "
            f"Received: num_classes={num_classes!r}"
        )
    if not 0.0 <= float(input_dropout) < 1.0:
        raise ValueError(
            "`input_dropout` must be a float in [0, 1). "
            f"Received: input_dropout={input_dropout!r}"
        )
    levels = [as_connectivity(connectivity)] + [
        as_connectivity(c, argument=f"hierarchy[{k}]") for k, c in enumerate(hierarchy)
    ]
    for k in range(1, len(levels)):
        _check_chain(levels[k - 1], levels[k], k)
    inputs = keras.Input((levels[0].num_inputs,), name="inputs")
    x = inputs
    if (input_mean is None) != (input_variance is None):
        raise ValueError("Give both `input_mean` and `input_variance`, or neither.")
    if input_mean is not None:
        x = keras.layers.Normalization(
            mean=np.asarray(input_mean, dtype="float32"),
            variance=np.asarray(input_variance, dtype="float32"),
            name="standardize",
        )(x)
    if input_dropout:
        x = keras.layers.Dropout(input_dropout, name="input_dropout")(x)
    heads = []
    for k, level in enumerate(levels):
        x = SparseDense(
            level.num_outputs,
            level,
            activation=hidden_activation,
            kernel_regularizer=kernel_regularizer,
            name=level_name(k),
        )(x)
        if level_heads:
            head = prediction_head(task, num_classes, kernel_regularizer, f"head_{k}")
            heads.append(head(x))
    if level_heads:
        outputs = (
            keras.layers.Average(name="head")(heads) if len(heads) > 1 else heads[0]
        )
    else:
        outputs = prediction_head(task, num_classes, kernel_regularizer, "head")(x)
    return keras.Model(inputs, outputs, name=name)


def level_name(k: int) -> str:
    """The layer name of sparse level `k` in `build_pathway_network`."""
    return "pathways" if k == 0 else f"level_{k}"


def pathway_levels(model: keras.Model) -> list[str]:
    """Names of the sparse levels of a `build_pathway_network` model, in order."""
    names = {layer.name for layer in model.layers}
    out: list[str] = []
    while level_name(len(out)) in names:
        out.append(level_name(len(out)))
    if not out:
        raise ValueError(
            "Received an invalid value for `model`, expected a model built by "
            "`build_pathway_network` (a layer named 'pathways'). Received a model "
            f"with layers {sorted(names)}."
        )
    return out


def prediction_head(
    task: str, num_classes: int, kernel_regularizer: Any = None, name: str = "head"
) -> keras.layers.Dense:
    """The dense output layer for a task.

    One linear unit for regression, one sigmoid unit for two classes,
    `num_classes` softmax units for more. The loss that goes with it is
    `head_loss(task, num_classes)`.
    """
    if task == "regression":
        return keras.layers.Dense(1, kernel_regularizer=kernel_regularizer, name=name)
    if num_classes == 2:
        return keras.layers.Dense(
            1, activation="sigmoid", kernel_regularizer=kernel_regularizer, name=name
        )
    return keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=kernel_regularizer,
        name=name,
    )


def head_loss(task: str, num_classes: int) -> str:
    """The Keras loss matching `prediction_head(task, num_classes)`."""
    if task == "regression":
        return "mse"
    return (
        "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"
    )


def _check_chain(previous: Connectivity, level: Connectivity, k: int) -> None:
    if level.num_inputs != previous.num_outputs:
        raise ValueError(
            f"`hierarchy[{k - 1}]` must have one input per unit of the previous "
            f"level ({previous.num_outputs}). Received a connectivity of shape "
            f"{level.shape}."
        )
    if (
        level.input_names is not None
        and previous.output_names is not None
        and level.input_names != previous.output_names
    ):
        raise ValueError(
            f"The input names of `hierarchy[{k - 1}]` must be the previous level's "
            "output names, in the same order."
        )


def split_at(model: keras.Model, layer_name: str) -> tuple[keras.Model, keras.Model]:
    """Splits a chain-shaped model after `layer_name`.

    Returns:
        `(encoder, head)`: `encoder` maps the model's inputs to the
        outputs of `layer_name`; `head` maps those to the model's outputs,
        sharing the same layers (and weights).

    Raises:
        ValueError: if no layer has that name.
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(
            f"`layer_name` must name a layer of the model. Received "
            f"{layer_name!r}; layers are {names}."
        )
    layer = model.get_layer(layer_name)
    encoder = keras.Model(model.inputs, layer.output)
    head_input = keras.Input(tuple(layer.output.shape[1:]))
    x = head_input
    for later in model.layers[names.index(layer_name) + 1 :]:
        x = later(x)
    return encoder, keras.Model(head_input, x)
