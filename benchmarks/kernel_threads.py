"""The CSR kernels inside a framework's training step vs in a fresh process,
and against the memory floor.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/kernel_threads.py \
        --out benchmarks/results/kernel_threads_tensorflow.json
    # the same with the library's kernel thread, and on one core:
    KERAS_BACKEND=torch .venv/bin/python benchmarks/kernel_threads.py --kernel-thread on
    KERAS_BACKEND=tensorflow taskset -c 0 .venv/bin/python benchmarks/kernel_threads.py

For each case (9180 -> 230 at 1 %, batch 256; `--cases wide` adds the
200,000 -> 20,000 layer with 2 M connections at batch 64), each in a
process of its own so that its `fresh` calls are fresh, it measures the
three kernels (`spmm` forward, `spmm_t` input gradient, `sddmm` value
gradient) through `keras_sparse.ops.csr_cpu`:

- `fresh`: called from the main thread before any Keras step ran;
- `fresh_after_gap`: the same, each call after the calling thread slept
  `--gap-ms` (2 ms): inside a step every kernel starts a fraction of a
  millisecond to several milliseconds after the previous one
  (`in_step_gap_ms` records those gaps), and
  a kernel starting after such a gap is slower without any framework
  (scratch checks on a 2-core AMD EPYC: after a sleep or a busy wait of
  the calling thread alike, with one Numba thread or two, libgomp's
  workers spin-waiting or not);
- `after_steps`: the same calls after `--steps` Keras training steps of a
  `SparseDense(implementation="csr")` model (the frameworks' thread pools
  and the threads that launched kernels are alive by then);
- `in_step`: each kernel call timed inside the training steps themselves
  (a timing wrapper around the NumPy API). On JAX the kernels run as XLA
  FFI custom calls, which no Python wrapper sees: their times come from a
  `jax.profiler` trace of the steps (XLA's own record of each call it
  runs; `--jax-path callback` times the `jax.pure_callback` path with the
  wrapper instead, the path the kernel thread applies to). The path is in
  the results (`jax_in_step_path`).

`region_us` is what one parallel region (an almost empty `prange`, one
element per thread) costs to start and join: before the steps, from the
thread that ran each kernel inside the steps (not on JAX's FFI path:
XLA's threads run those calls), and after them. With
`--kernel-thread` the probes and the bandwidth triad are launched through
the kernel thread too, as the kernels are: launched from the main thread
they would add the second libgomp team they are meant to detect. Every kernel
launches one or two regions; `launching_threads_in_step` counts the host
threads that launched kernels in the steps (libgomp keeps a team of
workers for each, and spins much less once it manages more threads than
there are cores).

`floor` is the time the bytes that must move take at the machine's
streaming bandwidth (a parallel Numba triad over 256 MiB, same threads):
forward reads `x` and the connections (4-byte index + 4-byte value each)
and writes `y`; the input gradient reads `dy` and the connections and
writes `dx`; the value gradient reads `x`, `dy` and the indices and writes
one value per connection. Ratios are the kernel's median over the floor.

Kernel times are medians over interleaved turns (`common.interleaved_medians`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

import keras
import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import child_json, interleaved_medians, write_result  # noqa: E402

from keras_sparse.connectivity import random_connectivity  # noqa: E402
from keras_sparse.layers import SparseDense  # noqa: E402
from keras_sparse.ops import backend, csr_cpu  # noqa: E402

_PREFER = backend.KERNEL_THREAD  # the binding's preference for its calls

CASES = {
    "ref": dict(n_in=9180, n_out=230, density=0.01, batch=256),
    "wide": dict(n_in=200_000, n_out=20_000, density=0.0005, batch=64),
}
QUICK = dict(n_in=300, n_out=20, density=0.05, batch=16)  # `--quick` (tests)
# The idle gap before each `fresh_after_gap` call: of the order of the
# gaps between kernel calls inside the steps (medians 0.2-2.5 ms on a
# 2-core AMD EPYC, depending on the backend; each run records them as
# `in_step_gap_ms`).
GAP_MS = 2.0
OPS = ("forward", "input_grad", "values_grad")


@numba.njit(parallel=True, cache=True)
def _triad(a, b, c):  # pragma: no cover - compiled
    for i in numba.prange(a.size):
        a[i] = b[i] + 1.5 * c[i]


@numba.njit(parallel=True, cache=True)
def _region(a):  # pragma: no cover - compiled
    for i in numba.prange(a.size):
        a[i] += 1.0


def region_us(repeats: int = 20) -> float:
    """Microseconds per launch of an (almost) empty parallel region (one
    element per thread): what starting and joining the kernels' threads
    costs from the calling thread, median of `repeats` launches."""
    a = np.zeros(numba.get_num_threads())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        csr_cpu._launch(_region, a, thread=_PREFER)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def bandwidth_bytes_per_s(mib: int = 256) -> float:
    """Streaming bandwidth (bytes read + written per second) of a parallel
    triad, median of 7."""
    n = mib * 2**20 // 4
    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    csr_cpu._launch(_triad, a, b, c, thread=_PREFER)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        csr_cpu._launch(_triad, a, b, c, thread=_PREFER)
        times.append(time.perf_counter() - t0)
    return 3 * 4 * n / statistics.median(times)


def floors(case: dict, nnz: int, bandwidth: float) -> dict:
    b, n_in, n_out = case["batch"], case["n_in"], case["n_out"]
    moved = {
        "forward": 4 * (b * n_in + b * n_out) + 8 * nnz,
        "input_grad": 4 * (b * n_out + b * n_in) + 8 * nnz,
        "values_grad": 4 * (b * n_in + b * n_out) + 8 * nnz,
    }
    return {op: moved[op] / bandwidth for op in OPS}


def kernel_calls(case: dict, seed: int = 0):
    conn = random_connectivity(
        case["n_in"], case["n_out"], density=case["density"], seed=seed
    )
    plan = csr_cpu.CSRPlan.from_connectivity(conn)
    indptr, indices, perm = plan.arrays
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case["batch"], case["n_in"])).astype(np.float32)
    dy = rng.standard_normal((case["batch"], case["n_out"])).astype(np.float32)
    v = rng.standard_normal(conn.nnz).astype(np.float32)
    n_in, n_out = case["n_in"], case["n_out"]
    kt = {"kernel_thread": _PREFER}  # as the backend's binding calls them
    calls = {
        "forward": lambda: csr_cpu.spmm(x, v, *plan.arrays, n_out, **kt),
        "input_grad": lambda: csr_cpu.spmm_t(
            dy, v, indptr, indices, perm, n_in, **kt
        ),
        "values_grad": lambda: csr_cpu.sddmm(x, dy, *plan.arrays, **kt),
    }
    return conn, calls


class InStepTimer:
    """Times every `csr_cpu.spmm/spmm_t/sddmm` call while installed."""

    NAMES = {"spmm": "forward", "spmm_t": "input_grad", "sddmm": "values_grad"}

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {op: [] for op in OPS}
        self.threads: set[str] = set()
        self.regions: list[float] = []
        # Seconds from the end of one kernel call to the start of the next
        # (the framework's own work in between, within and across steps).
        self.gaps: list[float] = []
        self.last_end: float | None = None
        self.real = {name: getattr(csr_cpu, name) for name in self.NAMES}

    def __enter__(self) -> InStepTimer:
        for name, op in self.NAMES.items():
            setattr(csr_cpu, name, self._wrap(self.real[name], op))
        return self

    def __exit__(self, *exc) -> None:
        for name, fn in self.real.items():
            setattr(csr_cpu, name, fn)

    def _wrap(self, fn, op):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            if self.last_end is not None:
                self.gaps.append(t0 - self.last_end)
            out = fn(*args, **kwargs)
            self.last_end = time.perf_counter()
            self.times[op].append(self.last_end - t0)
            # With the kernel thread, it launches every kernel itself.
            self.threads.add(
                "kernel thread" if _uses_thread() else str(threading.get_native_id())
            )
            return out

        return timed


class XlaTimer(InStepTimer):
    """Times the kernels' XLA FFI custom calls inside JAX's steps while
    installed, from a `jax.profiler` trace: XLA records every thunk it runs
    (host tracer level 1; Python tracing off). The model's sparse layer
    comes first, so each step runs exactly two custom calls, the forward
    and then (it needs the forward's output) the value gradient."""

    def __enter__(self) -> XlaTimer:
        import tempfile

        import jax

        self._dir = tempfile.TemporaryDirectory()
        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0
        options.host_tracer_level = 1
        jax.profiler.start_trace(self._dir.name, profiler_options=options)
        return self

    def __exit__(self, *exc) -> None:
        import glob

        import jax

        jax.profiler.stop_trace()
        if exc[0] is not None:  # the steps failed: their error, not a parse's
            self._dir.cleanup()
            return
        try:
            (path,) = glob.glob(
                os.path.join(self._dir.name, "**", "*.xplane.pb"), recursive=True
            )
            data = jax.profiler.ProfileData.from_file(path)
        finally:
            self._dir.cleanup()
        runs: dict[int, list[tuple[int, int, str]]] = {}
        for plane in data.planes:
            for line in plane.lines:
                for event in line.events:
                    if event.name.startswith("ffi_call"):
                        run = dict(event.stats)["run_id"]
                        runs.setdefault(run, []).append(
                            (event.start_ns, event.end_ns, line.name)
                        )
        events = []
        for run, calls in runs.items():
            if len(calls) != 2:
                raise RuntimeError(
                    f"Expected 2 custom calls (forward, value gradient) in each "
                    f"step, got {len(calls)} in XLA run {run}."
                )
            forward, values_grad = sorted(calls)
            self.times["forward"].append((forward[1] - forward[0]) / 1e9)
            self.times["values_grad"].append((values_grad[1] - values_grad[0]) / 1e9)
            events += [forward, values_grad]
        events.sort()
        self.gaps = [
            (b[0] - a[1]) / 1e9 for a, b in zip(events, events[1:], strict=False)
        ]
        self.threads = {thread for _, _, thread in events}


class RegionProbe(InStepTimer):
    """While installed, every kernel call inside a step is followed by
    `region_us` launches from the same thread (the thread the framework
    runs the kernel on)."""

    def _wrap(self, fn, op):
        def probed(*args, **kwargs):
            out = fn(*args, **kwargs)
            self.regions.append(region_us(5))
            return out

        return probed


def run_case(
    name: str, case: dict, steps: int, rounds_calls: int, gap_ms: float = GAP_MS
) -> dict:
    conn, calls = kernel_calls(case)
    fresh = interleaved_medians(calls, steps=rounds_calls, warmup=3)
    # The same fresh calls, each after the calling thread slept `gap_ms`:
    # inside a step a kernel starts milliseconds after the previous one,
    # its data and cores gone cold by then, with no framework needed.
    fresh_gap = interleaved_medians(
        calls, steps=rounds_calls, warmup=3, before=lambda: time.sleep(gap_ms / 1e3)
    )
    region_fresh = region_us()

    model = keras.Sequential(
        [
            keras.Input((case["n_in"],)),
            SparseDense(case["n_out"], conn, implementation="csr"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(1)
    x = keras.ops.convert_to_tensor(
        rng.standard_normal((case["batch"], case["n_in"])).astype(np.float32)
    )
    y = keras.ops.convert_to_tensor(
        rng.standard_normal((case["batch"], 1)).astype(np.float32)
    )
    for _ in range(3):
        model.train_on_batch(x, y)
    step_times = []
    ffi = _ffi_path()
    with XlaTimer() if ffi else InStepTimer() as timer:
        for _ in range(steps):
            t0 = time.perf_counter()
            model.train_on_batch(x, y)
            step_times.append(time.perf_counter() - t0)
    in_step = {op: statistics.median(t) if t else None for op, t in timer.times.items()}
    # Separate steps: the probes cost time. XLA's threads run the FFI calls
    # in place, where no probe can follow them.
    with RegionProbe() as probe:
        for _ in range(0 if ffi else max(3, steps // 3)):
            model.train_on_batch(x, y)
    after = interleaved_medians(calls, steps=rounds_calls, warmup=3)
    region_after = region_us()
    bandwidth = bandwidth_bytes_per_s()
    floor = floors(case, conn.nnz, bandwidth)

    def ms(d):
        # Six significant digits: a tiny case's floor is below a microsecond,
        # and rounding to 0.001 ms made it 0 whenever the machine's measured
        # bandwidth was high (the quick test's floor of 0.0006 ms at 50 GB/s).
        return {k: (None if v is None else float(f"{v * 1e3:.6g}")) for k, v in d.items()}

    return {
        "case": name,
        **case,
        "numba_threading_layer": numba.threading_layer(),
        "nnz": conn.nnz,
        "fresh_ms": ms(fresh),
        "gap_ms": gap_ms,
        "fresh_after_gap_ms": ms(fresh_gap),
        "in_step_gap_ms": {
            "median": round(statistics.median(timer.gaps) * 1e3, 3),
            "min": round(min(timer.gaps) * 1e3, 3),
            "max": round(max(timer.gaps) * 1e3, 3),
        },
        "after_steps_ms": ms(after),
        "in_step_ms": ms(in_step),
        "in_step_calls": {op: len(t) for op, t in timer.times.items()},
        "step_ms": round(statistics.median(step_times) * 1e3, 3),
        "launching_threads_in_step": len(timer.threads),
        "region_us": {
            "fresh": round(region_fresh, 1),
            "in_step": (
                round(statistics.median(probe.regions), 1) if probe.regions else None
            ),
            "after_steps": round(region_after, 1),
        },
        "after_over_fresh": {op: round(after[op] / fresh[op], 2) for op in OPS},
        "in_step_over_fresh": {
            op: (None if in_step[op] is None else round(in_step[op] / fresh[op], 2))
            for op in OPS
        },
        "in_step_over_fresh_after_gap": {
            op: (None if in_step[op] is None else round(in_step[op] / fresh_gap[op], 2))
            for op in OPS
        },
        "fresh_after_gap_over_floor": {
            op: round(fresh_gap[op] / floor[op], 2) for op in OPS
        },
        "bandwidth_gb_s": round(bandwidth / 1e9, 2),
        "floor_ms": ms(floor),
        "fresh_over_floor": {op: round(fresh[op] / floor[op], 2) for op in OPS},
    }


def _uses_thread() -> bool:
    return csr_cpu.uses_kernel_thread(_PREFER)


def _configure(kernel_thread: str, jax_path: str, check: bool = True) -> str | None:
    """Kernel thread on, off or the binding's default; on JAX, the FFI or
    the callback path (its description returned). `check`: whether to
    check now that the FFI path is available (the parent process does; a
    case's process does not, so that no FFI call precedes its fresh calls)."""
    csr_cpu.set_kernel_thread({"on": True, "off": False}.get(kernel_thread))
    if keras.backend.backend() != "jax":
        return None
    from keras_sparse.ops.backend import jax_ffi

    if jax_path == "callback":
        jax_ffi._STATE.update(checked=True, ok=False, reason="kernel_threads.py")
        return "jax.pure_callback"
    if check and not jax_ffi.available():
        raise RuntimeError(
            f"JAX's FFI path is unavailable here ({jax_ffi.unavailable_reason()}); "
            "run with --jax-path callback."
        )
    return "XLA FFI (timed from a jax.profiler trace)"


def _ffi_path() -> bool:
    if keras.backend.backend() != "jax":
        return False
    from keras_sparse.ops.backend import jax_ffi

    return jax_ffi.available()


def run_case_in_child(name: str, args: argparse.Namespace) -> dict:
    """`run_case` in a process of its own, so that every case's `fresh`
    calls come before any Keras step of that process (a second case in
    the same process would start after the first one's steps)."""
    cmd = [
        sys.executable, os.path.abspath(__file__), "--child-case", name,
        "--steps", str(args.steps), "--calls", str(args.calls),
        "--gap-ms", str(args.gap_ms), "--jax-path", args.jax_path,
    ] + ["--kernel-thread", args.kernel_thread]
    return child_json(cmd, f"case {name!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["ref"], choices=list(CASES))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument(
        "--kernel-thread",
        nargs="?",
        const="on",
        default="default",
        choices=["default", "on", "off"],
        help="launch the kernels from the library's kernel thread: the "
        "binding's default (TensorFlow's uses it), on, or off",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=GAP_MS,
        help="idle milliseconds before each `fresh_after_gap` call",
    )
    parser.add_argument(
        "--jax-path",
        choices=["ffi", "callback"],
        default="ffi",
        help="on JAX, the kernels' path: XLA FFI custom calls (the default path, "
        "timed inside the steps from a jax.profiler trace) or jax.pure_callback "
        "(timed by a wrapper, and the kernel thread applies)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny case (tests)")
    parser.add_argument("--remark", help="a sentence the report prints under the table")
    parser.add_argument("--child-case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.child_case:
        _configure(args.kernel_thread, args.jax_path, check=False)
        case = QUICK if args.child_case == "quick" else CASES[args.child_case]
        result = run_case(args.child_case, case, args.steps, args.calls, args.gap_ms)
        print(json.dumps(result))
        return
    load = os.getloadavg()
    jax_path = _configure(args.kernel_thread, args.jax_path)
    if args.quick:
        args.steps, args.calls = 3, 4
    names = ["quick"] if args.quick else args.cases
    results = [run_case_in_child(name, args) for name in names]
    write_result(
        args.out,
        {
            "command": " ".join(["python"] + sys.argv),
            "kernel_thread": _uses_thread(),
            "kernel_thread_setting": args.kernel_thread,
            "numba_threading_layer": results[0]["numba_threading_layer"],
            "numba_threads": numba.get_num_threads(),
            "cpus_allowed": len(os.sched_getaffinity(0)),
            "load_average_at_start": load,
            "jax_in_step_path": jax_path,
            "cases_in_own_process": True,
            "cases": results,
            **({"remark": args.remark} if args.remark else {}),
        },
    )


if __name__ == "__main__":
    main()
