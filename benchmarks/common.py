"""Shared timing and environment helpers of the benchmarks (not a test)."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Keras (and its backend) load in the functions that use it,
    import keras  # so parents of benchmark processes stay framework-free.


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


def interleaved_medians(
    fns: dict,
    steps: int,
    warmup: int,
    rounds: int = 5,
    turn_warmup: int = 2,
    before: Any = None,
) -> dict:
    """Median wall time per call of each `fns[name]()`, timed in turns.

    Every function is warmed up `warmup` times, then the functions take
    turns: `rounds` rounds, each calling every function `turn_warmup` times
    untimed and then `ceil(steps / rounds)` times timed, the order rotated
    from round to round. On a shared, noisy machine a burst of foreign load
    then falls on all cases alike instead of on whichever case happened to
    be running, so the ratios between cases of one run are trustworthy; the
    untimed calls at the start of a turn keep out what switching from
    another model costs (caches, allocator and thread state: up to 2x on
    the next call or two), which a training loop running one model never
    pays. `before`, if given, is called (untimed) before every timed call.

    Returns:
        dict name -> median seconds over all timed calls of that function.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    per_round = max(1, -(-steps // rounds))
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)] if names else []
        for name in order:
            fn = fns[name]
            for _ in range(turn_warmup):
                fn()
            for _ in range(per_round):
                if before is not None:
                    before()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def time_model(model: keras.Model, x: Any, y: Any, steps: int, warmup: int) -> tuple[float, float]:
    """(training step, forward) median seconds with train/predict_on_batch.

    `x` and `y` are converted to backend tensors once, outside the timed
    calls, as a device-resident input pipeline would hand them over: the
    times are the model's, not those of copying NumPy arrays per call.
    """
    import keras

    x = keras.ops.convert_to_tensor(x)
    y = keras.ops.convert_to_tensor(y)
    step = median_seconds(lambda: model.train_on_batch(x, y), steps, warmup)
    forward = median_seconds(lambda: model.predict_on_batch(x), steps, warmup)
    return step, forward


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> float:
    """Resets this process's peak resident memory to the current one
    (Linux `/proc/self/clear_refs`) and returns it, in MiB; later
    `current_peak_rss_mb()` calls measure the peak from here on."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mb("VmRSS")


def current_peak_rss_mb() -> float:
    """Peak resident memory since the last `reset_peak_rss()` (or since
    the process started), in MiB (Linux `VmHWM`)."""
    return _status_mb("VmHWM")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def environment() -> dict[str, Any]:
    """Machine, backend and library versions, for the results files."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as framework
    elif backend == "jax":
        import jax as framework
    else:
        import torch as framework
    return {
        "backend": backend,
        "framework": f"{framework.__name__} {framework.__version__}",
        "keras": keras.__version__,
        "python": sys.version.split()[0],
        **machine(),
    }


def machine() -> dict[str, Any]:
    """The CPU's model name, its widest vector extension (`AVX-512`, `AVX2`
    or none: two machines of one model name can differ, as the AMD EPYC
    Zen 3 and Zen 4 hosts of docs/benchmarks.md do) and the cores."""
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as fh:
            info = [line.split(":", 1) for line in fh if ":" in line]
        names = [v.strip() for k, v in info if k.strip() == "model name"]
        cpu = names[0] if names else cpu
        flags = next((v.split() for k, v in info if k.strip() == "flags"), [])
    except OSError:
        pass
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    out: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count()}
    if vector:
        out["vector"] = vector
    return out


def write_result(out: str | None, result: dict) -> None:
    """Prints `result` as JSON and, if `out` is given, writes it there with
    the machine, backend and library versions (`environment()`)."""
    print(json.dumps(result))
    if out:
        with open(out, "w") as fh:
            json.dump(dict(meta=environment(), result=result), fh, indent=1)


def child_json(cmd: list[str], what: str, env: dict[str, str] | None = None) -> Any:
    """Runs `cmd` (a benchmark's child process, with `env` as its whole
    environment if given) and returns the JSON value on the last line of
    its output; `RuntimeError` naming `what`, with the end of its stderr,
    if it failed or printed nothing."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{what} failed in its process (exit {proc.returncode}):\n"
            + proc.stderr[-3000:]
        )
    return json.loads(lines[-1])
