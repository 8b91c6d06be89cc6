"""Packed networks: each block is its own network, trained as if alone."""

import keras
import numpy as np
import pytest

from keras_sparse.connectivity import random_connectivity
from keras_sparse.connectivity.hierarchy import gene_permuted_connectivity
from keras_sparse.experiments.packed import (
    PackedTrainer,
    build_packed_network,
    pack_levels,
    packed_loss,
    unpack,
)


def as_numpy(t):
    return np.asarray(
        keras.ops.convert_to_numpy(keras.ops.stop_gradient(t)), np.float64
    )


def chains(n=3):
    genes = random_connectivity(20, 6, density=0.3, seed=0, min_fan_in=1)
    top = random_connectivity(6, 2, density=0.6, seed=1, min_fan_in=1)
    return [[gene_permuted_connectivity(genes, seed=k), top] for k in range(n)]


def test_pack_levels_layout():
    cs = chains(3)
    packed = pack_levels(cs)
    assert packed[0].shape == (20, 18) and packed[1].shape == (18, 6)
    dense0 = packed[0].to_dense()
    dense1 = packed[1].to_dense()
    for k, (g, t) in enumerate(cs):
        np.testing.assert_array_equal(dense0[:, 6 * k : 6 * (k + 1)], g.to_dense())
        np.testing.assert_array_equal(
            dense1[6 * k : 6 * (k + 1), 2 * k : 2 * (k + 1)], t.to_dense()
        )
    assert dense1.sum() == sum(t.nnz for _, t in cs)  # nothing off the blocks
    with pytest.raises(ValueError, match="same level shapes"):
        pack_levels([cs[0], [cs[0][0], random_connectivity(6, 3, density=0.5, seed=0)]])


def test_each_block_matches_its_numpy_network():
    cs = chains(3)
    keras.utils.set_random_seed(0)
    model = build_packed_network(cs, input_dropout=0.0)
    x = np.random.default_rng(0).normal(size=(7, 20)).astype("float32")
    out = as_numpy(model(x))
    k0, k1, kh = (
        as_numpy(model.get_layer(n).kernel) for n in ("pathways", "level_1", "head")
    )
    b0, b1, bh = (
        as_numpy(model.get_layer(n).bias) for n in ("pathways", "level_1", "head")
    )
    for k, (g, t) in enumerate(cs):
        w0 = k0[:, 6 * k : 6 * (k + 1)] * g.to_dense()
        h = np.tanh(x @ w0 + b0[6 * k : 6 * (k + 1)])
        w1 = k1[6 * k : 6 * (k + 1), 2 * k : 2 * (k + 1)] * t.to_dense()
        h = np.tanh(h @ w1 + b1[2 * k : 2 * (k + 1)])
        z = h @ kh[2 * k : 2 * (k + 1), k] + bh[k]
        np.testing.assert_allclose(
            out[:, k], 1 / (1 + np.exp(-z)), rtol=1e-5, atol=1e-6
        )
    np.testing.assert_array_equal(
        unpack(np.arange(12).reshape(2, 6), 3)[1], [[2, 3], [8, 9]]
    )


def test_blocks_train_independently():
    """Block 0 ends identical whatever block 1 is asked to learn (no dropout)."""
    cs = chains(2)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 20)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")

    def train(second):
        trainer = PackedTrainer(
            lambda: build_packed_network(cs, input_dropout=0.0), epochs=3, batch_size=8
        )
        model = trainer.fit(x, np.stack([y, second], axis=1), seed=5)
        return as_numpy(model(x))[:, 0], as_numpy(model(x))[:, 1]

    a0, a1 = train(y)
    b0, b1 = train(1.0 - y)
    np.testing.assert_allclose(a0, b0, rtol=1e-5, atol=1e-6)
    assert np.abs(a1 - b1).max() > 0.05  # block 1 did learn something else


def test_trainer_refits_from_fresh_state():
    cs = chains(2)
    x = np.random.default_rng(2).normal(size=(24, 20)).astype("float32")
    y = np.stack([(x[:, 1] > 0), (x[:, 2] > 0)], axis=1).astype("float32")
    trainer = PackedTrainer(lambda: build_packed_network(cs), epochs=2, batch_size=8)
    first = as_numpy(trainer.fit(x, y, seed=3)(x))
    trainer.fit(x, 1 - y, seed=9)  # something else in between
    again = as_numpy(trainer.fit(x, y, seed=3)(x))
    np.testing.assert_allclose(first, again, rtol=1e-5, atol=1e-6)


def test_padded_last_batch_trains_as_an_unpadded_fit():
    """Zero-weight padding + reweighted tail = Keras's own short last batch."""
    cs = chains(2)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(21, 20)).astype("float32")  # 21 = 2 x 8 + 5
    y = np.stack([(x[:, 0] > 0), (x[:, 3] > 0)], axis=1).astype("float32")

    def build():
        return build_packed_network(cs, input_dropout=0.0)

    trainer = PackedTrainer(build, epochs=3, batch_size=8, learning_rate=1e-2)
    got = as_numpy(trainer.fit(x, y, seed=7)(x))
    keras.utils.set_random_seed(7)
    ref = build()
    ref.compile(keras.optimizers.Adam(1e-2), packed_loss("classification", 2))
    order = np.random.default_rng(7)
    for _ in range(3):
        perm = order.permutation(len(x))
        ref.fit(x[perm], y[perm], epochs=1, batch_size=8, verbose=0, shuffle=False)
    want = as_numpy(ref(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.abs(want - as_numpy(build()(x))).max() > 0.01  # it did train


def test_level_heads_blocks_and_per_block_gene_attributions():
    """Per-level heads per block; block k's gene IG ignores the other blocks."""
    from keras_sparse.interpret import input_attributions, node_attributions

    cs = chains(3)
    keras.utils.set_random_seed(1)
    model = build_packed_network(cs, input_dropout=0.0, level_heads=True)
    rng = np.random.default_rng(5)
    for w in model.weights:
        w.assign(rng.normal(0, 0.8, tuple(w.shape)).astype("float32"))
    x = rng.normal(size=(5, 20)).astype("float32")
    out = as_numpy(model(x))
    k0, k1 = (as_numpy(model.get_layer(n).kernel) for n in ("pathways", "level_1"))
    b0, b1 = (as_numpy(model.get_layer(n).bias) for n in ("pathways", "level_1"))
    h0w, h1w = (as_numpy(model.get_layer(n).kernel) for n in ("head_0", "head_1"))
    h0b, h1b = (as_numpy(model.get_layer(n).bias) for n in ("head_0", "head_1"))
    for k, (g, t) in enumerate(cs):
        a = np.tanh(
            x @ (k0[:, 6 * k : 6 * k + 6] * g.to_dense()) + b0[6 * k : 6 * k + 6]
        )
        w1 = k1[6 * k : 6 * k + 6, 2 * k : 2 * k + 2] * t.to_dense()
        c = np.tanh(a @ w1 + b1[2 * k : 2 * k + 2])
        p0 = 1 / (1 + np.exp(-(a @ h0w[6 * k : 6 * k + 6, k] + h0b[k])))
        p1 = 1 / (1 + np.exp(-(c @ h1w[2 * k : 2 * k + 2, k] + h1b[k])))
        np.testing.assert_allclose(out[:, k], (p0 + p1) / 2, rtol=1e-5, atol=1e-6)
    base = np.zeros(20)
    genes = input_attributions(model, x, base, steps=8, output_index="sum", blocks=3)
    whole = node_attributions(model, x, base, steps=8, output_index="sum")["inputs"]
    np.testing.assert_allclose(genes.sum(axis=0), whole, rtol=1e-3, atol=1e-5)
    # Change every weight of block 1 only: blocks 0 and 2 keep their scores.
    for name, _rows, cols in (("pathways", None, slice(6, 12)),
                             ("level_1", slice(6, 12), slice(2, 4))):  # fmt: skip
        layer = model.get_layer(name)
        conn = layer.connectivity
        sel = (conn.output_indices >= cols.start) & (conn.output_indices < cols.stop)
        values = as_numpy(layer.kernel_values)
        values[sel] += 1.0
        layer.kernel_values.assign(values.astype("float32"))
    again = input_attributions(model, x, base, steps=8, output_index="sum", blocks=3)
    np.testing.assert_allclose(again[[0, 2]], genes[[0, 2]], rtol=1e-5, atol=1e-7)
    assert np.abs(again[1] - genes[1]).max() > 1e-3
