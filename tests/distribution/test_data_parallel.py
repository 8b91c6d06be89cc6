"""Data-parallel training on virtual CPU devices equals single-device training."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import BACKEND

SCRIPT = os.path.join(os.path.dirname(__file__), "_data_parallel_script.py")
IMPLS = ["sparse", "csr", "dense"]


@pytest.fixture(scope="module")
def trained():
    """Every implementation trained single-device and data-parallel, in one
    subprocess (the device count is fixed before the backend loads)."""
    env = dict(
        os.environ, KERAS_BACKEND=BACKEND, IMPLS=",".join(IMPLS), TF_CPP_MIN_LOG_LEVEL="3"
    )
    if BACKEND == "jax":
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=4".strip()
    proc = subprocess.run(
        [sys.executable, SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(BACKEND == "torch", reason="Keras has no data-parallel engine for PyTorch; see README")
@pytest.mark.parametrize("impl", IMPLS)
def test_data_parallel_matches_single_device(trained, impl):
    result = trained[impl]
    single, parallel = result["single"], result["parallel"]
    assert result["devices"] == 4
    assert parallel["implementation"] == single["implementation"] == impl
    np.testing.assert_allclose(parallel["initial"], single["initial"])
    assert not np.allclose(single["values"], single["initial"], atol=1e-4)  # trained
    np.testing.assert_allclose(parallel["values"], single["values"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(parallel["head"], single["head"], rtol=1e-4, atol=1e-5)
