"""What every sparse layer promises, through one shared harness, plus the
permanent on-disk names and the conv signatures."""

import inspect

import keras
import pytest

from helpers import run_sparse_layer_test
from keras_sparse.connectivity import random_connectivity
from keras_sparse.layers import SparseConv1D, SparseConv2D, SparseConv3D, SparseDense
from keras_sparse.layers.base_sparse_conv import BaseSparseConv
from keras_sparse.ops import backend

DENSE_IMPLS = ["sparse", "csr", "dense"]


@pytest.mark.parametrize("impl", DENSE_IMPLS)
@pytest.mark.parametrize("mutable", [False, True])
def test_sparse_dense_contract(impl, mutable):
    if impl == "csr" and not backend.csr_available():
        pytest.skip("no compiled kernels on this placement")
    conn = random_connectivity(12, 5, density=0.4, seed=0)
    kwargs = dict(units=5, connectivity=conn, implementation=impl,
                  mutable_connectivity=mutable)
    run_sparse_layer_test(SparseDense, kwargs, (8, 12), (8, 5))


@pytest.mark.parametrize(
    "cls, input_shape, output_shape",
    [
        (SparseConv1D, (4, 9, 6), (4, 7, 8)),
        (SparseConv2D, (4, 7, 7, 6), (4, 5, 5, 8)),
        (SparseConv3D, (2, 5, 5, 5, 6), (2, 3, 3, 3, 8)),
    ],
)
@pytest.mark.parametrize("mutable", [False, True])
def test_sparse_conv_contract(cls, input_shape, output_shape, mutable):
    conn = random_connectivity(6, 8, density=0.5, seed=1)
    kwargs = dict(filters=8, kernel_size=3, connectivity=conn, mutable_connectivity=mutable)
    run_sparse_layer_test(cls, kwargs, input_shape, output_shape)


REGISTERED = {
    "keras_sparse>SparseDense": "keras_sparse.layers.SparseDense",
    "keras_sparse>SparseConv1D": "keras_sparse.layers.SparseConv1D",
    "keras_sparse>SparseConv2D": "keras_sparse.layers.SparseConv2D",
    "keras_sparse>SparseConv3D": "keras_sparse.layers.SparseConv3D",
    "keras_sparse>SparseVarianceScaling": "keras_sparse.initializers.SparseVarianceScaling",
    "keras_sparse>AggregationNet": "keras_sparse.models.AggregationNet",
    "keras_sparse>SparseNet": "keras_sparse.models.SparseNet",
    "keras_sparse>DenseNet": "keras_sparse.models.DenseNet",
}


@pytest.mark.parametrize("name, path", sorted(REGISTERED.items()))
def test_registered_names_are_a_permanent_contract(name, path):
    # These names are written into every saved .keras file: renaming a class
    # or its package must keep them loadable.
    import importlib

    module, attr = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), attr)
    assert keras.saving.get_registered_name(cls) == name
    assert keras.saving.get_registered_object(name) is cls


@pytest.mark.parametrize("cls", [SparseConv1D, SparseConv2D, SparseConv3D])
def test_conv_signatures_equal_the_base_without_rank(cls):
    base = inspect.signature(BaseSparseConv.__init__).parameters
    ours = inspect.signature(cls.__init__).parameters
    expected = [(p.name, p.default) for p in base.values() if p.name != "rank"]
    assert [(p.name, p.default) for p in ours.values()] == expected
