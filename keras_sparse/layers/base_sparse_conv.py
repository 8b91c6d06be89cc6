"""Convolutions in which chosen (input channel -> filter) kernels do not exist."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.initializers.sparse_variance_scaling import kernel_values_initializer
from keras_sparse.layers.connectivity_layer import ConnectivityLayer

__all__ = ["BaseSparseConv", "choose_conv_implementation"]

CONV_IMPLEMENTATIONS = ("auto", "dense", "grouped")


def choose_conv_implementation(connectivity: Connectivity) -> str:
    """The kernel `implementation="auto"` runs for a channel connectivity.

    `"grouped"` when the connectivity is block-diagonal with more than one
    group after permuting input channels and filters (it then runs as one
    grouped convolution, whose cost falls with the density); `"dense"` (the
    masked kernel in one ordinary convolution) otherwise. See
    `docs/benchmarks.md`.
    """
    blocks = connectivity.block_diagonal_groups()
    return "grouped" if blocks is not None and blocks[0] > 1 else "dense"


# How a grouped convolution runs, per backend: "native" (one convolution
# with `groups` inferred from the kernel) or "split" (one convolution per
# group, then concatenation). XLA's CPU grouped convolution (TensorFlow,
# JAX) is 10-50x slower than the dense one, so those split; PyTorch's
# native grouped convolution is fastest there (docs/benchmarks.md).
GROUPED_MODES = {"tensorflow": "split", "jax": "split", "torch": "native"}
_grouped_mode_override: list[str] = []


def grouped_mode() -> str:
    """The grouped-convolution strategy of the current backend."""
    if _grouped_mode_override:
        return _grouped_mode_override[-1]
    return GROUPED_MODES.get(keras.backend.backend(), "split")


def _as_tuple(value: Any, rank: int, argument: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * rank
    try:
        out = tuple(int(v) for v in value)
        ok = len(out) == rank and all(
            v >= 1 and not isinstance(v, bool) and float(v) == v for v in value
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Received an invalid value for `{argument}`, expected a positive "
            f"integer or a tuple of {rank} positive integers. "
            f"Received: {argument}={value!r}"
        )
    return out


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
        **kwargs: Any,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(
                "Received an invalid value for `filters`, expected a positive "
                f"integer. Received: filters={filters!r}"
            )
        self.filters = int(filters)
        self.kernel_size = _as_tuple(kernel_size, rank, "kernel_size")
        self.strides = _as_tuple(strides, rank, "strides")
        self.dilation_rate = _as_tuple(dilation_rate, rank, "dilation_rate")
        if isinstance(padding, str):
            padding = padding.lower()
        if padding not in ("valid", "same"):
            raise ValueError(
                "Received an invalid value for `padding`, expected 'valid' or "
                f"'same'. Received: padding={padding!r}"
            )
        self.padding = padding
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "Received an invalid value for `data_format`, expected "
                "'channels_last' or 'channels_first'. "
                f"Received: data_format={data_format!r}"
            )
        self.data_format = data_format
        if implementation not in CONV_IMPLEMENTATIONS:
            raise ValueError(
                "Received an invalid value for `implementation`, expected one of "
                f"{CONV_IMPLEMENTATIONS}. Received: implementation={implementation!r}"
            )
        self._set_connectivity(connectivity)
        if self._connectivity.num_outputs != self.filters:
            raise ValueError(
                "`filters` must equal `connectivity.num_outputs` (the "
                "connectivity is (input_channels, filters)). Received: "
                f"filters={self.filters}, connectivity of shape "
                f"{self._connectivity.shape}."
            )
        if implementation == "grouped" and isinstance(self._connectivity, Connectivity):
            if choose_conv_implementation(self._connectivity) != "grouped":
                raise ValueError(
                    "`implementation='grouped'` needs a block-diagonal connectivity "
                    "(after permuting channels) with more than one group; "
                    f"{self._connectivity!r} is not. Use 'auto' or 'dense'."
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
            ndim=rank + 2, axes={self._channel_axis: self._connectivity.num_inputs}
        )
        self._plan: dict[str, Any] | None = None

    # ------------------------------------------------------------------ build
    def build(self, input_shape: Any) -> None:
        channels = input_shape[self._channel_axis]
        if channels != self._connectivity.num_inputs:
            raise ValueError(
                f"The input of layer '{self.name}' has {channels} channels "
                f"(data_format={self.data_format!r}, input shape "
                f"{tuple(input_shape)}) but its connectivity expects "
                f"{self._connectivity.num_inputs} input channels."
            )
        area = math.prod(self.kernel_size)
        if isinstance(self._connectivity, Connectivity):
            initializer = kernel_values_initializer(
                self.kernel_initializer, self._connectivity, receptive_field=area
            )
        else:
            initializer = "zeros"  # overwritten by the loaded weights
        self.kernel_values = self.add_weight(
            name="kernel_values",
            shape=(self._connectivity.nnz, area),
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
        self._make_plan()

    def _make_plan(self) -> None:
        """Index maps from `kernel_values` rows to kernel slots (NumPy)."""
        if not isinstance(self._connectivity, Connectivity):
            self._plan = None
            return
        conn = self._connectivity
        c_in, f = conn.shape
        # edge[i, j]: row of kernel_values for (input channel i, filter j),
        # or nnz (a zero row) where the kernel is absent.
        edge = np.full((c_in, f), conn.nnz, dtype=np.int32)
        edge[conn.input_indices, conn.output_indices] = np.arange(conn.nnz, dtype=np.int32)
        impl = self.resolved_implementation
        plan: dict[str, Any] = {"implementation": impl}
        if impl == "dense" and conn.nnz == c_in * f:
            plan["index"] = None  # full: the values are the kernel, reordered
        elif impl == "grouped":
            groups, in_order, out_order = conn.block_diagonal_groups()  # type: ignore[misc]
            per_in, per_out = c_in // groups, f // groups
            # Slot (s, p): s-th input channel of the group of the p-th filter.
            group_of_p = np.arange(f) // per_out
            channel = in_order[group_of_p[None, :] * per_in + np.arange(per_in)[:, None]]
            plan["index"] = edge[channel, out_order[None, :]]
            plan["groups"] = groups
            plan["input_order"] = None if np.array_equal(in_order, np.arange(c_in)) else in_order
            inverse = np.argsort(out_order)
            plan["output_inverse"] = None if np.array_equal(inverse, np.arange(f)) else inverse
        else:
            plan["index"] = edge
        self._plan = plan

    @property
    def resolved_implementation(self) -> str:
        """`"dense"` or `"grouped"`: the computation this layer runs."""
        if self.implementation != "auto":
            return self.implementation
        return choose_conv_implementation(self.connectivity)

    # ------------------------------------------------------------------- call
    def _kernel_from_values(self, values: Any, index: np.ndarray | None) -> Any:
        """Gathers `(nnz, area)` values into a `kernel_size + (slots, filters)` kernel.

        `index[s, j]` is the row of `values` for slot `s` of filter `j` (`nnz`
        for an absent kernel); `None` means a full connectivity, whose
        canonical order (by filter, then input channel) is the kernel's.
        """
        area = math.prod(self.kernel_size)
        if index is None:
            c_in, filters = self.connectivity.shape
            kernel = ops.transpose(ops.reshape(values, (filters, c_in, area)), (2, 1, 0))
            return ops.reshape(kernel, self.kernel_size + (c_in, filters))
        slots, filters = index.shape
        padded = ops.concatenate([values, ops.zeros((1, area), dtype=values.dtype)], axis=0)
        flat = ops.take(padded, ops.convert_to_tensor(index.reshape(-1)), axis=0)
        kernel = ops.transpose(ops.reshape(flat, (slots, filters, area)), (2, 0, 1))
        return ops.reshape(kernel, self.kernel_size + (slots, filters))

    def call(self, inputs: Any) -> Any:
        if self._plan is None:
            _ = self.connectivity  # raises the explanatory RuntimeError
        plan = self._plan
        assert plan is not None
        values = ops.cast(self.kernel_values, inputs.dtype)
        kernel = self._kernel_from_values(values, plan["index"])
        x = inputs
        if plan.get("input_order") is not None:
            x = ops.take(x, ops.convert_to_tensor(plan["input_order"]), axis=self._channel_axis)
        conv_args = dict(
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        if plan["implementation"] == "grouped" and grouped_mode() == "split":
            groups = plan["groups"]
            xs = ops.split(x, groups, axis=self._channel_axis)
            ks = ops.split(kernel, groups, axis=-1)
            outputs = ops.concatenate(
                [ops.conv(xg, kg, **conv_args) for xg, kg in zip(xs, ks, strict=True)],
                axis=self._channel_axis,
            )
        else:
            outputs = ops.conv(x, kernel, **conv_args)
        if plan.get("output_inverse") is not None:
            outputs = ops.take(
                outputs, ops.convert_to_tensor(plan["output_inverse"]), axis=self._channel_axis
            )
        if self.bias is not None:
            shape = [1] * (self.rank + 2)
            shape[self._channel_axis] = self.filters
            outputs = ops.add(outputs, ops.reshape(ops.cast(self.bias, outputs.dtype), shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        shape = list(input_shape)
        spatial_axes = (
            range(1, self.rank + 1) if self.data_format == "channels_last" else range(2, self.rank + 2)
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
        edge[conn.input_indices, conn.output_indices] = np.arange(conn.nnz, dtype=np.int32)
        return self._kernel_from_values(ops.convert_to_tensor(self.kernel_values), edge)

    # ---------------------------------------------------------- serialization
    def _saved_variables(self) -> list[Any]:
        return [self.kernel_values] + ([self.bias] if self.use_bias else [])

    def _on_connectivity_loaded(self) -> None:
        self._make_plan()

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
            }
        )
        return config
