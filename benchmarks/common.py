"""Shared timing and environment helpers of the benchmarks (not a test)."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

import keras


def median_seconds(fn, steps: int, warmup: int) -> float:
    """Median wall time of `fn()` over `steps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_model(model: keras.Model, x: Any, y: Any, steps: int, warmup: int) -> tuple[float, float]:
    """(training step, forward) median seconds with train/predict_on_batch.

    `x` and `y` are converted to backend tensors once, outside the timed
    calls, as a device-resident input pipeline would hand them over: the
    times are the model's, not those of copying NumPy arrays per call.
    """
    x = keras.ops.convert_to_tensor(x)
    y = keras.ops.convert_to_tensor(y)
    step = median_seconds(lambda: model.train_on_batch(x, y), steps, warmup)
    forward = median_seconds(lambda: model.predict_on_batch(x), steps, warmup)
    return step, forward


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def environment() -> dict[str, Any]:
    """Machine, backend and library versions, for the results files."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as framework
    elif backend == "jax":
        import jax as framework
    else:
        import torch as framework
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "backend": backend,
        "framework": f"{framework.__name__} {framework.__version__}",
        "keras": keras.__version__,
        "python": sys.version.split()[0],
        "cpu": cpu,
        "cores": os.cpu_count(),
    }
