"""Pytest configuration and fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

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
