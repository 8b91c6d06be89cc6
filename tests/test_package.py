"""The package as a user imports it: `import keras_sparse` is enough to load
saved models, and the command line starts without Keras."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

from keras_sparse import SparseDense
from keras_sparse.connectivity import random_connectivity


def test_import_keras_sparse_is_enough_to_load_a_saved_model(tmp_path):
    conn = random_connectivity(10, 3, density=0.5, seed=0)
    model = keras.Sequential([keras.Input((10,)), SparseDense(3, conn)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    x = np.ones((2, 10), "float32")
    np.save(tmp_path / "want.npy", keras.ops.convert_to_numpy(model(x)))
    code = textwrap.dedent(
        f"""
        import numpy as np, keras, keras_sparse
        model = keras.saving.load_model({path!r})
        got = keras.ops.convert_to_numpy(model(np.ones((2, 10), "float32")))
        np.testing.assert_allclose(got, np.load({str(tmp_path / "want.npy")!r}), rtol=1e-6)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_command_line_help_imports_no_keras():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keras_sparse.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line
    }
    assert not imported & {"keras", "tensorflow", "jax", "torch"}
    assert "usage" in done.stdout.lower()
