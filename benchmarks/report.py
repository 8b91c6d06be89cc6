"""Writes docs/benchmarks.md from the JSON files in benchmarks/results/.

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _load(pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "results", pattern))):
        with open(path) as fh:
            result = json.load(fh)
        result["_file"] = os.path.basename(path)
        out.append(result)
    return out


def _cpu(meta):
    """The CPU's name, with its vector extension where the run recorded it
    (two AMD EPYC hosts, Zen 3 and Zen 4, share one name)."""
    return f"{meta['cpu']} ({meta['vector']})" if meta.get("vector") else meta["cpu"]


def _cases(results, key="cases"):
    """`(results file, its result, entry)` for every entry of every file's
    `result[key]` list."""
    for res in results:
        for case in res["result"][key]:
            yield res, res["result"], case


def _env_line(meta):
    return (
        f"{meta['backend']}: {meta['framework']}, keras {meta['keras']}, Python "
        f"{meta['python']}, {_cpu(meta)}, {meta['cores']} cores"
    )


def _env_footer(results):
    """One environment line per backend, for tables mixing processes."""
    envs = sorted({_env_line(res["meta"]) for res in results})
    return [""] + [f"- {e}" for e in envs] + [""]


def _ms(v, missing="skipped"):
    return missing if v is None else f"{v:.2f}"


def dense_section(results):
    lines = [
        "## SparseDense: 9180 -> 230 (`benchmarks/sparse_dense_step.py`)",
        "",
        "Median training step (`train_on_batch`, SGD, MSE) and forward pass",
        "(`predict_on_batch`) in ms, on backend tensors made once outside the",
        "timed calls; `masked_dense` is the full kernel times a 0/1 mask that",
        "users write today, `keras_dense` Keras's full `Dense`, `step_floor`",
        "a model with only a bias (`x[:, :units] + bias`: what Keras's step",
        "costs around any product, so masked / floor bounds every speed-up), and",
        "`scipy_csr_forward_floor` SciPy's CSR product `W.T @ x.T` on an",
        "already transposed batch (forward only, one thread): a floor for the",
        "forward pass. The cases of one density take turns (rounds of turns; each",
        "turn starts with 2 untimed calls, then the timed ones; median over all",
        "timed calls; counts in each table's heading), so that load from other tenants of this shared machine falls",
        "on all of them alike, while what switching between models costs (up",
        "to 2x on the next call), which a training loop never pays, is kept",
        "out. Peak MiB: resident memory of the case alone in",
        "its own process, above the process's memory once imports, data and",
        "backend tensors exist (includes compiling; measured where shown).",
        "",
    ]
    for res in results:
        meta, rows = res["meta"], res["rows"]
        lines += [f"### {meta['backend']}, batch {meta['batch']}", "", _env_line(meta), ""]
        if "rounds" in meta:
            lines += [f"{meta['steps']} timed calls per case in {meta['rounds']} turns, "
                      f"after {meta['warmup']} warm-up calls.", ""]
        lines += ["| density | nnz | case | step ms | forward ms | step speed-up vs masked "
                  "| forward speed-up vs masked | peak MiB |",
                  "|---|---|---|---|---|---|---|---|"]
        base = {r["density"]: r for r in rows if r["case"] == "masked_dense"}
        for r in rows:
            missing = "-" if r["case"].startswith("scipy") else "skipped"
            ratios = []
            for key in ("step_ms", "forward_ms"):
                ok = r[key] is not None and r["density"] in base
                ratios.append(f"x{base[r['density']][key] / r[key]:.2f}" if ok else "")
            lines.append(
                f"| {r['density']:g} | {r['nnz']:,} | {r['case']} | {_ms(r['step_ms'], missing)} | "
                f"{_ms(r['forward_ms'], missing)} | {ratios[0]} | {ratios[1]} | "
                f"{'' if r.get('peak_mb') is None else round(r['peak_mb'])} |"
            )
        lines.append("")
        if meta.get("remark"):
            lines += [f"Note: {meta['remark']}", ""]
    return lines


def targets_section(results):
    """The training-step targets for the 9180 -> 230 layer (the speed issue's:
    >= 10x at 0.1 %, >= 4x at 1 %, never below 0.9x), from the batch-256 runs."""
    lines = [
        "## Targets (9180 -> 230, batch 256, `SparseDense(\"auto\")` vs masked dense)",
        "",
        "`ceiling`: masked dense's step / `step_floor`'s (a model with only a",
        "bias), the speed-up of a product that took no time at all. Rows from",
        "`auto_rule_*.json` are the runs of the section on `auto`'s rule (their",
        "machine and date in that section's notes; 60 timed calls per case",
        "instead of 100); the `sparse_dense_step_*` rows are `run_all.sh`'s.",
        "",
        "| backend | cpu | results file | step x at 0.1 % (>= 10) | ceiling at 0.1 % "
        "| step x at 1 % (>= 4) | forward x at 1 % (>= 5) "
        "| lowest step x, any density (>= 0.9) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        meta, rows = res["meta"], res["rows"]
        if meta["batch"] != 256:
            continue
        base = {r["density"]: r for r in rows if r["case"] == "masked_dense"}
        auto = {r["density"]: r for r in rows if r["case"] == "sparse_dense[auto]"}
        floor = {r["density"]: r for r in rows if r["case"] == "step_floor"}

        def ratio(density, key, of=auto):
            if density not in of or density not in base or of[density][key] is None:
                return "-"
            return f"x{base[density][key] / of[density][key]:.2f}"

        lowest = min(
            ((base[d]["step_ms"] / auto[d]["step_ms"], d) for d in auto if d in base),
            default=None,
        )
        low = "-" if lowest is None else f"x{lowest[0]:.2f} (at {lowest[1]:g})"
        lines.append(
            f"| {meta['backend']} | {_cpu(meta)} | `{res['_file']}` |"
            f" {ratio(0.001, 'step_ms')} | "
            f"{ratio(0.001, 'step_ms', floor)} | {ratio(0.01, 'step_ms')} | "
            f"{ratio(0.01, 'forward_ms')} | {low} |"
        )
    return lines + [""]


def conv_section(results):
    lines = [
        "## SparseConv2D vs dense Conv2D (`benchmarks/sparse_conv_step.py`)",
        "",
        "Median training step in ms; 64 -> 64 channels, 3x3, 32x32 images,",
        "batch 32 (LeNet-5 C3: 6 -> 16 maps, 5x5, 14x14). Speed-up > 1 means",
        "the sparse layer is faster than the dense convolution of the same shape.",
        "",
    ]
    for res in results:
        meta, rows = res["meta"], res["rows"]
        lines += [f"### {meta['backend']}", "", _env_line(meta), ""]
        lines += ["| pattern | density | implementation | dense ms | sparse ms | speed-up |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(
                f"| {r['case']} | {r['density']:.3f} | {r['implementation']} | "
                f"{r['dense_step_ms']:.2f} | {r['sparse_step_ms']:.2f} | x{r['speedup']:.2f} |"
            )
        lines.append("")
    return lines


def wide_section(results):
    lines = [
        "## Very wide layers (`benchmarks/wide_layer.py`)",
        "",
        "Adam training step (median ms) and peak resident memory of the whole",
        "process (MiB), one implementation per process, one after another (so",
        "not in turns: foreign load can fall on one row; address space capped",
        "at 16 GiB). `sparse` is the plain `keras.ops` gather + segment-sum;",
        "`tf_sparse`, `jax_bcoo`, `jax_bcsr`, `torch_sparse_csr` and",
        "`sparselinear` are the peers of `benchmarks/peers.py`. A masked dense",
        "kernel would need 16 GB (2M case) and 200 GB (10M case). Speed-up is",
        "the best other implementation's step time (same backend, same case,",
        "`csr`/`auto` excluded) over this row's.",
        "",
        "| backend | case | implementation | step ms | peak RSS MiB | speed-up vs best other |",
        "|---|---|---|---|---|---|",
    ]
    ours = ("auto", "csr")

    def key(res):
        r = res["result"]
        return (res["meta"]["backend"], r["nnz"], r["implementation"])

    for res in sorted(results, key=key):
        r, backend = res["result"], res["meta"]["backend"]
        others = [
            o["result"]["step_ms"] for o in results
            if o["meta"]["backend"] == backend and o["result"]["nnz"] == r["nnz"]
            and o["result"]["step_ms"] is not None
            and not o["result"]["implementation"].split()[0] in ours
        ]
        speedup = ""
        if r.get("step_ms") and r["implementation"].split()[0] in ours and others:
            speedup = f"x{min(others) / r['step_ms']:.2f}"
        step = r["step_ms"] if r.get("step_ms") is not None else f"failed: {r.get('error', '?')}"
        lines.append(
            f"| {backend} | {r['n_in']:,} -> {r['units']:,}, nnz {r['nnz']:,}, "
            f"batch {r['batch']} | {r['implementation']} | {step} | {r['peak_rss_mb']:,} | {speedup} |"
        )
    return lines + _env_footer(results)


def wide_ab_section(results):
    if not results:
        return []
    lines = [
        "## The wide layer with earlier code, on this machine (`benchmarks/wide_layer_ab.py`)",
        "",
        "The issue's wide-layer target (a step at least 1.5x faster than the",
        "figures of the time) was set against a run of older code on another",
        "machine. Here that code runs on the same machine as the working tree:",
        "each earlier revision's `keras_sparse` (extracted with `git archive`)",
        "and the working tree's train 200,000 -> 20,000 (2 M connections, batch",
        "64, Adam, `auto`) through the same `wide_layer.py`, in fresh processes",
        "whose order is shuffled in every pair. `x`: the earlier median step /",
        "the working tree's; `faster in`: pairs where the working tree was",
        "faster.",
        "",
        "| backend | code | commit | implementation | step ms (median) | each run | x | faster in | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, _, c in _cases(results):
        each = " / ".join(f"{v:.1f}" for v in c["step_ms"])
        speed = f"x{c['speedup']:.2f}" if "speedup" in c else ""
        faster = f"{c['head_faster_in']} of {len(c['step_ms'])}" if "speedup" in c else ""
        rss = f"{min(c['peak_rss_mb']):,}-{max(c['peak_rss_mb']):,}"
        lines.append(
            f"| {c['backend']} | {c['version']} | `{c['commit'][:10]}` | {c['implementation']}"
            f" | {c['median_step_ms']:.1f} | {each} | {speed} | {faster} | {rss} |"
        )
    return lines + _closing(results, "load_average_at_start", "at the start of each run")


def densenet_section(results):
    if not results:
        return []
    lines = [
        "## SparseNet vs DenseNet training throughput (`benchmarks/densenet_throughput.py`)",
        "",
        "Batch 64 of 32x32x3, 100 classes, SGD + Nesterov; one model per process.",
        "",
        "| backend | model | params | images/s | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    for res in results:
        r = res["result"]
        lines.append(
            f"| {res['meta']['backend']} | {r['model']} | {r['params']:,} | "
            f"{r['images_per_s']} | {r['peak_rss_mb']:,} |"
        )
    return lines + _env_footer(results)


def roundtrip_section(results):
    lines = ["## 10-million-connection `.keras` round trip (`benchmarks/big_roundtrip.py`)", ""]
    for res in results:
        r = res["result"]
        lines += [
            _env_line(res["meta"]),
            "",
            f"- shape {r['shape'][0]:,} x {r['shape'][1]:,}, nnz {r['nnz']:,}",
            f"- save {r['save_seconds']} s, load {r['load_seconds']} s, bit-exact: {r['bit_exact']}",
            f"- file {r['file_mb']} MiB vs raw indices + weights {r['raw_mb']} MiB "
            f"(ratio {r['file_over_raw']})",
            f"- JSON config {r['config_json_kb']} KiB; peak RSS {r['peak_rss_mb']:,} MiB",
            "",
        ]
    return lines


def fit_section(results):
    lines = [
        "## A whole `model.fit` epoch (`benchmarks/sparse_dense_fit.py`)",
        "",
        "9180 -> 230 -> Dense(1), Adam, `fit` on NumPy arrays, 40 batches of 256;",
        "models alternate epochs in one process; median epoch. Targets: `auto`",
        "at least 4x faster than masked dense at 1 % and 8x at 0.1 %. `floor`:",
        "the same model with only a bias in the layer's place (what `fit` costs",
        "around any product); `ceiling`: masked dense / floor, the speed-up of a",
        "product that took no time at all. `file`: the results file"
        " (`sparse_dense_fit_<file>.json`). `data`: how the batches reach `fit`",
        "(`numpy`, the targets' setting: NumPy arrays, shuffled by Keras;",
        "`numpy_unshuffled`: `shuffle=False`; `tf_dataset`: a cached",
        "`tf.data.Dataset` of batches); the ways of one file took turns in one",
        "process, and the targets are judged on the `numpy` rows only.",
        "",
        "| backend | file | data | density | auto runs | auto epoch s |"
        " masked dense s | Dense s | floor s | masked / auto | ceiling | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        backend = res["meta"]["backend"]
        rows = res["result"]["rows"]
        groups: dict = {}
        for r in rows:  # files from before `--data` have only NumPy rows
            groups.setdefault((r.get("data", "numpy"), r["density"]), {})[r["case"]] = r
        for (data, density), by in sorted(groups.items()):
            auto, masked = by["sparse_dense[auto]"], by["masked_dense"]
            ratio = masked["epoch_s"] / auto["epoch_s"]
            target = 8 if density <= 0.001 else 4
            floor = by.get("fit_floor")  # runs before the floor was added lack it
            floor_s = f"{floor['epoch_s']:.3f}" if floor else "-"
            ceiling = f"{masked['epoch_s'] / floor['epoch_s']:.2f}" if floor else "-"
            lines.append(
                f"| {backend} | {_short(res['_file'], 'sparse_dense_fit_')} | {data} |"
                f" {density:g} |"
                f" {auto['implementation']} |"
                f" {auto['epoch_s']:.3f} | {masked['epoch_s']:.3f} |"
                f" {by['keras_dense']['epoch_s']:.3f} | {floor_s} | {ratio:.2f} |"
                f" {ceiling} |"
                + (
                    f" {'met' if ratio >= target else 'missed'} ({target}x) |"
                    if data == "numpy"
                    else " - |"
                )
            )
    return (lines if results else lines[:-2]) + _closing(results, "load_average", "during the runs")


def _short(file_name, prefix):
    """A results file's name without `prefix` and `.json`."""
    return file_name.removeprefix(prefix).removesuffix(".json")


def _closing(results, load_key, when):
    """The end of a section: "not run yet" in place of its empty table, or the
    environments, the load average of each run and the runs' remarks."""
    if not results:
        return ["Not run yet: `bash benchmarks/run_all.sh` writes it.", ""]
    loads = ", ".join(
        f"{res['meta']['backend']} {res['result'][load_key][0]:.1f}" for res in results
    )
    remarks = sorted({res["result"]["remark"] for res in results if res["result"].get("remark")})
    return (
        _env_footer(results)
        + [f"Load average {when}: {loads}.", ""]
        + [f"Note: {r}" for r in remarks]
        + ([""] if remarks else [])
    )


def fit_instances_section(results):
    if not results:
        return []
    lines = [
        "### The same models built twice (`benchmarks/fit_instances.py`)",
        "",
        "A check of the method above (not in `run_all.sh`): every kind of model",
        "built twice alike, all taking turns of one `fit` epoch in one process;",
        "median epoch of each copy, and the slower copy's over the faster's.",
        "",
        "| backend | density | model | median epoch s, each copy | spread | epochs s, each copy |",
        "|---|---|---|---|---|---|",
    ]
    for res, r, row in _cases(results, "rows"):
        medians = " / ".join(f"{v:.3f}" for v in row["median_epoch_s_per_copy"])
        each = "; ".join(" ".join(f"{v:.2f}" for v in copy) for copy in row["epoch_s_per_copy"])
        lines.append(
            f"| {res['meta']['backend']} | {r['density']:g} | {row['case']} | {medians} |"
            f" x{row['spread']:.2f} | {each} |"
        )
    return lines + _closing(results, "load_average", "at the end of each run")


def _backend_path(res):
    """The backend, and on JAX the kernels' path in the steps timed."""
    path = res["result"].get("jax_in_step_path") or ""
    if res["meta"]["backend"] != "jax":
        return res["meta"]["backend"]
    return "jax (FFI)" if path.startswith("XLA FFI") else "jax (callback)"


def _threads_row_head(res, case):
    """The first cells of a kernels-inside-a-step row: backend (and JAX's
    path), cpu, case, kernel thread, cpus."""
    r = res["result"]
    return (
        f"| {_backend_path(res)} | {_cpu(res['meta'])} | {case['case']} |"
        f" {'yes' if r['kernel_thread'] else 'no'} | {r['cpus_allowed']} |"
    )


def threads_section(results):
    lines = [
        "## Kernels inside a step vs a fresh process, and the memory floor"
        " (`benchmarks/kernel_threads.py`)",
        "",
        "Median ms per call of the compiled kernels (`keras_sparse.ops.csr_cpu`):",
        "`fresh` before any Keras step, `in step` timed inside `train_on_batch`",
        "(JAX's FFI calls from a `jax.profiler` trace of the steps; `jax",
        "(callback)`: its `pure_callback` path, timed by a wrapper), `after` from",
        "the main thread once the steps ran. The sparse",
        "layer is the model's first, so the step has no input gradient. `floor`:",
        "bytes that must move / the machine's triad bandwidth. Target: in step",
        "within 1.2x of fresh; fresh within 2x of the floor (4x on the wide layer).",
        "",
        "| backend | cpu | case | kernel thread | cpus | kernel | fresh | in step | after |"
        " floor | in step / fresh | fresh / floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res, _, case in _cases(results):
        for op in ("forward", "input_grad", "values_grad"):
            ins = case["in_step_ms"][op]
            ratio = case["in_step_over_fresh"][op]
            lines.append(
                _threads_row_head(res, case)
                + f" {op} | {case['fresh_ms'][op]:.3f} | {_ms(ins, 'not in step')} |"
                f" {case['after_steps_ms'][op]:.3f} | {case['floor_ms'][op]:.3f} |"
                f" {_ms(ratio, '-')} | {case['fresh_over_floor'][op]:.2f} |"
            )
    # Runs before the idle gap was measured lack it.
    gapped = [(res, c) for res, _, c in _cases(results) if "fresh_after_gap_ms" in c]
    if gapped:
        lines += [
            "",
            "Inside a step a kernel starts a fraction of a millisecond to several",
            "milliseconds after the previous one (`gaps in step`: from the end of one",
            "kernel call to the start of the next, median and range). `fresh after",
            "gap`: the fresh calls again, each",
            "after the calling thread slept `gap` ms, in the same process before any",
            "Keras step, so without any framework work around them. `in step / after",
            "gap` near 1 says a kernel runs inside the step as fast as it runs after",
            "such an idle gap on its own; `after gap / floor` is the floor ratio of",
            "a kernel that starts cold.",
            "",
            "| backend | cpu | case | kernel thread | cpus | gap ms | gaps in step ms |"
            " kernel | fresh | fresh after gap | in step | in step / fresh |"
            " in step / after gap | after gap / floor |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for res, case in gapped:
            g = case["in_step_gap_ms"]
            for op in ("forward", "input_grad", "values_grad"):
                lines.append(
                    _threads_row_head(res, case)
                    + f" {case['gap_ms']:g} |"
                    f" {g['median']:.2f} ({g['min']:.2f}-{g['max']:.2f}) |"
                    f" {op} | {case['fresh_ms'][op]:.3f} |"
                    f" {case['fresh_after_gap_ms'][op]:.3f} |"
                    f" {_ms(case['in_step_ms'][op], 'not in step')} |"
                    f" {_ms(case['in_step_over_fresh'][op], '-')} |"
                    f" {_ms(case['in_step_over_fresh_after_gap'][op], '-')} |"
                    f" {case['fresh_after_gap_over_floor'][op]:.2f} |"
                )
    # Runs before the probe was added lack it.
    probed = [(res, c) for res, _, c in _cases(results) if "region_us" in c]
    if probed:
        lines += [
            "",
            "What one parallel region (an almost empty `prange`) costs to start and",
            "join, in microseconds: before the steps, from the thread that ran each",
            "kernel inside them, and after them; and how many host threads launched",
            "kernels inside the steps (libgomp keeps a worker team for each and",
            "spins only briefly once it manages more threads than cores). On JAX's",
            "FFI path XLA's threads run the kernels, where no probe follows them",
            "(`-`); its launching threads are those XLA's trace shows running them:",
            "",
            "| backend | cpu | case | kernel thread | cpus | region fresh us | in step us |"
            " after us | launching threads |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for res, case in probed:
            reg = case["region_us"]
            lines.append(
                _threads_row_head(res, case)
                + f" {reg['fresh']:.1f} |"
                f" {'-' if reg['in_step'] is None else format(reg['in_step'], '.1f')} |"
                f" {reg['after_steps']:.1f} |"
                f" {case['launching_threads_in_step']} |"
            )
    return (lines if results else lines[:-2]) + _closing(
        results, "load_average_at_start", "at the start of each run"
    )


def kernel_ab_section(results):
    lines = [
        "## Kernel changes side by side (`benchmarks/kernel_ab.py`)",
        "",
        "The compiled kernels of a base revision vs the working tree that",
        "changed them, both compiled in one process and taking turns on the same",
        "arrays; median ms per call; `speed-up` = base / new; `max diff`: largest",
        "difference between the two versions' outputs.",
        "",
        "| cpu | base | case | batch | dtype | kernel | base ms | new ms | speed-up | max diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res, r, case in _cases(results):
        for k in ("forward", "input_grad", "values_grad"):
            lines.append(
                f"| {_cpu(res['meta'])} | {r['base']} | {case['case']}"
                + (f", after {case['gap_ms']:g} ms idle" if case.get("gap_ms") else "")
                + " |"
                f" {case['batch']} | {case['dtype']} | {k} | {case['base_ms'][k]:.3f} |"
                f" {case['tree_ms'][k]:.3f} | x{case['speedup'][k]:.2f} |"
                f" {case['max_abs_diff'][k]:.3g} |"
            )
    return (lines if results else lines[:-2]) + _closing(
        results, "load_average_at_start", "at the start of each run"
    )


def kernel_thread_step_section(results):
    lines = [
        "## Training step with and without the kernel thread"
        " (`benchmarks/kernel_thread_step.py`)",
        "",
        "Median ms per `train_on_batch` step of the `csr` layer (9180 -> 230, batch",
        "256, `Dense(1)` head, Adam), in pairs of fresh processes, kernel thread",
        "off then on; `speed-up`: median over pairs of off / on; `on faster`: in how",
        "many pairs the kernel thread was faster. What `KERNEL_THREAD` rests on.",
        "",
        "| backend | cpu | results file | density | off ms (each pair) |"
        " on ms (each pair) | off / on | on faster |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res, r, row in _cases(results, "rows"):
        off = " / ".join(f"{t:.2f}" for t in row["off_ms"])
        on = " / ".join(f"{t:.2f}" for t in row["on_ms"])
        lines.append(
            f"| {res['meta']['backend']} | {_cpu(res['meta'])} | `{res['_file']}` |"
            f" {row['density']} | {off} | {on} | {row['speedup']:.2f} |"
            f" {row['on_faster_in']} of {len(row['on_ms'])} |"
        )
    return (lines if results else lines[:-2]) + _closing(
        results, "load_average_at_start", "at the start of each run"
    )


def auto_rule_section(results):
    """`auto`'s density rule checked on a machine other than the one the
    tables above come from: `sparse_dense_step.py` runs saved as
    `results/auto_rule_<backend>_<machine>.json`."""
    from keras_sparse.ops import backend as bindings

    lines = [
        "## `auto`'s density rule on another CPU (`benchmarks/sparse_dense_step.py`)",
        "",
        "The rule above was set from the tables below, all from one machine. These",
        "runs repeat the batch-256 step on a second kind of CPU: speed-up of each",
        "implementation over masked dense in the same run, what `auto` picks by",
        "the rule, and the fastest of `csr` and `dense` there. Target as above:",
        "`auto` never below 0.9x.",
        "",
        "| backend | cpu | density | csr x | dense x | auto x | auto picks | fastest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        meta, rows = res["meta"], res["rows"]
        limit = bindings.binding(meta["backend"]).AUTO_CSR_MAX_DENSITY
        for density in sorted({r["density"] for r in rows}):
            by = {r["case"]: r for r in rows if r["density"] == density}
            base = by["masked_dense"]["step_ms"]
            x = {
                k: base / by[f"sparse_dense[{k}]"]["step_ms"]
                for k in ("csr", "dense", "auto")
            }
            lines.append(
                f"| {meta['backend']} | {_cpu(meta)} | {density:g} | x{x['csr']:.2f} |"
                f" x{x['dense']:.2f} | x{x['auto']:.2f} |"
                f" {'csr' if density <= limit else 'dense'} |"
                f" {'csr' if x['csr'] >= x['dense'] else 'dense'} |"
            )
    if not results:
        return lines[:-2] + ["Not run yet.", ""]
    return lines + _env_footer(results) + [
        f"Note: {n}" for n in sorted({res["meta"].get("remark", "") for res in results}) if n
    ] + [""]


def _thresholds() -> tuple[str, str]:
    """`auto`'s density thresholds, read from the backend bindings."""
    from keras_sparse.ops import backend

    bindings = [backend.binding(n) for n in ("tensorflow", "jax", "torch")]

    def pct(v: float) -> str:
        return f"{100 * v:g} %"

    csr = " / ".join(pct(b.AUTO_CSR_MAX_DENSITY) for b in bindings)
    sparse = " / ".join(pct(b.AUTO_SPARSE_MAX_DENSITY) for b in bindings)
    return csr, sparse


def main():
    csr, sparse = _thresholds()
    header = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/report.py` from `benchmarks/results/*.json`;",
        "regenerate everything with `bash benchmarks/run_all.sh` (one process per",
        "backend). Machines are shared and noisy: compare ratios within one run.",
        "",
        "## Rules that `implementation=\"auto\"` follows",
        "",
        "- `SparseDense` (`keras_sparse.layers.sparse_dense.choose_implementation`),",
        f"  with the compiled CPU kernel (`csr`, Numba): `csr` up to {csr} density",
        "  (TensorFlow / JAX / PyTorch), `dense` above. Without it (GPU,",
        f"  no Numba): `sparse` up to {sparse} (TensorFlow / JAX /",
        "  PyTorch), `dense` above. A layer whose dense kernel would exceed 2^24",
        "  entries never uses `dense`. `sparse` = portable keras.ops gather +",
        "  segment-sum (never picked with `csr` available: within 10 % of it only",
        "  on tiny problems, 2x slower at batch 2048 and far slower on wide",
        "  layers); `csr` = compiled CPU kernels (`keras_sparse/ops/csr_cpu.py`)",
        "  reached through XLA FFI custom calls on JAX, `tf.numpy_function` on",
        "  TensorFlow and a `torch.autograd.Function` on PyTorch; `dense` = values",
        "  placed into the transposed dense kernel at flat positions computed once",
        "  (on TensorFlow by an XLA-compiled scatter with an XLA-compiled gather",
        "  gradient, `keras_sparse/ops/backend/tf_densify.py`: its own scatter ops",
        "  run serially without XLA; on PyTorch `index_copy_`), then one matmul.",
        "- `csr` kernels: input-major CSR, a block of up to 128 samples at a time,",
        "  the block's slice of the dense operand transposed 128 inputs at a time",
        "  into a cache-resident tile (row band by row band, in float32 squares of",
        "  16 x 16 with AVX-512 and 8 x 8 without, transposed in SIMD",
        "  registers), one vectorized multiply-add per connection; no transposed",
        "  copy of `x`, `dy` or `dx` is made; tiles of inputs without a",
        "  connection are skipped.",
        "- `SparseConv*D`: one grouped convolution when the connectivity is",
        "  block-diagonal with more than one group after permuting channels (run as",
        "  per-group convolutions on TensorFlow and JAX, whose XLA CPU grouped",
        "  convolution is 10-50x slower than dense, and natively on PyTorch); the",
        "  masked dense kernel otherwise",
        "  (`keras_sparse.layers.base_sparse_conv.choose_conv_implementation`).",
        "",
    ]
    lines = (
        header
        + targets_section(_load("sparse_dense_step_*.json") + _load("auto_rule_*.json"))
        + fit_section(_load("sparse_dense_fit_*.json"))
        + fit_instances_section(_load("fit_instances_*.json"))
        + threads_section(_load("kernel_threads_*.json"))
        + kernel_thread_step_section(_load("kernel_thread_step_*.json"))
        + kernel_ab_section(_load("kernel_ab_*.json"))
        + auto_rule_section(_load("auto_rule_*.json"))
        + dense_section(_load("sparse_dense_step_*.json"))
        + wide_section(
            [r for r in _load("wide_layer_*.json") if not r["_file"].startswith("wide_layer_ab_")]
        )
        + wide_ab_section(_load("wide_layer_ab_*.json"))
        + conv_section(_load("sparse_conv_step_*.json"))
        + densenet_section(_load("densenet_*.json"))
        + roundtrip_section(_load("big_roundtrip_*.json"))
    )
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
