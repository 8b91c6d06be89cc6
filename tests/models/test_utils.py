"""trainable_param_count: the trainable-parameter sum, written once."""

import keras
import numpy as np

from keras_sparse import Connectivity
from keras_sparse.layers import SparseDense
from keras_sparse.models import trainable_param_count


def test_counts_trainable_scalars_only():
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(3),  # 5 * 3 + 3
            keras.layers.BatchNormalization(),  # 2 * 3 trainable, 2 * 3 not
            keras.layers.Dense(2, use_bias=False),  # 3 * 2
        ]
    )
    assert trainable_param_count(model) == 15 + 3 + 6 + 6
    assert model.count_params() == trainable_param_count(model) + 6
    model.layers[0].trainable = False
    assert trainable_param_count(model) == 6 + 6
    assert isinstance(trainable_param_count(model), int)


def test_sparse_layer_counts_its_connections():
    mask = np.array([[1, 0], [1, 1], [0, 1]])
    layer = SparseDense(2, Connectivity.from_dense(mask))
    layer.build((None, 3))
    assert trainable_param_count(layer) == int(mask.sum()) + 2
