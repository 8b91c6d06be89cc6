"""Reactome's pathway hierarchy for human genes, built at run time.

Reactome's data are CC0. Its parent -> child pathway relations, pathway
names and UniProt -> lowest-pathway annotations (releases of January 2025)
are read from the files shipped in the MIT-licensed PyPI wheel `binn`
0.1.1 (Hartman et al. 2023), downloaded with `pip download` (nothing of
`binn` is installed or imported). Gene symbols are mapped to UniProt
accessions with Bioconductor's `org.Hs.eg.db` (NCBI Gene; Debian package
`r-bioc-org.hs.eg.db`, unpacked with `dpkg-deb`, read with `sqlite3`; R is
not needed). Only the human rows are kept, in
`~/.cache/keras-sparse/reactome` (about 3 MB).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["Reactome", "fetch_reactome", "load_reactome", "REACTOME_ENV_VAR"]

REACTOME_ENV_VAR = "KERAS_SPARSE_REACTOME_DIR"
_WHEEL = "binn==0.1.1"
_WHEEL_FILES = {
    "relations.tsv": "reactome_pathways_relation_2025_01_14.txt",
    "names.tsv": "reactome_pathways_names_2025_01_21.txt",
    "uniprot_to_pathway.tsv": "uniprot_2_reactome_2025_01_14.txt",
}
_SYMBOLS = "symbol_to_uniprot.tsv"
_FILES = (*_WHEEL_FILES, _SYMBOLS)

HOW_TO_GET = (
    "The Reactome hierarchy is built from two downloads (cached afterwards):\n"
    f"  pip download {_WHEEL} --no-deps     (Reactome files, CC0, in the binn wheel)\n"
    "  apt-get download r-bioc-org.hs.eg.db   (gene symbol -> UniProt, Debian)\n"
    "Run `keras-sparse fetch-data` on a machine with network access, or copy a "
    f"filled cache folder and set {REACTOME_ENV_VAR}=FOLDER."
)


def _cache_dir() -> Path:
    if os.environ.get(REACTOME_ENV_VAR):
        return Path(os.environ[REACTOME_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "keras-sparse" / "reactome"


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in _FILES)


def _run(cmd: list[str], cwd: str, quiet: bool) -> int:
    out = subprocess.DEVNULL if quiet else None
    return subprocess.call(cmd, cwd=cwd, stdout=out, stderr=out)


def fetch_reactome(
    cache_dir: str | os.PathLike[str] | None = None, quiet: bool = True
) -> Path:
    """Downloads and caches the human Reactome files and the symbol map.

    Does nothing when the cache is complete.

    Returns:
        The cache folder.

    Raises:
        RuntimeError: when a download fails (offline, no pip, no apt); the
            message says how to get the files otherwise.
    """
    target = Path(cache_dir) if cache_dir is not None else _cache_dir()
    if _complete(target):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not all((target / f).is_file() for f in _WHEEL_FILES):
            cmd = [sys.executable, "-m", "pip", "download", _WHEEL, "--no-deps",
                   "--quiet", "-d", tmp]  # fmt: skip
            wheels = []
            if _run(cmd, tmp, quiet) == 0:
                wheels = glob.glob(os.path.join(tmp, "binn-*.whl"))
            if not wheels:
                raise RuntimeError(
                    f"`pip download {_WHEEL}` failed (no network or no PyPI access?).\n"
                    + HOW_TO_GET
                )
            with zipfile.ZipFile(wheels[0]) as whl:
                for name, member in _WHEEL_FILES.items():
                    with whl.open(f"binn/data/downloads/{member}") as src:
                        lines = src.read().decode("utf-8").splitlines()
                    if name == "uniprot_to_pathway.tsv":
                        lines = [ln for ln in lines if ln.endswith("\tHomo sapiens")]
                    else:
                        lines = [ln for ln in lines if "R-HSA-" in ln]
                    (target / name).write_text("\n".join(lines) + "\n")
        if not (target / _SYMBOLS).is_file():
            if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
                raise RuntimeError(
                    "apt-get/dpkg-deb not found on this system.\n" + HOW_TO_GET
                )
            package = "r-bioc-org.hs.eg.db"
            if _run(["apt-get", "download", package], tmp, quiet) != 0:
                if hasattr(os, "geteuid") and os.geteuid() == 0:
                    _run(["apt-get", "update", "-qq"], tmp, quiet)
                if _run(["apt-get", "download", package], tmp, quiet) != 0:
                    raise RuntimeError(
                        f"`apt-get download {package}` failed (offline, or no Debian "
                        "package source configured?).\n" + HOW_TO_GET
                    )
            deb = glob.glob(os.path.join(tmp, "r-bioc-org.hs.eg.db_*.deb"))[0]
            root = os.path.join(tmp, "root")
            subprocess.check_call(["dpkg-deb", "-x", deb, root])
            (db,) = glob.glob(
                os.path.join(root, "**", "org.Hs.eg.sqlite"), recursive=True
            )
            con = sqlite3.connect(db)
            try:
                rows = con.execute(
                    "SELECT g.symbol, u.uniprot_id FROM gene_info g "
                    "JOIN uniprot u ON g._id = u._id ORDER BY g.symbol, u.uniprot_id"
                ).fetchall()
            finally:
                con.close()
            text = "".join(f"{s}\t{u}\n" for s, u in rows)
            (target / _SYMBOLS).write_text(text)
    return target


@dataclasses.dataclass(frozen=True)
class Reactome:
    """Human Reactome: relations, names, gene-symbol annotations.

    Attributes:
        relations: `(parent, child)` pathway id pairs (R-HSA-...).
        names: dict pathway id -> display name.
        annotations: `(gene symbol, lowest pathway id)` pairs.
        source: the folder read.
    """

    relations: list[tuple[str, str]]
    names: dict[str, str]
    annotations: list[tuple[str, str]]
    source: str

    def descendants(self, pathway: str) -> set[str]:
        """`pathway` and every pathway below it."""
        children: dict[str, list[str]] = {}
        for parent, child in self.relations:
            children.setdefault(parent, []).append(child)
        out, stack = set(), [pathway]
        while stack:
            node = stack.pop()
            if node not in out:
                out.add(node)
                stack.extend(children.get(node, ()))
        return out


def load_reactome(fetch: bool = True, quiet: bool = True) -> Reactome:
    """Loads the cached human Reactome hierarchy (fetching it if allowed).

    Args:
        fetch: download missing files (`fetch_reactome`); when False a
            missing cache raises `FileNotFoundError`.
        quiet: hide the download tools' output.

    Returns:
        A `Reactome`.

    Raises:
        FileNotFoundError: cache incomplete and `fetch=False`.
        RuntimeError: the download failed (says how to get the files).

    References:
        Milacic et al., "The Reactome Pathway Knowledgebase 2024", Nucleic
        Acids Research 52 (2024); data under CC0.
    """
    folder = _cache_dir()
    if not _complete(folder):
        if not fetch:
            raise FileNotFoundError(
                f"The Reactome cache {folder} is incomplete.\n" + HOW_TO_GET
            )
        folder = fetch_reactome(quiet=quiet)

    def rows(name: str) -> list[list[str]]:
        text = (folder / name).read_text()
        return [ln.split("\t") for ln in text.splitlines() if ln]

    relations = [(r[0], r[1]) for r in rows("relations.tsv")]
    names = {r[0]: r[1] for r in rows("names.tsv")}
    symbol_to_uniprot: dict[str, list[str]] = {}
    for symbol, uniprot in rows(_SYMBOLS):
        symbol_to_uniprot.setdefault(uniprot, []).append(symbol)
    pairs = set()
    for r in rows("uniprot_to_pathway.tsv"):
        for symbol in symbol_to_uniprot.get(r[0], ()):
            pairs.add((symbol, r[1]))
    return Reactome(
        relations=relations,
        names=names,
        annotations=sorted(pairs),
        source=str(folder),
    )
