import itertools

import keras
import numpy as np
import pytest
from keras import ops

from helpers import apply, gradients, to_numpy
from keras_sparse import Connectivity
from keras_sparse.connectivity import (
    block_diagonal_connectivity,
    full_connectivity,
    lenet5_c3_connectivity,
    random_connectivity,
)
from keras_sparse.layers import SparseConv1D, SparseConv2D, SparseConv3D

LAYERS = {1: SparseConv1D, 2: SparseConv2D, 3: SparseConv3D}


def numpy_conv(x, kernel, strides, padding, dilation):
    """Independent reference: channels_last N-D convolution in float64."""
    rank = x.ndim - 2
    x = x.astype(np.float64)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:rank], dilation)]
    if padding == "same":
        pads = []
        for n, s, span in zip(x.shape[1:-1], strides, spans):
            out = -(-n // s)
            total = max((out - 1) * s + span - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    out_sizes = [(n - span) // s + 1 for n, span, s in zip(x.shape[1:-1], spans, strides)]
    out = np.zeros((x.shape[0], *out_sizes, kernel.shape[-1]))
    for pos in itertools.product(*[range(o) for o in out_sizes]):
        for tap in itertools.product(*[range(k) for k in kernel.shape[:rank]]):
            idx = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, dilation))
            out[(slice(None), *pos)] += x[(slice(None), *idx)] @ kernel[tap].astype(np.float64)
    return out


def masked_kernel(layer):
    """Reference kernel from the raw values, built in NumPy."""
    conn = layer.connectivity
    values = to_numpy(layer.kernel_values)
    k = np.zeros((conn.num_inputs, conn.num_outputs, values.shape[1]))
    k[conn.input_indices, conn.output_indices] = values
    return np.moveaxis(k, 2, 0).reshape(layer.kernel_size + conn.shape)


CONNS = {
    "c3": lenet5_c3_connectivity,
    "random": lambda: random_connectivity(6, 16, density=0.5, seed=1),
    "groups": lambda: block_diagonal_connectivity(6, 16 // 2 * 2, groups=2),
    "permuted_groups": lambda: Connectivity.from_dense(
        block_diagonal_connectivity(6, 16, groups=2).to_dense()[[3, 0, 4, 1, 5, 2]][
            :, np.random.default_rng(0).permutation(16)
        ]
    ),
}


@pytest.mark.parametrize("name", list(CONNS))
@pytest.mark.parametrize(
    "rank, padding, strides, dilation",
    [(2, "valid", 1, 1), (2, "same", 2, 1), (2, "valid", 1, 2), (1, "same", 1, 1), (3, "valid", 1, 1)],
)
def test_matches_numpy_reference(name, rank, padding, strides, dilation):
    conn = CONNS[name]()
    size = {1: (11,), 2: (9, 8), 3: (6, 5, 5)}[rank]
    layer = LAYERS[rank](16, 3, conn, strides=strides, padding=padding, dilation_rate=dilation,
                         bias_initializer="random_normal")
    x = np.random.default_rng(0).standard_normal((2, *size, 6)).astype("float32")
    out = to_numpy(layer(x))
    kernel = masked_kernel(layer)
    ref = numpy_conv(x, kernel, (strides,) * rank, padding, (dilation,) * rank) + to_numpy(layer.bias)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(to_numpy(layer.kernel), kernel.astype("float32"))
    if name.endswith("groups"):
        assert layer.resolved_implementation == "grouped"


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides, dilation", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("impl", ["dense", "grouped"])
def test_equals_keras_conv_with_masked_kernel(data_format, padding, strides, dilation, impl):
    conn = block_diagonal_connectivity(4, 8, groups=2)
    layer = SparseConv2D(8, 3, conn, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation, implementation=impl)
    shape = (2, 10, 9, 4) if data_format == "channels_last" else (2, 4, 10, 9)
    x = np.random.default_rng(1).standard_normal(shape).astype("float32")
    out = to_numpy(layer(x))
    # Reference in channels_last: TensorFlow's CPU convolution without oneDNN
    # (its default on CPUs without AVX512_VNNI or AMX) refuses channels_first,
    # Keras's Conv2D included.
    first = data_format == "channels_first"
    ref = to_numpy(ops.conv(np.moveaxis(x, 1, -1) if first else x,
                            ops.convert_to_tensor(masked_kernel(layer).astype("float32")),
                            strides=strides, padding=padding, data_format="channels_last",
                            dilation_rate=dilation))
    ref = np.moveaxis(ref, -1, 1) if first else ref
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["c3", "permuted_groups"])
def test_gradients_match_numpy(name):
    conn = CONNS[name]()
    layer = SparseConv2D(16, 3, conn)
    layer.build((None, 7, 7, 6))
    x = np.random.default_rng(2).standard_normal((2, 7, 7, 6)).astype("float32")
    g = np.random.default_rng(3).standard_normal((2, 5, 5, 16)).astype("float32")

    def loss(values):
        y = apply(layer, ops.convert_to_tensor(x), values)
        return ops.sum(y * ops.convert_to_tensor(g))

    (gv,) = gradients(loss, ops.convert_to_tensor(to_numpy(layer.kernel_values)))
    # Reference: d/dW of sum(conv(x, W) * g), then read the existing kernels.
    dense_grad = np.zeros((3, 3, 6, 16))
    for i, j in itertools.product(range(3), range(3)):
        patch = x[:, i : i + 5, j : j + 5, :].astype(np.float64)
        dense_grad[i, j] = np.einsum("bhwc,bhwf->cf", patch, g)
    expected = dense_grad.reshape(9, 6, 16)[:, conn.input_indices, conn.output_indices].T
    np.testing.assert_allclose(gv, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_permuted_groups_input_gradient_matches_masked_conv(data_format):
    """The input gradient through the permuted channels of a grouped layer
    (the seam's `take_permutation`) equals that of `ops.conv` with the
    masked kernel, computed channels-last."""
    conn = CONNS["permuted_groups"]()
    layer = SparseConv2D(16, 3, conn, data_format=data_format)
    first = data_format == "channels_first"
    layer.build((None, 6, 7, 7) if first else (None, 7, 7, 6))
    assert layer.resolved_implementation == "grouped"
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 7, 7, 6)).astype("float32")
    g = rng.standard_normal((2, 5, 5, 16)).astype("float32")
    kernel = ops.convert_to_tensor(masked_kernel(layer).astype("float32"))

    def loss(xx):
        y = layer(ops.transpose(xx, (0, 3, 1, 2)) if first else xx)
        y = ops.transpose(y, (0, 2, 3, 1)) if first else y
        return ops.sum(y * ops.convert_to_tensor(g))

    def reference(xx):
        return ops.sum(ops.conv(xx, kernel) * ops.convert_to_tensor(g))

    (got,) = gradients(loss, ops.convert_to_tensor(x))
    (want,) = gradients(reference, ops.convert_to_tensor(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_param_counts_and_lenet_c3():
    conn = lenet5_c3_connectivity()
    assert conn.nnz == 60
    layer = SparseConv2D(16, 5, conn)
    layer.build((None, 14, 14, 6))
    assert layer.count_params() == 1516  # LeCun et al. 1998
    rand = random_connectivity(3, 16, nnz=43, seed=0)  # 5 of 48 kernels absent
    layer = SparseConv2D(16, (3, 3), rand, use_bias=False)
    layer.build((None, 8, 8, 3))
    assert layer.count_params() == 43 * 9


def test_absent_kernels_stay_zero_through_fit_and_reload(tmp_path):
    conn = random_connectivity(3, 8, nnz=19, seed=0)
    absent = ~conn.to_dense()
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        SparseConv2D(8, 3, conn, activation="relu", kernel_regularizer="l2"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    model.compile(keras.optimizers.AdamW(0.01, weight_decay=0.1), "mse")
    x = np.random.default_rng(0).standard_normal((16, 12, 12, 3)).astype("float32")
    y = np.random.default_rng(1).standard_normal((16, 2)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    kernel = to_numpy(model.layers[0].kernel)
    assert np.all(kernel[..., absent] == 0)
    path = str(tmp_path / "conv.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    loaded.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    loaded.fit(x, y, epochs=1, verbose=0)
    assert np.all(to_numpy(loaded.layers[0].kernel)[..., absent] == 0)
    assert loaded.layers[0].connectivity == conn
    clone = SparseConv2D.from_config(model.layers[0].get_config())
    assert clone.connectivity == conn


def test_fan_in_aware_init_for_conv():
    # Filters 0-39 read one channel each, filters 40-79 all 16 channels:
    # both groups start with unit output variance for unit-variance inputs.
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 16, 40), np.tile(np.arange(16), 40)])
    cols = np.concatenate([np.arange(40), np.repeat(np.arange(40, 80), 16)])
    conn = Connectivity(rows, cols, shape=(16, 80))
    layer = SparseConv2D(80, 3, conn, use_bias=False)
    x = rng.standard_normal((16, 12, 12, 16)).astype("float32")
    out = to_numpy(layer(x))
    assert out[..., :40].var() == pytest.approx(1.0, rel=0.2)
    assert out[..., 40:].var() == pytest.approx(1.0, rel=0.2)
    glorot = SparseConv2D(80, 3, conn, use_bias=False, kernel_initializer="glorot_uniform")
    out = to_numpy(glorot(x))
    assert out[..., :40].var() < 0.1  # dense fans: far below the target


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(filters=8), r"`filters` must equal `connectivity.num_outputs`.*filters=8"),
        (dict(filters=0), r"`filters`.*filters=0"),
        (dict(kernel_size=(3, 0)), r"`kernel_size`.*kernel_size=\(3, 0\)"),
        (dict(padding="causal"), r"`padding`.*'causal'"),
        (dict(data_format="NHWC"), r"`data_format`.*'NHWC'"),
        (dict(implementation="grouped"), r"needs a block-diagonal connectivity"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    args = dict(filters=16, kernel_size=3, connectivity=lenet5_c3_connectivity())
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        SparseConv2D(**args)


def test_input_channel_mismatch():
    layer = SparseConv2D(16, 3, lenet5_c3_connectivity())
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 6|6 input channels"):
        layer(np.zeros((1, 8, 8, 3), "float32"))


def test_auto_rule():
    assert SparseConv2D(16, 3, full_connectivity(6, 16)).resolved_implementation == "dense"
    assert SparseConv2D(16, 3, lenet5_c3_connectivity()).resolved_implementation == "dense"
    assert SparseConv2D(16, 3, block_diagonal_connectivity(8, 16, 4)).resolved_implementation == "grouped"


@pytest.mark.parametrize("mode", ["native", "split"])
def test_grouped_modes_agree_with_dense(mode, monkeypatch):
    from keras_sparse.ops import backend

    conn = CONNS["permuted_groups"]()
    x = np.random.default_rng(4).standard_normal((2, 9, 9, 6)).astype("float32")
    monkeypatch.setattr(backend, "GROUPED_CONV_MODE", mode)
    grouped = SparseConv2D(16, 3, conn, implementation="grouped", padding="same")
    out = to_numpy(grouped(x))
    assert grouped._plan.grouped_mode == mode
    dense = SparseConv2D(16, 3, conn, implementation="dense", padding="same")
    dense.build(x.shape)
    dense.kernel_values.assign(grouped.kernel_values)
    dense.bias.assign(grouped.bias)
    np.testing.assert_allclose(out, to_numpy(dense(x)), rtol=1e-5, atol=1e-5)


def test_full_connectivity_fast_path_matches_gather():
    conn = full_connectivity(5, 7)
    layer = SparseConv2D(7, 3, conn)
    x = np.random.default_rng(5).standard_normal((2, 6, 6, 5)).astype("float32")
    out = to_numpy(layer(x))
    assert layer._plan.index is None
    ref = numpy_conv(x, masked_kernel(layer), (1, 1), "valid", (1, 1)) + to_numpy(layer.bias)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_block_diagonal_groups_detects_permuted_blocks():
    import numpy as np

    from keras_sparse import Connectivity
    from keras_sparse.layers.base_sparse_conv import block_diagonal_groups

    base = block_diagonal_connectivity(6, 4, groups=2).to_dense()
    perm_in, perm_out = np.array([3, 0, 4, 1, 5, 2]), np.array([2, 0, 3, 1])
    conn = Connectivity.from_dense(base[perm_in][:, perm_out])
    groups, in_order, out_order = block_diagonal_groups(conn)
    assert groups == 2
    dense = conn.to_dense()[in_order][:, out_order]
    np.testing.assert_array_equal(dense, base)
    assert block_diagonal_groups(full_connectivity(3, 5))[0] == 1
    assert block_diagonal_groups(lenet5_c3_connectivity()) is None
