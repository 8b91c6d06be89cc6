"""Data-parallel training on virtual CPU devices equals single-device training."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import BACKEND

SCRIPT = os.path.join(os.path.dirname(__file__), "_data_parallel_script.py")


def run(mode, impl):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, IMPL=impl, TF_CPP_MIN_LOG_LEVEL="3")
    if BACKEND == "jax":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    proc = subprocess.run(
        [sys.executable, SCRIPT, mode], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(BACKEND == "torch", reason="Keras has no data-parallel engine for PyTorch; see README")
@pytest.mark.parametrize("impl", ["sparse", "csr", "dense"])
def test_data_parallel_matches_single_device(impl):
    single = run("single", impl)
    parallel = run("parallel", impl)
    assert parallel["devices"] == 4
    np.testing.assert_allclose(parallel["values"], single["values"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(parallel["head"], single["head"], rtol=1e-4, atol=1e-5)
