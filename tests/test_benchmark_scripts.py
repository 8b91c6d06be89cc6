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
    assert len(cases) == 2 * 7
    assert all(r["forward_ms"] > 0 for r in result["rows"])
    assert result["meta"]["backend"] == BACKEND
