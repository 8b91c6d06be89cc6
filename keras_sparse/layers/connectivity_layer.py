"""The base of every layer whose weights live on a `Connectivity`.

It owns the connectivity and everything about keeping it: the config entry
(inline when small, otherwise a placeholder resolved from the saved
weights or, within one process, from the layer it was cloned from), saving
the indices and names next to the weights, refusing to load weights saved
for a different connectivity, and replacing the connectivity during
training for layers built with `mutable_connectivity=True`.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import keras
import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity, as_connectivity
from keras_sparse.connectivity.serialization import read_from_store, write_to_store
from keras_sparse.initializers.sparse_variance_scaling import SparseVarianceScaling

# Connectivities whose compact encoding (indices + names) fits this budget
# travel inside `get_config()`; larger ones only in the saved variables
# (and, within one process, through `_SHARED` for clones).
_CONFIG_INLINE_BYTES = 256 * 1024

# Connectivities of live layers whose configs hold a placeholder, by key:
# `clone_model`, `model_from_json(to_json())` and `copy.deepcopy` rebuild a
# layer from its config in the same process and find it here.
_SHARED: dict[str, list[Any]] = {}


def _share(holder: list[str | None], conn: Connectivity) -> str:
    """Shares `conn` under a key; `holder[0]`, the layer's previously shared
    key, is released (a layer shares one connectivity at a time)."""
    key = f"{conn.fingerprint()}:{id(conn):x}"
    entry = _SHARED.setdefault(key, [conn, 0])
    entry[1] += 1
    _release(holder)
    holder[0] = key
    return key


def _release(holder: list[str | None]) -> None:
    key, holder[0] = holder[0], None
    entry = _SHARED.get(key) if key is not None else None
    if entry is not None:
        entry[1] -= 1
        if entry[1] <= 0:
            del _SHARED[key]  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class _Declared:
    """What a layer knows of its connectivity before it is loaded."""

    shape: tuple[int, int]
    nnz: int
    expected_fingerprint: str | None

    @property
    def density(self) -> float:
        return self.nnz / (self.shape[0] * self.shape[1])


class ConnectivityLayer(keras.layers.Layer):
    """Base layer holding a `Connectivity` (not public API).

    Subclasses call `_init_connectivity` in `__init__`, list their saved
    variables in `_saved_variables()`, build their plan in `_make_plan()`
    (called when built with a connectivity and after one is loaded), and
    reorder their values in `_reorder_values()` for `set_connectivity`.
    """

    # ------------------------------------------------------------ connectivity
    def _init_connectivity(self, connectivity: Any, mutable_connectivity: bool) -> None:
        self.mutable_connectivity = bool(mutable_connectivity)
        # The key under which this layer shares its connectivity (see
        # `_SHARED`), released when the layer is garbage-collected.
        self._share_key: list[str | None] = [None]
        weakref.finalize(self, _release, self._share_key)
        self._plan: Any = None
        if isinstance(connectivity, dict) and connectivity.get("stored_with_weights"):
            shared = _SHARED.get(str(connectivity.get("key")))
            self._connectivity: Connectivity | None = shared[0] if shared else None
            self._declared = _Declared(
                (int(connectivity["shape"][0]), int(connectivity["shape"][1])),
                int(connectivity["nnz"]),
                connectivity.get("fingerprint"),
            )
        else:
            conn = as_connectivity(connectivity)
            self._connectivity = conn
            self._declared = _Declared(conn.shape, conn.nnz, None)

    def _set_weight_options(
        self,
        activation: Any,
        use_bias: bool,
        kernel_initializer: Any,
        bias_initializer: Any,
        kernel_regularizer: Any,
        bias_regularizer: Any,
        kernel_constraint: Any,
        bias_constraint: Any,
    ) -> None:
        """Normalizes the Keras weight arguments shared by every sparse layer.

        The default kernel initializer (`None`) is `SparseVarianceScaling()`.
        """
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer
            if kernel_initializer is not None
            else SparseVarianceScaling()
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def _weight_options_config(self) -> dict[str, Any]:
        """The serialized form of `_set_weight_options`' arguments."""
        return {
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }

    def _add_connectivity_variables(self, extra: dict[str, int]) -> None:
        """Creates the integer variables of a mutable connectivity and its
        `kernel_mask` (called from `build` when `mutable_connectivity`)."""
        nnz = self._declared.nnz
        arrays = (
            self._connectivity_arrays(self._connectivity)
            if self._connectivity
            else None
        )
        self._index_variables: dict[str, Any] = {}
        sizes: dict[str, int] = {"input_indices": nnz, "output_indices": nnz, **extra}
        for name, size in sizes.items():
            initial = arrays[name] if arrays is not None else np.zeros(size, np.int32)
            self._index_variables[name] = self.add_weight(
                name=name,
                shape=(int(size),),
                dtype="int32",
                initializer=keras.initializers.Constant(initial)
                if arrays is not None
                else "zeros",
                trainable=False,
            )
        self.kernel_mask = self.add_weight(
            name="kernel_mask",
            shape=(nnz,),
            initializer="ones",
            trainable=False,
        )

    def _connectivity_arrays(self, conn: Connectivity) -> dict[str, np.ndarray]:
        """The values of the integer variables for `conn` (subclasses add)."""
        return {
            "input_indices": conn.input_indices.astype(np.int32),
            "output_indices": conn.output_indices.astype(np.int32),
        }

    # ------------------------------------------------------------- inspection
    @property
    def connectivity(self) -> Connectivity:
        """The layer's current `Connectivity` (immutable).

        Raises:
            RuntimeError: if the layer was rebuilt in a new process from a
                config whose connectivity was too large to inline and no
                weights have been loaded yet.
        """
        if self._connectivity is None:
            raise RuntimeError(
                f"Layer '{self.name}' was rebuilt from a config that does not "
                "carry its connectivity (it was too large to inline); load the "
                "saved weights (`model.load_weights(...)` or "
                "`keras.saving.load_model(...)`) before using it."
            )
        return self._connectivity

    @property
    def nnz(self) -> int:
        """Number of connections."""
        return self._declared.nnz

    # ----------------------------------------------------- changing connectivity
    def set_connectivity(self, connectivity: Any, source: Any = None) -> np.ndarray:
        """Replaces the connectivity during training (same shape and `nnz`).

        Only for layers built with `mutable_connectivity=True`, whose
        connection indices live in integer variables: nothing is retraced
        or recompiled, on any backend. The values move with their
        connections; new connections start at zero, and `kernel_mask` moves
        with them (new connections active). Optimizer state is not touched:
        remap it with the returned `source` (`keras_sparse.training` does).

        Args:
            connectivity: the new `Connectivity` (or anything
                `as_connectivity` accepts), same shape and `nnz`.
            source: optional `(nnz,)` integer array: `source[e]` is the
                position in the current `kernel_values` whose value moves to
                the new connection `e` (canonical order), `-1` for a new
                connection. Default: connections present in both keep their
                values, matched by `(input, output)`.

        Returns:
            The `source` used, an int64 array of shape `(nnz,)`.

        Raises:
            ValueError: if the layer is not built, was built with
                `mutable_connectivity=False`, or the shape, `nnz` or `source`
                do not fit.
        """
        if not self.mutable_connectivity:
            raise ValueError(
                f"Layer '{self.name}' has a fixed connectivity. Build it with "
                f"`{type(self).__name__}(..., mutable_connectivity=True)` to change "
                "its connections during training."
            )
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built yet; call it on data (or "
                "`build(input_shape)`) before replacing its connectivity."
            )
        new = as_connectivity(connectivity)
        old = self.connectivity
        if new.shape != old.shape or new.nnz != old.nnz:
            raise ValueError(
                "Received an invalid value for `connectivity`, expected the shape "
                f"{old.shape} and nnz={old.nnz} of layer '{self.name}'. Received: "
                f"connectivity of shape {new.shape} with nnz={new.nnz}."
            )
        if source is None:
            source = _match(old, new)
        source = np.asarray(source)
        if (
            source.shape != (new.nnz,)
            or not np.issubdtype(source.dtype, np.integer)
            or (source.size and (source.min() < -1 or source.max() >= old.nnz))
        ):
            raise ValueError(
                "Received an invalid value for `source`, expected an integer array "
                f"of shape ({new.nnz},) with entries in [-1, {old.nnz}). Received: "
                f"array of shape {source.shape} and dtype {source.dtype}."
            )
        source = source.astype(np.int64)
        keep = source >= 0
        take = np.where(keep, source, 0)
        values = keras.ops.convert_to_numpy(self.kernel_values)
        moved = values[take]
        moved[~keep] = 0
        self.kernel_values.assign(moved)
        mask = keras.ops.convert_to_numpy(self.kernel_mask)
        self.kernel_mask.assign(np.where(keep, mask[take], 1).astype(mask.dtype))
        self._assign_connectivity(new)
        return source

    def set_kernel_mask(self, mask: Any) -> None:
        """Sets `kernel_mask`: connections where it is 0 are inactive.

        An inactive connection contributes exactly 0 and gets a zero
        gradient; its value stays stored. Only for layers built with
        `mutable_connectivity=True`.

        Args:
            mask: `(nnz,)` array of 0/1 or booleans, canonical order.

        Raises:
            ValueError: for a fixed-connectivity layer or a wrong shape.
        """
        if not self.mutable_connectivity:
            raise ValueError(
                f"Layer '{self.name}' has no `kernel_mask`: build it with "
                f"`{type(self).__name__}(..., mutable_connectivity=True)`."
            )
        mask = np.asarray(mask)
        if mask.shape != (self.nnz,):
            raise ValueError(
                "Received an invalid value for `mask`, expected shape "
                f"({self.nnz},). Received: mask of shape {mask.shape}."
            )
        self.kernel_mask.assign(mask.astype(self.kernel_mask.dtype))

    def _assign_connectivity(self, conn: Connectivity) -> None:
        self._connectivity = conn
        if self.mutable_connectivity and self.built:
            for name, array in self._connectivity_arrays(conn).items():
                self._index_variables[name].assign(array)
        if self._plan is None or not self.mutable_connectivity:
            self._make_plan()

    def _make_plan(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------- serialization
    def _connectivity_config(self) -> dict[str, Any]:
        conn = self._connectivity
        if conn is None:
            declared = self._declared
            return {
                "stored_with_weights": True,
                "shape": list(declared.shape),
                "nnz": declared.nnz,
                "fingerprint": declared.expected_fingerprint,
            }
        inline = conn.get_config()
        size = len(inline["data"]) + sum(
            len(n) + 4
            for names in (inline["input_names"], inline["output_names"])
            if names
            for n in names
        )
        if size <= _CONFIG_INLINE_BYTES:
            return inline
        key = self._share_key[0]
        if key is None or _SHARED.get(key, [None])[0] is not conn:
            key = _share(self._share_key, conn)
        return {
            "stored_with_weights": True,
            "shape": list(conn.shape),
            "nnz": conn.nnz,
            "fingerprint": conn.fingerprint(),
            "key": key,
        }

    def _saved_variables(self) -> list[Any]:
        raise NotImplementedError

    def save_own_variables(self, store: Any) -> None:
        for i, variable in enumerate(self._saved_variables()):
            store[str(i)] = variable
        if self.mutable_connectivity:
            store["kernel_mask"] = self.kernel_mask
        write_to_store(self.connectivity, store)

    def load_own_variables(self, store: Any) -> None:
        keys = set(store.keys())
        saved = read_from_store(store, self.name, type(self).__name__)
        current = self._connectivity
        if current is not None and not self.mutable_connectivity:
            if not current.same_edges(saved):
                raise ValueError(
                    f"Layer '{self.name}' has connectivity {current!r} but the "
                    f"weights file holds {saved!r} (different connections). "
                    "Build the layer with the connectivity it was saved with, or "
                    "load the whole model with `keras.saving.load_model`."
                )
            for key in ("input_names", "output_names"):
                ours, theirs = getattr(current, key), getattr(saved, key)
                if ours is not None and theirs is not None and ours != theirs:
                    raise ValueError(
                        f"Layer '{self.name}': the `{key}` of its connectivity "
                        "differ from those in the weights file; refusing to "
                        "attach weights to differently named units."
                    )
            saved = current.with_names(
                current.input_names or saved.input_names,
                current.output_names or saved.output_names,
            )
        else:
            declared = self._declared
            if (
                saved.shape != declared.shape
                or saved.nnz != declared.nnz
                or (
                    declared.expected_fingerprint
                    and saved.fingerprint() != declared.expected_fingerprint
                )
            ):
                raise ValueError(
                    f"Layer '{self.name}' expects a connectivity of shape "
                    f"{declared.shape} with nnz={declared.nnz} (fingerprint "
                    f"{declared.expected_fingerprint}) but the file holds {saved!r} "
                    f"(fingerprint {saved.fingerprint()})."
                )
        variables = self._saved_variables()
        missing = [str(i) for i in range(len(variables)) if str(i) not in keys]
        if missing:
            raise ValueError(
                f"The saved weights for layer '{self.name}' lack variables {missing}."
            )
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])
        if "kernel_mask" in keys and not self.mutable_connectivity:
            # Saved by a layer with inactive connections: a fixed layer has
            # no mask, so the inactive values become exact zeros (same
            # outputs).
            mask = np.asarray(store["kernel_mask"])
            values = keras.ops.convert_to_numpy(self.kernel_values)
            shape = (-1,) + (1,) * (values.ndim - 1)
            self.kernel_values.assign(values * mask.reshape(shape).astype(values.dtype))
        if self.mutable_connectivity:
            if "kernel_mask" in keys:
                self.kernel_mask.assign(store["kernel_mask"])
            else:
                self.kernel_mask.assign(np.ones(self.nnz, dtype="float32"))
        self._assign_connectivity(saved)


def _match(old: Connectivity, new: Connectivity) -> np.ndarray:
    """`source` that keeps the values of connections present in both."""
    n_in = old.shape[0]
    old_keys = old.output_indices.astype(np.int64) * n_in + old.input_indices
    new_keys = new.output_indices.astype(np.int64) * n_in + new.input_indices
    pos = np.searchsorted(old_keys, new_keys)  # canonical order: sorted keys
    pos = np.minimum(pos, max(old_keys.size - 1, 0))
    found = old_keys.size > 0
    hit = (old_keys[pos] == new_keys) if found else np.zeros(new_keys.size, bool)
    return np.where(hit, pos, -1).astype(np.int64)
