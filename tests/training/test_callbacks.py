"""GMP, SET and RigL: exact drop/grow sets vs NumPy references, state, invariants."""

import math
import os
import tempfile

import keras
import numpy as np
import pytest

from keras_sparse.connectivity import full_connectivity, random_connectivity
from keras_sparse.layers import SparseConv2D, SparseDense
from keras_sparse.training import (
    SET,
    GradualMagnitudePruning,
    RigL,
    densify,
    optimizer_slots,
    sparsify,
)

BACKEND = keras.backend.backend()


def _has_mutable() -> bool:
    try:
        SparseDense(2, full_connectivity(2, 2), mutable_connectivity=True)
    except (TypeError, ValueError):  # "Unrecognized keyword arguments"
        return False
    return True


needs_mutable = pytest.mark.skipif(
    not _has_mutable(),
    reason="needs the layers' mutable_connectivity API ([mutable-connectivity])",
)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype("float32")
    y = rng.normal(size=(n, 3)).astype("float32")
    return x, y


def model(mutable=True, density=(0.3, 0.5), optimizer="sgd", seed=0):
    keras.utils.set_random_seed(seed)
    extra = {"mutable_connectivity": True} if mutable else {}
    c1 = random_connectivity(20, 12, density=density[0], seed=seed + 1)
    c2 = random_connectivity(12, 3, density=density[1], seed=seed + 2)
    m = keras.Sequential(
        [
            keras.Input((20,)),
            SparseDense(12, c1, activation="tanh", name="h", **extra),
            SparseDense(3, c2, name="out", **extra),
        ]
    )
    opt = {
        "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(0.01),
    }[optimizer]()
    m.compile(opt, "mse")
    return m


def snapshot(m, names=("h", "out")):
    out = {}
    for name in names:
        layer = m.get_layer(name)
        slots = optimizer_slots(m.optimizer, layer.kernel_values)
        out[name] = {
            "flat": layer.connectivity.input_indices.astype(np.int64)
            * layer.connectivity.num_outputs
            + layer.connectivity.output_indices,
            "values": to_numpy(layer.kernel_values).copy(),
            "slots": [to_numpy(s).copy() for s in slots],
        }
    return out


# ------------------------------------------------------ NumPy references
def reference_drop(values, fraction):
    """Indices kept: all but the floor(f * nnz) smallest |w| (ties: lower index)."""
    n_drop = math.floor(fraction * values.size)
    order = sorted(range(values.size), key=lambda e: (abs(values[e]), e))
    return np.array(sorted(order[n_drop:]), dtype=np.int64), n_drop


def reference_random_grow(total, kept_flat, count, seed, step, layer_index):
    """The documented draw: rounds of rng.integers, first free new ones in order."""
    rng = np.random.default_rng([seed, step, layer_index])
    occupied = set(int(p) for p in kept_flat)
    if 2 * len(occupied) > total:
        free = [p for p in range(total) if p not in occupied]
        return sorted(
            int(p) for p in rng.choice(np.array(free), size=count, replace=False)
        )
    chosen = []
    while len(chosen) < count:
        for p in rng.integers(
            0, total, size=2 * (count - len(chosen)) + 16, dtype=np.int64
        ):
            if int(p) not in occupied and int(p) not in chosen:
                chosen.append(int(p))
    return sorted(chosen[:count])


def check_after_update(before, after, kept_idx, grown_flat):
    """Values and slots follow their connection; grown ones are 0."""
    old_flat = before["flat"]
    expected_flat = np.sort(np.concatenate([old_flat[kept_idx], grown_flat]))
    np.testing.assert_array_equal(np.sort(after["flat"]), expected_flat)
    position = {int(p): e for e, p in enumerate(old_flat)}
    kept_set = set(int(p) for p in old_flat[kept_idx])
    for e, p in enumerate(after["flat"]):
        if (
            int(p) in kept_set
            or int(p) in position
            and int(p) in set(grown_flat.tolist())
        ):
            old = position[int(p)]
            assert after["values"][e] == before["values"][old]
            for s_new, s_old in zip(after["slots"], before["slots"], strict=True):
                assert s_new[e] == s_old[old]
        else:
            assert after["values"][e] == 0.0
            for s_new in after["slots"]:
                assert s_new[e] == 0.0


def train_some(m, steps=3, seed=0):
    x, y = data(seed=seed)
    m.fit(x, y, batch_size=len(x) // steps, epochs=1, shuffle=False, verbose=0)


# ----------------------------------------------------------------- tests
def test_fixed_connectivity_is_refused():
    m = model(mutable=False)
    x, y = data()
    for cb in (SET(update_interval=1), GradualMagnitudePruning(0.5, 0, 4, 1)):
        with pytest.raises(ValueError, match="'h'.*mutable_connectivity=True"):
            m.fit(x, y, epochs=1, verbose=0, callbacks=[cb])


def test_bad_callback_arguments():
    d = data()
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="`drop_fraction` of `SET`"):
            SET(drop_fraction=bad)
    with pytest.raises(ValueError, match="`update_interval` of `RigL`"):
        RigL(update_interval=0, end_step=10, data=d)
    with pytest.raises(ValueError, match="`end_step` of `RigL`"):
        RigL(data=d)
    with pytest.raises(ValueError, match="`data` of `RigL`"):
        RigL(end_step=10, data=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="`final_density`"):
        GradualMagnitudePruning(0.0, 0, 10)
    with pytest.raises(ValueError, match="greater than `begin_step`"):
        GradualMagnitudePruning(0.5, 10, 10)
    with pytest.raises(ValueError, match="`distribution`"):
        GradualMagnitudePruning(0.5, 0, 10, distribution="global")
    with pytest.raises(TypeError, match="list of layer names"):
        SET(layers="h")


@needs_mutable
def test_unknown_layer_name():
    m = model()
    x, y = data()
    with pytest.raises(ValueError, match="unknown layer name 'nope'"):
        m.fit(x, y, verbose=0, callbacks=[SET(update_interval=1, layers=["nope"])])


@needs_mutable
def test_no_callback_leaves_connectivity_unchanged():
    m = model()
    before = {n: m.get_layer(n).connectivity for n in ("h", "out")}
    train_some(m, steps=4)
    for n, conn in before.items():
        assert m.get_layer(n).connectivity == conn


@needs_mutable
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_set_step_matches_numpy_reference(optimizer):
    m = model(optimizer=optimizer)
    train_some(m)  # non-zero values and slots
    cb = SET(drop_fraction=0.3, update_interval=5, seed=11)
    cb.set_model(m)
    cb.on_train_begin()
    step = cb._step + 1
    cb.update_interval = step  # the next batch end updates
    before = snapshot(m)
    cb.on_train_batch_end(0)
    after = snapshot(m)
    for index, name in enumerate(("h", "out")):
        layer = m.get_layer(name)
        kept, n_drop = reference_drop(before[name]["values"], 0.3)
        total = layer.connectivity.num_inputs * layer.connectivity.num_outputs
        grown = reference_random_grow(
            total, before[name]["flat"][kept], n_drop, 11, step, index
        )
        check_after_update(before[name], after[name], kept, np.array(grown, np.int64))
        assert layer.nnz == before[name]["flat"].size
        record = [r for r in cb.history if r["layer"] == name][-1]
        assert record["dropped"] == record["grown"]  # nnz is constant
        assert record["grown"] == np.count_nonzero(cb.last_sources[name] < 0)
        assert record["nnz"] == layer.nnz


def dense_kernel_gradient(m, layer_name, x, y):
    """Reference: d mean(mse) / d (dense kernel) of the densified model."""
    from tests.conftest import gradients  # noqa: PLC0415

    dense = densify(m)
    target = dense.get_layer(layer_name).kernel
    trainable = list(dense.trainable_variables)
    index = next(i for i, v in enumerate(trainable) if v is target)
    non_trainable = [v.value for v in dense.non_trainable_variables]
    values = [v.value for v in trainable]

    def fn(kernel):
        vals = list(values)
        vals[index] = kernel
        pred, _ = dense.stateless_call(
            vals, non_trainable, keras.ops.convert_to_tensor(x)
        )
        return keras.ops.mean(keras.losses.mean_squared_error(y, pred))

    return gradients(fn, keras.ops.convert_to_tensor(to_numpy(target)))[0]


@needs_mutable
def test_rigl_step_matches_dense_gradient_reference():
    m = model(optimizer="adam")
    train_some(m)
    x, y = data(n=40, seed=5)
    cb = RigL(
        drop_fraction=0.4,
        update_interval=1,
        end_step=100,
        data=(x, y),
        batch_size=16,
        seed=3,
        block_size=7,
    )
    cb.set_model(m)
    cb.on_train_begin()
    step = cb._step + 1
    batch = cb.batch_indices(step)
    assert np.array_equal(
        batch, np.sort(np.random.default_rng([3, step]).choice(40, 16, replace=False))
    )
    grads = {n: dense_kernel_gradient(m, n, x[batch], y[batch]) for n in ("h", "out")}
    before = snapshot(m)
    cb.on_train_batch_end(0)
    after = snapshot(m)
    fraction = 0.4 / 2 * (1 + math.cos(math.pi * step / 100))
    for name in ("h", "out"):
        kept, n_drop = reference_drop(before[name]["values"], fraction)
        g = np.abs(grads[name]).ravel().astype(np.float64)
        g[before[name]["flat"][kept]] = -np.inf
        grown = np.sort(np.argsort(-g, kind="stable")[:n_drop])
        check_after_update(before[name], after[name], kept, grown)


@needs_mutable
@pytest.mark.parametrize("cls", ["set", "rigl"])
def test_fit_keeps_nnz_and_zeroes_regrown_slots(cls):
    m = model(optimizer="adam")
    x, y = data()
    nnz = {n: m.get_layer(n).nnz for n in ("h", "out")}
    start = {n: m.get_layer(n).connectivity for n in ("h", "out")}
    # 8 steps per epoch, update every 4 steps: the last step of fit updates.
    if cls == "set":
        cb = SET(0.3, update_interval=4, seed=0)
    else:
        cb = RigL(0.3, update_interval=4, end_step=100, data=(x, y), batch_size=16)
    history = m.fit(x, y, batch_size=8, epochs=2, callbacks=[cb], verbose=0)
    assert len(cb.history) == 2 * 4  # 4 updates x 2 layers
    for n in ("h", "out"):
        layer = m.get_layer(n)
        assert layer.nnz == nnz[n]
        assert layer.connectivity != start[n]
        source = cb.last_sources[n]
        regrown = source < 0
        assert regrown.any()
        np.testing.assert_array_equal(to_numpy(layer.kernel_values)[regrown], 0.0)
        for slot in optimizer_slots(m.optimizer, layer.kernel_values):
            np.testing.assert_array_equal(to_numpy(slot)[regrown], 0.0)
    key = f"{cls}_changed"
    assert key in history.history and history.history[key][-1] > 0
    # the model still trains after the last change
    loss = m.evaluate(x, y, verbose=0)
    assert np.isfinite(loss)


@needs_mutable
def test_fit_picks_up_the_change_like_an_eager_loop():
    """The jit-compiled train step sees the new connectivity (JAX state sync)."""
    x, y = data(n=32)
    a = model()
    cb_a = SET(0.3, update_interval=2, end_step=2, seed=4)
    a.fit(x, y, batch_size=8, epochs=1, shuffle=False, callbacks=[cb_a], verbose=0)
    b = model()
    cb_b = SET(0.3, update_interval=2, end_step=2, seed=4)
    cb_b.set_model(b)
    cb_b.on_train_begin()
    for i in range(4):
        b.train_on_batch(x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8])
        cb_b.on_train_batch_end(i)
    for n in ("h", "out"):
        assert a.get_layer(n).connectivity == b.get_layer(n).connectivity
        np.testing.assert_allclose(
            to_numpy(a.get_layer(n).kernel_values),
            to_numpy(b.get_layer(n).kernel_values),
            rtol=1e-5,
            atol=1e-6,
        )


@needs_mutable
def test_save_reload_mid_training_continues_identically():
    x, y = data()
    m = model(optimizer="adam")
    m.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[SET(0.3, update_interval=3, seed=1)],
    )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mid.keras")
        m.save(path)
        r = keras.saving.load_model(path)
    for n in ("h", "out"):
        assert r.get_layer(n).connectivity == m.get_layer(n).connectivity
    np.testing.assert_array_equal(
        to_numpy(r.predict(x, verbose=0)), to_numpy(m.predict(x, verbose=0))
    )
    cbs = [SET(0.3, update_interval=3, seed=1), SET(0.3, update_interval=3, seed=1)]
    m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[cbs[0]])
    r.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[cbs[1]])
    assert [h["step"] for h in cbs[0].history] == [h["step"] for h in cbs[1].history]
    for n in ("h", "out"):
        assert r.get_layer(n).connectivity == m.get_layer(n).connectivity
        np.testing.assert_array_equal(
            to_numpy(r.get_layer(n).kernel_values),
            to_numpy(m.get_layer(n).kernel_values),
        )


@needs_mutable
def test_gmp_prunes_on_schedule_and_compacts():
    keras.utils.set_random_seed(0)
    dense = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(12, activation="tanh", name="h"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    m = sparsify(dense, 1.0, mutable_connectivity=True)
    m.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    x, y = data()
    gmp = GradualMagnitudePruning(0.25, begin_step=2, end_step=8, frequency=2)
    history = m.fit(
        x, y, batch_size=8, epochs=2, shuffle=False, callbacks=[gmp], verbose=0
    )
    steps = sorted({r["step"] for r in gmp.history})
    assert steps == [4, 6, 8]  # step 2 is the (dense) starting point
    for n, capacity in (("h", 240), ("out", 36)):
        layer = m.get_layer(n)
        mask = to_numpy(layer.kernel_mask) > 0
        assert mask.sum() == round(0.25 * capacity)
        np.testing.assert_array_equal(to_numpy(layer.kernel_values)[~mask], 0.0)
        for slot in optimizer_slots(m.optimizer, layer.kernel_values):
            np.testing.assert_array_equal(to_numpy(slot)[~mask], 0.0)
        # intermediate densities follow the cubic schedule
        for r in (r for r in gmp.history if r["layer"] == n):
            d = gmp.density_at(r["step"])
            assert r["nnz"] == max(1, round(d * capacity))
    assert history.history["gmp_density"][-1] == pytest.approx((60 + 9) / (240 + 36))
    small = gmp.compact()
    assert small.get_layer("h").nnz == 60 and small.get_layer("out").nnz == 9
    np.testing.assert_allclose(
        to_numpy(small.predict(x, verbose=0)),
        to_numpy(m.predict(x, verbose=0)),
        rtol=1e-5,
        atol=1e-6,
    )
    # optimizer state restricted to the kept connections
    mask = to_numpy(m.get_layer("h").kernel_mask) > 0
    old = optimizer_slots(m.optimizer, m.get_layer("h").kernel_values)[0]
    new = optimizer_slots(small.optimizer, small.get_layer("h").kernel_values)[0]
    np.testing.assert_array_equal(to_numpy(new), to_numpy(old)[mask])
    small.fit(x, y, epochs=1, verbose=0)


@needs_mutable
def test_rigl_on_a_convolution():
    keras.utils.set_random_seed(0)
    conn = random_connectivity(4, 6, density=0.5, seed=0)
    m = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            SparseConv2D(
                6, 3, conn, activation="relu", name="c", mutable_connectivity=True
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    m.compile(keras.optimizers.Adam(0.01), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 4)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    cb = RigL(
        0.5, update_interval=2, end_step=10, data=(x, y), batch_size=8, layers=["c"]
    )
    m.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
    assert m.get_layer("c").nnz == conn.nnz
    assert cb.history and cb.history[0]["grown"] > 0


@needs_mutable
def test_gmp_and_set_on_a_convolution_then_compact():
    keras.utils.set_random_seed(1)
    dense = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(8, 3, activation="relu", name="c"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, name="d"),
        ]
    )
    m = sparsify(dense, 1.0, mutable_connectivity=True)
    assert isinstance(m.get_layer("c"), SparseConv2D) and m.get_layer("c").nnz == 24
    m.compile(keras.optimizers.Adam(0.01), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6, 6, 3)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    gmp = GradualMagnitudePruning(0.5, 0, 4, frequency=2, layers=["c"])
    m.fit(x, y, batch_size=4, epochs=1, shuffle=False, callbacks=[gmp], verbose=0)
    mask = to_numpy(m.get_layer("c").kernel_mask) > 0
    assert mask.sum() == 12
    np.testing.assert_array_equal(to_numpy(m.get_layer("c").kernel_values)[~mask], 0)
    small = gmp.compact()
    assert small.get_layer("c").nnz == 12
    np.testing.assert_allclose(
        to_numpy(small.predict(x, verbose=0)),
        to_numpy(m.predict(x, verbose=0)),
        rtol=1e-5,
        atol=1e-6,
    )
    # the compact model can evolve its connectivity further
    start = small.get_layer("c").connectivity
    cb = SET(0.25, update_interval=2, seed=0, layers=["c"])
    small.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)
    assert small.get_layer("c").nnz == 12 and small.get_layer("c").connectivity != start


def test_top_level_aliases():
    import keras_sparse

    assert keras_sparse.sparsify is sparsify
    assert keras_sparse.densify is densify


@needs_mutable
@pytest.mark.skipif(BACKEND == "torch", reason="torch runs eagerly: nothing is traced")
def test_connectivity_updates_do_not_retrace_the_train_step():
    traces = {"n": 0}

    def counting_tanh(z):  # Python side effect: runs once per trace under jit
        traces["n"] += 1
        return keras.ops.tanh(z)

    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((20,)),
            SparseDense(
                12,
                random_connectivity(20, 12, 0.3, seed=1),
                activation=counting_tanh,
                name="h",
                mutable_connectivity=True,
            ),
            SparseDense(3, random_connectivity(12, 3, 0.5, seed=2), name="out"),
        ]
    )
    m.compile(keras.optimizers.Adam(0.01), "mse")
    x, y = data(n=160)
    m.fit(x[:8], y[:8], batch_size=8, verbose=0)  # traces the train step
    before = traces["n"]
    cb = SET(0.3, update_interval=1, seed=0, layers=["h"])
    m.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
    assert len(cb.history) == 20  # 20 connectivity updates...
    assert traces["n"] == before  # ...and not one retrace


@needs_mutable
def test_set_regrowth_stddev_draws_regrown_weights_only():
    m = model(optimizer="adam")
    train_some(m)  # non-zero values and slots
    x, y = data()
    # 4 more steps in fit: the update falls on fit's last step.
    last = int(to_numpy(m.optimizer.iterations)) + 4
    kwargs = dict(drop_fraction=0.3, update_interval=last, seed=3, layers=["h"])
    cb = SET(regrowth_stddev=0.5, **kwargs)
    before = snapshot(m)
    m.fit(x, y, batch_size=16, epochs=1, callbacks=[cb], verbose=0, shuffle=False)
    layer = m.get_layer("h")
    source = cb.last_sources["h"]
    grown = source < 0
    assert grown.sum() >= 10
    values = to_numpy(layer.kernel_values)
    # Regrown weights drawn (none exactly 0, spread like N(0, 0.5^2));
    # their optimizer slots still start at 0.
    assert np.all(values[grown] != 0)
    assert 0.2 < np.std(values[grown]) < 1.0
    for slot in optimizer_slots(m.optimizer, layer.kernel_values):
        np.testing.assert_array_equal(to_numpy(slot)[grown], 0.0)
    # The same draw from a zero-regrowth twin plus the documented stream.
    twin = model(optimizer="adam")
    train_some(twin)
    zero = SET(**kwargs)
    twin.fit(x, y, batch_size=16, epochs=1, callbacks=[zero], verbose=0, shuffle=False)
    np.testing.assert_array_equal(zero.last_sources["h"], source)
    np.testing.assert_array_equal(
        to_numpy(twin.get_layer("h").kernel_values)[grown], 0.0
    )
    assert before["h"]["flat"].size == layer.nnz
    for bad in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="`regrowth_stddev` of `SET`"):
            SET(regrowth_stddev=bad)
