"""The Reactome cache: reading, the offline error (no network in tests)."""

import pytest

from keras_sparse.datasets import reactome


def fill(folder):
    (folder / "relations.tsv").write_text("R-HSA-1\tR-HSA-11\nR-HSA-1\tR-HSA-12\n")
    (folder / "names.tsv").write_text(
        "R-HSA-1\tTop\tHomo sapiens\nR-HSA-11\tLeft\tHomo sapiens\n"
        "R-HSA-12\tRight\tHomo sapiens\n"
    )
    (folder / "uniprot_to_pathway.tsv").write_text(
        "P1\tR-HSA-11\turl\tLeft\tTAS\tHomo sapiens\n"
        "P2\tR-HSA-12\turl\tRight\tTAS\tHomo sapiens\n"
        "P3\tR-HSA-12\turl\tRight\tIEA\tHomo sapiens\n"
    )
    # Two symbols share P1; P9 has no pathway.
    (folder / "symbol_to_uniprot.tsv").write_text("GA\tP1\nGB\tP1\nGC\tP2\nGD\tP9\n")


def test_load_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(reactome.REACTOME_ENV_VAR, str(tmp_path))
    fill(tmp_path)
    r = reactome.load_reactome(fetch=False)
    assert r.relations == [("R-HSA-1", "R-HSA-11"), ("R-HSA-1", "R-HSA-12")]
    assert r.names["R-HSA-12"] == "Right"
    assert r.annotations == [("GA", "R-HSA-11"), ("GB", "R-HSA-11"), ("GC", "R-HSA-12")]
    assert r.descendants("R-HSA-1") == {"R-HSA-1", "R-HSA-11", "R-HSA-12"}


def test_offline_errors_say_how_to_get_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv(reactome.REACTOME_ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="pip download binn==0.1.1"):
        reactome.load_reactome(fetch=False)
    # Offline: every download command fails.
    monkeypatch.setattr(reactome, "_run", lambda *a, **k: 1)
    with pytest.raises(
        RuntimeError,
        match=r"failed \(no network(.|\n)*apt-get download r-bioc-org.hs.eg.db",
    ):
        reactome.fetch_reactome(tmp_path / "cache")
