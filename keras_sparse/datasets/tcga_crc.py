"""TCGA colorectal tumours shipped in Bioconductor's NetSAM (MSI status).

Debian's `r-bioc-netsam` ships `extdata/exampleExpressionData.cct` (3,899
gene symbols x 90 TCGA COAD/READ tumours, TCGA open tier) and
`sampleAnnotation.tsi` (119 annotation columns, rows 2-3 give each
column's data type and category), among them the microsatellite status
of the TCGA paper (MSI-H 19, MSI-L 17, MSS 53, NA 1). The package is
fetched with `apt-get download` and unpacked with `dpkg-deb`; R is not
needed.
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

__all__ = ["TcgaCrc", "fetch_netsam", "load_tcga_crc"]

_FILES = ("exampleExpressionData.cct", "sampleAnnotation.tsi")
HOW_TO_GET = (
    "The TCGA colorectal data come from Debian's r-bioc-netsam: run "
    "`keras-sparse demo crc` with network access once (apt-get download "
    "r-bioc-netsam, unpacked into ~/.cache/keras-sparse/netsam), or unpack it "
    "yourself and pass --data DIR/usr/lib/R/site-library/NetSAM/extdata."
)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "keras-sparse" / "netsam"


def fetch_netsam(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Downloads `r-bioc-netsam` and copies its two data files into the cache.

    Returns:
        The folder holding the files.

    Raises:
        RuntimeError: offline or not on a Debian-like system (says how else).
    """
    target = Path(cache_dir) if cache_dir is not None else _cache_dir()
    if all((target / f).is_file() for f in _FILES):
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError("apt-get/dpkg-deb not found on this system.\n" + HOW_TO_GET)
    with tempfile.TemporaryDirectory() as tmp:
        null = subprocess.DEVNULL
        cmd = ["apt-get", "download", "r-bioc-netsam"]
        if subprocess.call(cmd, cwd=tmp, stdout=null, stderr=null) != 0:
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                subprocess.call(["apt-get", "update", "-qq"], stdout=null, stderr=null)
            if subprocess.call(cmd, cwd=tmp, stdout=null, stderr=null) != 0:
                raise RuntimeError(
                    "`apt-get download r-bioc-netsam` failed.\n" + HOW_TO_GET
                )
        deb = glob.glob(os.path.join(tmp, "r-bioc-netsam_*.deb"))[0]
        subprocess.check_call(["dpkg-deb", "-x", deb, os.path.join(tmp, "root")])
        target.mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            (found,) = glob.glob(os.path.join(tmp, "root", "**", name), recursive=True)
            shutil.copyfile(found, target / name)
    return target


@dataclasses.dataclass(frozen=True)
class TcgaCrc:
    """The NetSAM TCGA colorectal set.

    Attributes:
        expression: `(90, 3899)` float64 array, samples x genes.
        genes: gene symbols (columns).
        samples: TCGA barcodes (rows).
        annotation: pandas DataFrame, one row per sample (same order).
        source: the folder read.
    """

    expression: np.ndarray
    genes: tuple[str, ...]
    samples: tuple[str, ...]
    annotation: Any
    source: str

    def msi_high(self) -> tuple[np.ndarray, np.ndarray]:
        """`(mask of MSI-H or MSS tumours, label 1 = MSI-H)` (MSI-L, NA left out)."""
        status = self.annotation["MSI_status_TCGAPaper_threegroup"].astype(str)
        keep = status.isin(["MSI-H", "MSS"]).to_numpy()
        return keep, (status[keep] == "MSI-H").to_numpy().astype(np.int64)


def load_tcga_crc(path: str | None = None, fetch: bool = True) -> TcgaCrc:
    """Loads the expression matrix and the annotation.

    Raises:
        FileNotFoundError: files missing and `fetch` is False (or `path`
            lacks them).

    References:
        The Cancer Genome Atlas Network, "Comprehensive molecular
        characterization of human colon and rectal cancer", Nature 487
        (2012); Wang et al., "NetSAM", Bioinformatics 31 (2015).
    """
    import pandas as pd

    folder = Path(path) if path is not None else _cache_dir()
    if not all((folder / f).is_file() for f in _FILES):
        if path is not None or not fetch:
            raise FileNotFoundError(
                f"{folder} lacks {' and '.join(_FILES)}.\n{HOW_TO_GET}"
            )
        folder = fetch_netsam()
    expr = pd.read_csv(folder / _FILES[0], sep="\t", index_col=0)
    ann = pd.read_csv(folder / _FILES[1], sep="\t", index_col=0, skiprows=[1, 2])
    ann = ann.loc[expr.columns]
    return TcgaCrc(
        expression=np.ascontiguousarray(expr.to_numpy(np.float64).T),
        genes=tuple(map(str, expr.index)),
        samples=tuple(map(str, expr.columns)),
        annotation=ann,
        source=str(folder),
    )
