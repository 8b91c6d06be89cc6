"""Trains a small sparse model single-device, then data-parallel, for each
implementation in `IMPLS`; prints one JSON line.

Run as a subprocess by test_data_parallel.py: the device count must be set
before the backend is imported. Both trainings of every implementation run
in this one process (a process per training cost a backend import and its
compiles each).
"""

import json
import os

import numpy as np


def build(impl):
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


def values(model):
    layer = model.layers[0]
    return np.asarray(keras.ops.convert_to_numpy(layer.kernel_values)).tolist()


def fit(model):
    initial = values(model)
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    return {
        "implementation": model.layers[0].resolved_implementation,
        "initial": initial,
        "values": values(model),
        "head": np.asarray(keras.ops.convert_to_numpy(model.layers[1].kernel))
        .ravel()
        .tolist(),
    }


def parallel(impl):
    if backend == "jax":
        import jax

        keras.distribution.set_distribution(keras.distribution.DataParallel())
        try:
            return len(jax.devices()), fit(build(impl))
        finally:
            keras.distribution.set_distribution(None)
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(4)])
    with strategy.scope():
        model = build(impl)
    return strategy.num_replicas_in_sync, fit(model)


if __name__ == "__main__":  # not when pytest --doctest-modules imports it
    backend = os.environ["KERAS_BACKEND"]
    if backend == "tensorflow":
        import tensorflow as tf

        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 4
        )
    import keras

    from keras_sparse import SparseDense
    from keras_sparse.connectivity import random_connectivity

    conn = random_connectivity(64, 16, density=0.1, seed=0, min_fan_in=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64)).astype("float32")
    y = rng.standard_normal((32, 1)).astype("float32")
    results = {}
    for impl in os.environ.get("IMPLS", "auto").split(","):
        single = fit(build(impl))
        devices, data_parallel = parallel(impl)
        results[impl] = {
            "devices": devices,
            "single": single,
            "parallel": data_parallel,
        }
    print(json.dumps(results))
