"""Gene sets (output name -> member input names) and the GMT file format."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from keras_sparse._validation import format_list, int_in_range, invalid_value
from keras_sparse.connectivity.connectivity import Connectivity

__all__ = ["read_gmt", "from_gene_sets", "GeneSetCoverageWarning"]


class GeneSetCoverageWarning(UserWarning):
    """Some members of some gene sets are not among the input names."""


def read_gmt(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Reads a GMT (Gene Matrix Transposed) file into `{set name: members}`.

    Each non-empty line is `name<TAB>description<TAB>member<TAB>member...`
    (the Broad Institute's MSigDB format). Empty member fields are ignored;
    a member listed twice in one set is kept once.

    Args:
        path: path to a UTF-8 text file.

    Returns:
        An insertion-ordered dict from set name to its list of members.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not UTF-8 text, a line has fewer than two
            tab-separated fields, a set name is empty or repeated, or the
            file has no set. The message gives the line number.

    References:
        GMT format: https://software.broadinstitute.org/cancer/software/gsea/wiki/index.php/Data_formats
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad_line = raw[: err.start].count(b"\n") + 1
        raise ValueError(
            f"GMT file {path!r} is not UTF-8 text: undecodable byte "
            f"{raw[err.start : err.start + 1]!r} on line {bad_line}. Re-save it "
            "as UTF-8."
        ) from None
    sets: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 2:
            raise ValueError(
                f"GMT file {path!r}, line {lineno}: expected tab-separated "
                "'name<TAB>description<TAB>members...', got "
                f"{len(fields)} field(s): {line[:80]!r}."
            )
        name = fields[0].strip()
        if not name:
            raise ValueError(
                f"GMT file {path!r}, line {lineno}: the set name is empty."
            )
        if name in sets:
            raise ValueError(
                f"GMT file {path!r}, line {lineno}: set {name!r} appears twice; "
                "set names must be unique."
            )
        members = [m.strip() for m in fields[2:]]
        sets[name] = list(dict.fromkeys(m for m in members if m))
    if not sets:
        raise ValueError(f"GMT file {path!r} holds no gene set.")
    return sets


def from_gene_sets(
    gene_sets: Mapping[str, Iterable[str]],
    input_names: Sequence[str],
    min_found: int = 1,
    drop_empty: bool = False,
    report: bool = True,
) -> Connectivity:
    """Builds a `Connectivity` from gene sets: output `j` = set `j`.

    Input `i` (e.g. gene `input_names[i]`) feeds output `j` when it is a
    member of the `j`-th set. Members absent from `input_names` cannot be
    connected; how many members of each set were found is reported.

    Args:
        gene_sets: mapping from set name (the output name) to its members,
            e.g. the result of `read_gmt`.
        input_names: the names of the inputs, in the order of the data's
            columns; they must be unique.
        min_found: int >= 0, the fewest members a set must have among
            `input_names`. A set with fewer raises a `ValueError`, unless
            `drop_empty=True`, which drops such sets (and says which).
        drop_empty: see `min_found`.
        report: if True, a `GeneSetCoverageWarning` tells how many members
            of each set were not found (first sets listed).

    Returns:
        A named `Connectivity` of shape `(len(input_names), number of kept
        sets)`.

    Raises:
        ValueError: if `gene_sets` is empty, a set has fewer than
            `min_found` members among `input_names` (and `drop_empty` is
            False), or no set is left.
        TypeError: if a set's members are given as a single string.
    """
    if not isinstance(gene_sets, Mapping) or not gene_sets:
        size = len(gene_sets) if hasattr(gene_sets, "__len__") else "?"
        raise ValueError(
            invalid_value(
                "gene_sets",
                "a non-empty mapping of set name -> member names",
                received=f"{type(gene_sets).__name__} with {size} entries",
            )
        )
    min_found = int_in_range(min_found, "min_found", 0)
    names = [str(n) for n in input_names]
    position = {n: i for i, n in enumerate(names)}
    if len(position) != len(names):
        # Reuse the Connectivity check for the message.
        Connectivity(
            [], [], shape=(len(names), 1), input_names=names, empty_outputs="ignore"
        )
    rows: list[np.ndarray] = []
    kept: list[str] = []
    coverage = []
    too_small = []
    for set_name, members in gene_sets.items():
        if isinstance(members, str):
            raise TypeError(
                invalid_value(
                    "gene_sets",
                    "a list of member names for every set, not a single string",
                    received=f"gene_sets[{set_name!r}]={members[:40]!r}",
                )
            )
        unique = list(dict.fromkeys(str(m) for m in members))
        found = np.fromiter(
            (position[m] for m in unique if m in position), dtype=np.int64
        )
        coverage.append((str(set_name), found.size, len(unique)))
        if found.size < min_found:
            too_small.append((str(set_name), found.size, len(unique)))
            continue
        rows.append(found)
        kept.append(str(set_name))
    if too_small and not drop_empty:
        details = [f"{n}: {f}/{t} found" for n, f, t in too_small]
        raise ValueError(
            f"{len(too_small)} gene set(s) have fewer than min_found={min_found} "
            f"members among the {len(names)} input names: {format_list(details)}. "
            "Check that both use the same identifiers (e.g. HGNC symbols), or "
            "pass `drop_empty=True` to drop these sets."
        )
    if too_small:
        warnings.warn(
            f"Dropped {len(too_small)} gene set(s) with fewer than {min_found} "
            f"members found: {format_list([n for n, _, _ in too_small])}.",
            GeneSetCoverageWarning,
            stacklevel=2,
        )
    if not kept:
        raise ValueError(
            "No gene set is left: none has members among the input names. "
            f"First input names: {format_list(names[:5])}; first set members: "
            f"{format_list(list(next(iter(gene_sets.values())))[:5])}."
        )
    partial = [(n, f, t) for n, f, t in coverage if f < t and f >= min_found]
    if report and partial:
        details = [f"{n}: {f}/{t}" for n, f, t in partial]
        warnings.warn(
            f"{len(partial)} of {len(coverage)} gene sets have members missing "
            f"from the input names (found/total): {format_list(details, 5)}.",
            GeneSetCoverageWarning,
            stacklevel=2,
        )
    cols = np.repeat(np.arange(len(kept)), [r.size for r in rows])
    return Connectivity(
        np.concatenate(rows) if rows else np.empty(0, np.int64),
        cols,
        shape=(len(names), len(kept)),
        input_names=names,
        output_names=kept,
        empty_outputs="ignore" if min_found == 0 else "warn",
    )
