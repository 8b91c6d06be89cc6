"""The influenza-challenge expression data shipped in Bioconductor's qusage.

Bioconductor's `qusage` package (Debian: `r-bioc-qusage`) ships
`data/fluExample.RData` (log2 expression of 4,147 genes in 252 blood
samples of 17 people sampled from 0 to 108 h after influenza inoculation,
GEO GSE30550, Huang et al. 2011) and `data/GeneSets.RData` (186 KEGG
pathways from MSigDB, 346 blood transcription modules, an interferon
gene set). The files are read with the PyPI package `rdata`; R is not
needed. The KEGG sets are under KEGG's terms: they are read from the
package's files at run time, never copied into this project.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FluChallenge",
    "load_flu_challenge",
    "fetch_qusage",
    "default_cache_dir",
    "DATA_ENV_VAR",
    "LATE_SYMPTOMATIC",
]

DATA_ENV_VAR = "KERAS_SPARSE_QUSAGE_DIR"
# The demo's target, as `FluChallenge.late_symptomatic()` computes it.
LATE_SYMPTOMATIC = "Condition == 'sx' and Hours.Numeric >= 45"
_FILES = ("fluExample.RData", "GeneSets.RData")
_R_LIBRARIES = (
    "/usr/lib/R/site-library",
    "/usr/local/lib/R/site-library",
    "/usr/lib/R/library",
)

HOW_TO_GET = (
    "The flu-challenge data come from Bioconductor's qusage package. Get them "
    "with one of:\n"
    "  keras-sparse fetch-data            (Debian/Ubuntu: apt-get download "
    "r-bioc-qusage, unpacked into the cache, no R needed)\n"
    "  apt-get download r-bioc-qusage && dpkg-deb -x r-bioc-qusage_*.deb DIR   "
    f"then set {DATA_ENV_VAR}=DIR/usr/lib/R/site-library/qusage/data\n"
    "  in R: BiocManager::install('qusage')   (found in the R library)\n"
    "or pass the folder holding fluExample.RData and GeneSets.RData explicitly."
)


@dataclasses.dataclass(frozen=True)
class FluChallenge:
    """The flu-challenge data set.

    Attributes:
        expression: `(252, 4147)` float64 NumPy array, log2 expression,
            samples x genes.
        genes: tuple of 4,147 HGNC symbols (columns of `expression`).
        samples: tuple of 252 GEO sample ids (rows of `expression`).
        metadata: pandas DataFrame, one row per sample in the same order,
            columns `SampleID, Subject, Hours, Hours.Numeric, Condition,
            Gender, Age` (`Condition` is `"sx"`, symptomatic, or `"asx"`).
        gene_sets: `{"KEGG": {...}, "BTM": {...}, "ISG": {...}}`, each a
            dict of set name -> list of gene symbols.
        source: the folder the files were read from.
    """

    expression: np.ndarray
    genes: tuple[str, ...]
    samples: tuple[str, ...]
    metadata: Any
    gene_sets: dict[str, dict[str, list[str]]]
    source: str

    def late_symptomatic(self, hours: float = 45.0) -> np.ndarray:
        """`(252,)` int array: 1 for symptomatic samples at >= `hours` h."""
        meta = self.metadata
        late = (meta["Condition"].astype(str) == "sx") & (
            meta["Hours.Numeric"].astype(float) >= hours
        )
        return late.to_numpy().astype(np.int64)


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/keras-sparse/qusage` (default `~/.cache/...`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "keras-sparse" / "qusage"


def _has_files(folder: Path) -> bool:
    return all((folder / f).is_file() for f in _FILES)


def _candidates(path: str | os.PathLike[str] | None) -> list[Path]:
    if path is not None:
        p = Path(path)
        return [p, p / "data", p / "qusage" / "data"]
    out = []
    if os.environ.get(DATA_ENV_VAR):
        out.append(Path(os.environ[DATA_ENV_VAR]))
    out.append(default_cache_dir())
    libs = [os.environ.get("R_LIBS_USER", ""), os.environ.get("R_LIBS", "")]
    for lib in [*filter(None, libs), *_R_LIBRARIES]:
        out.append(Path(lib) / "qusage" / "data")
    return out


def find_qusage_data(path: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding `fluExample.RData` and `GeneSets.RData`.

    Looked up in order: `path` (or its `data/` subfolder), the environment
    variable `KERAS_SPARSE_QUSAGE_DIR`, the cache folder that
    `fetch_qusage` fills, and the installed R libraries.

    Raises:
        FileNotFoundError: naming every place looked at and how to get the
            files.
    """
    looked = _candidates(path)
    for folder in looked:
        if _has_files(folder):
            return folder
    places = "\n".join(f"  {p}" for p in looked)
    raise FileNotFoundError(
        f"Could not find {' and '.join(_FILES)}; looked in:\n{places}\n{HOW_TO_GET}"
    )


def fetch_qusage(
    cache_dir: str | os.PathLike[str] | None = None, quiet: bool = False
) -> Path:
    """Downloads Debian's `r-bioc-qusage` and unpacks its data into the cache.

    Uses `apt-get download` (no root needed for the download itself; if
    the package lists are empty and this runs as root, `apt-get update`
    runs once) and `dpkg-deb -x`. Does nothing when the files are there.

    Returns:
        The folder holding the two `.RData` files.

    Raises:
        RuntimeError: when not on a Debian-like system or the download
            fails; the message says how to get the files otherwise.
    """
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if _has_files(target):
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError("apt-get/dpkg-deb not found on this system.\n" + HOW_TO_GET)
    out = None if not quiet else subprocess.DEVNULL
    with tempfile.TemporaryDirectory() as tmp:

        def download() -> int:
            return subprocess.call(
                ["apt-get", "download", "r-bioc-qusage"],
                cwd=tmp,
                stdout=out,
                stderr=out,
            )

        if download() != 0:
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                subprocess.call(["apt-get", "update", "-qq"], stdout=out, stderr=out)
            if download() != 0:
                raise RuntimeError(
                    "`apt-get download r-bioc-qusage` failed (is a Debian/Ubuntu "
                    "package source configured? try `sudo apt-get update`).\n"
                    + HOW_TO_GET
                )
        debs = glob.glob(os.path.join(tmp, "r-bioc-qusage_*.deb"))
        subprocess.check_call(["dpkg-deb", "-x", debs[0], os.path.join(tmp, "root")])
        found = glob.glob(
            os.path.join(tmp, "root", "**", "qusage", "data"), recursive=True
        )
        if not found or not _has_files(Path(found[0])):
            raise RuntimeError("The downloaded package holds no qusage data files.")
        target.mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            shutil.copyfile(os.path.join(found[0], name), target / name)
    return target


def load_flu_challenge(path: str | os.PathLike[str] | None = None) -> FluChallenge:
    """Loads the flu-challenge expression data and gene sets.

    Args:
        path: optional folder holding `fluExample.RData` and
            `GeneSets.RData` (or the qusage package folder). Default: see
            `find_qusage_data`.

    Returns:
        A `FluChallenge`.

    Raises:
        FileNotFoundError: when the files cannot be found (says how to
            get them).
        ImportError: when `rdata` is missing (`pip install
            "keras-sparse[bio]"`).

    References:
        Huang et al., "Temporal dynamics of host molecular responses
        differentiate symptomatic and asymptomatic influenza A infection",
        PLoS Genetics 7(8): e1002234 (2011); GEO GSE30550. Yaari et al.,
        "Quantitative set analysis for gene expression" (qusage), Nucleic
        Acids Research 41(18): e170 (2013).
    """
    folder = find_qusage_data(path)
    try:
        import rdata
    except ImportError as err:
        raise ImportError(
            'Reading the qusage data needs `rdata`: pip install "keras-sparse[bio]"'
        ) from err
    flu = rdata.read_rda(str(folder / "fluExample.RData"))
    matrix = flu["eset.full"]
    genes = tuple(str(g) for g in matrix.coords[matrix.dims[0]].values)
    samples = tuple(str(s) for s in matrix.coords[matrix.dims[1]].values)
    expression = np.ascontiguousarray(np.asarray(matrix.values, dtype=np.float64).T)
    meta = flu["flu.meta"].reset_index(drop=True)
    if tuple(meta["SampleID"].astype(str)) != samples:
        raise ValueError(
            f"{folder / 'fluExample.RData'}: flu.meta$SampleID does not follow the "
            "expression matrix's columns; the file is not the expected version."
        )
    sets = rdata.read_rda(str(folder / "GeneSets.RData"))

    def as_lists(d: Any) -> dict[str, list[str]]:
        return {str(k): [str(g) for g in np.atleast_1d(v)] for k, v in d.items()}

    gene_sets = {
        "KEGG": as_lists(sets["MSIG.geneSets"]),
        "BTM": as_lists(sets["BTM.geneSets"]),
        "ISG": {"ISG": [str(g) for g in np.atleast_1d(sets["ISG.geneSet"])]},
    }
    return FluChallenge(
        expression=expression,
        genes=genes,
        samples=samples,
        metadata=meta,
        gene_sets=gene_sets,
        source=str(folder),
    )
