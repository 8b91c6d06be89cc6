"""`keras-sparse fit` end to end on small files the tests write, and bad files."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from keras_sparse.cli import main

N_SAMPLES, N_GENES = 48, 30
GENES = [f"G{i}" for i in range(N_GENES)]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_SAMPLES, N_GENES)) + 5.0
    groups = np.repeat([f"s{k}" for k in range(12)], 4)
    # The signal sits in genes 0-4, all members of pathway P_signal.
    label = (x[:, :5].sum(1) > 25.0).astype(int)
    samples = [f"S{i:03d}" for i in range(N_SAMPLES)]
    expr = pd.DataFrame(x, index=samples, columns=GENES)
    expr.index.name = "sample"
    expr_path = tmp_path / "expr.csv"
    expr.to_csv(expr_path)
    labels = pd.DataFrame(
        {
            "sample": samples,
            "status": np.where(label == 1, "case", "control"),
            "score": x[:, 0],
            "subject": groups,
        }
    )
    labels_path = tmp_path / "labels.csv"
    labels.to_csv(labels_path, index=False)
    gmt = tmp_path / "sets.gmt"
    gmt.write_text(
        "P_signal\tsignal genes\t" + "\t".join(GENES[:5]) + "\n"
        "P_noise\tnoise\t" + "\t".join(GENES[5:15]) + "\tNOT_IN_DATA\n"
        "P_rest\trest\t" + "\t".join(GENES[15:]) + "\n"
    )
    return dict(
        expr=str(expr_path),
        labels=str(labels_path),
        gmt=str(gmt),
        tmp=tmp_path,
        expr_df=expr,
    )


def fit_args(files, out, **overrides):
    args = {
        "--expression": files["expr"],
        "--labels": files["labels"],
        "--label-column": "status",
        "--gene-sets": files["gmt"],
        "--group-column": "subject",
        "--output": str(out),
        "--epochs": "3",
        "--folds": "3",
        "--importance-repeats": "2",
    }
    args.update(overrides)
    argv = ["fit"]
    for k, v in args.items():
        if v is not None:
            argv += [k, v]
    return argv


def test_fit_end_to_end_classification(files, capsys):
    out = files["tmp"] / "out"
    assert main(fit_args(files, out)) == 0
    printed = capsys.readouterr().out
    assert "pathway network" in printed and "linear baseline" in printed
    assert "classes of 'status': 'case': " in printed
    names = sorted(os.listdir(out))
    assert names == [
        "comparison.csv",
        "comparison_folds.csv",
        "edge_weights.csv",
        "model.keras",
        "pathway_importance.csv",
        "pathways.png",
        "run_info.json",
    ]
    edges = pd.read_csv(out / "edge_weights.csv")
    assert list(edges.columns) == ["gene", "pathway", "weight"]
    assert len(edges) == N_GENES  # one row per connection: every gene in one set
    assert not edges.duplicated(["gene", "pathway"]).any()
    assert set(edges.loc[edges.pathway == "P_signal", "gene"]) == set(GENES[:5])
    assert np.isfinite(edges.weight).all()
    comparison = pd.read_csv(out / "comparison.csv")
    assert len(comparison) == 4
    assert set(comparison.metric) == {"ROC AUC"}
    importance = pd.read_csv(out / "pathway_importance.csv")
    assert set(importance.pathway) == {"P_signal", "P_noise", "P_rest"}
    info = json.loads((out / "run_info.json").read_text())
    assert set(info["classes"]) == {"case", "control"}
    assert sum(info["classes"].values()) == N_SAMPLES
    assert info["n_groups"] == 12
    folds = pd.read_csv(out / "comparison_folds.csv")
    assert folds.fold.nunique() == 3


def test_fit_regression_with_tsv_and_edge_table(files, tmp_path):
    tsv = tmp_path / "expr.tsv"
    files["expr_df"].to_csv(tsv, sep="\t")
    edges = tmp_path / "edges.csv"
    pd.DataFrame({"gene": GENES[:10], "pathway": ["A"] * 5 + ["B"] * 5}).to_csv(
        edges, index=False
    )
    out = tmp_path / "reg"
    argv = fit_args(
        files,
        out,
        **{
            "--expression": str(tsv),
            "--gene-sets": str(edges),
            "--label-column": "score",
            "--task": "regression",
            "--group-column": None,
        },
    )
    assert main(argv) == 0
    comparison = pd.read_csv(out / "comparison.csv")
    assert set(comparison.metric) == {"R2"}
    assert len(pd.read_csv(out / "edge_weights.csv")) == 10


def _bad(files, tmp_path, capsys, argv, pattern):
    out = tmp_path / "bad_out"
    rc = main(argv if argv[0] == "fit" else fit_args(files, out))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "keras-sparse: error:" in err
    assert pattern in err, err
    # Nothing partial that looks like a result.
    if out.exists():
        assert not [p for p in os.listdir(out) if not p.startswith(".")]
    return err


def test_missing_label_column(files, tmp_path, capsys):
    argv = fit_args(files, tmp_path / "bad_out", **{"--label-column": "nope"})
    err = _bad(files, tmp_path, capsys, argv, "column 'nope' is not in")
    assert "'status'" in err  # lists what is there


def test_missing_group_column(files, tmp_path, capsys):
    argv = fit_args(files, tmp_path / "bad_out", **{"--group-column": "patient"})
    _bad(files, tmp_path, capsys, argv, "--group-column: column 'patient'")


def test_no_overlap_reports_overlap(files, tmp_path, capsys):
    gmt = tmp_path / "other.gmt"
    gmt.write_text("P1\td\tENSG0001\tENSG0002\n")
    argv = fit_args(files, tmp_path / "bad_out", **{"--gene-sets": str(gmt)})
    _bad(files, tmp_path, capsys, argv, "0 of the data's 30 genes are members")


def test_non_numeric_expression(files, tmp_path, capsys):
    df = files["expr_df"].astype(object)
    df.iloc[3, 4] = "high"
    path = tmp_path / "nonnum.csv"
    df.to_csv(path)
    argv = fit_args(files, tmp_path / "bad_out", **{"--expression": str(path)})
    _bad(
        files,
        tmp_path,
        capsys,
        argv,
        "non-numeric value(s), e.g. 'high' for sample 'S003', gene 'G4'",
    )


def test_missing_expression_values(files, tmp_path, capsys):
    df = files["expr_df"].copy()
    df.iloc[7, 2] = np.nan
    path = tmp_path / "nan.csv"
    df.to_csv(path)
    argv = fit_args(files, tmp_path / "bad_out", **{"--expression": str(path)})
    _bad(
        files,
        tmp_path,
        capsys,
        argv,
        "1 missing or infinite value(s), e.g. sample 'S007', gene 'G2'",
    )


def test_labels_do_not_match_samples(files, tmp_path, capsys):
    labels = pd.read_csv(files["labels"]).iloc[:-2]
    labels.loc[0, "sample"] = "UNKNOWN"
    path = tmp_path / "labels_bad.csv"
    labels.to_csv(path, index=False)
    argv = fit_args(files, tmp_path / "bad_out", **{"--labels": str(path)})
    _bad(files, tmp_path, capsys, argv, "3 expression sample(s) have no label")


def test_missing_label_value(files, tmp_path, capsys):
    labels = pd.read_csv(files["labels"])
    labels.loc[5, "status"] = np.nan
    path = tmp_path / "labels_nan.csv"
    labels.to_csv(path, index=False)
    argv = fit_args(files, tmp_path / "bad_out", **{"--labels": str(path)})
    _bad(files, tmp_path, capsys, argv, "1 sample(s) have no value: ['S005']")


def test_missing_file_and_non_utf8(files, tmp_path, capsys):
    argv = fit_args(
        files, tmp_path / "bad_out", **{"--expression": str(tmp_path / "none.csv")}
    )
    _bad(files, tmp_path, capsys, argv, "file not found")
    raw = tmp_path / "latin1.csv"
    raw.write_bytes("sample,G\u00e9ne\nS1,1.0\n".encode("latin-1"))
    argv = fit_args(files, tmp_path / "bad_out", **{"--expression": str(raw)})
    _bad(files, tmp_path, capsys, argv, "not UTF-8")


def test_malformed_gmt(files, tmp_path, capsys):
    gmt = tmp_path / "broken.gmt"
    gmt.write_text("just one field\n")
    argv = fit_args(files, tmp_path / "bad_out", **{"--gene-sets": str(gmt)})
    _bad(files, tmp_path, capsys, argv, "line 1: expected tab-separated")


def test_too_few_groups_for_folds(files, tmp_path, capsys):
    argv = fit_args(files, tmp_path / "bad_out", **{"--folds": "20"})
    _bad(files, tmp_path, capsys, argv, "12 groups for folds=20")


def test_single_class(files, tmp_path, capsys):
    labels = pd.read_csv(files["labels"])
    labels["status"] = "case"
    path = tmp_path / "one_class.csv"
    labels.to_csv(path, index=False)
    argv = fit_args(files, tmp_path / "bad_out", **{"--labels": str(path)})
    _bad(files, tmp_path, capsys, argv, "at least two classes")


# --- issue 12, item 10: each of these failed (or passed silently) before ---


def test_duplicated_gene_columns_refused(files, tmp_path, capsys):
    text = "sample,G0,G0,G1\n" + "".join(f"S{i:03d},1,2,3\n" for i in range(N_SAMPLES))
    path = tmp_path / "dups.csv"
    path.write_text(text)
    argv = fit_args(files, tmp_path / "bad_out", **{"--expression": str(path)})
    _bad(
        files,
        tmp_path,
        capsys,
        argv,
        "duplicated column names (gene names) in its header: ['G0']",
    )


def test_output_naming_a_file_refused_before_training(files, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    rc = main(fit_args(files, target))
    captured = capsys.readouterr()
    assert rc == 2
    assert "--output: " in captured.err and "is not a folder" in captured.err
    assert "fold" not in captured.out  # nothing was trained
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("bad", ["case ", "Case"])
def test_label_classes_differing_in_space_or_case_refused(files, tmp_path, capsys, bad):
    labels = pd.read_csv(files["labels"])
    labels.loc[labels.index[labels.status == "case"][:2], "status"] = bad
    path = tmp_path / "labels_space.csv"
    labels.to_csv(path, index=False)
    argv = fit_args(files, tmp_path / "bad_out", **{"--labels": str(path)})
    err = _bad(
        files,
        tmp_path,
        capsys,
        argv,
        "differ only in surrounding spaces or letter case",
    )
    assert repr(bad) in err and "'case'" in err


def test_tab_separated_csv_is_read_as_tabs(files, tmp_path):
    from keras_sparse.cli.inputs import read_expression

    path = tmp_path / "tabs.csv"
    files["expr_df"].to_csv(path, sep="\t")
    x, samples, genes = read_expression(str(path))
    assert x.shape == (N_SAMPLES, N_GENES) and genes == GENES
    np.testing.assert_allclose(x, files["expr_df"].to_numpy())
    neither = tmp_path / "neither.csv"
    neither.write_text("sample;G0;G1\nS0;1;2\n")
    from keras_sparse.cli.inputs import InputFileError

    with pytest.raises(InputFileError, match="neither commas nor tabs"):
        read_expression(str(neither))


def test_sample_ids_are_text_000_is_not_0(files, tmp_path, capsys):
    expr = files["expr_df"].copy()
    expr.index = [str(i) for i in range(N_SAMPLES)]
    expr.index.name = "sample"
    e_path = tmp_path / "expr_ids.csv"
    expr.to_csv(e_path)
    labels = pd.read_csv(files["labels"])
    labels["sample"] = [f"{i:03d}" for i in range(N_SAMPLES)]
    l_path = tmp_path / "labels_ids.csv"
    labels.to_csv(l_path, index=False)
    argv = fit_args(
        files,
        tmp_path / "bad_out",
        **{"--expression": str(e_path), "--labels": str(l_path)},
    )
    err = _bad(files, tmp_path, capsys, argv, "do not match the expression samples")
    assert "'000'" in err


def test_help_is_fast_without_keras():
    """`keras-sparse --help` (and argument errors) import no Keras or backend."""
    import subprocess
    import sys

    for args in (["--help"], ["demo", "--folds", "1"]):
        run = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "keras_sparse.cli", *args],
            capture_output=True,
            text=True,
        )
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in run.stderr.splitlines()
            if line.startswith("import time:")
        }
        heavy = {"keras", "tensorflow", "jax", "torch"} & imported
        assert heavy == set(), (args, sorted(heavy))
    assert "--folds must be at least 2" in run.stderr


def test_fit_study_on_own_files(files, tmp_path, capsys):
    out = tmp_path / "study"
    argv = fit_args(
        files, out, **{"--importance-repeats": None, "--epochs": "2", "--folds": "3"}
    ) + [
        "--study",
        "default",
        "--seeds",
        "1",
        "--permutations",
        "2",
        "--controls",
        "2",
        "--no-planted",
        "--positive",
        "P_signal",
        "--min-size",
        "3",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "positive set vs 2 gene-permuted control hierarchies" in printed
    assert "labels vary within groups" in printed  # the null it could use, said
    nodes = pd.read_csv(out / "nodes.csv")
    assert set(nodes.node) == {"P_signal", "P_noise", "P_rest"}
    assert nodes.loc[nodes.node == "P_signal", "positive"].item()
    assert (out / "volcano.png").exists() and (out / "accuracy_tests.csv").exists()
    assert "=== learning curve" in printed and (out / "learning_curve.png").exists()
    curve = pd.read_csv(out / "learning_curve.csv")
    assert curve["size"].astype(str).iloc[-1] == "all"
    genes = pd.read_csv(out / "genes.csv")
    assert genes.q.between(0, 1).all() and len(genes) > 0
    bad = [("NOT_A_NODE" if a == "P_signal" else a) for a in argv]
    assert main(bad) == 2
    assert "--positive: 1 id(s) are not nodes" in capsys.readouterr().err
