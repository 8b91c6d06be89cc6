"""Optimizer slots follow their connection and start at 0 where it is new."""

import keras
import numpy as np
import pytest

from keras_sparse.training import optimizer_slots, remap_optimizer_slots

OPTIMIZERS = {
    "sgd_momentum": (lambda: keras.optimizers.SGD(0.1, momentum=0.9), 1),
    "adam": (lambda: keras.optimizers.Adam(0.01), 2),
    "adam_amsgrad": (lambda: keras.optimizers.Adam(0.01, amsgrad=True), 3),
    "adamw": (lambda: keras.optimizers.AdamW(0.01), 2),
    "rmsprop_centered": (
        lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        3,
    ),
    "adagrad": (lambda: keras.optimizers.Adagrad(0.01), 1),
    "adadelta": (lambda: keras.optimizers.Adadelta(0.01), 2),
    "adamax": (lambda: keras.optimizers.Adamax(0.01), 2),
    "nadam": (lambda: keras.optimizers.Nadam(0.01), 2),
    "ftrl": (lambda: keras.optimizers.Ftrl(0.01), 2),
    "lion": (lambda: keras.optimizers.Lion(0.01), 1),
    "lamb": (lambda: keras.optimizers.Lamb(0.01), 2),
    "sgd_ema": (lambda: keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True), 2),
}


def _trained(make, shape=(6,)):
    values = keras.Variable(
        np.arange(1, 1 + np.prod(shape), dtype="float32").reshape(shape)
    )
    other = keras.Variable(np.ones((3,), "float32"))
    opt = make()
    opt.build([values, other])
    rng = np.random.default_rng(0)
    for _ in range(3):
        grads = [
            keras.ops.convert_to_tensor(rng.normal(size=shape).astype("float32")),
            keras.ops.convert_to_tensor(np.ones(3, "float32")),
        ]
        opt.apply_gradients(zip(grads, [values, other], strict=True))
    return opt, values, other


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_slots_are_permuted_and_zeroed(name):
    make, n_slots = OPTIMIZERS[name]
    opt, values, other = _trained(make)
    slots = optimizer_slots(opt, values)
    assert len(slots) == n_slots
    before = [keras.ops.convert_to_numpy(s).copy() for s in slots]
    other_before = [
        keras.ops.convert_to_numpy(s).copy() for s in optimizer_slots(opt, other)
    ]
    assert any(np.count_nonzero(b) for b in before)
    source = np.array([5, -1, 0, 2, -1, 1])
    remapped = remap_optimizer_slots(opt, values, source)
    assert [id(s) for s in remapped] == [id(s) for s in slots]
    for slot, old in zip(slots, before, strict=True):
        expected = np.where(source >= 0, old[np.maximum(source, 0)], 0.0)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(slot), expected)
    # the other variable's state is untouched
    for slot, old in zip(optimizer_slots(opt, other), other_before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(slot), old)


def test_two_dimensional_rows():
    opt, values, _ = _trained(lambda: keras.optimizers.Adam(0.01), shape=(4, 3))
    before = [
        keras.ops.convert_to_numpy(s).copy() for s in optimizer_slots(opt, values)
    ]
    source = np.array([3, -1, 1, 0])
    remap_optimizer_slots(opt, values, source)
    for slot, old in zip(optimizer_slots(opt, values), before, strict=True):
        got = keras.ops.convert_to_numpy(slot)
        np.testing.assert_array_equal(got[[0, 2, 3]], old[[3, 1, 0]])
        np.testing.assert_array_equal(got[1], 0.0)


def test_plain_sgd_and_unbuilt_have_no_slots():
    opt, values, _ = _trained(lambda: keras.optimizers.SGD(0.1))
    assert optimizer_slots(opt, values) == []
    assert remap_optimizer_slots(opt, values, np.array([0, 1, 2, 3, 4, -1])) == []
    assert optimizer_slots(keras.optimizers.Adam(), values) == []


def test_factored_state_is_refused():
    opt, values, _ = _trained(lambda: keras.optimizers.Adafactor(0.01), shape=(4, 3))
    with pytest.raises(ValueError, match="not elementwise"):
        optimizer_slots(opt, values)
    # 1-D variables: Adafactor keeps an elementwise velocity only
    opt, values, _ = _trained(lambda: keras.optimizers.Adafactor(0.01))
    assert len(optimizer_slots(opt, values)) == 1


def test_unknown_variable_and_bad_source():
    opt, values, _ = _trained(lambda: keras.optimizers.Adam(0.01))
    stranger = keras.Variable(np.zeros(6, "float32"))
    with pytest.raises(ValueError, match="not among the variables"):
        optimizer_slots(opt, stranger)
    for bad in (np.array([0, 1]), np.array([0, 1, 2, 3, 4, 6]), np.zeros(6, "float32")):
        with pytest.raises(ValueError, match="Received an invalid value for `source`"):
            remap_optimizer_slots(opt, values, bad)


def test_unattributable_state_is_refused():
    class Odd(keras.optimizers.SGD):
        def build(self, variables):
            super().build(variables)
            # per-variable state kept in a dict, not a positional list
            self._odd = {
                id(v): self.add_variable_from_reference(v, "odd") for v in variables
            }

    opt, values, _ = _trained(lambda: Odd(0.1))
    with pytest.raises(ValueError, match="cannot be remapped safely"):
        optimizer_slots(opt, values)


def test_loss_scale_optimizer_is_looked_through():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01))
    model.compile(opt, "mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8, 4)), rng.normal(size=(8, 3)), verbose=0)
    kernel = model.layers[0].kernel
    slots = optimizer_slots(opt, kernel)
    assert len(slots) == 2
    before = [keras.ops.convert_to_numpy(s).copy() for s in slots]
    remap_optimizer_slots(opt, kernel, np.array([3, -1, 1, 0]))
    for slot, old in zip(slots, before, strict=True):
        got = keras.ops.convert_to_numpy(slot)
        np.testing.assert_array_equal(got[[0, 2, 3]], old[[3, 1, 0]])
        np.testing.assert_array_equal(got[1], 0.0)
