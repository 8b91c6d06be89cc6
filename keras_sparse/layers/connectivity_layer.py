"""The base of every layer whose weights live on a `Connectivity`.

It owns the connectivity and everything about keeping it: the config entry
(inline when small, otherwise a placeholder resolved from the saved
weights), saving the indices and names next to the weights, and refusing
to load weights saved for a different connectivity.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity, as_connectivity
from keras_sparse.initializers.sparse_variance_scaling import SparseVarianceScaling

__all__ = ["ConnectivityLayer"]

# Connectivities whose compact encoding (indices + names) fits this budget
# travel inside `get_config()`; larger ones only in the saved variables.
_CONFIG_INLINE_BYTES = 256 * 1024


class _PendingConnectivity:
    """Shape and nnz of a connectivity that arrives with the saved weights."""

    def __init__(self, shape: Any, nnz: int, fingerprint: str | None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.num_inputs, self.num_outputs = self.shape
        self.nnz = int(nnz)
        self.fingerprint = fingerprint

    def placeholder_config(self) -> dict[str, Any]:
        return {
            "stored_with_weights": True,
            "shape": list(self.shape),
            "nnz": self.nnz,
            "fingerprint": self.fingerprint,
        }


class ConnectivityLayer(keras.layers.Layer):
    """Base layer holding a `Connectivity` (not public API).

    Subclasses set `self._connectivity` through `_set_connectivity` in
    `__init__`, list their saved variables in `_saved_variables()`, and
    react to a connectivity loaded from a file in
    `_on_connectivity_loaded()`.
    """

    def _set_connectivity(self, connectivity: Any) -> None:
        if isinstance(connectivity, dict) and connectivity.get("stored_with_weights"):
            self._connectivity: Connectivity | _PendingConnectivity = (
                _PendingConnectivity(
                    connectivity["shape"], connectivity["nnz"], connectivity.get("fingerprint")
                )
            )
        else:
            self._connectivity = as_connectivity(connectivity)

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
            kernel_initializer if kernel_initializer is not None else SparseVarianceScaling()
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

    # ------------------------------------------------------------- inspection
    @property
    def connectivity(self) -> Connectivity:
        """The layer's `Connectivity` (immutable).

        Raises:
            RuntimeError: if the layer was rebuilt from a config whose
                connectivity was too large to inline and no weights have
                been loaded yet.
        """
        if not isinstance(self._connectivity, Connectivity):
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
        return self._connectivity.nnz

    # ---------------------------------------------------------- serialization
    def _connectivity_config(self) -> dict[str, Any]:
        conn = self._connectivity
        if not isinstance(conn, Connectivity):
            return conn.placeholder_config()
        inline = conn.get_config()
        size = len(inline["data"]) + sum(
            len(n) + 4
            for names in (inline["input_names"], inline["output_names"])
            if names
            for n in names
        )
        if size <= _CONFIG_INLINE_BYTES:
            return inline
        return _PendingConnectivity(conn.shape, conn.nnz, conn.fingerprint()).placeholder_config()

    def _saved_variables(self) -> list[Any]:
        raise NotImplementedError

    def _on_connectivity_loaded(self) -> None:
        """Called after `load_own_variables` replaced the connectivity."""

    def save_own_variables(self, store: Any) -> None:
        for i, variable in enumerate(self._saved_variables()):
            store[str(i)] = variable
        conn = self.connectivity
        store["input_indices"] = np.asarray(conn.input_indices)
        store["output_indices"] = np.asarray(conn.output_indices)
        store["shape"] = np.asarray(conn.shape, dtype=np.int64)
        for key, names in (
            ("input_names", conn.input_names),
            ("output_names", conn.output_names),
        ):
            if names is not None:
                data, offsets = _encode_names(names)
                store[f"{key}_utf8"] = data
                store[f"{key}_offsets"] = offsets

    def load_own_variables(self, store: Any) -> None:
        keys = set(store.keys())
        if "input_indices" not in keys or "output_indices" not in keys:
            raise ValueError(
                f"The saved weights for layer '{self.name}' hold no connectivity "
                "(no `input_indices`/`output_indices`); they were not written by a "
                f"keras_sparse {type(self).__name__} layer."
            )
        shape = tuple(int(d) for d in np.asarray(store["shape"]))
        names = {}
        for key in ("input_names", "output_names"):
            if f"{key}_utf8" in keys:
                names[key] = _decode_names(
                    np.asarray(store[f"{key}_utf8"]), np.asarray(store[f"{key}_offsets"])
                )
        saved = Connectivity(
            np.asarray(store["input_indices"]),
            np.asarray(store["output_indices"]),
            shape=shape,  # type: ignore[arg-type]
            input_names=names.get("input_names"),
            output_names=names.get("output_names"),
            empty_outputs="ignore",
        )
        current = self._connectivity
        if isinstance(current, Connectivity):
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
        elif (
            saved.shape != current.shape
            or saved.nnz != current.nnz
            or (current.fingerprint and saved.fingerprint() != current.fingerprint)
        ):
            raise ValueError(
                f"Layer '{self.name}' expects a connectivity of shape "
                f"{current.shape} with nnz={current.nnz} (fingerprint "
                f"{current.fingerprint}) but the file holds {saved!r} "
                f"(fingerprint {saved.fingerprint()})."
            )
        variables = self._saved_variables()
        missing = [str(i) for i in range(len(variables)) if str(i) not in keys]
        if missing:
            raise ValueError(
                f"The saved weights for layer '{self.name}' lack variables {missing}."
            )
        self._connectivity = saved
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])
        self._on_connectivity_loaded()


def _encode_names(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [n.encode("utf-8") for n in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return data, offsets


def _decode_names(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = data.astype(np.uint8).tobytes()
    return [
        raw[offsets[k] : offsets[k + 1]].decode("utf-8") for k in range(offsets.size - 1)
    ]
