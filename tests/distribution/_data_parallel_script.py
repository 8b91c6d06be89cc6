"""Trains a small sparse model single-device and data-parallel; prints JSON.

Run as a subprocess by test_data_parallel.py (the device count must be set
before the backend is imported).
"""

import json
import os
import sys

import numpy as np

mode = sys.argv[1]  # "single" or "parallel"
backend = os.environ["KERAS_BACKEND"]

import keras  # noqa: E402

from keras_sparse import SparseDense  # noqa: E402
from keras_sparse.connectivity import random_connectivity  # noqa: E402

conn = random_connectivity(64, 16, density=0.1, seed=0, min_fan_in=1)
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 64)).astype("float32")
y = rng.standard_normal((32, 1)).astype("float32")
impl = os.environ.get("IMPL", "auto")


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            SparseDense(16, conn, activation="tanh", implementation=impl),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


devices = None
if mode == "parallel" and backend == "jax":
    import jax

    devices = len(jax.devices())
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model = build()
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
elif mode == "parallel" and backend == "tensorflow":
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 4
    )
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(4)])
    devices = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build()
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
else:
    model = build()
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)

layer = model.layers[0]
print(
    json.dumps(
        {
            "devices": devices,
            "implementation": layer.resolved_implementation,
            "values": np.asarray(keras.ops.convert_to_numpy(layer.kernel_values)).tolist(),
            "head": np.asarray(keras.ops.convert_to_numpy(model.layers[1].kernel)).ravel().tolist(),
        }
    )
)
