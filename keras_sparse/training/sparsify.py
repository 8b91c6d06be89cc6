"""One-shot compression: Dense/Conv -> sparse layers (`sparsify`), back (`densify`)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.layers import SparseConv1D, SparseConv2D, SparseConv3D, SparseDense
from keras_sparse.layers.base_sparse_conv import BaseSparseConv
from keras_sparse.training.algorithms import _top_k
from keras_sparse.training.densities import (
    DISTRIBUTIONS,
    check_density,
    layer_densities,
)
from keras_sparse.training.optimizer_state import optimizer_slots

__all__ = ["compact", "compression_report", "densify", "sparsify"]

SCOPES = ("layer", "global")
_SPARSE_CONV = {1: SparseConv1D, 2: SparseConv2D, 3: SparseConv3D}
_DENSE_CONV = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}


# ----------------------------------------------------------------- helpers
def _leaf_layers(model: Any) -> list[Any]:
    """Every non-model layer of `model`, nested models included, in order."""
    out: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _conv_rank(layer: Any) -> int | None:
    for rank, cls in _DENSE_CONV.items():
        if type(layer) is cls or (
            isinstance(layer, cls)
            and not isinstance(layer, keras.layers.Conv1DTranspose)
        ):
            return rank
    return None


def _unsupported_reason(layer: Any) -> str | None:
    """Why `layer` cannot be sparsified, or None if it can."""
    if isinstance(layer, keras.layers.Dense):
        if getattr(layer, "quantization_mode", None):
            return f"it is quantized ({layer.quantization_mode!r})"
        if getattr(layer, "lora_enabled", False):
            return "it has LoRA enabled"
        if not layer.built:
            return "it is not built"
        return None
    rank = _conv_rank(layer)
    if rank is not None:
        if getattr(layer, "groups", 1) != 1:
            return f"it is a grouped convolution (groups={layer.groups})"
        if layer.padding not in ("valid", "same"):
            return (
                f"its padding is {layer.padding!r} (sparse convolutions: "
                "'valid' or 'same')"
            )
        if not layer.built:
            return "it is not built"
        return None
    return (
        f"it is a {type(layer).__name__}; only keras.layers.Dense and "
        "Conv1D/Conv2D/Conv3D can be sparsified"
    )


def _kernel_items(layer: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores per (input, output) item, the item grid shape, and params per item."""
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float64)
    if kernel.ndim == 2:
        return np.abs(kernel).ravel(), np.array(kernel.shape), 1
    c_in, filters = kernel.shape[-2:]
    area = math.prod(kernel.shape[:-2])
    norms = np.sqrt(np.sum(kernel.reshape(area, c_in * filters) ** 2, axis=0))
    return norms, np.array([c_in, filters]), area


def _check_model(model: Any, function: str) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Received an invalid value for `model` of `{function}`, expected a "
            f"keras.Model. Received: model of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"`{function}` needs a built model (call it on data or give it an "
            "`Input`) so that every layer has its weights."
        )


def _clone(
    model: Any, make: Callable[[Any], Any | None], function: str
) -> tuple[Any, dict]:
    """`clone_model` with `make(layer)` (None: plain copy); returns clone, old->new."""
    made: dict[int, tuple[Any, Any]] = {}

    def clone_function(layer: Any) -> Any:
        new = make(layer)
        if new is None:
            config = layer.get_config()
            if isinstance(layer, (SparseDense, BaseSparseConv)):
                config["connectivity"] = layer.connectivity
            new = layer.__class__.from_config(config)
        made[id(layer)] = (layer, new)
        return new

    try:
        clone = keras.models.clone_model(
            model, clone_function=clone_function, recursive=True
        )
    except ValueError as error:
        if "only supported for Sequential" in str(error):
            raise ValueError(
                f"`{function}` works on Sequential and functional models; "
                f"{type(model).__name__!r} is a subclassed model whose layers it "
                "cannot rebuild. Rebuild the model functionally (keras.Input -> "
                "layers -> keras.Model) or convert its layers yourself."
            ) from error
        raise
    return clone, made


def _copy_plain_weights(made: dict, skip: set[int]) -> None:
    for key, (old, new) in made.items():
        if key in skip or isinstance(old, keras.layers.InputLayer):
            continue
        weights = old.get_weights()
        if weights:
            new.set_weights(weights)


# ---------------------------------------------------------------- sparsify
def _selected_layers(
    model: Any, density: Any, layers: Sequence[str] | None
) -> tuple[list[Any], dict[str, float] | None]:
    leaves = _leaf_layers(model)
    by_name = {layer.name: layer for layer in leaves}
    candidates = [layer for layer in leaves if _unsupported_reason(layer) is None]
    names: list[str] | None = None
    per_layer: dict[str, float] | None = None
    if isinstance(density, Mapping):
        per_layer = {
            str(k): check_density(v, f"density[{k!r}]", "sparsify")
            for k, v in density.items()
        }
        if not per_layer:
            raise ValueError(
                "Received an empty `density` dict; name at least one layer."
            )
        names = list(per_layer)
        if layers is not None and set(layers) != set(names):
            raise ValueError(
                "Pass the layers either as the keys of a `density` dict or as "
                "`layers`, not both with different names. Received: "
                f"layers={list(layers)}, "
                f"density keys={names}"
            )
    elif layers is not None:
        if isinstance(layers, str):
            raise TypeError(
                "Received an invalid value for `layers`, expected a list of layer "
                f"names. Received: layers={layers!r} (a string; use [{layers!r}])"
            )
        names = list(layers)
    if names is None:
        chosen = candidates
    else:
        chosen = []
        for name in names:
            if name not in by_name:
                raise ValueError(
                    f"Received an unknown layer name {name!r}: the model has no such "
                    "layer. Layers that can be sparsified: "
                    f"{[layer.name for layer in candidates]}"
                )
            reason = _unsupported_reason(by_name[name])
            if reason is not None:
                raise ValueError(f"Layer {name!r} cannot be sparsified: {reason}.")
            chosen.append(by_name[name])
    if not chosen:
        raise ValueError(
            "The model has no layer that `sparsify` can convert (Dense, Conv1D/2D/3D)."
        )
    return chosen, per_layer


def _select_items(
    chosen: list[Any],
    density: Any,
    per_layer: dict | None,
    distribution: str,
    scope: str,
) -> dict[str, np.ndarray]:
    """Kept item positions (flat over (inputs, outputs)) per layer name."""
    items = {layer.name: _kernel_items(layer) for layer in chosen}
    keep: dict[str, np.ndarray] = {}
    if scope == "global":
        d = check_density(density, "density", "sparsify")
        scores, flat, owner, size = [], [], [], []
        for k, layer in enumerate(chosen):
            s, grid, area = items[layer.name]
            scores.append(s / math.sqrt(area))  # RMS, comparable with |w|
            flat.append(np.arange(s.size, dtype=np.int64))
            owner.append(np.full(s.size, k))
            size.append(np.full(s.size, area))
        all_scores = np.concatenate(scores)
        all_flat = np.concatenate(flat)
        all_owner = np.concatenate(owner)
        all_size = np.concatenate(size)
        budget = d * float(all_size.sum())
        order = np.lexsort((all_flat, all_owner, -all_scores))
        take = order[np.cumsum(all_size[order]) <= budget + 1e-9]
        for k, layer in enumerate(chosen):
            mine = np.sort(all_flat[take[all_owner[take] == k]])
            if mine.size == 0:  # keep at least the strongest connection
                s = items[layer.name][0]
                mine = _top_k(s, np.arange(s.size, dtype=np.int64), 1)[1]
            keep[layer.name] = mine
        return keep
    if per_layer is None:
        d = check_density(density, "density", "sparsify")
        shapes = {layer.name: tuple(layer.kernel.shape) for layer in chosen}
        per_layer = layer_densities(shapes, d, distribution)
    for layer in chosen:
        s, _, _ = items[layer.name]
        k = max(1, int(round(per_layer[layer.name] * s.size)))
        keep[layer.name] = np.sort(_top_k(s, np.arange(s.size, dtype=np.int64), k)[1])
    return keep


def _weight_arguments(layer: Any) -> dict[str, Any]:
    """The constructor arguments a dense and a sparse layer share (every
    one but the kernel initializer, which differs by kind)."""
    return dict(
        activation=layer.activation,
        use_bias=layer.use_bias,
        bias_initializer=layer.bias_initializer,
        kernel_regularizer=layer.kernel_regularizer,
        bias_regularizer=layer.bias_regularizer,
        activity_regularizer=layer.activity_regularizer,
        kernel_constraint=layer.kernel_constraint,
        bias_constraint=layer.bias_constraint,
        name=layer.name,
        dtype=layer.dtype_policy,
    )


def _sparse_layer(layer: Any, connectivity: Connectivity, mutable: bool) -> Any:
    common = _weight_arguments(layer)
    if mutable:
        common["mutable_connectivity"] = True
    if isinstance(layer, keras.layers.Dense):
        return SparseDense(layer.units, connectivity, **common)
    return _SPARSE_CONV[_conv_rank(layer)](  # type: ignore[index]
        layer.filters,
        layer.kernel_size,
        connectivity,
        strides=layer.strides,
        padding=layer.padding,
        data_format=layer.data_format,
        dilation_rate=layer.dilation_rate,
        **common,
    )


def _values_at(layer: Any, connectivity: Connectivity) -> np.ndarray:
    """The dense layer's kernel entries at `connectivity` (canonical order)."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    rows, cols = connectivity.input_indices, connectivity.output_indices
    if kernel.ndim == 2:
        return kernel[rows, cols]
    area = math.prod(kernel.shape[:-2])
    flat = kernel.reshape((area,) + kernel.shape[-2:])
    return np.ascontiguousarray(flat[:, rows, cols].T)


def sparsify(
    model: keras.Model,
    density: float | Mapping[str, float],
    distribution: str = "uniform",
    scope: str = "layer",
    layers: Sequence[str] | None = None,
    mutable_connectivity: bool = False,
) -> keras.Model:
    """A copy of `model` whose Dense/Conv layers keep only their largest weights.

    Each chosen `keras.layers.Dense` becomes a `SparseDense` and each
    `Conv1D/2D/3D` a `SparseConv1D/2D/3D` with the same name, activation,
    bias, regularizers and dtype policy, whose connectivity holds the
    largest-magnitude connections: `|w|` for a Dense kernel entry, the L2
    norm of the whole `(input channel -> filter)` kernel for a convolution
    (so a convolution keeps or drops whole kernels). Kept weights and biases
    are copied; every other layer is copied unchanged. If `model` is
    compiled, the copy is compiled with the same configuration (loss,
    metrics, and a new optimizer of the same configuration, without its
    state: `keras.models.clone_model`); otherwise it is not compiled.

    Args:
        model: a built Sequential or functional `keras.Model` (nested ones
            are handled; subclassed models are refused).
        density: float in (0, 1], the fraction of kernel entries kept, or
            a `{layer name: density}` dict naming the layers to convert
            (then `distribution` is not used).
        distribution: `"uniform"` (every layer `density`) or `"erk"`
            (Erdős–Rényi-Kernel budgets, see `layer_densities`), for
            `scope="layer"`.
        scope: `"layer"` (the top connections of each layer) or `"global"`
            (one magnitude threshold over all chosen layers; a convolution
            kernel is scored by its RMS, `norm / sqrt(kernel area)`, and
            counts `kernel area` parameters; every layer keeps at least one
            connection).
        layers: names of the layers to convert; default every Dense and
            Conv1D/2D/3D layer.
        mutable_connectivity: build the sparse layers with
            `mutable_connectivity=True`, as the training callbacks need.

    Returns:
        A new `keras.Model` (compiled if `model` was).

    Raises:
        ValueError: for a density outside (0, 1], an unknown `distribution`
            or `scope`, `scope="global"` with ERK or a dict, an unknown layer
            name, a layer that cannot be sparsified (names the layer and the
            reason), or a subclassed model.
        TypeError: if `model` is not a `keras.Model`.

    Example:

    >>> import keras
    >>> fc = keras.layers.Dense(10, name="fc")
    >>> model = keras.Sequential([keras.Input((20,)), fc])
    >>> sparse = sparsify(model, 0.3)
    >>> type(sparse.get_layer("fc")).__name__, sparse.get_layer("fc").nnz
    ('SparseDense', 60)

    References:
        Han et al., "Learning both Weights and Connections for Efficient
        Neural Networks", NeurIPS 2015 (magnitude pruning); Evci et al.,
        "Rigging the Lottery", ICML 2020 (ERK).
    """
    _check_model(model, "sparsify")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            "Received an invalid value for `distribution`, expected one of "
            f"{DISTRIBUTIONS}. Received: distribution={distribution!r}"
        )
    if scope not in SCOPES:
        raise ValueError(
            f"Received an invalid value for `scope`, expected one of {SCOPES}. "
            f"Received: scope={scope!r}"
        )
    if scope == "global" and (
        distribution != "uniform" or isinstance(density, Mapping)
    ):
        raise ValueError(
            "`scope='global'` chooses each layer's density itself (one threshold); "
            "it takes one float `density` and `distribution='uniform'`. Received: "
            f"distribution={distribution!r}, density={density!r}"
        )
    if not isinstance(density, Mapping):
        check_density(density, "density", "sparsify")
    chosen, per_layer = _selected_layers(model, density, layers)
    keep = _select_items(chosen, density, per_layer, distribution, scope)
    targets: dict[int, tuple[Any, Connectivity]] = {}
    for layer in chosen:
        kernel_shape = tuple(layer.kernel.shape)
        n_in, n_out = kernel_shape[-2:]
        flat = keep[layer.name]
        conn = Connectivity(
            flat // n_out, flat % n_out, shape=(n_in, n_out), empty_outputs="ignore"
        )
        targets[id(layer)] = (layer, conn)

    def make(layer: Any) -> Any | None:
        if id(layer) in targets:
            return _sparse_layer(layer, targets[id(layer)][1], mutable_connectivity)
        return None

    clone, made = _clone(model, make, "sparsify")
    _copy_plain_weights(made, set(targets))
    for key, (layer, conn) in targets.items():
        new = made[key][1]
        new.kernel_values.assign(_values_at(layer, conn))
        if layer.use_bias:
            new.bias.assign(keras.ops.convert_to_numpy(layer.bias))
    return clone


# ----------------------------------------------------------------- densify
def _effective_values(layer: Any) -> np.ndarray:
    values = keras.ops.convert_to_numpy(layer.kernel_values)
    mask = getattr(layer, "kernel_mask", None)
    if mask is not None:
        m = keras.ops.convert_to_numpy(mask).astype(values.dtype)
        values = values * m.reshape((-1,) + (1,) * (values.ndim - 1))
    return values


def _dense_kernel(layer: Any) -> np.ndarray:
    conn = layer.connectivity
    values = _effective_values(layer)
    n_in, n_out = conn.shape
    rows, cols = conn.input_indices, conn.output_indices
    if isinstance(layer, SparseDense):
        kernel = np.zeros((n_in, n_out), dtype=values.dtype)
        kernel[rows, cols] = values
        return kernel
    area = values.shape[1]
    kernel = np.zeros((area, n_in, n_out), dtype=values.dtype)
    kernel[:, rows, cols] = values.T
    return kernel.reshape(tuple(layer.kernel_size) + (n_in, n_out))


def densify(model: keras.Model) -> keras.Model:
    """A copy of `model` with every sparse layer replaced by its dense Keras layer.

    `SparseDense` becomes `keras.layers.Dense` and `SparseConv1D/2D/3D`
    `Conv1D/2D/3D`, with the dense kernel that is zero where a connection
    is absent (or masked); the outputs are the same. If `model` is
    compiled, the copy is compiled with the same configuration (a new
    optimizer, without its state); otherwise it is not compiled.

    Args:
        model: a built Sequential or functional model.

    Returns:
        A new `keras.Model` (compiled if `model` was).

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for an unbuilt or subclassed model.

    Example:

    >>> import keras
    >>> fc = keras.layers.Dense(10, name="fc")
    >>> model = keras.Sequential([keras.Input((20,)), fc])
    >>> dense = densify(sparsify(model, 0.3))
    >>> type(dense.get_layer("fc")).__name__
    'Dense'
    """
    _check_model(model, "densify")
    targets = {
        id(layer): layer
        for layer in _leaf_layers(model)
        if isinstance(layer, (SparseDense, BaseSparseConv))
    }

    def make(layer: Any) -> Any | None:
        if id(layer) not in targets:
            return None
        common = _weight_arguments(layer)
        if isinstance(layer, SparseDense):
            return keras.layers.Dense(layer.units, **common)
        return _DENSE_CONV[layer.rank](
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=layer.padding,
            data_format=layer.data_format,
            dilation_rate=layer.dilation_rate,
            **common,
        )

    clone, made = _clone(model, make, "densify")
    _copy_plain_weights(made, set(targets))
    for key, layer in targets.items():
        new = made[key][1]
        new.kernel.assign(_dense_kernel(layer))
        if layer.use_bias:
            new.bias.assign(keras.ops.convert_to_numpy(layer.bias))
    return clone


# ----------------------------------------------------------------- compact
def compact(model: keras.Model) -> keras.Model:
    """A truly sparse copy of a model pruned with `kernel_mask` (after GMP).

    Every sparse layer with a `kernel_mask` is rebuilt with the connections
    whose mask is 1 (so its `nnz`, `count_params()` and `summary()` show the
    pruned size); values, biases and every other layer are copied. If
    `model` is compiled, the copy is compiled with the same configuration
    and its optimizer state (every per-variable slot, and the iteration
    count) is copied, restricted to the kept connections. Variable shapes
    cannot change inside a running `fit`, so compaction makes a new model:
    call it after (or between) `fit` calls.

    Args:
        model: a built Sequential or functional model.

    Returns:
        The compacted `keras.Model` (compiled if `model` was).

    Raises:
        ValueError: for an unbuilt or subclassed model, or an optimizer
            whose state cannot be identified (see `optimizer_slots`).
    """
    _check_model(model, "compact")
    targets: dict[int, tuple[Any, np.ndarray, Connectivity]] = {}
    for layer in _leaf_layers(model):
        mask = getattr(layer, "kernel_mask", None)
        if not isinstance(layer, (SparseDense, BaseSparseConv)) or mask is None:
            continue
        keep = np.flatnonzero(keras.ops.convert_to_numpy(mask) > 0)
        conn = layer.connectivity
        new_conn = Connectivity(
            conn.input_indices[keep],
            conn.output_indices[keep],
            shape=conn.shape,
            input_names=conn.input_names,
            output_names=conn.output_names,
            empty_outputs="ignore",
        )
        targets[id(layer)] = (layer, keep, new_conn)

    def make(layer: Any) -> Any | None:
        if id(layer) not in targets:
            return None
        config = layer.get_config()
        config["connectivity"] = targets[id(layer)][2]
        return layer.__class__.from_config(config)

    clone, made = _clone(model, make, "compact")
    _copy_plain_weights(made, set(targets))
    for key, (layer, keep, _) in targets.items():
        new = made[key][1]
        new.kernel_values.assign(keras.ops.convert_to_numpy(layer.kernel_values)[keep])
        if layer.use_bias:
            new.bias.assign(keras.ops.convert_to_numpy(layer.bias))
    optimizer = getattr(model, "optimizer", None)
    config = model.get_compile_config() if getattr(model, "compiled", False) else None
    if config is None or optimizer is None:
        return clone
    # (not compile_from_config: it skips models whose compile() is overridden)
    clone.compile(**keras.saving.deserialize_keras_object(config))
    if not getattr(optimizer, "built", False):
        return clone
    clone.optimizer.build(clone.trainable_variables)
    clone.optimizer.iterations.assign(optimizer.iterations)
    for key, (old, new) in made.items():
        kept = targets[key][1] if key in targets else None
        for old_var, new_var in zip(
            old.trainable_variables, new.trainable_variables, strict=True
        ):
            old_slots = optimizer_slots(optimizer, old_var)
            new_slots = optimizer_slots(clone.optimizer, new_var)
            for old_slot, new_slot in zip(old_slots, new_slots, strict=True):
                value = keras.ops.convert_to_numpy(old_slot)
                is_kernel = kept is not None and old_var is old.kernel_values
                new_slot.assign(value[kept] if is_kernel else value)
    return clone


# ------------------------------------------------------------------ report
def _weight_bytes(model: Any) -> tuple[int, int]:
    """(bytes of float weights, bytes of integer index variables)."""
    floats = ints = 0
    for v in model.weights:
        size = (
            math.prod(v.shape)
            * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
        )
        if "int" in keras.backend.standardize_dtype(v.dtype):
            ints += size
        else:
            floats += size
    for layer in _leaf_layers(model):
        if isinstance(layer, (SparseDense, BaseSparseConv)) and not any(
            "int" in keras.backend.standardize_dtype(v.dtype) for v in layer.weights
        ):
            # Fixed connectivity: the indices are saved next to the weights.
            conn = layer.connectivity
            ints += conn.input_indices.nbytes + conn.output_indices.nbytes
    return floats, ints


def compression_report(before: keras.Model, after: keras.Model) -> Any:
    """Size of a model before and after compression.

    Rows: `parameters` (`count_params()`), `weight_bytes` (bytes of the float
    variables), `index_bytes` (bytes of the connection indices of the sparse
    layers), `keras_file_bytes` (size of the `.keras` file each model saves
    to). Columns: `before`, `after`, `ratio` (`before / after`).

    Args:
        before: the original model.
        after: the compressed model (e.g. from `sparsify`).

    Returns:
        A pandas DataFrame.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(100)])
    >>> report = compression_report(model, sparsify(model, 0.1))
    >>> int(report.loc["parameters", "before"]), int(report.loc["parameters", "after"])
    (10100, 1100)
    """
    import pandas as pd

    rows = {}
    for key, model in (("before", before), ("after", after)):
        floats, ints = _weight_bytes(model)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.keras")
            model.save(path)
            size = os.path.getsize(path)
        rows[key] = {
            "parameters": model.count_params(),
            "weight_bytes": floats,
            "index_bytes": ints,
            "keras_file_bytes": size,
        }
    frame = pd.DataFrame(rows)
    frame["ratio"] = frame["before"] / frame["after"].where(frame["after"] != 0)
    return frame
