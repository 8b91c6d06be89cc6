import numpy as np
import pytest

from keras_sparse.connectivity import GeneSetCoverageWarning, from_gene_sets, read_gmt

GENES = ["TP53", "BRCA1", "EGFR", "MYC", "KRAS"]


def write(tmp_path, text, name="sets.gmt", raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_read_gmt_and_build(tmp_path):
    path = write(
        tmp_path,
        "P1\tdesc one\tTP53\tMYC\n\nP2\thttp://x\tEGFR\tKRAS\tBRCA1\tKRAS\t\n",
    )
    sets = read_gmt(path)
    assert sets == {"P1": ["TP53", "MYC"], "P2": ["EGFR", "KRAS", "BRCA1"]}
    c = from_gene_sets(sets, GENES)
    assert c.output_names == ("P1", "P2")
    assert c.input_names == tuple(GENES)
    dense = c.to_dense(dtype=int)
    np.testing.assert_array_equal(dense[:, 0], [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(dense[:, 1], [0, 1, 1, 0, 1])


def test_partial_coverage_is_reported():
    with pytest.warns(GeneSetCoverageWarning, match=r"1 of 2 gene sets.*P1: 1/3"):
        c = from_gene_sets({"P1": ["TP53", "NOPE1", "NOPE2"], "P2": ["MYC"]}, GENES)
    assert c.fan_in.tolist() == [1, 1]


def test_set_with_no_member_found_is_refused_or_dropped():
    sets = {"P1": ["TP53"], "EMPTY": ["XX1", "XX2"]}
    with pytest.raises(ValueError, match=r"1 gene set\(s\).*'EMPTY: 0/2 found'"):
        from_gene_sets(sets, GENES)
    with pytest.warns(GeneSetCoverageWarning, match="Dropped 1 gene set"):
        c = from_gene_sets(sets, GENES, drop_empty=True)
    assert c.output_names == ("P1",)
    with pytest.raises(ValueError, match="No gene set is left"):
        from_gene_sets({"A": ["x"]}, GENES, drop_empty=True)


def test_gene_set_bad_inputs():
    with pytest.raises(ValueError, match="non-empty mapping"):
        from_gene_sets({}, GENES)
    with pytest.raises(TypeError, match="single string"):
        from_gene_sets({"P": "TP53"}, GENES)
    with pytest.raises(ValueError, match="expected unique names"):
        from_gene_sets({"P": ["TP53"]}, ["TP53", "TP53"])


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"P1 only-spaces TP53\n", r"line 1: expected tab-separated"),
        (b"P1\td\tTP53\nP1\td\tMYC\n", r"line 2: set 'P1' appears twice"),
        (b"\td\tTP53\n", r"line 1: the set name is empty"),
        (b"\n\n", r"holds no gene set"),
        (b"P1\td\tTP53\nP2\td\t\xff\xfe\n", r"not UTF-8.*line 2"),
    ],
)
def test_read_gmt_malformed(tmp_path, content, pattern):
    path = write(tmp_path, None, raw=content)
    with pytest.raises(ValueError, match=pattern):
        read_gmt(path)


def test_read_gmt_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_gmt(tmp_path / "nope.gmt")
