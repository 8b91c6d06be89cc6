import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from keras_sparse import Connectivity
from keras_sparse.connectivity import (
    EmptyOutputWarning,
    as_connectivity,
    banded_connectivity,
    block_diagonal_connectivity,
    erdos_renyi_connectivity,
    full_connectivity,
    random_connectivity,
)
from keras_sparse.connectivity.serialization import write_to_store

MASK = np.array(
    [
        [1, 0, 1],
        [0, 1, 1],
        [1, 1, 0],
        [0, 0, 1],
    ],
    dtype=np.int8,
)


def test_from_dense_properties():
    c = Connectivity.from_dense(MASK)
    assert c.shape == (4, 3)
    assert c.nnz == 7
    assert c.density == pytest.approx(7 / 12)
    np.testing.assert_array_equal(c.fan_in, [2, 2, 3])
    np.testing.assert_array_equal(c.fan_out, [2, 2, 2, 1])
    np.testing.assert_array_equal(c.to_dense(dtype=np.int8), MASK)
    # Canonical order: by output, then input.
    np.testing.assert_array_equal(c.output_indices, [0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(c.input_indices, [0, 2, 1, 2, 0, 1, 3])
    np.testing.assert_array_equal(c.indptr, [0, 2, 4, 7])


def test_immutable():
    c = Connectivity.from_dense(MASK)
    with pytest.raises(ValueError):
        c.input_indices[0] = 3
    with pytest.raises(AttributeError):
        c.nnz = 3  # type: ignore[misc]


def test_all_constructors_agree():
    base = Connectivity.from_dense(MASK.astype(bool))
    names_in = ["g1", "g2", "g3", "g4"]
    names_out = ["p1", "p2", "p3"]
    assert Connectivity.from_scipy(sp.csr_matrix(MASK)).same_edges(base)
    assert Connectivity.from_scipy(sp.coo_array(MASK)).same_edges(base)
    frame = pd.DataFrame(MASK, index=names_in, columns=names_out)
    named = Connectivity.from_dataframe(frame)
    assert named.same_edges(base)
    assert named.input_names == tuple(names_in)
    assert named.output_names == tuple(names_out)
    rows, cols = np.nonzero(MASK)
    shuffled = np.random.default_rng(0).permutation(len(rows))
    edges = list(zip(rows[shuffled], cols[shuffled], strict=True))
    assert Connectivity.from_edges(edges, shape=(4, 3)).same_edges(base)
    name_edges = [(names_in[r], names_out[c]) for r, c in edges]
    from_names = Connectivity.from_edges(
        name_edges, input_names=names_in, output_names=names_out
    )
    assert from_names == named
    assert as_connectivity(MASK).same_edges(base)
    assert as_connectivity(frame) == named
    assert as_connectivity(sp.csc_matrix(MASK)).same_edges(base)


def test_exports():
    frame = pd.DataFrame(MASK, index=list("abcd"), columns=["x", "y", "z"])
    c = Connectivity.from_dataframe(frame)
    table = c.to_edge_table()
    assert list(table.columns) == ["input", "output", "input_index", "output_index"]
    assert len(table) == c.nnz
    assert set(zip(table.input, table.output, strict=True)) == {
        (i, o) for i in frame.index for o in frame.columns if frame.loc[i, o]
    }
    np.testing.assert_array_equal(c.to_scipy("csr").toarray(), MASK)
    np.testing.assert_array_equal(c.to_scipy("coo").toarray(), MASK)


def test_config_round_trip_exact():
    c = random_connectivity(500, 40, density=0.07, seed=3).with_names(
        [f"in{i}" for i in range(500)], [f"out{j}" for j in range(40)]
    )
    back = Connectivity.from_config(c.get_config())
    assert back == c
    assert back.fingerprint() == c.fingerprint()


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "array, error, pattern",
    [
        (np.ones(5), ValueError, r"2-D array.*\(5,\)"),
        (np.ones((2, 2, 2)), ValueError, r"2-D array.*ndim=3"),
        (np.array([[0, 2], [1, 0]]), ValueError, r"only 0 and 1.*2"),
        (np.array([[0.5, 1.0]]), ValueError, r"only 0 and 1.*0\.5"),
        (np.array([[np.nan, 1.0]]), ValueError, r"only 0 and 1.*nan"),
        (np.array([["a", "b"]]), TypeError, r"0/1 or booleans.*dtype"),
        (np.zeros((0, 3)), ValueError, r"two positive integers.*\(0, 3\)"),
    ],
)
def test_from_dense_rejects(array, error, pattern):
    with pytest.raises(error, match=pattern):
        Connectivity.from_dense(array)


def test_index_errors():
    with pytest.raises(
        ValueError, match=r"`input_indices`, expected indices in \[0, 3\).*-1"
    ):
        Connectivity([-1, 0], [0, 1], shape=(3, 2))
    with pytest.raises(
        ValueError, match=r"`output_indices`, expected indices in \[0, 2\).*5"
    ):
        Connectivity([0, 1], [0, 5], shape=(3, 2))
    with pytest.raises(ValueError, match=r"listed only once.*\(1, 1\)"):
        Connectivity([1, 0, 1], [1, 0, 1], shape=(3, 2))
    with pytest.raises(ValueError, match=r"same length as `input_indices` \(2\)"):
        Connectivity([0, 1], [0], shape=(3, 2))
    with pytest.raises(TypeError, match="integer indices. Received: dtype"):
        Connectivity([0.5], [0], shape=(3, 2))
    with pytest.raises(ValueError, match=r"shape.*two positive integers.*\(3,\)"):
        Connectivity([0], [0], shape=(3,))
    with pytest.raises(ValueError, match=r"1-D array.*\(1, 2\)"):
        Connectivity([[0, 1]], [0], shape=(3, 2))


def test_huge_declared_shape_is_refused_quickly():
    with pytest.raises(ValueError, match=r"at most 2\*\*31 - 1.*10000000000000"):
        Connectivity([0], [0], shape=(10**13, 5))
    config = Connectivity([0], [0], shape=(3, 2), empty_outputs="ignore").get_config()
    config["shape"] = [10**13, 2]
    with pytest.raises(ValueError, match="at most 2"):
        Connectivity.from_config(config)


def test_name_errors():
    with pytest.raises(ValueError, match=r"one name per input \(4\). Received: 3"):
        Connectivity.from_dense(MASK, input_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"`input_names`, expected unique names.*'a'"):
        Connectivity.from_dense(MASK, input_names=["a", "a", "b", "c"])
    with pytest.raises(TypeError, match="only strings"):
        Connectivity.from_dense(MASK, output_names=[1, 2, 3])
    with pytest.raises(TypeError, match="not a single string"):
        Connectivity.from_dense(MASK, output_names="xyz")


def test_edge_list_errors():
    with pytest.raises(
        ValueError, match=r"shape \(nnz, 2\). Received: an array of shape \(2, 3\)"
    ):
        Connectivity.from_edges([(0, 1, 2), (1, 2, 0)], shape=(3, 3))
    with pytest.raises(ValueError, match="`shape`, expected .*Pass `shape=`, or both"):
        Connectivity.from_edges([(0, 1)])
    with pytest.raises(ValueError, match="`shape`, expected"):
        Connectivity.from_edges([(0, 1)], input_names=["a"])
    with pytest.raises(
        ValueError, match=r"`edges`, .*Received: 1 unknown input\(s\): \['zz'\]"
    ):
        Connectivity.from_edges(
            [("a", "x"), ("zz", "x")], input_names=["a", "b"], output_names=["x"]
        )
    with pytest.raises(ValueError, match=r"`shape`, expected \(1, 1\)"):
        Connectivity.from_edges([("a", "x")], shape=(2, 1))
    with pytest.raises(ValueError, match="listed only once"):
        Connectivity.from_edges([(0, 0), (0, 0)], shape=(1, 1))


# ------------------------------------------- issue 12 item 11: Connectivity input
def test_from_edges_with_names_infers_the_shape():
    edges = [("g2", "p1"), ("g1", "p1"), ("g2", "p2"), ("g3", "p2")]
    c = Connectivity.from_edges(edges)
    # Names in order of first appearance; shape from their number.
    assert c.shape == (3, 2)
    assert c.input_names == ("g2", "g1", "g3")
    assert c.output_names == ("p1", "p2")
    np.testing.assert_array_equal(c.to_dense(dtype=int), [[1, 1], [1, 0], [0, 1]])
    # One list given (fixing the order and adding an unconnected input), the
    # other inferred; an array of names works the same.
    d = Connectivity.from_edges(
        np.asarray(edges), input_names=["g1", "g2", "g3", "g4"], empty_outputs="raise"
    )
    assert d.shape == (4, 2) and d.output_names == ("p1", "p2")
    assert d.fan_out.tolist() == [1, 2, 1, 0]
    # A shape that agrees is accepted.
    assert Connectivity.from_edges(edges, shape=(3, 2)) == c


def test_from_edges_index_pairs_take_the_shape_from_two_name_lists():
    c = Connectivity.from_edges(
        [(0, 1), (2, 0)], input_names=["a", "b", "c"], output_names=["x", "y"]
    )
    assert c.shape == (3, 2) and c.input_names == ("a", "b", "c")
    assert c.fan_out.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    "dtype", ["Int64", "boolean", "Float64", "object", "int8", "bool"]
)
def test_from_dataframe_accepts_any_dtype_holding_only_0_1(dtype):
    frame = pd.DataFrame(MASK, index=list("abcd"), columns=list("xyz"))
    if dtype in ("boolean", "bool"):
        frame = frame.astype(bool)
    c = Connectivity.from_dataframe(frame.astype(dtype))
    np.testing.assert_array_equal(c.to_dense(dtype=np.int8), MASK)
    assert c.input_names == tuple("abcd")


def test_from_dataframe_mixed_columns():
    frame = pd.DataFrame(
        {
            "x": pd.array([1, 0, 1, 0], dtype="Int64"),
            "y": [False, True, True, False],
            "z": np.array([1.0, 1.0, 0.0, 1.0]),
        },
        index=list("abcd"),
    )
    c = Connectivity.from_dataframe(frame)
    np.testing.assert_array_equal(c.to_dense(dtype=np.int8), MASK)


@pytest.mark.parametrize(
    "column, error, pattern",
    [
        (
            pd.array([1, None, 1, 0], dtype="Int64"),
            ValueError,
            r"1 missing value\(s\) \(NA/NaN\) in column 'y', e\.g\. at row 'b'.*"
            r"frame\.fillna\(0\)",
        ),
        (
            pd.array([True, False, pd.NA, True], dtype="boolean"),
            ValueError,
            r"missing value.*column 'y'.*row 'c'",
        ),
        (
            np.array([1.0, np.nan, 0.0, 1.0]),
            ValueError,
            r"missing value.*column 'y'.*row 'b'",
        ),
        (
            np.array([1, "yes", 0, 1], dtype=object),
            TypeError,
            r"in column 'y', e\.g\. 'yes' at row 'b'.*pandas\.to_numeric",
        ),
        (
            np.array([1, 2, 0, 1]),
            ValueError,
            r"1 other value\(s\) in column 'y', e\.g\. 2 at row 'b'.*frame != 0",
        ),
    ],
)
def test_from_dataframe_bad_column_is_named(column, error, pattern):
    frame = pd.DataFrame({"x": [1, 0, 1, 1], "y": column}, index=list("abcd"))
    with pytest.raises(error, match=r"Received an invalid value for `frame`"):
        Connectivity.from_dataframe(frame)
    with pytest.raises(error, match=pattern):
        Connectivity.from_dataframe(frame)


def test_huge_declared_shape_is_cheap():
    # Connectivity used to allocate per-unit arrays of the declared length
    # at construction (16 GB and 38 s for (2**31 - 1, 2)); they are now
    # built on first use, so memory follows nnz.
    tracemalloc.start()
    try:
        big = Connectivity([0, 5, 2**27 - 1], [0, 1, 1], shape=(2**27, 2))
        config = big.get_config()
        store: dict = {}
        write_to_store(big, store)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6, peak  # the old code peaked at ~2.1 GB here
    assert big.nnz == 3 and big.fan_in.tolist() == [1, 2]
    assert Connectivity.from_config(config).same_edges(big)
    # The largest allowed shape, in both orientations.
    c = Connectivity([0, 2**31 - 2], [0, 1], shape=(2**31 - 1, 2))
    assert c.shape == (2**31 - 1, 2) and c.nnz == 2 and c.fan_in.tolist() == [1, 1]
    with pytest.warns(EmptyOutputWarning, match=r"2147483645 of 2147483647 outputs"):
        wide = Connectivity([0, 1], [0, 2**31 - 2], shape=(2, 2**31 - 1))
    assert wide.nnz == 2
    with pytest.raises(ValueError, match=r"\[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, \.\.\. "):
        Connectivity(
            [0, 1], [0, 2**31 - 2], shape=(2, 2**31 - 1), empty_outputs="raise"
        )


def test_scipy_rejects_non_ones():
    m = sp.csr_matrix(np.array([[0, 2.0], [1, 0]]))
    with pytest.raises(ValueError, match="only 1.*2.0"):
        Connectivity.from_scipy(m)
    with pytest.raises(TypeError, match="scipy.sparse"):
        Connectivity.from_scipy(MASK)


def test_as_connectivity_type_error():
    with pytest.raises(
        TypeError, match="`connectivity` must be .*Received: connectivity of type str"
    ):
        as_connectivity("not a mask")


def test_empty_outputs_warn_raise_ignore():
    mask = np.array([[1, 0, 0], [1, 0, 0]])
    with pytest.warns(EmptyOutputWarning, match=r"2 of 3 outputs.*\[1, 2\]"):
        Connectivity.from_dense(mask)
    with pytest.warns(EmptyOutputWarning, match=r"\['b', 'c'\]"):
        Connectivity.from_dense(mask, output_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="no input at all"):
        Connectivity.from_dense(mask, empty_outputs="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Connectivity.from_dense(mask, empty_outputs="ignore")
    with pytest.raises(ValueError, match="`empty_outputs`, expected one of 'warn'"):
        Connectivity.from_dense(mask, empty_outputs="drop")


# ----------------------------------------------------------------- generators
def test_random_exact_nnz_and_seeded():
    a = random_connectivity(9180, 230, density=0.01, seed=0)
    b = random_connectivity(9180, 230, density=0.01, seed=0)
    c = random_connectivity(9180, 230, density=0.01, seed=1)
    assert a.nnz == round(0.01 * 9180 * 230)
    assert a == b and not a.same_edges(c)
    d = random_connectivity(50, 20, nnz=123, seed=5)
    assert d.nnz == 123


def test_random_large_is_sparse_in_memory():
    # 10^6 x 5*10^4 would be 5*10^10 dense entries; must stay O(nnz).
    c = random_connectivity(1_000_000, 50_000, nnz=200_000, seed=0)
    assert c.nnz == 200_000
    assert c.input_indices.max() < 1_000_000


def test_random_min_fan_in():
    c = random_connectivity(300, 100, nnz=150, seed=2, min_fan_in=1)
    assert c.nnz == 150
    assert c.fan_in.min() >= 1
    with pytest.raises(ValueError, match=r"`min_fan_in`, expected at most .*50 / 100"):
        random_connectivity(300, 100, nnz=50, min_fan_in=1)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(num_inputs=0, num_outputs=3, density=0.5), "`num_inputs`.*positive"),
        (
            dict(num_inputs=3, num_outputs=3, density=1.5),
            r"`density`, expected a float in \(0, 1\]. Received: density=1.5",
        ),
        (dict(num_inputs=3, num_outputs=3), "exactly one of `density` and `nnz`"),
        (dict(num_inputs=3, num_outputs=3, nnz=10), r"`nnz`.*\[0, 9\]. .*nnz=10"),
    ],
)
def test_random_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_connectivity(**kwargs)


def test_erdos_renyi_density():
    c = erdos_renyi_connectivity(1000, 500, epsilon=10, seed=0)
    expected = 10 * 1500 / (1000 * 500)
    assert abs(c.density - expected) < 0.1 * expected
    assert c == erdos_renyi_connectivity(1000, 500, epsilon=10, seed=0)
    with pytest.raises(ValueError, match="`epsilon`, expected a float > 0"):
        erdos_renyi_connectivity(10, 10, epsilon=0)


def test_banded():
    c = banded_connectivity(10, window=4, stride=2)
    assert c.shape == (10, 4)
    dense = c.to_dense(dtype=int)
    for j in range(4):
        np.testing.assert_array_equal(
            np.flatnonzero(dense[:, j]), np.arange(2 * j, 2 * j + 4)
        )
    c2 = banded_connectivity(10, window=3, num_outputs=4)
    assert c2.shape == (10, 4) and c2.fan_in.tolist() == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="`num_outputs`.*at most 4"):
        banded_connectivity(10, window=3, num_outputs=5)
    with pytest.raises(ValueError, match="`window`.*at most num_inputs=10"):
        banded_connectivity(10, window=11)


def test_block_diagonal_and_full():
    c = block_diagonal_connectivity(6, 4, groups=2)
    expected = np.zeros((6, 4), bool)
    expected[:3, :2] = expected[3:, 2:] = True
    np.testing.assert_array_equal(c.to_dense(), expected)
    with pytest.raises(ValueError, match="`groups`, expected a divisor of both"):
        block_diagonal_connectivity(6, 4, groups=4)
    f = full_connectivity(3, 5)
    assert f.nnz == 15 and f.density == 1.0
