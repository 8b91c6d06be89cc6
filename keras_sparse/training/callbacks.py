"""Callbacks that change sparse layers' connectivity during training: GMP, SET, RigL.

They work under `model.fit` on every backend (on JAX, the trainer's state
is written back to the variables before an update, and the next step reads
the changed variables) and in hand-written loops:

    cb = SET(update_interval=100, optimizer=optimizer)
    cb.set_model(model)
    cb.on_train_begin()
    for step, (x, y) in enumerate(batches):
        ...  # one optimizer step
        cb.on_train_batch_end(step)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_sparse.layers import SparseDense
from keras_sparse.layers.base_sparse_conv import BaseSparseConv
from keras_sparse.training import algorithms as alg
from keras_sparse.training._gradients import (
    conv_kernel_gradient,
    layer_inputs_and_output_grads,
)
from keras_sparse.training.densities import check_density, layer_densities
from keras_sparse.training.optimizer_state import optimizer_slots, remap_optimizer_slots

__all__ = ["GradualMagnitudePruning", "RigL", "SET"]


def _check_int(value: Any, argument: str, cls: str, minimum: int = 0) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ValueError(
            f"Received an invalid value for `{argument}` of `{cls}`, expected an "
            f"integer >= {minimum}. Received: {argument}={value!r}"
        )
    return int(value)


def _check_fraction(value: Any, argument: str, cls: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0.0 < value < 1.0:
        raise ValueError(
            f"Received an invalid value for `{argument}` of `{cls}`, expected a "
            f"float in (0, 1). Received: {argument}={value!r}"
        )
    return float(value)


def _sparse_layers(model: Any) -> list[Any]:
    out: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_sparse_layers(layer))
        elif isinstance(layer, (SparseDense, BaseSparseConv)):
            out.append(layer)
    return out


def _effective_values(layer: Any) -> np.ndarray:
    """`kernel_values * kernel_mask` as NumPy (what the layer computes with)."""
    values = keras.ops.convert_to_numpy(layer.kernel_values)
    mask = getattr(layer, "kernel_mask", None)
    if mask is None:
        return values
    mask = keras.ops.convert_to_numpy(mask).astype(values.dtype)
    return values * mask.reshape((-1,) + (1,) * (values.ndim - 1))


class _ConnectivityCallback(keras.callbacks.Callback):
    """Shared machinery: layer lookup, step counting, optimizer state, logs.

    The step is the optimizer's iteration count (read once at the start of
    training, then counted per batch), so a model reloaded mid-training
    continues the schedule where it stopped. In a hand-written loop call
    `set_model(model)`, `on_train_begin()` and, after every optimizer step,
    `on_train_batch_end(batch)`.
    """

    _log_prefix = ""

    def __init__(self, layers: Sequence[str] | None = None, optimizer: Any = None):
        super().__init__()
        if isinstance(layers, str):
            raise TypeError(
                f"Received an invalid value for `layers` of `{type(self).__name__}`, "
                f"expected a list of layer names. Received: layers={layers!r} "
                f"(use [{layers!r}])"
            )
        self.layer_names = None if layers is None else list(layers)
        self._optimizer = optimizer
        self.history: list[dict[str, Any]] = []
        # layer name -> `source` of its last connectivity change (-1 = regrown)
        self.last_sources: dict[str, np.ndarray] = {}
        self._layers: list[Any] = []
        self._step = 0
        self._epoch_changes = 0

    # ---------------------------------------------------------------- setup
    @property
    def optimizer(self) -> Any:
        if self._optimizer is not None:
            return self._optimizer
        return getattr(self.model, "optimizer", None)

    def _resolve_layers(self) -> list[Any]:
        model = self.model
        found = _sparse_layers(model)
        if self.layer_names is None:
            layers = found
        else:
            by_name = {layer.name: layer for layer in found}
            layers = []
            for name in self.layer_names:
                if name not in by_name:
                    raise ValueError(
                        f"`{type(self).__name__}` got an unknown layer name {name!r}; "
                        f"the model's sparse layers are {sorted(by_name)}."
                    )
                layers.append(by_name[name])
        if not layers:
            raise ValueError(
                f"`{type(self).__name__}` found no SparseDense / SparseConv layer in "
                "the model. Convert Dense/Conv layers first with "
                "`keras_sparse.sparsify(model, density, mutable_connectivity=True)`."
            )
        for layer in layers:
            if not getattr(layer, "mutable_connectivity", False):
                raise ValueError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) has a fixed "
                    f"connectivity (mutable_connectivity=False), so "
                    f"`{type(self).__name__}` cannot change it. Build it with "
                    f"`{type(layer).__name__}(..., mutable_connectivity=True)`, or "
                    "convert a dense model with `keras_sparse.sparsify(model, density, "
                    "mutable_connectivity=True)`."
                )
            if not layer.built:
                raise ValueError(f"Layer '{layer.name}' is not built yet.")
        return layers

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._layers = self._resolve_layers()
        optimizer = self.optimizer
        if optimizer is not None:
            if getattr(optimizer, "built", False):
                for layer in self._layers:
                    optimizer_slots(optimizer, layer.kernel_values)  # refuse early
            self._step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self._setup()

    def _setup(self) -> None:
        """Per-algorithm preparation at the start of training."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_changes = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self._layers:
            self.on_train_begin()
        self._step += 1
        if self._due(self._step):
            _ = self.model  # on JAX: writes the trainer's state into the variables
            records = self._update(self._step)
            self.history.extend(records)
            self._epoch_changes += sum(
                r.get("grown", 0) + r.get("pruned", 0) for r in records
            )
        if logs is not None:
            logs.update(self._logs())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs.update(self._logs())

    def _logs(self) -> dict[str, Any]:
        return {f"{self._log_prefix}_changed": self._epoch_changes}

    def _due(self, step: int) -> bool:
        raise NotImplementedError

    def _update(self, step: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    # --------------------------------------------------------------- helpers
    def _replace(
        self, layer: Any, keep: np.ndarray, grown: np.ndarray
    ) -> dict[str, Any]:
        """Sets the layer's connectivity to kept + grown; remaps optimizer state."""
        conn = layer.connectivity
        values = _effective_values(layer)
        new_conn, source = alg.rebuild_connectivity(conn, keep, grown)
        used = layer.set_connectivity(new_conn, source=source)
        used = source if used is None else np.asarray(used)
        optimizer = self.optimizer
        if optimizer is not None:
            remap_optimizer_slots(optimizer, layer.kernel_values, used)
        self.last_sources[layer.name] = used
        removed = np.setdiff1d(np.arange(conn.nnz), used[used >= 0])
        scores = alg.kernel_scores(values[removed]) if removed.size else np.zeros(0)
        return {
            "layer": layer.name,
            "nnz": new_conn.nnz,
            "dropped": int(removed.size),
            "grown": int(np.count_nonzero(used < 0)),
            "mean_abs_dropped": float(scores.mean()) if scores.size else 0.0,
        }

    def _seed(self, step: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, index])


class _DropGrow(_ConnectivityCallback):
    """Drop the weakest fraction of each layer, grow as many (SET, RigL)."""

    def __init__(
        self,
        drop_fraction: float,
        update_interval: int,
        end_step: int | None,
        seed: int,
        layers: Sequence[str] | None,
        optimizer: Any,
    ):
        super().__init__(layers=layers, optimizer=optimizer)
        name = type(self).__name__
        self.drop_fraction = _check_fraction(drop_fraction, "drop_fraction", name)
        self.update_interval = _check_int(update_interval, "update_interval", name, 1)
        self.end_step = (
            None if end_step is None else _check_int(end_step, "end_step", name, 1)
        )
        self.seed = _check_int(seed, "seed", name)

    def _fraction(self, step: int) -> float:
        return self.drop_fraction

    def _due(self, step: int) -> bool:
        if step % self.update_interval:
            return False
        return self.end_step is None or step <= self.end_step

    def _update(self, step: int) -> list[dict[str, Any]]:
        fraction = self._fraction(step)
        plans = []
        for index, layer in enumerate(self._layers):
            conn = layer.connectivity
            values = _effective_values(layer)
            count = int(math.floor(fraction * conn.nnz))
            keep = np.setdiff1d(
                np.arange(conn.nnz), alg.drop_smallest(alg.kernel_scores(values), count)
            )
            plans.append((index, layer, keep, count))
        if not any(count for *_, count in plans):
            return []
        grown_all = self._grow(step, plans)
        records = []
        for (_, layer, keep, count), grown in zip(plans, grown_all, strict=True):
            if count == 0:
                continue
            record = self._replace(layer, keep, grown)
            record.update(step=step, drop_fraction=fraction)
            records.append(record)
        return records

    def _grow(self, step: int, plans: list) -> list[np.ndarray]:
        raise NotImplementedError


class SET(_DropGrow):
    """Sparse Evolutionary Training: drop the weakest, regrow at random.

    Every `update_interval` optimizer steps (until `end_step`), each chosen
    layer drops the `floor(drop_fraction * nnz)` connections with the
    smallest magnitude (`|w|`; a convolution kernel's L2 norm) and grows as
    many at positions drawn uniformly among those not kept. `nnz` stays
    constant, so nothing recompiles. A regrown connection starts at 0
    (`regrowth_stddev=0`, the default) or at a draw from
    `N(0, regrowth_stddev^2)`, and every optimizer slot of it (momentum,
    Adam's m and v, ...) at 0; a connection dropped and drawn again keeps
    its value. Randomness is stateless,
    `numpy.random.default_rng([seed, step, layer index])`, the same on every
    replica.

    Regrowing at 0 is RigL's rule; Mocanu et al.'s SET code draws regrown
    weights at random (`randn / 10`, i.e. `regrowth_stddev=0.1`). With 0, a
    regrown connection is among the smallest at the next update, so most
    drops hit the connections grown at the previous one: in the SET
    tutorial setting (`benchmarks/sparse_training_set.py`, 400 epochs, 5
    seeds, JAX) test accuracy was 0.813 +- 0.008 with 0 and 0.825 +- 0.010
    with 0.1 (published 0.826 +- 0.009).

    The layers must be built with `mutable_connectivity=True`. `history`
    lists one record per layer and update (`step`, `layer`, `nnz`,
    `dropped`, `grown`, `mean_abs_dropped`, `drop_fraction`); the progress
    bar and `History` show `set_changed`, the connections changed in the
    current epoch.

    SET's paper drops a fraction `zeta` of the positive and of the negative
    weights closest to zero, once per epoch; this callback drops by `|w|`
    over all weights (as RigL and jaxpruner do) at a step interval.

    Args:
        drop_fraction: float in (0, 1), fraction of each layer's connections
            replaced per update (default 0.3, SET's zeta).
        update_interval: positive int, optimizer steps between updates (use
            the number of steps per epoch for SET's once-per-epoch rule).
        end_step: last step at which connectivity changes (default: never
            stops).
        seed: int seed of the stateless random draws.
        layers: names of the sparse layers to update; default every
            `SparseDense` / `SparseConv*D` of the model.
        optimizer: the optimizer whose state is remapped; default
            `model.optimizer` (pass it in a hand-written loop).
        regrowth_stddev: non-negative float, standard deviation of the
            normal draw a regrown weight starts at (default 0: zeros). For
            a convolution, every entry of the regrown kernel is drawn.

    Raises:
        ValueError: for bad arguments; at the start of training, for a layer
            built without `mutable_connectivity=True` (naming it and the
            fix), an unknown layer name, or an optimizer whose state cannot
            be remapped.

    Example:

    >>> cb = SET(drop_fraction=0.3, update_interval=100, seed=0)
    >>> cb.drop_fraction, cb.update_interval
    (0.3, 100)

    References:
        Mocanu et al., "Scalable training of artificial neural networks with
        adaptive sparse connectivity inspired by network science", Nature
        Communications 9, 2383 (2018).
    """

    _log_prefix = "set"

    def __init__(
        self,
        drop_fraction: float = 0.3,
        update_interval: int = 100,
        end_step: int | None = None,
        seed: int = 0,
        layers: Sequence[str] | None = None,
        optimizer: Any = None,
        regrowth_stddev: float = 0.0,
    ):
        super().__init__(
            drop_fraction, update_interval, end_step, seed, layers, optimizer
        )
        ok = isinstance(regrowth_stddev, (int, float)) and not isinstance(
            regrowth_stddev, bool
        )
        if not ok or not math.isfinite(regrowth_stddev) or regrowth_stddev < 0:
            raise ValueError(
                "Received an invalid value for `regrowth_stddev` of `SET`, expected "
                "a finite float >= 0 (0: regrown weights start at 0). Received: "
                f"regrowth_stddev={regrowth_stddev!r}"
            )
        self.regrowth_stddev = float(regrowth_stddev)

    def _update(self, step: int) -> list[dict[str, Any]]:
        records = super()._update(step)
        if not self.regrowth_stddev:
            return records
        changed = {record["layer"] for record in records}
        for index, layer in enumerate(self._layers):
            if layer.name not in changed:
                continue
            grown = np.flatnonzero(np.asarray(self.last_sources[layer.name]) < 0)
            values = np.array(keras.ops.convert_to_numpy(layer.kernel_values))
            # A stream of its own: not the one that chose the positions.
            rng = np.random.default_rng([self.seed, step, index, 1])
            draw = rng.normal(
                0.0, self.regrowth_stddev, (grown.size,) + values.shape[1:]
            )
            values[grown] = draw.astype(values.dtype)
            layer.kernel_values.assign(values)
        return records

    def _grow(self, step: int, plans: list) -> list[np.ndarray]:
        grown = []
        for index, layer, keep, count in plans:
            conn = layer.connectivity
            occupied = np.sort(alg.flat_positions(conn)[keep])
            total = conn.num_inputs * conn.num_outputs
            grown.append(
                alg.random_absent_positions(
                    total, occupied, count, self._seed(step, index)
                )
            )
        return grown


class RigL(_DropGrow):
    """Rigged Lottery: drop the weakest, grow where the dense gradient is largest.

    Every `update_interval` steps up to `end_step`, each chosen layer drops
    the `floor(f(t) * nnz)` connections of smallest magnitude, with the
    cosine-decayed fraction `f(t) = drop_fraction / 2 * (1 + cos(pi * t /
    end_step))`, and grows as many at the positions not kept where
    `|dL/dW|` of the dense kernel is largest. Regrown connections start at 0
    and all their optimizer slots at 0; `nnz` is constant.

    The dense gradient is never formed whole. RigL runs a side pass on one
    batch drawn from `data` (indices from the stateless
    `default_rng([seed, step])`, identical on every replica) with
    `training=False`: it records each layer's input `x` and, through a zero
    probe added before the activation, the gradient `dz` of the loss w.r.t.
    the pre-activation output (`tf.GradientTape` / `jax.value_and_grad` /
    `torch.autograd.grad`; the model's variables are not changed). For a
    `SparseDense`, `G = x^T @ dz` is then computed in row blocks of about
    `block_size` entries with a running top-k, so peak extra memory is
    O(block_size + nnz) (`algorithms.top_gradient_positions`); for a
    convolution, the dense kernel gradient (the size of a dense
    convolution's kernel) is scored per (input channel, filter) kernel by
    its L2 norm. The blocked product and the top-k run on the host
    (NumPy, multithreaded BLAS): `x` and `dz` of one batch are copied off
    the device, never a dense kernel-sized array.

    Args:
        drop_fraction: float in (0, 1), the initial fraction (alpha,
            default 0.3).
        update_interval: positive int, steps between updates (default 100).
        end_step: positive int, the step after which connectivity is frozen
            (T_end, about 75 % of training in the paper).
        data: `(x, y)` arrays the gradient batch is drawn from (e.g. the
            training set or a part of it).
        batch_size: samples in the gradient batch (default 128).
        loss: loss `fn(y_true, y_pred)` or name; default `model.loss`.
        seed: int seed of the batch draws.
        block_size: entries of the dense gradient formed at a time
            (default 2**22, 16 MiB in float32).
        layers: names of the sparse layers to update; default all.
        optimizer: the optimizer whose state is remapped; default
            `model.optimizer`.

    Raises:
        ValueError: for bad arguments; at the start of training, for a layer
            without `mutable_connectivity=True`, an unknown layer name, a
            model without a usable loss, or an optimizer whose state cannot
            be remapped.

    Example:

    >>> import numpy as np
    >>> data = (np.zeros((8, 4), "float32"), np.zeros((8, 2), "float32"))
    >>> cb = RigL(update_interval=100, end_step=1000, data=data, seed=0)
    >>> round(cb.drop_fraction_at(500), 4)
    0.15

    References:
        Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All
        Tickets Winners", ICML 2020.
    """

    _log_prefix = "rigl"

    def __init__(
        self,
        drop_fraction: float = 0.3,
        update_interval: int = 100,
        end_step: int | None = None,
        data: Any = None,
        batch_size: int = 128,
        loss: Any = None,
        seed: int = 0,
        block_size: int = 1 << 22,
        layers: Sequence[str] | None = None,
        optimizer: Any = None,
    ):
        if end_step is None:
            raise ValueError(
                "Received an invalid value for `end_step` of `RigL`, expected a "
                "positive integer (T_end of the cosine schedule, e.g. 75 % of the "
                "training steps). Received: end_step=None"
            )
        super().__init__(
            drop_fraction, update_interval, end_step, seed, layers, optimizer
        )
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise ValueError(
                "Received an invalid value for `data` of `RigL`, expected a tuple "
                "`(x, y)` of arrays to draw the gradient batch from. Received: "
                f"data of type {type(data).__name__}"
            )
        self.data = (np.asarray(data[0]), np.asarray(data[1]))
        if len(self.data[0]) != len(self.data[1]) or len(self.data[0]) == 0:
            raise ValueError(
                "`data` of `RigL` must be `(x, y)` with the same positive number of "
                f"samples. Received: {len(self.data[0])} and {len(self.data[1])}"
            )
        self.batch_size = _check_int(batch_size, "batch_size", "RigL", 1)
        self.block_size = _check_int(block_size, "block_size", "RigL", 1)
        self.loss = loss

    def drop_fraction_at(self, step: int) -> float:
        """The cosine-decayed drop fraction at `step`."""
        return alg.cosine_drop_fraction(step, self.drop_fraction, self.end_step)

    def _fraction(self, step: int) -> float:
        return self.drop_fraction_at(step)

    def _loss_fn(self) -> Any:
        loss = self.loss if self.loss is not None else getattr(self.model, "loss", None)
        if loss is None or isinstance(loss, (dict, list, tuple)):
            raise ValueError(
                "RigL needs one loss `fn(y_true, y_pred)` for its gradient pass; the "
                f"model's loss is {loss!r}. Pass `RigL(..., loss=...)`."
            )
        return keras.losses.get(loss) if isinstance(loss, str) else loss

    def batch_indices(self, step: int) -> np.ndarray:
        """Indices into `data` of the gradient batch used at `step` (sorted)."""
        n = len(self.data[0])
        if self.batch_size >= n:
            return np.arange(n)
        rng = np.random.default_rng([self.seed, step])
        return np.sort(rng.choice(n, size=self.batch_size, replace=False))

    def _grow(self, step: int, plans: list) -> list[np.ndarray]:
        index = self.batch_indices(step)
        x, y = self.data[0][index], self.data[1][index]
        layers = [p[1] for p in plans]
        captured = layer_inputs_and_output_grads(
            self.model, layers, x, y, self._loss_fn()
        )
        grown = []
        for _, layer, keep, count in plans:
            conn = layer.connectivity
            occupied = np.sort(alg.flat_positions(conn)[keep])
            xi, dz = captured[id(layer)]
            if isinstance(layer, SparseDense):
                xi = xi.reshape(-1, conn.num_inputs)
                dz = dz.reshape(-1, conn.num_outputs)
                grown.append(
                    alg.top_gradient_positions(xi, dz, occupied, count, self.block_size)
                )
            else:
                g = conv_kernel_gradient(layer, xi, dz)
                grown.append(alg.top_kernel_gradient_positions(g, occupied, count))
        return grown


class GradualMagnitudePruning(_ConnectivityCallback):
    """Gradual magnitude pruning (GMP) with the cubic schedule of Zhu & Gupta.

    Every `frequency` steps from `begin_step` to `end_step`, each chosen
    layer keeps the `round(d_t * capacity)` largest-magnitude connections of
    those still active and masks the rest, where `capacity` is its `nnz`
    when training starts (full connectivity for a freshly converted dense
    model) and `d_t` follows
    `s_t = s_f + (s_i - s_f) * (1 - (t - begin) / (end - begin)) ** 3`
    (`s = 1 - density`). Pruned connections are switched off through the
    layer's `kernel_mask`: their value and every optimizer slot are set to
    0, so they contribute exactly 0, get a zero gradient and never move
    again. Pruning never revives a connection.

    Variable shapes cannot change inside `fit`, so the layer keeps its
    starting capacity while it prunes. Afterwards, `compact()` (or
    `keras_sparse.training.compact(model)`) returns a truly sparse model
    with the final `nnz` (its `summary()` shows it) and the optimizer state
    restricted to the kept connections.

    Args:
        final_density: float in (0, 1], the density at `end_step` (per
            layer, or the overall density with `distribution="erk"`).
        begin_step: int >= 0, the step of the first pruning.
        end_step: int > begin_step, the step of the last pruning.
        frequency: positive int, steps between prunings (default 100).
        distribution: `"uniform"` (every layer `final_density`) or `"erk"`
            (final densities from `layer_densities` over the chosen layers).
        layers: names of the sparse layers to prune; default all.
        optimizer: the optimizer whose state is zeroed; default
            `model.optimizer`.

    Raises:
        ValueError: for bad arguments, or (at the start of training) a layer
            without `mutable_connectivity=True`.

    Example:

    >>> gmp = GradualMagnitudePruning(0.1, begin_step=0, end_step=1000)
    >>> round(gmp.density_at(500), 4)
    0.2125

    References:
        Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of
        pruning for model compression", arXiv:1710.01878 (2017).
    """

    _log_prefix = "gmp"

    def __init__(
        self,
        final_density: float,
        begin_step: int,
        end_step: int,
        frequency: int = 100,
        distribution: str = "uniform",
        layers: Sequence[str] | None = None,
        optimizer: Any = None,
    ):
        super().__init__(layers=layers, optimizer=optimizer)
        name = "GradualMagnitudePruning"
        self.final_density = check_density(final_density, "final_density", name)
        self.begin_step = _check_int(begin_step, "begin_step", name, 0)
        self.end_step = _check_int(end_step, "end_step", name, 0)
        if self.end_step <= self.begin_step:
            raise ValueError(
                f"`end_step` of `{name}` must be greater than `begin_step`. "
                f"Received: begin_step={begin_step}, end_step={end_step}"
            )
        self.frequency = _check_int(frequency, "frequency", name, 1)
        if distribution not in ("uniform", "erk"):
            raise ValueError(
                f"Received an invalid value for `distribution` of `{name}`, expected "
                f"'uniform' or 'erk'. Received: distribution={distribution!r}"
            )
        self.distribution = distribution
        self._capacity: dict[str, int] = {}
        self._active = 0
        self._final: dict[str, float] = {}

    def density_at(self, step: int, final_density: float | None = None) -> float:
        """The scheduled density (fraction of the capacity) at `step`."""
        final = self.final_density if final_density is None else final_density
        return alg.cubic_density(step, self.begin_step, self.end_step, 1.0, final)

    def _setup(self) -> None:
        self._capacity = {layer.name: layer.nnz for layer in self._layers}
        masks = [
            keras.ops.convert_to_numpy(layer.kernel_mask) for layer in self._layers
        ]
        self._active = sum(int(np.count_nonzero(m)) for m in masks)
        if self.distribution == "erk":
            shapes = {}
            for layer in self._layers:
                shape = layer.connectivity.shape
                if not isinstance(layer, SparseDense):
                    shape = tuple(layer.kernel_size) + shape
                shapes[layer.name] = shape
            self._final = layer_densities(shapes, self.final_density, "erk")
        else:
            self._final = {layer.name: self.final_density for layer in self._layers}

    def _due(self, step: int) -> bool:
        if step < self.begin_step or step > self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step

    def _update(self, step: int) -> list[dict[str, Any]]:
        records = []
        active_total = 0
        for layer in self._layers:
            capacity = self._capacity[layer.name]
            density = self.density_at(step, self._final[layer.name])
            target = max(1, int(round(density * capacity)))
            mask = keras.ops.convert_to_numpy(layer.kernel_mask) > 0
            active = int(mask.sum())
            if active <= target:
                active_total += active
                continue
            values = keras.ops.convert_to_numpy(layer.kernel_values)
            scores = alg.kernel_scores(values)
            scores[~mask] = -1.0  # already pruned: pruned first, stay pruned
            pruned = alg.drop_smallest(scores, capacity - target)
            newly = pruned[mask[pruned]]
            new_mask = mask.copy()
            new_mask[pruned] = False
            layer.set_kernel_mask(new_mask)
            shape = (-1,) + (1,) * (values.ndim - 1)
            layer.kernel_values.assign(values * new_mask.reshape(shape))
            source = np.where(new_mask, np.arange(capacity), -1)
            self.last_sources[layer.name] = source
            if self.optimizer is not None:
                remap_optimizer_slots(self.optimizer, layer.kernel_values, source)
            dropped = alg.kernel_scores(values[newly])
            active_total += int(new_mask.sum())
            records.append(
                {
                    "step": step,
                    "layer": layer.name,
                    "nnz": int(new_mask.sum()),
                    "pruned": int(newly.size),
                    "density": float(new_mask.sum()) / capacity,
                    "mean_abs_dropped": float(dropped.mean()) if dropped.size else 0.0,
                }
            )
        self._active = active_total
        return records

    def _logs(self) -> dict[str, Any]:
        # Cached: on JAX the variables are not readable between synced steps.
        if not self._capacity:
            return {}
        return {"gmp_density": self._active / max(1, sum(self._capacity.values()))}

    def compact(self, model: Any = None) -> Any:
        """The truly sparse model with the pruned connections removed.

        Same as `keras_sparse.training.compact(model)` (default: the model
        this callback trained).
        """
        from keras_sparse.training.sparsify import compact

        return compact(model if model is not None else self.model)
