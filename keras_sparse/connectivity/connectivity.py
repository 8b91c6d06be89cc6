"""The `Connectivity` object: which inputs feed which outputs."""

from __future__ import annotations

import hashlib
import numbers
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_sparse._validation import format_list, invalid_value, is_int, one_of
from keras_sparse.connectivity import serialization as _serialization

__all__ = ["Connectivity", "EmptyOutputWarning", "as_connectivity"]

_EMPTY_OUTPUT_POLICIES = ("warn", "raise", "ignore")
_MAX_DIM = 2**31 - 1


class EmptyOutputWarning(UserWarning):
    """Some outputs of a `Connectivity` have no input at all."""


# Compatible alias for modules that still import the old private name; use
# `keras_sparse._validation.format_list`.
_fmt_list = format_list


def _check_names(names: Any, expected: int, argument: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError(
            invalid_value(
                argument, "a sequence of strings, not a single string", names[:80]
            )
        )
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(
            invalid_value(
                argument,
                "a sequence of strings",
                received=f"an object of type {type(names).__name__}",
            )
        ) from None
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        # Names from pandas/NumPy often arrive as numpy.str_; accept those.
        if all(isinstance(n, np.str_) for n in bad):
            names = tuple(str(n) for n in names)
        else:
            raise TypeError(
                invalid_value(
                    argument,
                    "only strings",
                    received=f"non-string entries {format_list(bad)} (types "
                    f"{sorted({type(b).__name__ for b in bad})})",
                    fix="Convert them with `[str(n) for n in names]` if that is "
                    "what you mean.",
                )
            )
    if len(names) != expected:
        raise ValueError(
            invalid_value(
                argument,
                f"one name per {argument.split('_')[0]} ({expected})",
                received=f"{len(names)} names",
            )
        )
    seen: dict[str, int] = {}
    dups = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        if seen[n] == 2:
            dups.append(n)
    if dups:
        raise ValueError(
            invalid_value(
                argument,
                "unique names",
                received=f"{len(dups)} name(s) that occur more than once: "
                f"{format_list(dups)}",
                fix="Aggregate or rename the duplicates first.",
            )
        )
    return names


def _check_index_array(values: Any, argument: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(
            invalid_value(
                argument,
                "a 1-D array of integer indices",
                received=f"an array of shape {arr.shape}",
            )
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if (
            np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and (np.all(arr == np.round(arr)))
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                invalid_value(
                    argument, "integer indices", received=f"dtype {arr.dtype}"
                )
            )
    return arr.astype(np.int64, copy=False)


def _positions(
    labels: np.ndarray, names: Sequence[str] | None, argument: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Index of each label in `names` (inferred in first-seen order if None)."""
    labels = np.asarray([str(x) for x in labels], dtype=object)
    if names is None:
        inferred = tuple(dict.fromkeys(labels.tolist()))
        position = {n: i for i, n in enumerate(inferred)}
        return np.asarray([position[x] for x in labels], dtype=np.int64), inferred
    try:
        count = len(names)
    except TypeError:
        count = -1
    checked = _check_names(names, count, argument)
    assert checked is not None
    position = {n: i for i, n in enumerate(checked)}
    index = np.asarray([position.get(x, -1) for x in labels], dtype=np.int64)
    unknown = list(dict.fromkeys(labels[index < 0].tolist()))
    if unknown:
        unit = argument.split("_")[0]
        raise ValueError(
            invalid_value(
                "edges",
                f"{unit} names among `{argument}`",
                received=f"{len(unknown)} unknown {unit}(s): {format_list(unknown)}",
                fix=f"Add them to `{argument}`, or omit `{argument}` to take "
                "the names from the edges.",
            )
        )
    return index, checked


def _is_binary(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    return isinstance(value, numbers.Real) and (value == 0 or value == 1)


def _frame_to_mask(frame: Any) -> np.ndarray:
    """A 0/1 DataFrame as a bool array; bad entries name their column."""
    import pandas as pd

    expected = "only 0/1 or True/False entries"
    numpy_dtypes = all(
        isinstance(dt, np.dtype) and (dt.kind == "b" or np.issubdtype(dt, np.number))
        for dt in frame.dtypes
    )
    columns = [] if numpy_dtypes else list(range(frame.shape[1]))
    if numpy_dtypes:
        arr = frame.to_numpy(dtype=np.float64)
        bad = ~((arr == 0) | (arr == 1))
        if not bad.any():
            return arr != 0
        columns = sorted(set(np.flatnonzero(bad.any(axis=0)).tolist()))
    mask = np.empty(frame.shape, dtype=bool)
    for j in columns:
        column = frame.iloc[:, j]
        label = frame.columns[j]
        missing = pd.isna(column).to_numpy()
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ValueError(
                invalid_value(
                    "frame",
                    expected,
                    received=f"{int(missing.sum())} missing value(s) (NA/NaN) in "
                    f"column {label!r}, e.g. at row {frame.index[i]!r}",
                    fix="Fill them first, e.g. `frame.fillna(0)` if a missing "
                    "entry means 'not connected'.",
                )
            )
        values = column.to_numpy(dtype=object)
        ok = np.fromiter((_is_binary(v) for v in values), dtype=bool, count=len(values))
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            numeric = isinstance(values[i], numbers.Real)
            error = ValueError if numeric else TypeError
            raise error(
                invalid_value(
                    "frame",
                    expected,
                    received=f"{int((~ok).sum())} other value(s) in column "
                    f"{label!r}, e.g. {values[i]!r} at row {frame.index[i]!r}",
                    fix="Binarize it first, e.g. `frame != 0`."
                    if numeric
                    else "Convert the column to numbers or booleans first, "
                    "e.g. with `pandas.to_numeric`.",
                )
            )
        mask[:, j] = values.astype(bool)
    return mask


def _counts(indices: np.ndarray, length: int) -> np.ndarray:
    """Read-only int64 `bincount` of `indices` with `length` bins."""
    counts = np.bincount(indices, minlength=length).astype(np.int64, copy=False)
    counts.flags.writeable = False
    return counts


class Connectivity:
    """An immutable description of which inputs feed which outputs.

    A `Connectivity` is a sparse 0/1 matrix of shape `(num_inputs,
    num_outputs)`, oriented like a `keras.layers.Dense` kernel: entry
    `(i, j)` is 1 when input `i` feeds output `j`. It holds the `nnz`
    connections as two integer index arrays in a canonical order, sorted by
    output, then by input (column-major, the order of a CSC matrix), and
    optional names for the inputs and outputs (for example genes and
    pathways).

    The constructor takes COO indices; the class methods build one from a
    dense array (`from_dense`), a SciPy sparse matrix (`from_scipy`), a
    pandas DataFrame (`from_dataframe`), an edge list (`from_edges`) or gene
    sets (`keras_sparse.connectivity.from_gene_sets`). Generators of random
    and structured patterns live in `keras_sparse.connectivity`.

    Args:
        input_indices: 1-D integer array-like, the input (row) index of
            each connection, each in `[0, num_inputs)`.
        output_indices: 1-D integer array-like of the same length, the
            output (column) index of each connection, each in
            `[0, num_outputs)`.
        shape: `(num_inputs, num_outputs)`, two positive integers.
        input_names: optional sequence of `num_inputs` unique strings.
        output_names: optional sequence of `num_outputs` unique strings.
        empty_outputs: what to do when some outputs have no input:
            `"warn"` (default, an `EmptyOutputWarning` naming them),
            `"raise"` (a `ValueError`) or `"ignore"`.

    Raises:
        ValueError: if `shape` is not two positive integers, the index
            arrays differ in length, an index is negative or out of range,
            a connection is listed twice, names do not match the shape or
            are not unique, or (with `empty_outputs="raise"`) an output has
            no input.
        TypeError: if indices are not integers or names not strings.

    Example:

    >>> c = Connectivity([0, 1, 2], [0, 0, 1], shape=(3, 2))
    >>> c.nnz, c.density, c.fan_in.tolist()
    (3, 0.5, [2, 1])
    """

    __slots__ = (
        "_input_indices",
        "_output_indices",
        "_shape",
        "_input_names",
        "_output_names",
        "_fan_in",
        "_fan_out",
        "_fingerprint",
    )

    def __init__(
        self,
        input_indices: Any,
        output_indices: Any,
        shape: tuple[int, int],
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        empty_outputs: str = "warn",
    ):
        shape = self._check_shape(shape)
        rows = _check_index_array(input_indices, "input_indices")
        cols = _check_index_array(output_indices, "output_indices")
        if rows.shape != cols.shape:
            raise ValueError(
                invalid_value(
                    "output_indices",
                    f"the same length as `input_indices` ({rows.size})",
                    received=f"{cols.size} indices",
                )
            )
        for arr, bound, arg in (
            (rows, shape[0], "input_indices"),
            (cols, shape[1], "output_indices"),
        ):
            if arr.size == 0:
                continue
            bad = np.flatnonzero((arr < 0) | (arr >= bound))
            if bad.size:
                raise ValueError(
                    invalid_value(
                        arg,
                        f"indices in [0, {bound}) for shape={shape} (0-based)",
                        received=f"{bad.size} index(es) out of range, e.g. "
                        f"{arg}[{bad[0]}]={arr[bad[0]]}",
                    )
                )
        # Canonical order: by output, then input (CSC order).
        order = np.lexsort((rows, cols))
        rows, cols = rows[order], cols[order]
        if rows.size > 1:
            dup = np.flatnonzero((rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1]))
            if dup.size:
                pairs = [(int(rows[d]), int(cols[d])) for d in dup]
                raise ValueError(
                    f"A connection may be listed only once, but {dup.size} "
                    f"(input, output) pair(s) are duplicated: {format_list(pairs)}. "
                    "Remove the duplicates (e.g. with `numpy.unique`)."
                )
        # `_check_shape` caps every dimension at 2**31 - 1: int32 suffices.
        self._input_indices = rows.astype(np.int32)
        self._output_indices = cols.astype(np.int32)
        self._input_indices.flags.writeable = False
        self._output_indices.flags.writeable = False
        self._shape = shape
        self._input_names = _check_names(input_names, shape[0], "input_names")
        self._output_names = _check_names(output_names, shape[1], "output_names")
        # Per-unit arrays are built on first use: a declared shape may be
        # huge (up to 2**31 - 1 units) while nnz is small.
        self._fan_in: np.ndarray | None = None
        self._fan_out: np.ndarray | None = None
        self._fingerprint: str | None = None
        self._check_empty_outputs(empty_outputs)

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_shape(shape: Any) -> tuple[int, int]:
        try:
            dims = tuple(shape)
        except TypeError:
            dims = None
        if dims is None or len(dims) != 2 or not all(is_int(d) and d > 0 for d in dims):
            raise ValueError(
                invalid_value(
                    "shape", "`(num_inputs, num_outputs)`, two positive integers", shape
                )
            )
        if max(dims) > _MAX_DIM:
            raise ValueError(
                invalid_value(
                    "shape",
                    "dimensions of at most 2**31 - 1 (indices are int32)",
                    tuple(int(d) for d in dims),
                )
            )
        return int(dims[0]), int(dims[1])

    def _check_empty_outputs(self, policy: str) -> None:
        one_of(policy, "empty_outputs", _EMPTY_OUTPUT_POLICIES)
        if policy == "ignore":
            return
        # From the sorted output indices, in O(nnz) memory whatever the shape.
        cols = self._output_indices.astype(np.int64)
        present = cols[np.r_[True, cols[1:] != cols[:-1]]] if cols.size else cols
        num_empty = self.num_outputs - present.size
        if num_empty == 0:
            return
        bounds = np.concatenate([[-1], present, [self.num_outputs]])
        gap_starts, gap_lengths = bounds[:-1] + 1, np.diff(bounds) - 1
        first: list[int] = []
        for start, length in zip(gap_starts, gap_lengths, strict=True):
            first.extend(range(int(start), int(start) + min(int(length), 10)))
            if len(first) >= 10:
                break
        first = first[:10]
        labels = (
            [self._output_names[i] for i in first]
            if self._output_names is not None
            else first
        )
        message = (
            f"{num_empty} of {self.num_outputs} outputs have no input at all "
            f"(their value is the bias only): "
            f"{format_list(labels, total=num_empty)}."
        )
        if policy == "raise":
            raise ValueError(
                message + " Pass `empty_outputs='warn'` or 'ignore' to allow them."
            )
        warnings.warn(
            message + " Pass `empty_outputs='ignore'` to silence this.",
            EmptyOutputWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_dense(
        cls,
        array: Any,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        empty_outputs: str = "warn",
    ) -> Connectivity:
        """Builds a `Connectivity` from a dense 0/1 or boolean matrix.

        Args:
            array: array-like of shape `(num_inputs, num_outputs)` holding
                only 0/1 (any numeric dtype) or booleans.
            input_names, output_names, empty_outputs: as in `Connectivity`.

        Returns:
            A `Connectivity` with `nnz = count_nonzero(array)`.

        Raises:
            ValueError: if the array is not 2-D, is empty, or holds values
                other than 0/1 (NaN included).
        """
        arr = np.asarray(array)
        if arr.ndim != 2:
            raise ValueError(
                invalid_value(
                    "array",
                    "a 2-D array of shape (num_inputs, num_outputs)",
                    received=f"an array of shape {arr.shape} (ndim={arr.ndim})",
                )
            )
        if arr.dtype == object or not (
            arr.dtype == bool or np.issubdtype(arr.dtype, np.number)
        ):
            raise TypeError(
                invalid_value("array", "0/1 or booleans", received=f"dtype {arr.dtype}")
            )
        if arr.dtype != bool:
            bad = ~((arr == 0) | (arr == 1))
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    invalid_value(
                        "array",
                        "only 0 and 1 (or booleans)",
                        received=f"{int(bad.sum())} other value(s), e.g. "
                        f"{arr[where]!r} at {where}",
                        fix="Binarize it first, e.g. `array != 0`.",
                    )
                )
        rows, cols = np.nonzero(arr)
        return cls(
            rows,
            cols,
            shape=arr.shape,
            input_names=input_names,
            output_names=output_names,
            empty_outputs=empty_outputs,
        )

    @classmethod
    def from_scipy(
        cls,
        matrix: Any,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        empty_outputs: str = "warn",
    ) -> Connectivity:
        """Builds a `Connectivity` from a SciPy sparse matrix or array.

        Every stored entry must be 1 (or `True`); explicit zeros are
        rejected rather than dropped, so nothing is silently lost.

        Args:
            matrix: `scipy.sparse` matrix/array of shape
                `(num_inputs, num_outputs)`, any format.
            input_names, output_names, empty_outputs: as in `Connectivity`.

        Raises:
            ValueError: on stored values other than 1 or duplicate entries.
        """
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise TypeError(
                invalid_value(
                    "matrix",
                    "a scipy.sparse matrix or array",
                    received=f"an object of type {type(matrix).__name__}",
                )
            )
        coo = sp.coo_array(matrix)
        data = np.asarray(coo.data)
        if data.size and not np.all(data == 1):
            bad = data[data != 1]
            raise ValueError(
                invalid_value(
                    "matrix",
                    "stored entries of only 1 (or True)",
                    received=f"{bad.size} other stored value(s), e.g. {bad[0]!r}",
                    fix="Call `matrix.eliminate_zeros()` and binarize it first.",
                )
            )
        return cls(
            coo.row,
            coo.col,
            shape=coo.shape,
            input_names=input_names,
            output_names=output_names,
            empty_outputs=empty_outputs,
        )

    @classmethod
    def from_dataframe(cls, frame: Any, empty_outputs: str = "warn") -> Connectivity:
        """Builds a `Connectivity` from a 0/1 pandas DataFrame.

        The index gives the input names (e.g. genes), the columns the
        output names (e.g. pathways). Columns may have any dtype -- NumPy
        numeric or bool, pandas nullable (`Int64`, `boolean`, `Float64`)
        or `object` -- as long as every entry is 0, 1, `True` or `False`.
        Missing values (`NA`, `NaN`, `None`) are refused rather than read
        as 0: the message names the column and suggests `frame.fillna(0)`.

        Args:
            frame: a `pandas.DataFrame` of shape `(num_inputs, num_outputs)`.
            empty_outputs: as in `Connectivity`.

        Returns:
            A named `Connectivity`.

        Raises:
            TypeError: if `frame` is not a `pandas.DataFrame`, or a column
                holds non-numeric values (e.g. strings).
            ValueError: if a column holds missing values or numbers other
                than 0 and 1 (the column and a row are named), or on
                duplicate names.

        Example:

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"p1": [1, 0, 1], "p2": [True, True, False]},
        ...                      index=["g1", "g2", "g3"], dtype="object")
        >>> Connectivity.from_dataframe(frame).fan_in.tolist()
        [2, 2]
        """
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                invalid_value(
                    "frame",
                    "a pandas.DataFrame",
                    received=f"an object of type {type(frame).__name__}",
                )
            )
        return cls.from_dense(
            _frame_to_mask(frame),
            input_names=[str(x) for x in frame.index],
            output_names=[str(x) for x in frame.columns],
            empty_outputs=empty_outputs,
        )

    @classmethod
    def from_edges(
        cls,
        edges: Any,
        shape: tuple[int, int] | None = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        empty_outputs: str = "warn",
    ) -> Connectivity:
        """Builds a `Connectivity` from an edge list.

        Args:
            edges: a sequence of `(input, output)` pairs, or an array of
                shape `(nnz, 2)`. Pairs are either integer indices or names
                (strings).
            shape: `(num_inputs, num_outputs)`. With index pairs it is
                required unless both `input_names` and `output_names` are
                given (their lengths are the shape): it cannot be guessed
                from the edges, since trailing units may have no edge. With
                name pairs it is taken from the names and may be omitted.
            input_names: with name pairs, the input names in the order of
                the layer's inputs (names in `edges` must be among them,
                and inputs without an edge are allowed). If omitted, the
                inputs are the names in `edges`, in order of first
                appearance. With index pairs, optional names as in
                `Connectivity`.
            output_names: the same for the outputs.
            empty_outputs: as in `Connectivity`.

        Returns:
            A `Connectivity`.

        Raises:
            ValueError: if pairs do not have two entries, a name is not in
                the given name list, `shape` is missing for index pairs (or
                disagrees with the names), or as in `Connectivity`.

        Example:

        >>> c = Connectivity.from_edges([("TP53", "apoptosis"),
        ...                              ("BAX", "apoptosis"),
        ...                              ("TP53", "cell cycle")])
        >>> c.shape, c.input_names, c.output_names
        ((2, 2), ('TP53', 'BAX'), ('apoptosis', 'cell cycle'))
        """
        arr = np.asarray(list(edges) if not isinstance(edges, np.ndarray) else edges)
        if arr.size == 0:
            arr = arr.reshape(0, 2)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(
                invalid_value(
                    "edges",
                    "(input, output) pairs, i.e. an array of shape (nnz, 2)",
                    received=f"an array of shape {arr.shape}",
                )
            )
        if arr.dtype == object and all(is_int(v) for v in arr.ravel()):
            arr = arr.astype(np.int64)
        if arr.dtype.kind in "USO":
            rows, in_names = _positions(arr[:, 0], input_names, "input_names")
            cols, out_names = _positions(arr[:, 1], output_names, "output_names")
            names_shape = (len(in_names), len(out_names))
            if shape is not None and tuple(shape) != names_shape:
                raise ValueError(
                    invalid_value(
                        "shape",
                        f"{names_shape}, the number of input and output names, or None",
                        shape,
                    )
                )
            shape, input_names, output_names = names_shape, in_names, out_names
        else:
            if shape is None:
                if input_names is None or output_names is None:
                    raise ValueError(
                        invalid_value(
                            "shape",
                            "`(num_inputs, num_outputs)` when `edges` holds "
                            "integer indices",
                            shape,
                            fix="Pass `shape=`, or both `input_names` and "
                            "`output_names` (their lengths give the shape). "
                            "It cannot be guessed from the edges: trailing "
                            "inputs or outputs may have no edge.",
                        )
                    )
                shape = (len(tuple(input_names)), len(tuple(output_names)))
            rows, cols = arr[:, 0], arr[:, 1]
        return cls(
            rows,
            cols,
            shape=shape,
            input_names=input_names,
            output_names=output_names,
            empty_outputs=empty_outputs,
        )

    # -------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, int]:
        """`(num_inputs, num_outputs)`."""
        return self._shape

    @property
    def num_inputs(self) -> int:
        return self._shape[0]

    @property
    def num_outputs(self) -> int:
        return self._shape[1]

    @property
    def nnz(self) -> int:
        """Number of connections."""
        return int(self._input_indices.size)

    @property
    def density(self) -> float:
        """`nnz / (num_inputs * num_outputs)`, in [0, 1]."""
        return self.nnz / (self._shape[0] * self._shape[1])

    @property
    def input_indices(self) -> np.ndarray:
        """Read-only `(nnz,)` integer array: the input of each connection."""
        return self._input_indices

    @property
    def output_indices(self) -> np.ndarray:
        """Read-only `(nnz,)` integer array: the output of each connection."""
        return self._output_indices

    @property
    def fan_in(self) -> np.ndarray:
        """Read-only `(num_outputs,)` int64 array: inputs per output."""
        if self._fan_in is None:
            self._fan_in = _counts(self._output_indices, self._shape[1])
        return self._fan_in

    @property
    def fan_out(self) -> np.ndarray:
        """Read-only `(num_inputs,)` int64 array: outputs per input."""
        if self._fan_out is None:
            self._fan_out = _counts(self._input_indices, self._shape[0])
        return self._fan_out

    @property
    def input_names(self) -> tuple[str, ...] | None:
        return self._input_names

    @property
    def output_names(self) -> tuple[str, ...] | None:
        return self._output_names

    @property
    def indptr(self) -> np.ndarray:
        """`(num_outputs + 1,)` CSC column pointers: the connections of
        output `j` are `[indptr[j], indptr[j + 1])`."""
        out = np.zeros(self._shape[1] + 1, dtype=np.int64)
        np.cumsum(self.fan_in, out=out[1:])
        return out

    # ----------------------------------------------------------------- exports
    def to_dense(self, dtype: Any = bool) -> np.ndarray:
        """Returns the `(num_inputs, num_outputs)` 0/1 matrix as NumPy."""
        out = np.zeros(self._shape, dtype=dtype)
        out[self._input_indices, self._output_indices] = 1
        return out

    def to_scipy(self, format: str = "csc") -> Any:
        """Returns a `scipy.sparse` array of ones (`format`: csc, csr, coo)."""
        import scipy.sparse as sp

        coo = sp.coo_array(
            (
                np.ones(self.nnz, dtype=np.float32),
                (self._input_indices, self._output_indices),
            ),
            shape=self._shape,
        )
        return coo.asformat(format)

    def to_edge_table(self) -> Any:
        """Returns a pandas DataFrame with one row per connection.

        Columns: `input` and `output` (names, or the indices when unnamed),
        `input_index`, `output_index`. Rows are in the canonical order
        (by output, then input), the order of a layer's kernel values.
        """
        import pandas as pd

        rows, cols = self._input_indices, self._output_indices
        in_labels = (
            np.asarray(self._input_names, dtype=object)[rows]
            if self._input_names is not None
            else rows
        )
        out_labels = (
            np.asarray(self._output_names, dtype=object)[cols]
            if self._output_names is not None
            else cols
        )
        return pd.DataFrame(
            {
                "input": in_labels,
                "output": out_labels,
                "input_index": rows,
                "output_index": cols,
            }
        )

    def with_names(
        self,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
    ) -> Connectivity:
        """Returns a copy with the given names (others kept)."""
        return Connectivity(
            self._input_indices,
            self._output_indices,
            self._shape,
            input_names=input_names if input_names is not None else self._input_names,
            output_names=(
                output_names if output_names is not None else self._output_names
            ),
            empty_outputs="ignore",
        )

    # ------------------------------------------------------------- comparison
    def same_edges(self, other: Connectivity) -> bool:
        """True when `other` has the same shape and connections (names aside)."""
        return (
            self._shape == other._shape
            and self.nnz == other.nnz
            and bool(np.array_equal(self._input_indices, other._input_indices))
            and bool(np.array_equal(self._output_indices, other._output_indices))
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Connectivity):
            return NotImplemented
        return (
            self.same_edges(other)
            and self._input_names == other._input_names
            and self._output_names == other._output_names
        )

    def __hash__(self) -> int:
        return hash((self._shape, self.nnz, self.fingerprint()))

    def fingerprint(self) -> str:
        """A short hex digest of shape and connections (names excluded).

        Computed once (the object is immutable): SHA-256 of the shape and
        the index arrays as little-endian int64, first 16 hex digits.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(np.asarray(self._shape, dtype="<i8").tobytes())
            h.update(self._input_indices.astype("<i8").tobytes())
            h.update(self._output_indices.astype("<i8").tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        named = []
        if self._input_names is not None:
            named.append("input_names")
        if self._output_names is not None:
            named.append("output_names")
        extra = f", named={'+'.join(named)}" if named else ""
        return (
            f"Connectivity(shape={self._shape}, nnz={self.nnz}, "
            f"density={self.density:.4g}{extra})"
        )

    # ---------------------------------------------------------- serialization
    # The formats live in `keras_sparse.connectivity.serialization`.
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the connectivity (indices, shape, names) to a `.npz` file."""
        _serialization.save_npz(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], empty_outputs: str = "warn"
    ) -> Connectivity:
        """Reads a connectivity written by `save`.

        Raises:
            ValueError: if the file is not a `Connectivity.save` archive
                (missing arrays are named) or its content is invalid.
        """
        return _serialization.load_npz(path, empty_outputs=empty_outputs)

    def get_config(self) -> dict[str, Any]:
        """A JSON-safe dict: connections delta-coded, zlib-compressed, base64.

        The compact form is used for layer configs of moderate size; large
        connectivities are stored in the saved file's variables instead (see
        `SparseDense`).
        """
        return _serialization.to_config(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Connectivity:
        """Inverse of `get_config`."""
        return _serialization.from_config(config)


def as_connectivity(value: Any, argument: str = "connectivity") -> Connectivity:
    """Converts a `Connectivity`, dense 0/1 array, SciPy sparse matrix,
    pandas DataFrame or a `get_config()` dict to a `Connectivity`.

    Raises:
        TypeError: for anything else, naming `argument`.
    """
    if isinstance(value, Connectivity):
        return value
    if isinstance(value, dict):
        return Connectivity.from_config(value)
    try:
        import scipy.sparse as sp

        if sp.issparse(value):
            return Connectivity.from_scipy(value)
    except ImportError:  # pragma: no cover - scipy is a dependency
        pass
    try:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return Connectivity.from_dataframe(value)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (np.ndarray, list, tuple)):
        return Connectivity.from_dense(value)
    # The message keeps the wording tests of the layers pin ("`connectivity`
    # must be ..."), in the Keras form's order: expected, then received.
    raise TypeError(
        f"`{argument}` must be a keras_sparse.Connectivity, a dense 0/1 array "
        "of shape (num_inputs, num_outputs), a scipy.sparse matrix or a pandas "
        f"DataFrame. Received: {argument} of type {type(value).__name__}."
    )
