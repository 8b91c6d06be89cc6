"""Integrated gradients on every node of a multi-level pathway network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_sparse.interpret._autodiff import sum_gradient
from keras_sparse.models.pathway_network import pathway_levels

__all__ = [
    "degree_adjusted",
    "input_attributions",
    "integrated_gradients",
    "node_attributions",
    "node_degrees",
]

INPUTS = "inputs"


def _check_steps(steps: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(
            "Received an invalid value for `steps`, expected a positive integer. "
            f"Received: steps={steps!r}"
        )


def integrated_gradients(
    fn: Callable[[Any], Any],
    x: Any,
    baseline: Any,
    steps: int = 32,
    batch_size: int = 4096,
) -> np.ndarray:
    """Integrated gradients of a scalar-per-sample function.

    `IG_i(x) = (x_i - b_i) * integral_0^1 dF/dx_i (b + a (x - b)) da`,
    computed with the midpoint rule on `steps` points. Summed over `i`, the
    attributions approach `F(x) - F(b)` (completeness).

    Args:
        fn: maps a `(m, d)` backend tensor to `(m,)` or `(m, 1)` outputs,
            each row depending only on its own input row.
        x: `(n, d)` float array.
        baseline: `(d,)` or `(n, d)` float array.
        steps: positive int, number of midpoint-rule points.
        batch_size: rows per gradient call (`n * steps` rows in all).

    Returns:
        `(n, d)` float64 NumPy array.

    Raises:
        ValueError: for `steps < 1` or mismatched shapes.

    Example:

    >>> import keras
    >>> ig = integrated_gradients(lambda t: keras.ops.sum(t**2, axis=1),
    ...                           np.array([[1.0, 2.0]]), np.zeros(2), steps=8)
    >>> np.round(ig, 4).tolist()   # x_i**2: exact for a quadratic
    [[1.0, 4.0]]

    References:
        Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks",
        ICML 2017.
    """
    _check_steps(steps)
    x = np.asarray(x, dtype=np.float64)
    baseline = np.broadcast_to(np.asarray(baseline, dtype=np.float64), x.shape)
    if x.ndim != 2:
        raise ValueError(
            f"Received an invalid value for `x`, expected a 2-D array. Received: "
            f"shape {x.shape}"
        )
    alphas = (np.arange(steps) + 0.5) / steps
    delta = x - baseline
    path = (baseline[None] + alphas[:, None, None] * delta[None]).reshape(
        -1, x.shape[1]
    )
    grads = np.concatenate(
        [
            sum_gradient(fn, path[i : i + batch_size])
            for i in range(0, path.shape[0], batch_size)
        ]
    ).reshape(steps, *x.shape)
    return delta * grads.mean(axis=0, dtype=np.float64)


def _select(out: Any, output_index: int | str | None) -> Any:
    if output_index == "sum":
        return keras.ops.sum(out, axis=-1)
    if len(out.shape) == 2 and out.shape[1] > 1:
        if output_index is None:
            raise ValueError(
                "The model has several outputs per sample; pass `output_index` "
                f"(0..{out.shape[1] - 1}) to choose the one to explain."
            )
        return out[:, output_index]
    return keras.ops.reshape(out, (-1,))


def _activations(
    model: keras.Model, x: np.ndarray, levels: list[str]
) -> list[np.ndarray]:
    h = keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))
    names = {layer.name for layer in model.layers}
    if "standardize" in names:
        h = model.get_layer("standardize")(h)
    out = []
    for name in levels:
        h = model.get_layer(name)(h)
        out.append(keras.ops.convert_to_numpy(h).astype(np.float64))
    return out


def _downstream(
    model: keras.Model, levels: list[str], k: int, output_index: int | str | None
) -> Callable[[Any], Any]:
    """The model's output as a function of level `k`'s activations.

    With per-level heads, the heads of the levels below `k` are constants
    w.r.t. level `k` and are left out (they cancel in `F(h) -
    F(h_baseline)`).
    """
    names = {layer.name for layer in model.layers}
    heads = "head_0" in names

    def fn(h: Any) -> Any:
        outs = []
        for j in range(k, len(levels)):
            if j > k:
                h = model.get_layer(levels[j])(h)
            if heads:
                outs.append(model.get_layer(f"head_{j}")(h))
        if heads:
            out = outs[0]
            for extra in outs[1:]:
                out = out + extra
            out = out / len(levels)
        else:
            out = model.get_layer("head")(h)
        return _select(out, output_index)

    return fn


def node_attributions(
    model: keras.Model,
    x: Any,
    baseline: Any,
    steps: int = 32,
    output_index: int | str | None = None,
    include_inputs: bool = True,
) -> dict[str, np.ndarray]:
    """Integrated gradients of the prediction w.r.t. every node of every level.

    For each sparse level `k` of a `build_pathway_network` model, the path
    runs in level `k`'s activation space from the baseline's activation
    `h_k(baseline)` to `h_k(x)` ("layer integrated gradients"), so a node's
    attribution is its share of `F(x) - F(baseline)` as seen from that
    level; the inputs (genes) get ordinary integrated gradients.

    Args:
        model: a model from `keras_sparse.models.build_pathway_network`
            (with or without per-level heads).
        x: `(n, num_inputs)` raw inputs (as the model takes them).
        baseline: `(num_inputs,)` raw input vector; the documented choice
            is the training samples' mean (a "typical" sample; with
            standardized inputs it is the all-zero standardized input).
        steps: midpoint-rule points per path.
        output_index: for several output units (softmax), which to explain;
            `"sum"` explains their sum, which for a model packing
            independent networks side by side (one output unit and one
            block of units per network) gives every block its own
            network's attributions (then leave `include_inputs` off: the
            inputs are shared).
        include_inputs: also attribute to the inputs (key `"inputs"`).

    Returns:
        Dict level name -> `(n, units)` float64 array (one score per node
        and sample), in level order, `"inputs"` first when included.

    Example:

    >>> from keras_sparse.connectivity import random_connectivity
    >>> from keras_sparse.models import build_pathway_network
    >>> conn = random_connectivity(6, 3, density=0.5, seed=0, min_fan_in=1)
    >>> model = build_pathway_network(conn)
    >>> x = np.random.default_rng(0).normal(size=(4, 6))
    >>> scores = node_attributions(model, x, x.mean(axis=0), steps=2,
    ...                            include_inputs=False)
    >>> {k: v.shape for k, v in scores.items()}
    {'pathways': (4, 3)}

    References:
        Sundararajan et al., ICML 2017; layer attribution as in Captum's
        `LayerIntegratedGradients` (Kokhlikyan et al. 2020).
    """
    levels = pathway_levels(model)
    x = np.asarray(x, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64).reshape(1, -1)
    out: dict[str, np.ndarray] = {}
    if include_inputs:

        def whole(t: Any) -> Any:
            return _select(model(t), output_index)

        out[INPUTS] = integrated_gradients(whole, x, base[0], steps)
    # One forward call for x and the baseline (eager ops compile per shape).
    both = _activations(model, np.concatenate([x, base]), levels)
    acts = [a[:-1] for a in both]
    base_acts = [a[-1:] for a in both]
    for k, name in enumerate(levels):
        fn = _downstream(model, levels, k, output_index)
        out[name] = integrated_gradients(fn, acts[k], base_acts[k][0], steps)
    return out


def input_attributions(
    model: keras.Model,
    x: Any,
    baseline: Any,
    steps: int = 32,
    output_index: int | str | None = None,
    blocks: int = 1,
    batch_size: int = 4096,
) -> np.ndarray:
    """Integrated gradients on the inputs (genes), split by first-level block.

    The first sparse level's pre-activation `z = s(x) W + c` (`s`: the
    optional `"standardize"` layer, affine) is affine in `x`, so the
    straight path from `baseline` to `x` is a straight path in `z`, and by
    the chain rule `dF/dx_i = s'_i sum_u W_iu dF/dz_u`. Splitting the sum
    over the units `u` into `blocks` equal contiguous groups of the first
    level's units gives one attribution per block, input and sample; the
    blocks sum to the ordinary integrated gradients on the inputs
    (`node_attributions(...)["inputs"]`, up to float32 rounding). For a
    model packing independent networks side by side
    (`keras_sparse.experiments.packed`, `output_index="sum"`), block `k`
    is exactly network `k`'s own integrated gradients on the shared
    inputs, from one gradient pass for all the networks.

    Args:
        model: a model from `keras_sparse.models.build_pathway_network` (or
            a packed model with the same layer names).
        x: `(n, num_inputs)` raw inputs (as the model takes them).
        baseline: `(num_inputs,)` raw input vector (e.g. the training mean).
        steps: midpoint-rule points per path.
        output_index: as in `node_attributions`.
        blocks: positive int dividing the first level's number of units.
        batch_size: rows per gradient call.

    Returns:
        `(blocks, n, num_inputs)` float64 NumPy array.

    Raises:
        ValueError: if `blocks` does not divide the first level's units, or
            for the errors of `node_attributions`.

    Example:

    >>> from keras_sparse.connectivity import random_connectivity
    >>> from keras_sparse.models import build_pathway_network
    >>> conn = random_connectivity(6, 4, density=0.5, seed=0, min_fan_in=1)
    >>> model = build_pathway_network(conn)
    >>> x = np.random.default_rng(0).normal(size=(3, 6))
    >>> input_attributions(model, x, np.zeros(6), steps=2, blocks=2).shape
    (2, 3, 6)

    References:
        Sundararajan et al., ICML 2017.
    """
    _check_steps(steps)
    levels = pathway_levels(model)
    first = model.get_layer(levels[0])
    units = int(first.units)
    if (
        isinstance(blocks, bool)
        or not isinstance(blocks, int)
        or blocks < 1
        or units % blocks
    ):
        raise ValueError(
            "Received an invalid value for `blocks`, expected a positive integer "
            f"dividing the first level's {units} units. Received: blocks={blocks!r}"
        )
    x = np.asarray(x, dtype=np.float64)
    base = np.broadcast_to(np.asarray(baseline, dtype=np.float64), x.shape[1:])
    conn = first.connectivity
    values = np.asarray(keras.ops.convert_to_numpy(first.kernel_values), np.float64)
    if getattr(first, "mutable_connectivity", False):
        values = values * np.asarray(keras.ops.convert_to_numpy(first.kernel_mask))
    import scipy.sparse

    w = scipy.sparse.csc_matrix(
        (values, (conn.input_indices, conn.output_indices)), shape=conn.shape
    )
    bias = (
        np.asarray(keras.ops.convert_to_numpy(first.bias), np.float64)
        if first.bias is not None
        else np.zeros(units)
    )
    names = {layer.name for layer in model.layers}
    if "standardize" in names:
        norm = model.get_layer("standardize")

        def standardize(a: np.ndarray) -> np.ndarray:
            t = norm(keras.ops.convert_to_tensor(np.asarray(a, "float32")))
            return np.asarray(keras.ops.convert_to_numpy(t), np.float64)

        # Elementwise affine: s(a) = (a - mean) * scale. One call for all
        # rows (eager ops compile per shape).
        d = x.shape[1]
        rows = standardize(
            np.concatenate([np.ones((1, d)), np.zeros((1, d)), base[None], x])
        )
        scale = rows[0] - rows[1]
        s_b, s_x = rows[2:3], rows[3:]
    else:
        scale = np.ones(x.shape[1])
        s_x, s_b = x, base[None]
    z_x = np.asarray(s_x @ w, np.float64) + bias
    z_b = np.asarray(s_b @ w, np.float64)[0] + bias
    after = _downstream(model, levels, 0, output_index)
    activation = first.activation or (lambda t: t)
    alphas = (np.arange(steps) + 0.5) / steps
    path = (z_b[None, None] + alphas[:, None, None] * (z_x - z_b)[None]).reshape(
        -1, units
    )
    grads = np.concatenate(
        [
            sum_gradient(lambda t: after(activation(t)), path[i : i + batch_size])
            for i in range(0, path.shape[0], batch_size)
        ]
    ).reshape(steps, x.shape[0], units)
    g = grads.mean(axis=0, dtype=np.float64)  # (n, units)
    delta = (x - base) * scale
    width = units // blocks
    out = np.empty((blocks, *x.shape))
    for k in range(blocks):
        cols = slice(k * width, (k + 1) * width)
        out[k] = delta * np.asarray(w[:, cols] @ g[:, cols].T).T
    return out


def node_degrees(model: keras.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`(fan_in, fan_out)` of every node, keyed like `node_attributions`.

    Inputs have fan-in 0; a level's fan-out counts its connections to the
    next level, plus its head's units when it has a head.
    """
    levels = pathway_levels(model)
    names = {layer.name for layer in model.layers}
    conns = [model.get_layer(n).connectivity for n in levels]
    out = {INPUTS: (np.zeros(conns[0].num_inputs, np.int64), conns[0].fan_out.copy())}
    for k, name in enumerate(levels):
        fan_out = np.zeros(conns[k].num_outputs, np.int64)
        if k + 1 < len(levels):
            fan_out += conns[k + 1].fan_out
        for head in (f"head_{k}", "head" if k == len(levels) - 1 else ""):
            if head in names and isinstance(model.get_layer(head), keras.layers.Dense):
                fan_out += int(model.get_layer(head).units)
                break
        out[name] = (conns[k].fan_in.copy(), fan_out)
    return out


def degree_adjusted(scores: Any, fan_in: Any, fan_out: Any) -> np.ndarray:
    """Divides node scores by `log2(fan_in + fan_out + 1)` (BINN's "fan").

    A node without any connection (degree 0) gets 0: it cannot carry any
    attribution.

    Args:
        scores: `(..., units)` array.
        fan_in, fan_out: `(units,)` integer arrays.

    Returns:
        Float64 array of `scores`'s shape.

    Example:

    >>> degree_adjusted(np.array([3.0, 3.0, 5.0]), [1, 3, 0], [0, 4, 0]).tolist()
    [3.0, 1.0, 0.0]

    References:
        Hartman et al., "Interpreting biologically informed neural networks
        for enhanced proteomic biomarker discovery and pathway analysis",
        Nature Communications 14 (2023).
    """
    degree = np.asarray(fan_in, np.float64) + np.asarray(fan_out, np.float64)
    denom = np.log2(degree + 1.0)
    scores = np.asarray(scores, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, scores / np.where(denom > 0, denom, 1.0), 0.0)
