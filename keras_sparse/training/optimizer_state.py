"""Finding and remapping an optimizer's per-variable state (slots).

Keras 3 optimizers keep their per-variable state (SGD momentum, Adam's m
and v, RMSprop's velocity, ...) in variables made by
`Optimizer.add_variable_from_reference`: same shape as the model variable,
named `{variable.path with '/' -> '_'}_{slot}`, and held in lists indexed
like `optimizer._trainable_variables`. Keras has no public API to list
them, so this module finds them in two independent ways and refuses when
the two disagree or a slot cannot be remapped elementwise.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["optimizer_slots", "remap_optimizer_slots"]

# Attributes that are per-variable lists but not optimizer state.
_NOT_STATE = ("_variables", "_trainable_variables")


def _inner(optimizer: Any) -> Any:
    # LossScaleOptimizer (mixed precision) wraps the optimizer that has state.
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def _prefix(variable: Any) -> str:
    return f"{variable.path.replace('/', '_')}_"


def optimizer_slots(optimizer: Any, variable: Any) -> list[Any]:
    """The optimizer variables that hold per-element state of `variable`.

    Args:
        optimizer: a built or unbuilt `keras.optimizers.Optimizer` (a
            `LossScaleOptimizer` is looked through).
        variable: a trainable model variable.

    Returns:
        The slot variables (same shape as `variable`), e.g. `[momentum]` for
        SGD with momentum, `[m, v]` for Adam; `[]` for an optimizer without
        per-variable state (plain SGD) or one not built yet.

    Raises:
        ValueError: if the optimizer holds state for `variable` that is not
            elementwise (e.g. Adafactor's factored second moments of a 2-D
            variable), state this function cannot attribute (a custom
            optimizer storing per-variable state in another way), or if it
            is a `MultiOptimizer`-like container.
    """
    opt = _inner(optimizer)
    name = type(opt).__name__
    if hasattr(opt, "optimizers") and isinstance(opt.optimizers, (list, tuple)):
        raise ValueError(
            f"Cannot identify the per-variable state of optimizer {name!r}: it "
            "dispatches variables to several inner optimizers. Use one Keras "
            "optimizer for the sparse layers."
        )
    if not getattr(opt, "built", False):
        return []
    trainable = list(getattr(opt, "_trainable_variables", []))
    index = next((i for i, v in enumerate(trainable) if v is variable), None)
    if index is None:
        raise ValueError(
            f"Variable {variable.path!r} is not among the variables optimizer "
            f"{name!r} was built with, so its state cannot be found. Pass the "
            "optimizer that trains this model."
        )
    # 1. Positional lists: one entry per trainable variable.
    found: list[Any] = []
    for attribute, value in vars(opt).items():
        if attribute in _NOT_STATE or not isinstance(value, (list, tuple)):
            continue
        if len(value) != len(trainable) or not all(
            v is None or isinstance(v, keras.Variable) for v in value
        ):
            continue
        if not any(isinstance(v, keras.Variable) for v in value):
            continue
        slot = value[index]
        if slot is None or slot is variable:
            continue
        if tuple(slot.shape) == tuple(variable.shape):
            found.append(slot)
        elif tuple(slot.shape) == ():
            continue  # a scalar placeholder (e.g. Adafactor's r/c of a 1-D variable)
        else:
            raise ValueError(
                f"Optimizer {name!r} keeps state `{attribute}` of shape "
                f"{tuple(slot.shape)} for variable {variable.path!r} of shape "
                f"{tuple(variable.shape)}: it is not elementwise (factored), so "
                "it cannot be remapped when connections move. Use an optimizer "
                "with elementwise state (SGD, Adam, AdamW, RMSprop, Adagrad, "
                "Nadam, Adamax, Lion, ...)."
            )
    # 2. Names: every optimizer variable named after `variable` must be a slot
    # found above (else the optimizer keeps state we do not understand).
    prefix = _prefix(variable)
    others = [_prefix(v) for v in trainable if v is not variable]
    ids = {id(s) for s in found}
    for v in opt.variables:
        if id(v) in ids or not v.name.startswith(prefix):
            continue
        # A longer prefix of another variable (e.g. "a_b_" vs "a_b_c_") wins.
        if any(p.startswith(prefix) and v.name.startswith(p) for p in others):
            continue
        if tuple(v.shape) == ():
            continue
        raise ValueError(
            f"Optimizer {name!r} holds variable {v.path!r} (shape "
            f"{tuple(v.shape)}) named after {variable.path!r} that is not one of "
            "its per-variable slot lists; its state cannot be remapped safely."
        )
    return found


def remap_optimizer_slots(optimizer: Any, variable: Any, source: Any) -> list[Any]:
    """Permutes every slot of `variable` like its values; new positions get 0.

    After a layer's connectivity changes, entry `e` of `kernel_values` holds
    the value of old entry `source[e]` (or 0 where `source[e] == -1`, a new
    connection). This applies the same map to each optimizer slot of that
    variable along its first axis, so momentum, Adam's m and v, ... follow
    their connection and start at 0 for a regrown one.

    Args:
        optimizer: the model's optimizer (see `optimizer_slots`).
        variable: the model variable whose first axis was remapped (a
            sparse layer's `kernel_values`).
        source: int array of shape `(variable.shape[0],)`, entries in
            `[-1, variable.shape[0])`.

    Returns:
        The slot variables that were remapped.

    Raises:
        ValueError: for a malformed `source`, or an optimizer whose state
            cannot be identified (see `optimizer_slots`).

    Example:

    >>> import keras, numpy as np
    >>> v = keras.Variable(np.array([1.0, 2.0, 3.0]), dtype="float32", name="w")
    >>> opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    >>> opt.build([v])
    >>> _ = opt.apply_gradients([(keras.ops.array([1.0, 2.0, 3.0]), v)])
    >>> slots = remap_optimizer_slots(opt, v, np.array([2, -1, 0]))
    >>> [round(float(m), 4) for m in keras.ops.convert_to_numpy(slots[0])]
    [-0.03, 0.0, -0.01]
    """
    n = int(variable.shape[0])
    source = np.asarray(source)
    if (
        source.ndim != 1
        or source.shape[0] != n
        or not np.issubdtype(source.dtype, np.integer)
        or (n and (source.min() < -1 or source.max() >= n))
    ):
        raise ValueError(
            "Received an invalid value for `source`, expected an int array of "
            f"shape ({n},) with entries in [-1, {n}). Received: array of shape "
            f"{source.shape}, dtype {source.dtype}"
            + (f", range [{source.min()}, {source.max()}]" if source.size else "")
        )
    slots = optimizer_slots(optimizer, variable)
    if not slots:
        return []
    index = ops.convert_to_tensor(np.maximum(source, 0).astype("int32"))
    keep = source >= 0
    for slot in slots:
        moved = ops.take(slot, index, axis=0)
        shape = (n,) + (1,) * (len(slot.shape) - 1)
        mask = ops.convert_to_tensor(keep.reshape(shape))
        slot.assign(ops.where(mask, moved, ops.zeros_like(moved)))
    return slots
