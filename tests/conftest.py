"""Pytest configuration and fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads
# JAX compiles a random-number program for every new shape a Keras
# initializer draws. With JAX's default partitionable Threefry that took
# 2.3-2.8 s per shape on a 2-core AMD EPYC (JAX 0.10.2), 0.37 s without
# it: building the small DenseNets of tests/models did nothing else for
# minutes. The tests compare computed references, never drawn values, so
# they draw with the non-partitionable Threefry (an environment variable,
# so that the tests' subprocesses inherit it). Users keep JAX's default.
os.environ.setdefault("JAX_THREEFRY_PARTITIONABLE", "0")
# XLA compiles (JAX steps, TensorFlow's jit_compile functions) with LLVM's
# backend optimizations off: the tests' arrays are small, so compiling is
# most of their time (tests/experiments/test_study.py, tests/properties and
# test_cli_fit.py on JAX: 185 s at XLA's default level, 132 s at 0). XLA's
# HLO passes (fusion, layout) are unchanged; only LLVM optimizes the
# generated code less. Set XLA_FLAGS to override.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import keras  # noqa: E402
import pytest
from hypothesis import settings

# Property tests: CI draws the same examples every run ("ci", derandomized), so
# a red run is reproducible; HYPOTHESIS_PROFILE=explore draws fresh random
# examples, and KERAS_SPARSE_HYPOTHESIS_SCALE=10 draws ten times as many.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from helpers import BACKEND  # noqa: E402  (re-exported for old imports)
from helpers import gradients, max_examples, reference_forward, to_numpy  # noqa: E402,F401


def pytest_report_header(config):
    return f"keras {keras.__version__}, KERAS_BACKEND={BACKEND}"


@pytest.fixture(autouse=True)
def _reset_policy():
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
