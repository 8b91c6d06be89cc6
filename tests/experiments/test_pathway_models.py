import numpy as np
import pytest
from conftest import to_numpy

from keras_sparse.connectivity import random_connectivity, shuffled_connectivity
from keras_sparse.datasets import find_qusage_data
from keras_sparse.models import build_pathway_network, split_at


def named(n_in, n_out, density, seed, prefix_in="g", prefix_out="p"):
    c = random_connectivity(n_in, n_out, density=density, seed=seed, min_fan_in=1)
    return c.with_names(
        [f"{prefix_in}{i}" for i in range(n_in)],
        [f"{prefix_out}{j}" for j in range(n_out)],
    )


def test_shuffled_control_matches_fan_in_and_names():
    conn = named(200, 20, 0.1, 0)
    control = shuffled_connectivity(conn, seed=1)
    np.testing.assert_array_equal(control.fan_in, conn.fan_in)
    assert control.nnz == conn.nnz
    assert control.output_names == conn.output_names
    assert not control.same_edges(conn)
    assert control == shuffled_connectivity(conn, seed=1)
    connected = shuffled_connectivity(conn, seed=1, inputs="connected")
    assert set(connected.input_indices) <= set(np.flatnonzero(conn.fan_out > 0))
    with pytest.raises(ValueError, match="`inputs`.*'all'.*'connected'"):
        shuffled_connectivity(conn, inputs="genes")


@pytest.mark.parametrize(
    "task, classes, out_units",
    [("classification", 2, 1), ("classification", 4, 4), ("regression", 2, 1)],
)
def test_builder_heads_and_hierarchy(task, classes, out_units):
    genes_to_pw = named(50, 10, 0.2, 0)
    pw_to_parent = random_connectivity(
        10, 3, density=0.5, seed=0, min_fan_in=1
    ).with_names(genes_to_pw.output_names, ["top0", "top1", "top2"])
    model = build_pathway_network(
        genes_to_pw, hierarchy=[pw_to_parent], task=task, num_classes=classes
    )
    assert model.get_layer("pathways").connectivity == genes_to_pw
    assert model.get_layer("level_1").connectivity == pw_to_parent
    out = model(np.zeros((2, 50), "float32"))
    assert tuple(out.shape) == (2, out_units)
    assert model.count_params() == (genes_to_pw.nnz + 10) + (pw_to_parent.nnz + 3) + (
        3 * out_units + out_units
    )


def test_builder_rejects_bad_hierarchy():
    genes_to_pw = named(50, 10, 0.2, 0)
    with pytest.raises(
        ValueError, match=r"hierarchy\[0\]` must have one input per unit.*\(9, 3\)"
    ):
        build_pathway_network(
            genes_to_pw, hierarchy=[random_connectivity(9, 3, density=0.5, seed=0)]
        )
    wrong_names = named(10, 3, 0.5, 0, prefix_in="x")
    with pytest.raises(ValueError, match="previous level's output names"):
        build_pathway_network(genes_to_pw, hierarchy=[wrong_names])
    with pytest.raises(ValueError, match="`task` must be one of"):
        build_pathway_network(genes_to_pw, task="ranking")
    with pytest.raises(ValueError, match="`num_classes`"):
        build_pathway_network(genes_to_pw, num_classes=1)


def test_split_at_shares_weights_and_composes():
    conn = named(30, 6, 0.3, 0)
    mean, var = np.full(30, 2.0, "float32"), np.full(30, 4.0, "float32")
    model = build_pathway_network(
        conn, input_mean=mean, input_variance=var, input_dropout=0.1
    )
    x = np.random.default_rng(0).standard_normal((5, 30)).astype("float32")
    encoder, head = split_at(model, "pathways")
    np.testing.assert_allclose(
        to_numpy(head(encoder(x))), to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )
    # The standardization is part of the model: raw inputs in.
    manual = to_numpy(model.get_layer("pathways")((x - 2.0) / 2.0))
    np.testing.assert_allclose(to_numpy(encoder(x)), manual, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="must name a layer"):
        split_at(model, "nope")


def test_missing_data_error_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="keras-sparse fetch-data"):
        find_qusage_data(tmp_path / "nowhere")
