"""The benchmark scripts run, and the peers they time compute `x @ W + b`.

Nothing here is timed: speed lives in `benchmarks/` and docs/benchmarks.md.
"""

import importlib.util
import json
import os
import sys

import pytest

from helpers import BACKEND

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "benchmarks"))

import peers  # noqa: E402
import sparse_dense_step  # noqa: E402
import wide_layer  # noqa: E402


@pytest.mark.parametrize(
    "peer",
    [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                backend != BACKEND
                or (name == "sparselinear" and importlib.util.find_spec("sparselinear") is None),
                reason=f"{name} runs on {backend}"
                + (" and is an optional build (benchmarks/README.md)" if name == "sparselinear" else ""),
            ),
        )
        for name, backend in peers.PEERS.items()
    ],
)
def test_peer_matches_numpy(peer):
    wide_layer.check_against_numpy(peer, gradient=True)


@pytest.mark.parametrize("impl", ["sparse", "csr", "auto"])
def test_sparse_dense_matches_numpy_in_the_benchmark_harness(impl):
    wide_layer.check_against_numpy(impl, gradient=True)


def test_peer_on_the_wrong_backend_is_refused():
    other = next(name for name, backend in peers.PEERS.items() if backend != BACKEND)
    from keras_sparse.connectivity import random_connectivity

    with pytest.raises(ValueError, match="runs on"):
        peers.make_peer(other, random_connectivity(10, 3, density=0.5, seed=0))


def test_sparse_dense_step_writes_rows_for_every_case(tmp_path):
    out = tmp_path / "r.json"
    sparse_dense_step.main(
        ["--n-in", "60", "--units", "7", "--batch", "4", "--densities", "0.1", "1.0",
         "--steps", "2", "--rounds", "2", "--warmup", "1", "--out", str(out)]
    )
    result = json.loads(out.read_text())
    cases = {(r["case"], r["density"]) for r in result["rows"]}
    assert len(cases) == 2 * 8  # 7 cases and the SciPy floor, at 2 densities
    assert all(r["forward_ms"] > 0 for r in result["rows"])
    assert result["meta"]["backend"] == BACKEND


def test_sparse_training_speed_quick_writes_every_form(tmp_path):
    import sparse_training_speed

    out = tmp_path / "s.json"
    sparse_training_speed.main(["--quick", "--out", str(out)])
    result = json.loads(out.read_text())
    rows = result["result"]["rows"]
    assert {r["form"] for r in rows} == set(sparse_training_speed.FORMS)
    assert all(r["step_ms"] > 0 for r in rows)
    assert result["meta"]["backend"] == BACKEND


@pytest.mark.parametrize("rule", ["set", "rigl"])
def test_masked_dense_peer_matches_sparse_dense_and_keeps_nnz(rule):
    """The masked-dense form computes what SparseDense computes, and its
    drop/grow keeps the active count, zeroes regrown weights and slots."""
    import keras
    import numpy as np
    import sparse_training_speed as sts

    from keras_sparse.connectivity import random_connectivity
    from keras_sparse.layers import SparseDense

    conn = random_connectivity(12, 9, density=0.3, seed=1)
    mask = np.zeros((12, 9), "float32")
    mask[conn.input_indices, conn.output_indices] = 1.0
    masked = sts.MaskedDense(9, mask, name="hidden1")
    sparse = SparseDense(9, conn)
    x = np.random.default_rng(0).random((5, 12), dtype=np.float32)
    masked.build((None, 12))
    sparse.build((None, 12))
    dense_kernel = keras.ops.convert_to_numpy(masked.kernel)
    sparse.kernel_values.assign(dense_kernel[conn.input_indices, conn.output_indices])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(masked(x)),
        keras.ops.convert_to_numpy(sparse(x)),
        rtol=1e-5,
        atol=1e-6,
    )

    model = keras.Sequential([keras.Input((12,)), masked, keras.layers.Dense(3)])
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        "sparse_categorical_crossentropy",
    )
    y = np.array([0, 1, 2, 0, 1], "int32")
    model.train_on_batch(x, y)
    before = keras.ops.convert_to_numpy(masked.mask).copy()
    sts.MaskedDropGrow(model, [masked], rule, (x, y), batch_size=4).update(1)
    after = keras.ops.convert_to_numpy(masked.mask)
    kernel = keras.ops.convert_to_numpy(masked.kernel)
    assert after.sum() == before.sum() == conn.nnz
    grown = (after == 1) & (before == 0)  # (a dropped one may be regrown)
    assert 0 < grown.sum() <= int(0.3 * conn.nnz)
    assert np.all(kernel[grown] == 0) and np.all(kernel[after == 0] == 0)
    (slot,) = sts.optimizer_slots(model.optimizer, masked.kernel)
    assert np.all(keras.ops.convert_to_numpy(slot)[grown] == 0)


def test_kernel_threads_quick_reports_every_kernel(tmp_path):
    import kernel_threads

    out = tmp_path / "k.json"
    kernel_threads.main(
        ["--quick", "--kernel-thread", "--gap-ms", "0.5", "--out", str(out)]
    )
    result = json.loads(out.read_text())["result"]
    (case,) = result["cases"]
    assert result["kernel_thread"] is True
    assert case["gap_ms"] == 0.5
    for op in kernel_threads.OPS:
        assert case["fresh_ms"][op] > 0 and case["floor_ms"][op] > 0
        assert case["fresh_after_gap_ms"][op] > 0
    # Gaps between the step's kernel calls, measured around the framework's work.
    gaps = case["in_step_gap_ms"]
    assert 0 < gaps["min"] <= gaps["median"] <= gaps["max"]
    assert case["in_step_over_fresh_after_gap"]["input_grad"] is None
    assert case["in_step_over_fresh_after_gap"]["forward"] > 0
    # The sparse layer is the model's first: no input gradient in the step.
    assert case["in_step_calls"]["input_grad"] == 0
    assert case["in_step_calls"]["forward"] >= 3
    assert case["in_step_calls"]["values_grad"] >= 3
    assert case["launching_threads_in_step"] >= 1
    assert all(case["region_us"][k] > 0 for k in ("fresh", "after_steps"))
    if BACKEND == "jax":
        # JAX's FFI calls, timed from XLA's trace; no probe follows them.
        assert result["jax_in_step_path"].startswith("XLA FFI")
        assert case["region_us"]["in_step"] is None
    else:
        assert case["region_us"]["in_step"] > 0


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's callback path")
def test_kernel_threads_quick_jax_callback_path(tmp_path):
    import kernel_threads

    out = tmp_path / "k.json"
    kernel_threads.main(["--quick", "--jax-path", "callback", "--out", str(out)])
    result = json.loads(out.read_text())["result"]
    (case,) = result["cases"]
    assert result["jax_in_step_path"] == "jax.pure_callback"
    assert case["in_step_calls"]["forward"] >= 3
    assert case["region_us"]["in_step"] > 0


def test_sparse_dense_fit_times_every_model(tmp_path):
    import sparse_dense_fit

    out = tmp_path / "f.json"
    sparse_dense_fit.main(
        ["--n-in", "40", "--units", "5", "--batch", "8", "--batches", "2",
         "--densities", "0.2", "--rounds", "1", "--out", str(out)]
    )
    rows = json.loads(out.read_text())["result"]["rows"]
    assert {r["case"] for r in rows} == {
        "sparse_dense[auto]", "masked_dense", "keras_dense", "fit_floor"
    }
    assert all(r["epoch_s"] > 0 for r in rows)


def test_sparse_dense_fit_feeds_the_data_every_way(tmp_path):
    import sparse_dense_fit

    out = tmp_path / "f.json"
    sparse_dense_fit.main(
        ["--n-in", "40", "--units", "5", "--batch", "8", "--batches", "2",
         "--densities", "0.2", "--rounds", "1", "--out", str(out),
         "--data", "numpy", "numpy_unshuffled", "tf_dataset"]
    )
    result = json.loads(out.read_text())["result"]
    assert result["data"] == ["numpy", "numpy_unshuffled", "tf_dataset"]
    rows = result["rows"]
    assert len(rows) == 4 * 3
    for data in result["data"]:
        auto = next(
            r for r in rows if r["data"] == data and r["case"] == "sparse_dense[auto]"
        )
        assert auto["speedup_of_auto"] == 1.0 and auto["epoch_s"] > 0
    with pytest.raises(SystemExit):  # argparse names the choices
        sparse_dense_fit.main(["--data", "pandas"])


def test_fit_instances_times_every_copy(tmp_path):
    import fit_instances

    out = tmp_path / "i.json"
    fit_instances.main(
        ["--n-in", "40", "--units", "5", "--batch", "8", "--batches", "2",
         "--density", "0.2", "--copies", "2", "--rounds", "2", "--out", str(out)]
    )  # fmt: skip
    rows = json.loads(out.read_text())["result"]["rows"]
    assert [r["case"] for r in rows] == [
        "sparse_dense[auto]", "masked_dense", "keras_dense", "fit_floor"
    ]  # fmt: skip
    for r in rows:
        copies = r["epoch_s_per_copy"]
        assert len(copies) == 2 and all(len(c) == 2 and min(c) > 0 for c in copies)
        medians = r["median_epoch_s_per_copy"]
        assert r["spread"] == round(max(medians) / min(medians), 2)


@pytest.mark.skipif(
    BACKEND != "torch",
    reason="NumPy-only kernels, no backend involved: checked once, in the torch run "
    "(it compiles two versions of every kernel, about 40 s)",
)
def test_kernel_ab_compares_a_revision_with_the_working_tree(tmp_path):
    import kernel_ab

    out = tmp_path / "ab.json"
    kernel_ab.main(
        ["--base", "HEAD", "--cases", "quick", "--rounds", "2", "--gap-ms", "0.5",
         "--out", str(out)]
    )  # fmt: skip
    result = json.loads(out.read_text())["result"]
    (case,) = result["cases"]
    assert case["gap_ms"] == 0.5
    for kernel in kernel_ab.KERNELS:
        assert case["base_ms"][kernel] > 0 and case["tree_ms"][kernel] > 0
        # Both versions compute the same product (float32 sums may differ
        # in the last bits when a change reorders them).
        assert case["max_abs_diff"][kernel] < 1e-4


def test_kernel_thread_step_pairs_processes_off_and_on(tmp_path):
    import kernel_thread_step

    out = tmp_path / "k.json"
    kernel_thread_step.main(
        ["--quick", "--pairs", "1", "--steps", "2", "--densities", "0.1",
         "--out", str(out)]
    )  # fmt: skip
    result = json.loads(out.read_text())["result"]
    (row,) = result["rows"]
    assert row["density"] == 0.1 and len(row["off_ms"]) == len(row["on_ms"]) == 1
    assert row["off_ms"][0] > 0 and row["on_ms"][0] > 0
    assert abs(row["speedup"] - row["off_ms"][0] / row["on_ms"][0]) <= 0.011
    assert row["on_faster_in"] in (0, 1)


@pytest.mark.skipif(
    BACKEND != "torch",
    reason="Backend-independent harness (each child process picks its backend): checked "
    "once, in the torch run (the extracted revision compiles every kernel, about 40 s)",
)
def test_wide_layer_ab_runs_a_revision_beside_the_working_tree(tmp_path):
    import subprocess

    import wide_layer_ab

    wide_layer_ab.main(
        ["--base", "HEAD", "--backends", BACKEND, "--case", "quick", "--pairs", "1",
         "--steps", "2", "--out-dir", str(tmp_path)]
    )  # fmt: skip
    written = json.loads((tmp_path / f"wide_layer_ab_{BACKEND}.json").read_text())
    assert written["meta"]["backend"] == BACKEND
    tree, base = written["result"]["cases"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
        cwd=os.path.dirname(HERE),
    ).stdout.strip()  # fmt: skip
    assert tree["version"] == "working tree" and tree["commit"].startswith(head)
    assert base["version"] == "HEAD" and base["commit"] == head
    for case in (tree, base):
        assert case["implementation"] == "auto (csr)"
        assert len(case["step_ms"]) == 1 and case["step_ms"][0] > 0
        assert case["peak_rss_mb"][0] > 0
    assert base["speedup"] == round(base["step_ms"][0] / tree["step_ms"][0], 2)
    assert base["head_faster_in"] == int(tree["step_ms"][0] < base["step_ms"][0])
