"""NetSAM's TCGA colorectal files: parsing and the offline error."""

import numpy as np
import pytest

from keras_sparse.datasets.tcga_crc import load_tcga_crc


def test_reads_matrix_and_msi_labels(tmp_path):
    (tmp_path / "exampleExpressionData.cct").write_text(
        "GeneSymbol\tT1\tT2\tT3\tT4\nMLH1\t1.5\t0\t2\t3\nRAD50\t4\t5\t6\t7.25\n"
    )
    # Rows 2-3 describe the columns (type, category), as in NetSAM's file.
    (tmp_path / "sampleAnnotation.tsi").write_text(
        "Barcode\tgender\tMSI_status_TCGAPaper_threegroup\n"
        "data_type\tBIN\tCAT\ncategory\tclinical\tclinical\n"
        "T4\tmale\tMSS\nT2\tfemale\tMSI-L\nT1\tmale\tMSI-H\nT3\tfemale\tNA\n"
    )
    d = load_tcga_crc(str(tmp_path))
    assert d.genes == ("MLH1", "RAD50") and d.samples == ("T1", "T2", "T3", "T4")
    np.testing.assert_allclose(d.expression[:, 1], [4, 5, 6, 7.25])
    keep, y = d.msi_high()
    assert keep.tolist() == [True, False, False, True]  # MSI-L and NA left out
    assert y.tolist() == [1, 0]


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="r-bioc-netsam"):
        load_tcga_crc(str(tmp_path))
