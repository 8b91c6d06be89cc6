"""Hierarchy levels (P-NET/BINN layering) and the gene-label control."""

import numpy as np
import pytest

from keras_sparse.connectivity.hierarchy import (
    gene_permuted_connectivity,
    hierarchy_connectivities,
)

# A small Reactome-like graph (ids invented):
#   R-1 (root) -> R-11 -> R-111 -> R-1111
#                       -> R-112
#              -> R-12                (leaf at depth 1: copied down)
#   R-2 (root) -> R-21 -> R-211
#              -> R-22 -> R-221       (R-221 also a child of R-11: DAG)
RELATIONS = [
    ("R-1", "R-11"),
    ("R-11", "R-111"),
    ("R-111", "R-1111"),
    ("R-11", "R-112"),
    ("R-1", "R-12"),
    ("R-2", "R-21"),
    ("R-21", "R-211"),
    ("R-2", "R-22"),
    ("R-22", "R-221"),
    ("R-11", "R-221"),
]
ANNOTATIONS = [
    ("g1", "R-1111"),
    ("g2", "R-1111"),
    ("g3", "R-111"),  # direct annotation of a node that is cut at the bottom
    ("g4", "R-112"),
    ("g5", "R-112"),
    ("g6", "R-12"),
    ("g7", "R-12"),
    ("g8", "R-211"),
    ("g9", "R-211"),
    ("g10", "R-221"),
    ("g11", "R-221"),
    ("g12", "R-221"),
    ("gX", "R-211"),  # not among the inputs: ignored
]
GENES = [f"g{i}" for i in range(1, 14)]  # g13 has no pathway


def edges(conn):
    return {
        (a, b)
        for a, b in conn.to_edge_table()[["input", "output"]].itertuples(index=False)
    }


def test_three_levels_with_copies_and_all_level_genes():
    levels = hierarchy_connectivities(
        RELATIONS, ANNOTATIONS, GENES, num_levels=3, min_size=1
    )
    assert len(levels) == 3
    bottom, middle, top = levels
    assert bottom.input_names == tuple(GENES)
    assert bottom.output_names == ("R-111", "R-112", "R-12_copy1", "R-211", "R-221")
    assert middle.output_names == ("R-11", "R-12", "R-21", "R-22")
    assert top.output_names == ("R-1", "R-2")
    # Bottom nodes carry their whole subtree's genes (R-1111's under R-111).
    assert edges(bottom) == {
        ("g1", "R-111"), ("g2", "R-111"), ("g3", "R-111"),
        ("g4", "R-112"), ("g5", "R-112"),
        ("g6", "R-12_copy1"), ("g7", "R-12_copy1"),
        ("g8", "R-211"), ("g9", "R-211"),
        ("g10", "R-221"), ("g11", "R-221"), ("g12", "R-221"),
    }  # fmt: skip
    # R-221 sits at depth 2 below both R-22 and R-11 (a DAG keeps both).
    assert edges(middle) == {
        ("R-111", "R-11"), ("R-112", "R-11"), ("R-221", "R-11"),
        ("R-12_copy1", "R-12"), ("R-211", "R-21"), ("R-221", "R-22"),
    }  # fmt: skip
    assert edges(top) == {
        ("R-11", "R-1"),
        ("R-12", "R-1"),
        ("R-21", "R-2"),
        ("R-22", "R-2"),
    }
    # Levels chain: names match, no empty unit anywhere.
    for lower, upper in zip(levels, levels[1:], strict=False):
        assert upper.input_names == lower.output_names
    assert all((c.fan_in > 0).all() for c in levels)
    assert bottom.fan_out[GENES.index("g13")] == 0


def test_deeper_copies_chain_down():
    levels = hierarchy_connectivities(
        RELATIONS, ANNOTATIONS, GENES, num_levels=4, min_size=1
    )
    bottom = levels[0]
    assert "R-12_copy2" in bottom.output_names and "R-112_copy1" in bottom.output_names
    assert ("R-12_copy2", "R-12_copy1") in edges(levels[1])
    assert ("R-12_copy1", "R-12") in edges(levels[2])
    assert edges(levels[0]) >= {("g1", "R-1111"), ("g2", "R-1111")}
    assert ("g3", "R-1111") not in edges(levels[0])


def test_size_filter_prunes_upwards():
    # Only R-221 (3 genes) survives min_size=3; R-111 has 3 too.
    levels = hierarchy_connectivities(
        RELATIONS, ANNOTATIONS, GENES, num_levels=3, min_size=3
    )
    assert levels[0].output_names == ("R-111", "R-221")
    assert levels[1].output_names == ("R-11", "R-22")
    assert levels[2].output_names == ("R-1", "R-2")
    levels = hierarchy_connectivities(
        RELATIONS, ANNOTATIONS, GENES, num_levels=3, min_size=1, max_size=2
    )
    assert (
        "R-221" not in levels[0].output_names and "R-111" not in levels[0].output_names
    )
    assert levels[1].output_names == ("R-11", "R-12", "R-21")
    with pytest.raises(
        ValueError, match="No bottom-level pathway has between min_size=50"
    ):
        hierarchy_connectivities(
            RELATIONS, ANNOTATIONS, GENES, min_size=50, max_size=60
        )


def test_one_level_and_dataframe_input():
    pd = pytest.importorskip("pandas")
    rel = pd.DataFrame(RELATIONS, columns=["parent", "child"])
    ann = pd.DataFrame(ANNOTATIONS, columns=["gene", "pathway"])
    (only,) = hierarchy_connectivities(rel, ann, GENES, num_levels=1, min_size=1)
    assert only.output_names == ("R-1", "R-2")
    # R-221's genes reach both roots (R-221 is a child of R-11 and R-22).
    assert only.fan_in.tolist() == [10, 5]


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(num_levels=0), "`num_levels`, expected a positive integer"),
        (dict(min_size=10, max_size=5), "`min_size` must not exceed"),
        (dict(relations=[("a", "b", "c")]), "expected \\(a, b\\) pairs"),
        (dict(relations=[("a", "b"), ("b", "a"), ("r", "a")], roots=["r"]), "cycle"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    args = dict(relations=RELATIONS, annotations=ANNOTATIONS, inputs=GENES, min_size=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        hierarchy_connectivities(**args)


def test_gene_permutation_keeps_sizes_degrees_overlaps():
    bottom = hierarchy_connectivities(
        RELATIONS, ANNOTATIONS, GENES, num_levels=3, min_size=1
    )[0]
    rng = np.random.default_rng(0)
    big = (rng.random((300, 40)) < 0.08).astype(bool)
    from keras_sparse import Connectivity

    for conn in (bottom, Connectivity.from_dense(big, empty_outputs="ignore")):
        seen = set()
        for seed in range(5):
            control = gene_permuted_connectivity(conn, seed=seed)
            assert control.shape == conn.shape and control.nnz == conn.nnz
            assert control.output_names == conn.output_names
            np.testing.assert_array_equal(control.fan_in, conn.fan_in)
            np.testing.assert_array_equal(
                np.sort(control.fan_out), np.sort(conn.fan_out)
            )
            a = conn.to_dense(np.int64)
            b = control.to_dense(np.int64)
            np.testing.assert_array_equal(b.T @ b, a.T @ a)  # overlaps kept
            seen.add(control.fingerprint())
        assert len(seen) > 1  # seeds differ
        assert not gene_permuted_connectivity(conn, seed=3).same_edges(conn)
    assert gene_permuted_connectivity(bottom, 7) == gene_permuted_connectivity(
        bottom, 7
    )
