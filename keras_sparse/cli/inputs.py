"""Readers of a user's files for `keras-sparse fit`, with clear errors."""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from keras_sparse.connectivity.connectivity import Connectivity, _fmt_list
from keras_sparse.connectivity.gene_sets import from_gene_sets, read_gmt

__all__ = [
    "InputFileError",
    "read_expression",
    "read_labels",
    "read_gene_sets",
    "Labels",
]


class InputFileError(ValueError):
    """A user's input file is missing, malformed or inconsistent."""


def _check_exists(path: str, argument: str) -> None:
    if not os.path.isfile(path):
        raise InputFileError(f"{argument}: file not found: {path!r}.")


def _separator(path: str, argument: str) -> str:
    """Tab for .tsv/.txt/.tab; for other names, sniffed from the header line.

    A `.csv` whose header has tabs and no comma is read as tab-separated (a
    common export); the choice is never silent about a mismatch: a header
    with neither separator is refused.
    """
    if path.lower().endswith((".tsv", ".txt", ".tab")):
        return "\t"
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline()
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"{argument}: {path!r} is not UTF-8 text ({err.reason} at byte "
            f"{err.start})."
        ) from None
    if "\t" in header and "," not in header:
        return "\t"
    if "," not in header and "\t" not in header and header.strip():
        raise InputFileError(
            f"{argument}: the header line of {path!r} has neither commas nor tabs; "
            "expected a comma- or tab-separated table with a header row."
        )
    return ","


def _header(path: str, sep: str) -> list[str]:
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh, delimiter=sep), [])


def _read_table(path: str, argument: str, index_col: int | None = 0) -> pd.DataFrame:
    """Reads a table as text (numbers are converted by the caller).

    Reading every cell as text keeps sample ids `000` and `0` apart (pandas
    would parse both as the number 0).
    """
    _check_exists(path, argument)
    sep = _separator(path, argument)
    header = _header(path, sep)
    try:
        frame = pd.read_csv(
            path, sep=sep, index_col=index_col, encoding="utf-8", dtype=str
        )
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"{argument}: {path!r} is not UTF-8 text ({err.reason} at byte "
            f"{err.start})."
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputFileError(f"{argument}: cannot parse {path!r}: {err}") from None
    if frame.empty:
        raise InputFileError(f"{argument}: {path!r} has no data rows.")
    # pandas renames repeated header names ('G0', 'G0.1'): refuse them first.
    seen: dict[str, int] = {}
    for name in header:
        seen[name] = seen.get(name, 0) + 1
    dups = [n for n, c in seen.items() if c > 1]
    if dups:
        raise InputFileError(
            f"{argument}: {path!r} has duplicated column names "
            f"{'(gene names) ' if argument == '--expression' else ''}in its header: "
            f"{_fmt_list(dups)}. Aggregate or rename them first."
        )
    return frame


def read_expression(path: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Reads a samples x genes matrix from CSV/TSV or `.h5ad`.

    CSV/TSV: the first column holds the sample ids, the header the gene
    names (`.tsv`/`.txt` are tab-separated, others comma-separated).
    `.h5ad` (AnnData): `X` with `obs_names` as samples and `var_names` as
    genes (needs `pip install "keras-sparse[bio]"`).

    Returns:
        `(matrix (n_samples, n_genes) float64, sample ids, gene names)`.

    Raises:
        InputFileError: missing file, no rows, duplicate sample ids or gene
            names, non-numeric or missing values (the first few are named
            with their sample and gene).
    """
    if path.lower().endswith(".h5ad"):
        _check_exists(path, "--expression")
        try:
            import anndata
        except ImportError as err:
            raise InputFileError(
                'Reading .h5ad needs anndata: pip install "keras-sparse[bio]"'
            ) from err
        try:
            adata = anndata.read_h5ad(path)
        except Exception as err:  # noqa: BLE001 - report any reader failure
            raise InputFileError(f"--expression: cannot read {path!r}: {err}") from None
        matrix = (
            adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        )
        frame = pd.DataFrame(
            matrix,
            index=list(map(str, adata.obs_names)),
            columns=list(map(str, adata.var_names)),
        )
    else:
        frame = _read_table(path, "--expression")
    frame.index = frame.index.map(str)
    frame.columns = frame.columns.map(str)
    for axis, what in ((frame.index, "sample ids"), (frame.columns, "gene names")):
        dups = axis[axis.duplicated()].unique().tolist()
        if dups:
            raise InputFileError(
                f"--expression: {path!r} has duplicated {what}: {_fmt_list(dups)}."
            )
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & frame.notna()
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise InputFileError(
            f"--expression: {path!r} has {int(bad.to_numpy().sum())} non-numeric "
            f"value(s), e.g. {frame.iat[r, c]!r} for sample {frame.index[r]!r}, gene "
            f"{frame.columns[c]!r}."
        )
    values = numeric.to_numpy(dtype=np.float64)
    missing = ~np.isfinite(values)
    if missing.any():
        r, c = np.argwhere(missing)[0]
        raise InputFileError(
            f"--expression: {path!r} has {int(missing.sum())} missing or infinite "
            f"value(s), e.g. sample {frame.index[r]!r}, gene {frame.columns[c]!r}. "
            "Impute or remove them first; nothing is filled in silently."
        )
    return values, list(frame.index), list(frame.columns)


@dataclasses.dataclass
class Labels:
    """Targets aligned to the expression samples."""

    y: np.ndarray
    groups: np.ndarray | None
    classes: list[str] | None


def read_labels(
    path: str,
    samples: list[str],
    label_column: str,
    task: str,
    group_column: str | None = None,
    sample_column: str | None = None,
) -> Labels:
    """Reads labels (and groups) and aligns them to `samples`.

    The sample ids are in `sample_column` (default: the first column).
    Every expression sample must have exactly one label row, and every
    label row must name an expression sample.

    Raises:
        InputFileError: missing file or columns (the available ones are
            listed), missing labels, labels for unknown samples, samples
            without labels, duplicate sample rows, non-numeric regression
            targets, fewer than two classes.
    """
    frame = _read_table(path, "--labels", index_col=None)
    frame.columns = frame.columns.map(str)
    sample_column = sample_column or frame.columns[0]
    for arg, col in (
        ("--sample-column", sample_column),
        ("--label-column", label_column),
        ("--group-column", group_column),
    ):
        if col is not None and col not in frame.columns:
            raise InputFileError(
                f"{arg}: column {col!r} is not in {path!r}; its columns are "
                f"{list(frame.columns)}."
            )
    ids = frame[sample_column].astype(str)
    if ids.duplicated().any():
        raise InputFileError(
            f"--labels: {path!r} lists samples more than once: "
            f"{_fmt_list(ids[ids.duplicated()].unique().tolist())}."
        )
    frame = frame.set_index(ids)
    unknown = [s for s in frame.index if s not in set(samples)]
    without = [s for s in samples if s not in frame.index]
    if unknown or without:
        raise InputFileError(
            f"--labels: the samples of {path!r} do not match the expression "
            f"samples: {len(without)} expression sample(s) have no label "
            f"{_fmt_list(without, 5)}, {len(unknown)} label row(s) name unknown "
            f"samples {_fmt_list(unknown, 5)}. Make both files list the same samples."
        )
    frame = frame.loc[samples]
    raw = frame[label_column]
    if raw.isna().any():
        missing = raw.index[raw.isna()].tolist()
        raise InputFileError(
            f"--label-column {label_column!r}: {len(missing)} sample(s) have no "
            f"value: {_fmt_list(missing, 5)}."
        )
    classes = None
    if task == "regression":
        y_num = pd.to_numeric(raw, errors="coerce")
        if y_num.isna().any():
            bad = raw[y_num.isna()]
            raise InputFileError(
                f"--label-column {label_column!r}: regression needs numbers; "
                f"{bad.size} value(s) are not, e.g. {bad.iloc[0]!r} for sample "
                f"{bad.index[0]!r}."
            )
        y = y_num.to_numpy(dtype=np.float64)
    else:
        classes = sorted(raw.astype(str).unique().tolist())
        canonical: dict[str, list[str]] = {}
        for c in classes:
            canonical.setdefault(c.strip().casefold(), []).append(c)
        clashes = [v for v in canonical.values() if len(v) > 1]
        if clashes:
            raise InputFileError(
                f"--label-column {label_column!r}: classes that differ only in "
                f"surrounding spaces or letter case: "
                + "; ".join(" vs ".join(repr(c) for c in v) for v in clashes)
                + ". They would be separate classes; make the spelling consistent "
                "in the labels file."
            )
        if len(classes) < 2:
            raise InputFileError(
                f"--label-column {label_column!r}: classification needs at least "
                f"two classes; found only {classes}."
            )
        lookup = {c: i for i, c in enumerate(classes)}
        y = raw.astype(str).map(lookup).to_numpy(dtype=np.int64)
    groups = None
    if group_column is not None:
        g = frame[group_column]
        if g.isna().any():
            raise InputFileError(
                f"--group-column {group_column!r}: {int(g.isna().sum())} sample(s) "
                "have no group."
            )
        groups = g.astype(str).to_numpy()
    return Labels(y=y, groups=groups, classes=classes)


def read_gene_sets(
    path: str, genes: list[str], min_found: int = 1
) -> tuple[Connectivity, str]:
    """Builds the gene -> pathway `Connectivity` from a user's file.

    Formats: `.gmt` (MSigDB GMT), `.csv`/`.tsv` (an edge table whose first
    two columns are gene and pathway, with a header row), `.npz` (a
    `Connectivity.save` file whose input names are genes).

    Returns:
        `(connectivity over `genes`, a one-line coverage report)`.

    Raises:
        InputFileError: missing or malformed file, fewer than two columns,
            or no overlap between the data's genes and the sets' members
            (the overlap is reported).
    """
    _check_exists(path, "--gene-sets")
    lower = path.lower()
    if lower.endswith(".npz"):
        try:
            saved = Connectivity.load(path, empty_outputs="ignore")
        except ValueError as err:
            raise InputFileError(f"--gene-sets: {err}") from None
        if saved.input_names is None or saved.output_names is None:
            raise InputFileError(
                f"--gene-sets: {path!r} has no input/output names; a mask used "
                "with expression files must name its genes and pathways."
            )
        members: dict[str, list[str]] = {name: [] for name in saved.output_names}
        for i, j in zip(saved.input_indices, saved.output_indices, strict=True):
            members[saved.output_names[j]].append(saved.input_names[i])
        sets = members
    elif lower.endswith(".gmt"):
        try:
            sets = read_gmt(path)
        except ValueError as err:
            raise InputFileError(f"--gene-sets: {err}") from None
    else:
        table = _read_table(path, "--gene-sets", index_col=None)
        if table.shape[1] < 2:
            raise InputFileError(
                f"--gene-sets: the edge table {path!r} needs two columns (gene, "
                f"pathway); it has {table.shape[1]}: {list(table.columns)}."
            )
        gene_col, set_col = table.columns[:2]
        if table[[gene_col, set_col]].isna().any().any():
            raise InputFileError(
                f"--gene-sets: {path!r} has empty gene or pathway cells."
            )
        sets = {}
        for gene, name in zip(
            table[gene_col].astype(str), table[set_col].astype(str), strict=True
        ):
            sets.setdefault(name, []).append(gene)
    all_members = {m for v in sets.values() for m in v}
    overlap = len(all_members & set(genes))
    report = (
        f"{len(sets)} gene sets with {len(all_members)} distinct members; "
        f"{overlap} of the data's {len(genes)} genes are members"
    )
    if overlap == 0:
        raise InputFileError(
            f"--gene-sets: no overlap between the data's genes and the members of "
            f"{path!r} ({report}). Data genes look like {_fmt_list(genes[:5])}; set "
            f"members like {_fmt_list(sorted(all_members)[:5])}. Use the same "
            "identifiers (e.g. HGNC symbols) in both."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        connectivity = from_gene_sets(
            sets, genes, min_found=min_found, drop_empty=True, report=False
        )
    dropped = [str(w.message) for w in caught if "Dropped" in str(w.message)]
    if dropped:
        report += "; " + dropped[0]
    return connectivity, report


def summarize_labels(labels: Labels) -> dict[str, Any]:
    out: dict[str, Any] = {"n_samples": int(labels.y.size)}
    if labels.classes is not None:
        counts = np.bincount(labels.y, minlength=len(labels.classes))
        out["classes"] = {
            c: int(n) for c, n in zip(labels.classes, counts, strict=True)
        }
    if labels.groups is not None:
        out["n_groups"] = int(len(np.unique(labels.groups)))
    return out
