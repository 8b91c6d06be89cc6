"""Multi-level connectivities from a pathway hierarchy (P-NET/BINN layering).

A pathway database such as Reactome is a directed acyclic graph of
parent -> child pathways plus an annotation of genes to the lowest
pathways. A multi-level pathway network needs it as a chain of
`Connectivity` objects: genes -> bottom pathways -> parent pathways ->
... -> top pathways. `hierarchy_connectivities` builds that chain the way
P-NET (Elmarakeby et al. 2021) and BINN (Hartman et al. 2023) do:

1. every pathway gets its depth, the shortest distance from a root (a
   pathway without parent; depth 0);
2. level `k` (counted from the top) holds the pathways of depth `k`; a
   pathway that has no child at the next depth but must reach the bottom
   level is copied down (`"<id>_copy1"`, `"<id>_copy2"`, ...; each copy
   has the copied node as its only parent), so every branch reaches the
   genes;
3. a bottom-level node's genes are the genes annotated to it or to any of
   its descendants (the "all levels" annotation);
4. bottom nodes with fewer than `min_size` or more than `max_size` of the
   data's genes are dropped; a node above left without any child is
   dropped too.

`gene_permuted_connectivity` is the control of the same structure:
the gene labels of the gene -> pathway level permuted, which keeps every
pathway's size, the multiset of gene degrees and every overlap between
pathways, and only breaks which genes are where.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from keras_sparse.connectivity.connectivity import Connectivity

__all__ = ["gene_permuted_connectivity", "hierarchy_connectivities"]

COPY_SUFFIX = "_copy"


def _pairs(value: Any, argument: str) -> list[tuple[str, str]]:
    """Normalises (a, b) pairs given as a DataFrame, an array or a list."""
    if hasattr(value, "iloc") and hasattr(value, "columns"):
        if value.shape[1] < 2:
            raise ValueError(
                f"Received an invalid value for `{argument}`, expected a table "
                f"with two columns. Received: {value.shape[1]} column(s)."
            )
        rows = value.iloc[:, :2].astype(str).itertuples(index=False, name=None)
        return [(str(a), str(b)) for a, b in rows]
    try:
        pairs = [tuple(p) for p in value]
    except TypeError:
        raise ValueError(
            f"Received an invalid value for `{argument}`, expected (a, b) pairs. "
            f"Received: {type(value).__name__}"
        ) from None
    bad = [p for p in pairs if len(p) != 2]
    if bad:
        raise ValueError(
            f"Received an invalid value for `{argument}`, expected (a, b) pairs. "
            f"Received: an entry of length {len(bad[0])}: {bad[0]!r}"
        )
    return [(str(a), str(b)) for a, b in pairs]


def _depths(children: dict[str, set[str]], nodes: set[str], roots: set[str]) -> dict:
    depth = {r: 0 for r in roots}
    queue = deque(sorted(roots))
    while queue:
        node = queue.popleft()
        for child in sorted(children.get(node, ())):
            if child in nodes and child not in depth:
                depth[child] = depth[node] + 1
                queue.append(child)
    return depth


def hierarchy_connectivities(
    relations: Any,
    annotations: Any,
    inputs: Sequence[str],
    num_levels: int = 3,
    min_size: int = 5,
    max_size: int = 300,
    roots: Iterable[str] | None = None,
) -> list[Connectivity]:
    """Builds the chain inputs -> bottom pathways -> ... -> top pathways.

    Args:
        relations: `(parent, child)` pairs of the pathway graph (a
            two-column DataFrame, an `(n, 2)` array or a list of pairs).
        annotations: `(input, pathway)` pairs, e.g. gene -> lowest
            Reactome pathway; pathways absent from `relations` are roots.
        inputs: the input names in model order (e.g. the expression
            matrix's genes); annotations of other inputs are ignored.
        num_levels: positive int, the number of pathway levels; the top
            level holds the roots (depth 0), the bottom level depth
            `num_levels - 1`.
        min_size, max_size: the bottom level keeps the pathways with
            `min_size <= genes <= max_size` of `inputs` (descendants'
            genes included).
        roots: optional root pathways; default: every pathway without a
            parent.

    Returns:
        A list of `num_levels` named `Connectivity` objects: `[inputs ->
        bottom, bottom -> next level up, ..., -> roots]`; level `k + 1`'s
        input names are level `k`'s output names. Copies are named
        `"<pathway>_copy<d>"` (`d` = how many levels below the original).

    Raises:
        ValueError: for malformed pairs, `num_levels < 1`, `min_size >
            max_size`, a cycle among the roots' descendants, or when no
            pathway is left after filtering (the counts are given).

    Example:

    >>> relations = [("top", "a"), ("top", "b"), ("a", "a1")]
    >>> annotations = [("g1", "a1"), ("g2", "a1"), ("g3", "b"), ("g4", "b")]
    >>> levels = hierarchy_connectivities(
    ...     relations, annotations, ["g1", "g2", "g3", "g4"],
    ...     num_levels=3, min_size=1)
    >>> [c.output_names for c in levels]
    [('a1', 'b_copy1'), ('a', 'b'), ('top',)]

    References:
        Elmarakeby et al., "Biologically informed deep neural network for
        prostate cancer discovery", Nature 598 (2021) (`ReactomeNetwork`);
        Hartman et al., "Interpreting biologically informed neural
        networks for enhanced proteomic biomarker discovery and pathway
        analysis", Nature Communications 14 (2023).
    """
    if (
        isinstance(num_levels, bool)
        or not isinstance(num_levels, int)
        or num_levels < 1
    ):
        raise ValueError(
            "Received an invalid value for `num_levels`, expected a positive "
            f"integer. Received: num_levels={num_levels!r}"
        )
    if min_size > max_size:
        raise ValueError(
            "`min_size` must not exceed `max_size`. Received: "
            f"min_size={min_size}, max_size={max_size}"
        )
    rel = _pairs(relations, "relations")
    ann = _pairs(annotations, "annotations")
    inputs = [str(g) for g in inputs]
    input_pos = {g: i for i, g in enumerate(inputs)}
    children: dict[str, set[str]] = {}
    parents: dict[str, set[str]] = {}
    for parent, child in rel:
        children.setdefault(parent, set()).add(child)
        parents.setdefault(child, set()).add(parent)
    direct: dict[str, set[str]] = {}
    for gene, pathway in ann:
        if gene in input_pos:
            direct.setdefault(pathway, set()).add(gene)
    nodes = set(children) | set(parents) | {p for _, p in ann}
    root_set = (
        {str(r) for r in roots}
        if roots is not None
        else {n for n in nodes if not parents.get(n)}
    )
    depth = _depths(children, nodes, root_set)
    bottom = num_levels - 1

    genes_memo: dict[str, frozenset[str]] = {}

    def subtree_genes(node: str, stack: tuple[str, ...] = ()) -> frozenset[str]:
        if node in genes_memo:
            return genes_memo[node]
        if node in stack:
            raise ValueError(
                f"`relations` has a cycle through {node!r}; a hierarchy must be "
                "acyclic."
            )
        out = set(direct.get(node, ()))
        for child in children.get(node, ()):
            out |= subtree_genes(child, (*stack, node))
        genes_memo[node] = frozenset(out)
        return genes_memo[node]

    # Level membership: nodes of depth k, plus copies of shallower nodes
    # that have no child at the next depth.
    levels: list[list[str]] = [[] for _ in range(num_levels)]
    origin: dict[str, str] = {}
    for node, d in depth.items():
        if d <= bottom:
            levels[d].append(node)
            origin[node] = node
    for k in range(bottom):
        for node in levels[k]:
            real = origin[node]
            has_next = any(depth.get(c) == k + 1 for c in children.get(real, ()))
            if node != real or not has_next:
                copy = f"{real}{COPY_SUFFIX}{k + 1 - depth[real]}"
                levels[k + 1].append(copy)
                origin[copy] = real
    for level in levels:
        level.sort()
    # Bottom filter by size, then drop nodes above left without children.
    keep_bottom = []
    for node in levels[bottom]:
        size = len(subtree_genes(origin[node]))
        if min_size <= size <= max_size:
            keep_bottom.append(node)
    if not keep_bottom:
        raise ValueError(
            f"No bottom-level pathway has between min_size={min_size} and "
            f"max_size={max_size} of the {len(inputs)} inputs "
            f"({len(levels[bottom])} candidate pathways at depth {bottom}, "
            f"{len(direct)} pathways annotated with any input). Check that "
            "`inputs` and `annotations` use the same identifiers."
        )
    levels[bottom] = keep_bottom

    level_edges: list[list[tuple[str, str]]] = [[] for _ in range(num_levels)]
    for k in range(bottom - 1, -1, -1):
        # Copies of a node link to the nearest copy or original above.
        edges = []
        lower_set = set(levels[k + 1])
        for node in levels[k]:
            real = origin[node]
            if node == real:
                for child in children.get(real, ()):
                    if depth.get(child) == k + 1 and child in lower_set:
                        edges.append((child, node))
            next_copy = f"{real}{COPY_SUFFIX}{k + 1 - depth[real]}"
            if next_copy in lower_set:
                edges.append((next_copy, node))
        kept = sorted({p for _, p in edges})
        levels[k] = kept
        level_edges[k + 1] = edges
    gene_edges = []
    for node in levels[bottom]:
        for gene in sorted(subtree_genes(origin[node])):
            gene_edges.append((gene, node))
    level_edges[0] = gene_edges

    out = [
        Connectivity.from_edges(
            gene_edges, input_names=inputs, output_names=levels[bottom]
        )
    ]
    for k in range(bottom - 1, -1, -1):
        out.append(
            Connectivity.from_edges(
                level_edges[k + 1],
                input_names=levels[k + 1],
                output_names=levels[k],
                empty_outputs="raise",
            )
        )
    return out


def gene_permuted_connectivity(
    connectivity: Connectivity, seed: int = 0
) -> Connectivity:
    """Permutes the input labels of a connectivity (gene-label control).

    Input `i`'s connections are given to input `perm[i]`: every output
    keeps its fan-in, the multiset of input fan-outs is unchanged, and so
    is every overlap between two outputs (the number of inputs they share),
    while the identity of the inputs behind each output is random. Names
    are kept, so the control can replace the real level in a model.

    Args:
        connectivity: a `Connectivity` (e.g. genes -> bottom pathways).
        seed: int seed of the permutation.

    Returns:
        A `Connectivity` of the same shape, nnz and names.

    Example:

    >>> import numpy as np
    >>> from keras_sparse import Connectivity
    >>> mask = np.eye(4, 2, dtype=bool) | np.eye(4, 2, -2, dtype=bool)
    >>> c = Connectivity.from_dense(mask)
    >>> p = gene_permuted_connectivity(c, seed=1)
    >>> p.fan_in.tolist() == c.fan_in.tolist()
    True

    References:
        Fortelny & Bock, "Knowledge-primed neural networks enable
        biologically interpretable deep learning on single-cell
        sequencing data", Genome Biology 21 (2020) (`--shuffleGenes`).
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(connectivity.num_inputs)
    return Connectivity(
        perm[connectivity.input_indices],
        connectivity.output_indices,
        shape=connectivity.shape,
        input_names=connectivity.input_names,
        output_names=connectivity.output_names,
        empty_outputs="ignore",
    )
