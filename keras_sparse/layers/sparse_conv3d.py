"""`SparseConv3D`: a 3-D convolution with absent (channel -> filter) kernels."""

from __future__ import annotations

from typing import Any

import keras

from keras_sparse.layers.base_sparse_conv import BaseSparseConv

__all__ = ["SparseConv3D"]


@keras.saving.register_keras_serializable(package="keras_sparse")
class SparseConv3D(BaseSparseConv):
    """3-D convolution whose kernels exist only for connected channel pairs.

    Like `keras.layers.Conv3D`, but `connectivity` (shape
    `(input_channels, filters)`) says which input channel feeds which
    filter; only those kernels are parameters. See `BaseSparseConv` for the
    computation, the fan-in-aware initializer and the implementations.

    Args:
        filters: positive int, must equal `connectivity.num_outputs`.
        kernel_size: int or tuple of 3 ints.
        connectivity: `Connectivity` of shape `(input_channels, filters)`,
            e.g. `keras_sparse.connectivity.lenet5_c3_connectivity()`,
            `block_diagonal_connectivity(c_in, filters, groups)` or
            `random_connectivity(c_in, filters, density=0.5, seed=0)`.
        strides: int or tuple of 3 ints (default 1).
        padding: `"valid"` (default) or `"same"`.
        data_format: `"channels_last"` or `"channels_first"`.
        dilation_rate: int or tuple of 3 ints (default 1).
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Conv3D`;
            regularizers and constraints act on `kernel_values`,
            shape `(nnz, prod(kernel_size))`.
        implementation: `"auto"`, `"dense"` or `"grouped"`.
        mutable_connectivity: bool (default False). With True the
            connection indices live in integer variables and a
            `kernel_mask` is kept, so that `set_connectivity` (sparse
            training, `keras_sparse.training`) can move connections without
            retracing; the layer then always runs `"dense"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Input shape:
        5D tensor (batch, depth, height, width, channels) for
        `"channels_last"` (channels second for `"channels_first"`), any float
        dtype, or an integer dtype (cast to the layer's compute dtype, as
        Keras does).

    Output shape:
        5D tensor (batch, new_depth, new_height, new_width, filters)
        (`"channels_last"`).

    Raises:
        ValueError: for a non-positive `filters`, a `filters` that differs
            from `connectivity.num_outputs`, input channels that differ
            from `connectivity.num_inputs`, malformed `kernel_size`,
            `strides`, `dilation_rate`, `padding`, `data_format` or
            `implementation`.

    Example:

    >>> from keras_sparse.connectivity import random_connectivity
    >>> conn = random_connectivity(6, 16, density=0.5, seed=0)
    >>> layer = SparseConv3D(16, (3, 3, 3), conn)
    >>> y = layer(keras.ops.zeros((2,) + (8, 8, 8, 6)))

    References:
        LeCun et al., "Gradient-based learning applied to document
        recognition", Proc. IEEE 86(11), 1998 (partially connected C3).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        connectivity: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        implementation: str = "auto",
        mutable_connectivity: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            3,
            filters,
            kernel_size,
            connectivity,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            implementation=implementation,
            mutable_connectivity=mutable_connectivity,
            **kwargs,
        )
