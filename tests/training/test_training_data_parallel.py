"""Data-parallel training (JAX, 2 CPU devices): one connectivity on every replica."""

import os
import subprocess
import sys
import textwrap

import keras
import pytest

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    )
    os.environ["KERAS_BACKEND"] = "jax"
    import jax, keras, numpy as np
    from keras_sparse.connectivity import random_connectivity
    from keras_sparse.layers import SparseDense
    from keras_sparse.training import SET, RigL

    def run(parallel):
        if parallel:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=jax.devices())
            )
        keras.utils.set_random_seed(0)
        m = keras.Sequential([
            keras.Input((20,)),
            SparseDense(12, random_connectivity(20, 12, 0.3, seed=1),
                        activation="tanh", name="h", mutable_connectivity=True),
            SparseDense(3, random_connectivity(12, 3, 0.5, seed=2), name="o",
                        mutable_connectivity=True),
        ])
        m.compile(keras.optimizers.Adam(0.01), "mse")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 20)).astype("float32")
        y = rng.normal(size=(64, 3)).astype("float32")
        cbs = [SET(0.3, update_interval=2, seed=0, layers=["h"]),
               RigL(0.3, update_interval=3, end_step=50, data=(x, y),
                    batch_size=16, layers=["o"])]
        m.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=cbs,
              verbose=0)
        keras.distribution.set_distribution(None)
        return m, len(cbs[0].history) + len(cbs[1].history)

    assert len(jax.devices()) == 2
    single, n1 = run(False)
    parallel, n2 = run(True)
    assert n1 == n2 > 0
    for name in ("h", "o"):
        a, b = single.get_layer(name), parallel.get_layer(name)
        assert a.connectivity == b.connectivity, name
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a.kernel_values),
            keras.ops.convert_to_numpy(b.kernel_values), rtol=1e-4, atol=1e-5)
    print("OK")
    """
)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX DataParallel")
def test_data_parallel_matches_single_device():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]
