"""tf.distribute.MirroredStrategy (TensorFlow, 2 logical CPU devices): sparse
training keeps one connectivity on every replica and matches one device."""

import os
import subprocess
import sys

import keras
import pytest

SCRIPT = r"""
import os
os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from keras_sparse.connectivity import random_connectivity
from keras_sparse.layers import SparseDense
from keras_sparse.training import SET, RigL

def run(strategy, impl):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        m = keras.Sequential([
            keras.Input((20,)),
            SparseDense(12, random_connectivity(20, 12, 0.3, seed=1), activation="tanh",
                        name="h", mutable_connectivity=True, implementation=impl),
            SparseDense(3, random_connectivity(12, 3, 0.5, seed=2), name="o",
                        mutable_connectivity=True, implementation=impl),
        ])
        m.compile(keras.optimizers.Adam(0.01), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 20)).astype("float32"); y = rng.normal(size=(64, 3)).astype("float32")
    cbs = [SET(0.3, update_interval=2, seed=0, layers=["h"]),
           RigL(0.3, update_interval=3, end_step=50, data=(x, y), batch_size=16, layers=["o"])]
    m.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=cbs, verbose=0)
    return m, len(cbs[0].history) + len(cbs[1].history)

devices = [d.name for d in tf.config.list_logical_devices("CPU")]
assert len(devices) == 2, devices
for impl in ("csr", "sparse", "dense"):
    single, n1 = run(tf.distribute.OneDeviceStrategy(devices[0]), impl)
    mirrored, n2 = run(tf.distribute.MirroredStrategy(devices), impl)
    assert n1 == n2 > 0
    for name in ("h", "o"):
        a, b = single.get_layer(name), mirrored.get_layer(name)
        assert a.connectivity == b.connectivity, (impl, name)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a.kernel_values),
            keras.ops.convert_to_numpy(b.kernel_values), rtol=1e-4, atol=1e-5)
        # every replica holds the same connectivity
        checked = 0
        for v in b.weights:
            if hasattr(v.value, "values"):
                checked += 1
                vals = [np.asarray(t) for t in v.value.values]
                assert len(vals) == 2 and all(np.array_equal(vals[0], t) for t in vals[1:]), (impl, v.path)
        assert checked == len(b.weights), (checked, [type(v.value) for v in b.weights])
    print("OK", impl, n1, flush=True)
"""


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute is TensorFlow's"
)
def test_mirrored_strategy_keeps_one_connectivity_on_every_replica():
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[:2] for line in done.stdout.splitlines()] == [
        ["OK", "csr"],
        ["OK", "sparse"],
        ["OK", "dense"],
    ], done.stdout
