"""Every storage format of a `Connectivity`, in one place.

Three formats, each a permanent on-disk contract:

* **npz** (`save_npz` / `load_npz`, behind `Connectivity.save` / `load`):
  arrays `input_indices`, `output_indices`, `shape` and, when named,
  `input_names` / `output_names` (unicode arrays).
* **config** (`to_config` / `from_config`, behind `Connectivity.get_config` /
  `from_config`): a JSON-safe dict, encoding `"csc-delta-u32-zlib-base64"`,
  used inline in layer configs.
* **weights store** (`write_to_store` / `read_from_store`): the keys a
  sparse layer writes next to its variables in `.keras` and `.weights.h5`
  files: `input_indices`, `output_indices`, `shape` (int64) and, when named,
  `input_names_utf8` / `input_names_offsets` (and the same for outputs):
  the UTF-8 bytes of all names concatenated, and the `n + 1` byte offsets.
"""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keras_sparse.connectivity.connectivity import Connectivity

__all__ = [
    "CONFIG_ENCODING",
    "STORE_KEYS",
    "from_config",
    "load_npz",
    "read_from_store",
    "save_npz",
    "to_config",
    "write_to_store",
]

CONFIG_ENCODING = "csc-delta-u32-zlib-base64"
# Keys `write_to_store` may write (the names keys only for named units).
STORE_KEYS = (
    "input_indices",
    "output_indices",
    "shape",
    "input_names_utf8",
    "input_names_offsets",
    "output_names_utf8",
    "output_names_offsets",
)
_NAME_KEYS = ("input_names", "output_names")


def _connectivity_class() -> type[Connectivity]:
    # Imported at call time: connectivity.py imports this module.
    from keras_sparse.connectivity.connectivity import Connectivity

    return Connectivity


# --------------------------------------------------------------------- npz
def save_npz(connectivity: Connectivity, path: str | os.PathLike[str]) -> None:
    """Writes `connectivity` (indices, shape, names) to a `.npz` file.

    Example:

    >>> import os, tempfile
    >>> from keras_sparse import Connectivity
    >>> c = Connectivity([0, 1], [0, 1], shape=(2, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "c.npz")
    >>> save_npz(c, path)
    >>> load_npz(path) == c
    True
    """
    arrays: dict[str, Any] = {
        "input_indices": connectivity.input_indices,
        "output_indices": connectivity.output_indices,
        "shape": np.asarray(connectivity.shape, dtype=np.int64),
    }
    for key in _NAME_KEYS:
        names = getattr(connectivity, key)
        if names is not None:
            arrays[key] = np.asarray(names, dtype=str)
    np.savez_compressed(path, **arrays)


def load_npz(path: str | os.PathLike[str], empty_outputs: str = "warn") -> Connectivity:
    """Reads a connectivity written by `save_npz` (`Connectivity.save`).

    Args:
        path: the `.npz` file.
        empty_outputs: as in `Connectivity`.

    Raises:
        ValueError: if the file is not a `Connectivity.save` archive
            (missing arrays are named) or its content is invalid.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path!r} is not a readable .npz connectivity file ({err})."
        ) from None
    with archive:
        missing = [
            k
            for k in ("input_indices", "output_indices", "shape")
            if k not in archive.files
        ]
        if missing:
            raise ValueError(
                f"{path!r} is not a Connectivity.save() file: it lacks "
                f"{missing} (it holds {sorted(archive.files)})."
            )
        names = {
            k: [str(n) for n in archive[k]] for k in _NAME_KEYS if k in archive.files
        }
        return _connectivity_class()(
            archive["input_indices"],
            archive["output_indices"],
            shape=_shape_tuple(archive["shape"]),
            empty_outputs=empty_outputs,
            **names,
        )


def _shape_tuple(values: Any) -> Any:
    # Validated by Connectivity; kept as given when it is not 1-D.
    arr = np.asarray(values)
    return tuple(int(d) for d in arr) if arr.ndim == 1 else values


# ------------------------------------------------------------------ config
def to_config(connectivity: Connectivity) -> dict[str, Any]:
    """A JSON-safe dict: connections delta-coded, zlib-compressed, base64.

    Per output (CSC order), the fan-in, then the input indices stored as
    differences from the previous one (the first of each output absolute),
    all as little-endian uint32, zlib-compressed and base64-encoded.

    Example:

    >>> from keras_sparse import Connectivity
    >>> c = Connectivity([0, 2, 1], [0, 0, 1], shape=(3, 2))
    >>> config = to_config(c)
    >>> config["encoding"], config["nnz"], from_config(config) == c
    ('csc-delta-u32-zlib-base64', 3, True)
    """
    fan_in = connectivity.fan_in
    rows = connectivity.input_indices.astype(np.int64)
    starts = connectivity.indptr[:-1]
    deltas = rows.copy()
    if rows.size:
        deltas[1:] = rows[1:] - rows[:-1]
        # The first row of every column is stored absolute.
        nonempty = starts[fan_in > 0]
        deltas[nonempty] = rows[nonempty]
    payload = fan_in.astype("<u4").tobytes() + deltas.astype("<u4").tobytes()
    in_names, out_names = connectivity.input_names, connectivity.output_names
    return {
        "shape": list(connectivity.shape),
        "nnz": connectivity.nnz,
        "encoding": CONFIG_ENCODING,
        "data": base64.b64encode(zlib.compress(payload, 9)).decode("ascii"),
        "input_names": list(in_names) if in_names else None,
        "output_names": list(out_names) if out_names else None,
    }


def from_config(config: Mapping[str, Any]) -> Connectivity:
    """Inverse of `to_config`.

    Raises:
        ValueError: for another encoding, or data that do not match the
            declared `nnz`.
    """
    if config.get("encoding") != CONFIG_ENCODING:
        raise ValueError(
            "Unknown connectivity encoding "
            f"{config.get('encoding')!r}; expected {CONFIG_ENCODING!r}."
        )
    shape = tuple(config["shape"])
    raw = zlib.decompress(base64.b64decode(config["data"]))
    buf = np.frombuffer(raw, dtype="<u4").astype(np.int64)
    n_out = int(shape[1]) if len(shape) == 2 else 0
    fan_in = buf[:n_out]
    deltas = buf[n_out:]
    if deltas.size != int(config["nnz"]) or fan_in.sum() != deltas.size:
        raise ValueError("Corrupted connectivity config: nnz does not match.")
    cols = np.repeat(np.arange(n_out), fan_in)
    # Undo the delta coding: a cumulative sum restarted at each output.
    total = np.cumsum(deltas)
    rows = total
    if total.size:
        lengths = fan_in[fan_in > 0]
        starts = np.cumsum(lengths) - lengths
        base = np.where(starts > 0, total[starts - 1], 0)
        rows = total - np.repeat(base, lengths)
    return _connectivity_class()(
        rows,
        cols,
        shape=shape,  # type: ignore[arg-type]
        input_names=config.get("input_names"),
        output_names=config.get("output_names"),
        empty_outputs="ignore",
    )


# ----------------------------------------------------------- weights store
def _encode_names(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [n.encode("utf-8") for n in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return data, offsets


def _decode_names(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = np.asarray(data).astype(np.uint8).tobytes()
    offsets = np.asarray(offsets)
    return [
        raw[offsets[k] : offsets[k + 1]].decode("utf-8")
        for k in range(offsets.size - 1)
    ]


def write_to_store(connectivity: Connectivity, store: Any) -> None:
    """Writes `connectivity` into a Keras weights store (`save_own_variables`).

    Writes `input_indices`, `output_indices` (the index arrays, in canonical
    order), `shape` (int64) and, for named units, `input_names_utf8` /
    `input_names_offsets` and `output_names_utf8` / `output_names_offsets`.
    Variables are the caller's (Keras uses the keys `"0"`, `"1"`, ...).

    Args:
        connectivity: the `Connectivity` to write.
        store: a dict-like store (what Keras passes to
            `Layer.save_own_variables`).

    Example:

    >>> from keras_sparse import Connectivity
    >>> c = Connectivity([0, 1], [0, 1], shape=(2, 2), input_names=["a", "b"])
    >>> store = {}
    >>> write_to_store(c, store)
    >>> sorted(store)
    ['input_indices', 'input_names_offsets', 'input_names_utf8', 'output_indices', 'shape']
    >>> read_from_store(store) == c
    True
    """  # noqa: E501
    store["input_indices"] = np.asarray(connectivity.input_indices)
    store["output_indices"] = np.asarray(connectivity.output_indices)
    store["shape"] = np.asarray(connectivity.shape, dtype=np.int64)
    for key in _NAME_KEYS:
        names = getattr(connectivity, key)
        if names is not None:
            data, offsets = _encode_names(names)
            store[f"{key}_utf8"] = data
            store[f"{key}_offsets"] = offsets


def read_from_store(
    store: Any, layer_name: str | None = None, layer_class: str | None = None
) -> Connectivity:
    """Reads the connectivity `write_to_store` wrote (`load_own_variables`).

    Args:
        store: a dict-like store (what Keras passes to
            `Layer.load_own_variables`).
        layer_name: the layer's name, for the error message.
        layer_class: the layer's class name, for the error message.

    Returns:
        The saved `Connectivity`, names included (empty outputs allowed).

    Raises:
        ValueError: if the store holds no connectivity (no `input_indices` /
            `output_indices`), naming the layer.
    """
    keys = set(store.keys())
    if "input_indices" not in keys or "output_indices" not in keys:
        layer = f"layer '{layer_name}'" if layer_name is not None else "this layer"
        writer = (
            f"keras_sparse {layer_class} layer"
            if layer_class
            else ("keras_sparse layer")
        )
        raise ValueError(
            f"The saved weights for {layer} hold no connectivity (no "
            f"`input_indices`/`output_indices`); they were not written by a "
            f"{writer}."
        )
    names: dict[str, list[str]] = {}
    for key in _NAME_KEYS:
        if f"{key}_utf8" in keys:
            names[key] = _decode_names(
                np.asarray(store[f"{key}_utf8"]), np.asarray(store[f"{key}_offsets"])
            )
    return _connectivity_class()(
        np.asarray(store["input_indices"]),
        np.asarray(store["output_indices"]),
        shape=_shape_tuple(store["shape"]),
        empty_outputs="ignore",
        **names,
    )
