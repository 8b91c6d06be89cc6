"""Binding for a Keras backend without one of its own (e.g. NumPy, OpenVINO).

No compiled kernels; everything runs the portable `keras.ops` formulas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

GROUPED_CONV_MODE = "split"
AUTO_SPARSE_MAX_DENSITY = 0.002
AUTO_CSR_MAX_DENSITY = 0.0
COND_ALLOCATES_BOTH_BRANCHES = False
DENSIFY_INDEX_DTYPE = "int32"
KERNEL_THREAD = False  # the compiled kernels are not called here


def csr_available() -> bool:
    return False


def csr_matmul(x: Any, values: Any, arrays: Any, shape: tuple[int, int]) -> Any:
    from keras_sparse.ops import portable

    return portable.csr_matmul(x, values, arrays, shape)


def densify(values: Any, positions: Any, shape: tuple[int, int]) -> Any:
    from keras import ops

    size = shape[0] * shape[1]
    flat = ops.zeros((size,), dtype=values.dtype)
    flat = ops.scatter_update(flat, ops.expand_dims(positions, 1), values)
    return ops.reshape(flat, shape)


def host_constant(array: np.ndarray) -> Any:
    from keras import ops

    return ops.convert_to_tensor(array)


def cond_true_gradient(pred: Any, true_fn: Any, false_fn: Any, *args: Any) -> Any:
    """A plain `keras.ops.cond`, differentiated as the branch that ran
    (the backends this binding serves, NumPy and OpenVINO, do not
    differentiate)."""
    from keras import ops

    return ops.cond(pred, lambda: true_fn(*args), lambda: false_fn(*args))


def segment_sum(data: Any, segment_ids: Any, num_segments: int) -> Any:
    from keras import ops

    return ops.segment_sum(data, segment_ids, num_segments=num_segments)


def matmul(a: Any, b: Any, transpose_b: bool = False) -> Any:
    from keras import ops

    return ops.matmul(a, ops.transpose(b) if transpose_b else b)


def conv(
    x: Any,
    kernel: Any,
    strides: Any,
    padding: str,
    data_format: str,
    dilation_rate: Any,
) -> Any:
    from keras import ops

    return ops.conv(
        x,
        kernel,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation_rate,
    )


def take_permutation(x: Any, order: Any, inverse: Any, axis: int) -> Any:
    """`x` with its `axis` reordered by the permutation `order`."""
    from keras import ops

    return ops.take(x, order, axis=axis)


def dense_input(x: Any) -> Any:
    from keras import ops

    return ops.convert_to_tensor(x, sparse=False)


def value_and_grad(fn: Any, args: list[Any]) -> tuple[tuple[Any, Any], list[Any]]:
    raise NotImplementedError(
        "Gradients need the tensorflow, jax or torch backend (Keras 3 has no "
        "backend-neutral gradient)."
    )
