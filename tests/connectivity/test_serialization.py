"""The storage formats of a Connectivity: npz, config, weights store.

Each format is an on-disk contract: the tests pin bytes written by earlier
versions, not only round trips.
"""

import json

import numpy as np
import pytest

from keras_sparse import Connectivity
from keras_sparse.connectivity import EmptyOutputWarning, random_connectivity
from keras_sparse.connectivity.serialization import (
    from_config,
    load_npz,
    read_from_store,
    save_npz,
    to_config,
    write_to_store,
)

# Outputs 1 and 3 are empty; input 'a' feeds outputs 0 and 4.
EDGES = ([0, 3, 4, 1, 2, 4, 0], [0, 0, 0, 2, 2, 2, 4])
NAMES = ["a", "b", "c", "d", "e"]


def example(**names):
    return Connectivity(*EDGES, shape=(5, 5), empty_outputs="ignore", **names)


def test_config_written_by_version_0_1_still_decodes():
    # `Connectivity.get_config()` of keras-sparse at abb2905, verbatim.
    config = {
        "shape": [5, 5],
        "nnz": 7,
        "encoding": "csc-delta-u32-zlib-base64",
        "data": "eNpjZoAAZijNiMRnRMJMUHEAAeAAEA==",
        "input_names": NAMES,
        "output_names": None,
    }
    c = from_config(config)
    assert c == example(input_names=NAMES)
    assert c.fingerprint() == "fc78e819a5aaf9fe"  # also from abb2905
    assert to_config(c) == config


@pytest.mark.parametrize("seed", range(5))
def test_config_round_trip_with_empty_outputs(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(1, 40, size=2)
    c = (
        random_connectivity(
            int(n_in), int(n_out), density=float(rng.uniform(0.02, 0.5)), seed=seed
        )
        if seed
        else Connectivity([], [], shape=(3, 4), empty_outputs="ignore")
    )
    config = to_config(c)
    json.dumps(config)
    back = from_config(config)
    assert back == c
    # Independent decoding of the payload: per output, cumulative sums.
    np.testing.assert_array_equal(back.to_dense(), c.to_dense())


def test_config_errors():
    config = to_config(example())
    with pytest.raises(ValueError, match="Unknown connectivity encoding 'x'"):
        from_config({**config, "encoding": "x"})
    with pytest.raises(ValueError, match="nnz does not match"):
        from_config({**config, "nnz": 6})


def test_store_keys_and_encoding_are_the_saved_format():
    c = example(input_names=NAMES, output_names=["p", "q", "r", "s", "t"])
    store: dict = {}
    write_to_store(c, store)
    assert sorted(store) == sorted(
        [
            "input_indices",
            "output_indices",
            "shape",
            "input_names_utf8",
            "input_names_offsets",
            "output_names_utf8",
            "output_names_offsets",
        ]
    )
    np.testing.assert_array_equal(store["input_indices"], [0, 3, 4, 1, 2, 4, 0])
    np.testing.assert_array_equal(store["output_indices"], [0, 0, 0, 2, 2, 2, 4])
    assert store["shape"].dtype == np.int64 and store["shape"].tolist() == [5, 5]
    # Names: the UTF-8 bytes concatenated, plus n + 1 int64 offsets.
    assert store["input_names_utf8"].dtype == np.uint8
    assert bytes(store["input_names_utf8"]) == b"abcde"
    assert store["input_names_offsets"].dtype == np.int64
    assert store["input_names_offsets"].tolist() == [0, 1, 2, 3, 4, 5]
    assert read_from_store(store) == c


def test_store_without_names_and_with_non_ascii_names():
    store: dict = {}
    write_to_store(example(), store)
    assert set(store) == {"input_indices", "output_indices", "shape"}
    assert read_from_store(store) == example()
    names = ["gène", "β-catenin", "", "TP53", "😀"]
    store = {}
    write_to_store(example(input_names=names), store)
    assert store["input_names_offsets"].tolist() == [0, 5, 15, 15, 19, 23]
    assert read_from_store(store).input_names == tuple(names)


def test_store_written_by_hand_in_the_old_layout_reads():
    # What `ConnectivityLayer.save_own_variables` wrote at abb2905.
    store = {
        "0": np.zeros(7),
        "input_indices": np.asarray(EDGES[0], dtype=np.int32),
        "output_indices": np.asarray(EDGES[1], dtype=np.int32),
        "shape": np.asarray([5, 5], dtype=np.int64),
        "output_names_utf8": np.frombuffer(b"pqrst", dtype=np.uint8),
        "output_names_offsets": np.arange(6, dtype=np.int64),
    }
    c = read_from_store(store)
    assert c.same_edges(example()) and c.output_names == tuple("pqrst")


def test_store_without_connectivity_names_the_layer():
    with pytest.raises(
        ValueError,
        match=r"weights for layer 'dense_3' hold no connectivity .*"
        r"not written by a keras_sparse SparseDense layer",
    ):
        read_from_store({"0": np.zeros(3)}, "dense_3", "SparseDense")
    with pytest.raises(ValueError, match="for this layer hold no connectivity"):
        read_from_store({})


def test_npz_round_trip_and_errors(tmp_path):
    c = example(input_names=NAMES)
    path = tmp_path / "c.npz"
    save_npz(c, path)
    with pytest.warns(EmptyOutputWarning, match=r"2 of 5 outputs .*\[1, 3\]"):
        assert load_npz(path) == c
    assert Connectivity.load(str(path), empty_outputs="ignore") == c
    c.save(str(tmp_path / "d.npz"))
    assert load_npz(tmp_path / "d.npz", empty_outputs="ignore") == c
    np.savez(tmp_path / "bad.npz", shape=np.asarray([2, 2]))
    with pytest.raises(
        ValueError, match=r"lacks \['input_indices', 'output_indices'\]"
    ):
        load_npz(tmp_path / "bad.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz connectivity"):
        load_npz(tmp_path / "text.npz")


def test_methods_delegate_to_the_module():
    c = example(output_names=list("vwxyz"))
    assert c.get_config() == to_config(c)
    assert Connectivity.from_config(c.get_config()) == c


def test_fingerprint_is_cached_and_unchanged():
    c = example()
    first = c.fingerprint()
    assert c.fingerprint() is first  # computed once
    assert hash(c) == hash(example())
    assert first == "fc78e819a5aaf9fe"  # names do not enter the fingerprint
