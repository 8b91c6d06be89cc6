"""Property-based tests (Hypothesis) with bounded example counts."""

import string

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import ops

from helpers import apply, gradients, max_examples, reference_forward, to_numpy
from keras_sparse import Connectivity, SparseDense
from keras_sparse.connectivity import read_gmt
from keras_sparse.layers import SparseConv1D

SETTINGS = settings(
    max_examples=max_examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@st.composite
def connectivities(draw, max_in=24, max_out=12):
    n_in = draw(st.integers(1, max_in))
    n_out = draw(st.integers(1, max_out))
    kind = draw(st.sampled_from(["random", "single", "full", "empty_output"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "single":
        mask = np.zeros((n_in, n_out), bool)
        mask[rng.integers(n_in), rng.integers(n_out)] = True
    elif kind == "full":
        mask = np.ones((n_in, n_out), bool)
    else:
        mask = rng.random((n_in, n_out)) < draw(st.floats(0.05, 1.0))
        if kind == "empty_output":
            mask[:, rng.integers(n_out)] = False
    return Connectivity.from_dense(mask, empty_outputs="ignore")


@SETTINGS
@given(
    conn=connectivities(),
    impl=st.sampled_from(["sparse", "csr", "dense"]),
    batch_shape=st.sampled_from([(1,), (5,), (2, 3)]),
    seed=st.integers(0, 1000),
)
def test_sparse_dense_matches_reference(conn, impl, batch_shape, seed):
    layer = SparseDense(conn.num_outputs, conn, implementation=impl, bias_initializer="random_normal")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(batch_shape + (conn.num_inputs,)).astype("float32")
    out = to_numpy(layer(x))
    w = np.zeros(conn.shape)
    w[conn.input_indices, conn.output_indices] = to_numpy(layer.kernel_values)
    np.testing.assert_allclose(out, reference_forward(x, w, to_numpy(layer.bias)), rtol=1e-4, atol=1e-4)
    x2 = x.reshape(-1, conn.num_inputs)
    g = rng.standard_normal((x2.shape[0], conn.num_outputs)).astype("float32")

    def loss(xt, values):
        return ops.sum(apply(layer, xt, values) * ops.convert_to_tensor(g))

    gx, gv = gradients(loss, ops.convert_to_tensor(x2), ops.convert_to_tensor(to_numpy(layer.kernel_values)))
    np.testing.assert_allclose(gx, g @ w.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        gv, (x2.astype(np.float64).T @ g)[conn.input_indices, conn.output_indices], rtol=1e-4, atol=1e-4
    )


@SETTINGS
@given(conn=connectivities(max_in=60, max_out=30), names=st.booleans())
def test_connectivity_config_round_trip(conn, names):
    if names:
        conn = conn.with_names(
            [f"in_{i}" for i in range(conn.num_inputs)], [f"öut {j}" for j in range(conn.num_outputs)]
        )
    back = Connectivity.from_config(conn.get_config())
    assert back == conn
    layer = SparseDense(conn.num_outputs, conn)
    assert SparseDense.from_config(layer.get_config()).connectivity == conn


@settings(max_examples=max_examples(6), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conn=connectivities(), optimizer=st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]))
def test_absent_weights_stay_zero_under_training(conn, optimizer, tmp_path_factory):
    model = keras.Sequential([keras.Input((conn.num_inputs,)), SparseDense(conn.num_outputs, conn)])
    model.compile(optimizer, "mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, conn.num_inputs)).astype("float32")
    y = rng.standard_normal((8, conn.num_outputs)).astype("float32")
    model.fit(x, y, epochs=2, verbose=0)
    path = str(tmp_path_factory.mktemp("p") / "m.weights.h5")
    model.save_weights(path)
    other = keras.Sequential([keras.Input((conn.num_inputs,)), SparseDense(conn.num_outputs, conn)])
    other.load_weights(path)
    kernel = to_numpy(other.layers[0].kernel)
    assert np.all(kernel[~conn.to_dense()] == 0)
    np.testing.assert_array_equal(
        to_numpy(other.layers[0].kernel_values), to_numpy(model.layers[0].kernel_values)
    )


@settings(max_examples=max_examples(8), deadline=None)
@given(
    c_in=st.integers(1, 5),
    filters=st.integers(1, 6),
    density=st.floats(0.1, 1.0),
    kernel=st.integers(1, 3),
    seed=st.integers(0, 100),
)
def test_sparse_conv1d_matches_masked_conv(c_in, filters, density, kernel, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((c_in, filters)) < density
    mask[rng.integers(c_in), rng.integers(filters)] = True
    conn = Connectivity.from_dense(mask, empty_outputs="ignore")
    layer = SparseConv1D(filters, kernel, conn, padding="same")
    x = rng.standard_normal((2, 7, c_in)).astype("float32")
    out = to_numpy(layer(x))
    ref = to_numpy(ops.conv(x, layer.kernel, padding="same")) + to_numpy(layer.bias)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- fuzzing
_TEXT = st.text(alphabet=string.printable + "é\x00\ufeff", max_size=200)


@settings(max_examples=max_examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(_TEXT.map(lambda s: s.encode("utf-8")), st.binary(max_size=200)))
def test_gmt_reader_fuzz(raw, tmp_path_factory):
    path = tmp_path_factory.mktemp("gmt") / "f.gmt"
    path.write_bytes(raw)
    try:
        sets = read_gmt(path)
    except ValueError:
        return  # the documented error for malformed files
    assert sets and all(isinstance(k, str) and k for k in sets)
    assert all(isinstance(m, str) and m for v in sets.values() for m in v)


@settings(max_examples=max_examples(100), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_edge_table_reader_fuzz(raw, tmp_path_factory):
    from keras_sparse.cli.inputs import InputFileError, read_gene_sets

    path = tmp_path_factory.mktemp("edges") / "edges.csv"
    path.write_bytes(b"gene,pathway\n" + raw)
    try:
        conn, _ = read_gene_sets(str(path), ["A", "B", "C"])
    except (InputFileError, ValueError):
        return
    assert conn.num_inputs == 3


def test_reader_rejects_huge_declared_fanin_gracefully(tmp_path):
    # A GMT line with many members is read without blow-up in time or memory.
    path = tmp_path / "big.gmt"
    path.write_text("P\td\t" + "\t".join(f"G{i}" for i in range(200_000)) + "\n")
    sets = read_gmt(path)
    assert len(sets["P"]) == 200_000


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_connectivity_rejects_non_finite(bad):
    with pytest.raises(ValueError, match="only 0 and 1"):
        Connectivity.from_dense(np.array([[1.0, bad]]))
    with pytest.raises(TypeError, match="integer indices"):
        Connectivity([0.0, bad], [0, 0], shape=(2, 1))
