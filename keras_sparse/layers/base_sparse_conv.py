"""Convolutions in which chosen (input channel -> filter) kernels do not exist."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_sparse._validation import int_tuple, one_of, positive_int
from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.initializers.sparse_variance_scaling import kernel_values_initializer
from keras_sparse.layers.connectivity_layer import ConnectivityLayer
from keras_sparse.ops import backend

__all__ = ["BaseSparseConv", "choose_conv_implementation"]

CONV_IMPLEMENTATIONS = ("auto", "dense", "grouped")


def block_diagonal_groups(
    connectivity: Connectivity,
) -> tuple[int, np.ndarray, np.ndarray] | None:
    """Detects a block-diagonal pattern, up to permutations.

    The pattern is block-diagonal with `g` groups when input channels and
    filters split into `g` groups of equal sizes such that each input
    channel feeds exactly the filters of its own group (complete blocks),
    as in a grouped convolution after reordering the channels.

    Returns:
        `(groups, input_order, output_order)`, where `input_order` /
        `output_order` are permutations that make the blocks contiguous
        (group 0 first, members ascending), or `None` if the pattern is
        not block-diagonal (empty connectivities included). A full
        connectivity gives `groups == 1`.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n_in, n_out = connectivity.shape
    nnz = connectivity.nnz
    if (
        nnz == 0
        or (connectivity.fan_in == 0).any()
        or (connectivity.fan_out == 0).any()
    ):
        return None
    rows = connectivity.input_indices.astype(np.int64)
    cols = connectivity.output_indices.astype(np.int64) + n_in
    # Bipartite graph on n_in + n_out nodes.
    graph = sp.coo_array(
        (np.ones(nnz, dtype=np.int8), (rows, cols)), shape=(n_in + n_out, n_in + n_out)
    )
    groups, labels = connected_components(graph, directed=False)
    in_labels, out_labels = labels[:n_in], labels[n_in:]
    in_sizes = np.bincount(in_labels, minlength=groups)
    out_sizes = np.bincount(out_labels, minlength=groups)
    if (in_sizes != in_sizes[0]).any() or (out_sizes != out_sizes[0]).any():
        return None
    if nnz != groups * int(in_sizes[0]) * int(out_sizes[0]):
        return None  # some block is not complete
    # Number groups by their smallest input channel.
    first = np.full(groups, n_in)
    np.minimum.at(first, in_labels, np.arange(n_in))
    rank = np.empty(groups, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(groups)
    input_order = np.lexsort((np.arange(n_in), rank[in_labels]))
    output_order = np.lexsort((np.arange(n_out), rank[out_labels]))
    return int(groups), input_order, output_order


def choose_conv_implementation(connectivity: Connectivity) -> str:
    """The kernel `implementation="auto"` runs for a channel connectivity.

    `"grouped"` when the connectivity is block-diagonal with more than one
    group after permuting input channels and filters (it then runs as one
    grouped convolution, whose cost falls with the density); `"dense"` (the
    masked kernel in one ordinary convolution) otherwise. See
    `docs/benchmarks.md`.
    """
    blocks = block_diagonal_groups(connectivity)
    return "grouped" if blocks is not None and blocks[0] > 1 else "dense"


def _permutation(order: np.ndarray) -> tuple[Any, Any] | None:
    """`(order, inverse)` as backend constants, `None` for the identity."""
    if np.array_equal(order, np.arange(order.size)):
        return None
    inverse = np.argsort(order)
    return backend.host_constant(order), backend.host_constant(inverse)


@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """How a sparse convolution forms its kernel (immutable, one per
    connectivity).

    Attributes:
        implementation: `"dense"` or `"grouped"`.
        index: `(slots, filters)` integer tensor: the row of `kernel_values`
            in each kernel slot (`nnz` for an absent kernel), `None` for a
            full connectivity, or a function of nothing returning that
            tensor (a connectivity held in variables).
        groups: number of groups (`"grouped"`), else 1.
        input_permutation: `(order, inverse)`: the input channels are
            reordered by `order` (`inverse`, its inverse permutation,
            reorders the gradient), or `None`.
        output_permutation: `(order, inverse)` that reorders the filters
            back from group order, or `None`.
        grouped_mode: `backend.GROUPED_CONV_MODE` for `"grouped"`.
    """

    implementation: str
    index: Any
    groups: int = 1
    input_permutation: Any = None
    output_permutation: Any = None
    grouped_mode: str = "native"


class BaseSparseConv(ConnectivityLayer):
    """N-D convolution whose kernels exist only for connected channel pairs.

    A Keras convolution with `C_in` input channels and `filters` outputs
    has `C_in * filters` kernels of `kernel_size`. Here `connectivity`, a
    `Connectivity` of shape `(C_in, filters)`, says which exist: only
    those `nnz` kernels are parameters (`kernel_values`, shape
    `(nnz, prod(kernel_size))`, in the connectivity's canonical order), so
    `count_params()` is `nnz * prod(kernel_size) + filters`, and an absent
    kernel is zero through any training, constraint or reload.

    The output equals `keras.ops.conv` with the dense kernel that is zero
    where a kernel is absent (`kernel`). Block-diagonal connectivities (also
    after permuting channels) run as one grouped convolution on the
    permuted channels; others as one convolution with the masked kernel.

    Args:
        rank: 1, 2 or 3.
        filters: positive int, must equal `connectivity.num_outputs`.
        kernel_size: int or tuple of `rank` ints.
        connectivity: `Connectivity` (or anything `as_connectivity`
            accepts) of shape `(input_channels, filters)`.
        strides: int or tuple of `rank` ints (default 1).
        padding: `"valid"` or `"same"`.
        data_format: `"channels_last"` or `"channels_first"`; default
            `keras.config.image_data_format()`.
        dilation_rate: int or tuple of `rank` ints (default 1).
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in Keras's convolutions. The
            default kernel initializer is `SparseVarianceScaling`, with the
            fan-in of a filter = its number of input channels x kernel area.
        implementation: `"auto"` (default, see
            `choose_conv_implementation`), `"dense"` (masked kernel) or
            `"grouped"` (only for block-diagonal connectivities).
    """

    def __init__(
        self,
        rank: int,
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
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.filters = positive_int(filters, "filters")
        self.kernel_size = int_tuple(kernel_size, rank, "kernel_size")
        self.strides = int_tuple(strides, rank, "strides")
        self.dilation_rate = int_tuple(dilation_rate, rank, "dilation_rate")
        if isinstance(padding, str):
            padding = padding.lower()
        self.padding = one_of(padding, "padding", ("valid", "same"))
        data_format = data_format or keras.config.image_data_format()
        self.data_format = one_of(
            data_format, "data_format", ("channels_last", "channels_first")
        )
        one_of(implementation, "implementation", CONV_IMPLEMENTATIONS)
        self._init_connectivity(connectivity, mutable_connectivity)
        declared = self._declared
        if declared.shape[1] != self.filters:
            raise ValueError(
                "`filters` must equal `connectivity.num_outputs` (the "
                "connectivity is (input_channels, filters)). Received: "
                f"filters={self.filters}, connectivity of shape "
                f"{declared.shape}."
            )
        if implementation == "grouped" and (
            self.mutable_connectivity
            or (
                self._connectivity is not None
                and choose_conv_implementation(self._connectivity) != "grouped"
            )
        ):
            raise ValueError(
                "`implementation='grouped'` needs a block-diagonal connectivity "
                "(after permuting channels) with more than one group, fixed "
                f"(mutable_connectivity=False); {self._connectivity!r} is not. Use "
                "'auto' or 'dense'."
            )
        self.implementation = implementation
        self._set_weight_options(
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            bias_constraint,
        )
        self._channel_axis = -1 if data_format == "channels_last" else 1
        self.input_spec = keras.layers.InputSpec(
            ndim=rank + 2, axes={self._channel_axis: declared.shape[0]}
        )

    # ------------------------------------------------------------------ build
    def build(self, input_shape: Any) -> None:
        channels = input_shape[self._channel_axis]
        n_in = self._declared.shape[0]
        if channels != n_in:
            raise ValueError(
                f"The input of layer '{self.name}' has {channels} channels "
                f"(data_format={self.data_format!r}, input shape "
                f"{tuple(input_shape)}) but its connectivity expects "
                f"{n_in} input channels."
            )
        area = math.prod(self.kernel_size)
        if self._connectivity is not None:
            initializer = kernel_values_initializer(
                self.kernel_initializer, self._connectivity, receptive_field=area
            )
        else:
            initializer = "zeros"  # overwritten by the loaded weights
        self.kernel_values = self.add_weight(
            name="kernel_values",
            shape=(self._declared.nnz, area),
            initializer=initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = (
            self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )
        if self.mutable_connectivity:
            self._add_connectivity_variables({})
        if self._connectivity is not None:
            self._make_plan()

    def _make_plan(self) -> None:
        """Index maps from `kernel_values` rows to kernel slots."""
        conn = self.connectivity
        c_in, f = conn.shape
        if self.mutable_connectivity:
            rows = self._index_variables["input_indices"]
            cols = self._index_variables["output_indices"]
            nnz = conn.nnz

            def index() -> Any:
                # edge[i, j]: row of kernel_values for (input channel i,
                # filter j), or nnz (a zero row) where the kernel is absent.
                flat = ops.add(ops.multiply(rows.value, f), cols.value)
                edge = ops.scatter_update(
                    ops.full((c_in * f,), nnz, dtype="int32"),
                    ops.expand_dims(flat, 1),
                    ops.arange(nnz, dtype="int32"),
                )
                return ops.reshape(edge, (c_in, f))

            self._plan = ConvPlan("dense", index)
            return
        edge = np.full((c_in, f), conn.nnz, dtype=np.int32)
        edge[conn.input_indices, conn.output_indices] = np.arange(
            conn.nnz, dtype=np.int32
        )
        impl = self.implementation
        blocks = block_diagonal_groups(conn) if impl in ("auto", "grouped") else None
        if impl == "auto":
            impl = "grouped" if blocks is not None and blocks[0] > 1 else "dense"
        if impl == "dense":
            full = conn.nnz == c_in * f
            # full: the values are the kernel, reordered
            self._plan = ConvPlan(
                "dense", None if full else backend.host_constant(edge)
            )
            return
        assert blocks is not None
        groups, in_order, out_order = blocks
        per_in, per_out = c_in // groups, f // groups
        # Slot (s, p): s-th input channel of the group of the p-th filter.
        group_of_p = np.arange(f) // per_out
        channel = in_order[group_of_p[None, :] * per_in + np.arange(per_in)[:, None]]
        self._plan = ConvPlan(
            "grouped",
            backend.host_constant(edge[channel, out_order[None, :]]),
            groups,
            _permutation(in_order),
            _permutation(np.argsort(out_order)),
            backend.GROUPED_CONV_MODE,
        )

    @property
    def resolved_implementation(self) -> str:
        """`"dense"` or `"grouped"`: the computation this layer runs."""
        if self._plan is not None:
            return str(self._plan.implementation)
        if self.mutable_connectivity:
            return "dense"
        if self.implementation != "auto":
            return self.implementation
        return choose_conv_implementation(self.connectivity)

    # ------------------------------------------------------------------- call
    def _kernel_from_values(self, values: Any, index: Any) -> Any:
        """Gathers `(nnz, area)` values into a `kernel_size + (slots, filters)` kernel.

        `index[s, j]` is the row of `values` for slot `s` of filter `j` (`nnz`
        for an absent kernel); `None` means a full connectivity, whose
        canonical order (by filter, then input channel) is the kernel's.
        """
        area = math.prod(self.kernel_size)
        if index is None:
            c_in, filters = self._declared.shape
            kernel = ops.transpose(
                ops.reshape(values, (filters, c_in, area)), (2, 1, 0)
            )
            return ops.reshape(kernel, self.kernel_size + (c_in, filters))
        if callable(index):
            index = index()
        slots, filters = index.shape
        padded = ops.concatenate(
            [values, ops.zeros((1, area), dtype=values.dtype)], axis=0
        )
        flat = ops.take(padded, ops.reshape(index, (-1,)), axis=0)
        kernel = ops.transpose(ops.reshape(flat, (slots, filters, area)), (2, 0, 1))
        return ops.reshape(kernel, self.kernel_size + (slots, filters))

    def _values(self, dtype: Any) -> Any:
        values = ops.cast(self.kernel_values, dtype)
        if self.mutable_connectivity:
            values = values * ops.expand_dims(ops.cast(self.kernel_mask, dtype), 1)
        return values

    def call(self, inputs: Any) -> Any:
        if self._plan is None:
            _ = self.connectivity  # raises the explanatory RuntimeError
        plan = self._plan
        dtype = self.compute_dtype
        x = ops.cast(backend.dense_input(inputs), dtype)
        kernel = self._kernel_from_values(self._values(dtype), plan.index)
        if plan.input_permutation is not None:
            x = backend.take_permutation(
                x, *plan.input_permutation, axis=self._channel_axis
            )
        conv_args = dict(
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        if plan.implementation == "grouped" and plan.grouped_mode == "split":
            xs = ops.split(x, plan.groups, axis=self._channel_axis)
            ks = ops.split(kernel, plan.groups, axis=-1)
            outputs = ops.concatenate(
                [
                    backend.conv(xg, kg, **conv_args)
                    for xg, kg in zip(xs, ks, strict=True)
                ],
                axis=self._channel_axis,
            )
        else:
            outputs = backend.conv(x, kernel, **conv_args)
        if plan.output_permutation is not None:
            outputs = backend.take_permutation(
                outputs, *plan.output_permutation, axis=self._channel_axis
            )
        if self.bias is not None:
            shape = [1] * (self.rank + 2)
            shape[self._channel_axis] = self.filters
            outputs = ops.add(outputs, ops.reshape(ops.cast(self.bias, dtype), shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        shape = list(input_shape)
        spatial_axes = (
            range(1, self.rank + 1)
            if self.data_format == "channels_last"
            else range(2, self.rank + 2)
        )
        for k, axis in enumerate(spatial_axes):
            size = shape[axis]
            if size is None:
                continue
            span = (self.kernel_size[k] - 1) * self.dilation_rate[k] + 1
            if self.padding == "same":
                shape[axis] = -(-size // self.strides[k])
            else:
                shape[axis] = (size - span) // self.strides[k] + 1
        shape[self._channel_axis] = self.filters
        return tuple(shape)

    # ------------------------------------------------------------- inspection
    @property
    def kernel(self) -> Any:
        """The effective dense kernel `kernel_size + (input_channels, filters)`,
        zeros where a kernel is absent (built on request)."""
        conn = self.connectivity
        edge = np.full(conn.shape, conn.nnz, dtype=np.int32)
        edge[conn.input_indices, conn.output_indices] = np.arange(
            conn.nnz, dtype=np.int32
        )
        values = self._values(self.kernel_values.dtype)
        return self._kernel_from_values(values, ops.convert_to_tensor(edge))

    # ---------------------------------------------------------- serialization
    def _saved_variables(self) -> list[Any]:
        return [self.kernel_values] + ([self.bias] if self.use_bias else [])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "connectivity": self._connectivity_config(),
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                **self._weight_options_config(),
                "implementation": self.implementation,
                "mutable_connectivity": self.mutable_connectivity,
            }
        )
        return config
