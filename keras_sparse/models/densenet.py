"""SparseNet and DenseNet for CIFAR-sized images, backend-agnostic Keras 3.

Three functional-subclass models share one builder:

* `AggregationNet` -- the general network, with `aggregation="sparse"` or
  `"dense"`;
* `SparseNet` -- `aggregation="sparse"` (Zhu et al., ECCV 2018);
* `DenseNet` -- `aggregation="dense"` (Huang et al., CVPR 2017).

Only public `keras` / `keras.layers` APIs are used, so the models run on the
TensorFlow, JAX and PyTorch backends. `docs/sparsenet.md` lists every
convention with its source and compares the presets' parameter counts with
the papers'.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import keras

__all__ = [
    "AGGREGATIONS",
    "AggregationNet",
    "DenseNet",
    "PAPER_PARAMS",
    "PRESETS",
    "SparseNet",
    "aggregated_indices",
    "count_trainable_params",
]

AGGREGATIONS = ("sparse", "dense")

# name -> architecture. Every preset is a 3-block CIFAR network with the
# default stem (2 * growth_rate[0]) and compression (0.5 for BC, else 1); the
# remaining arguments (num_classes, input_shape, dropout_rate, ...) are the
# caller's.
PRESETS: dict[str, dict[str, Any]] = {
    "SparseNet-40-24": dict(
        aggregation="sparse", depth=40, growth_rate=24, bottleneck=False
    ),
    "SparseNet-100-24": dict(
        aggregation="sparse", depth=100, growth_rate=24, bottleneck=False
    ),
    "SparseNet-100-36": dict(
        aggregation="sparse", depth=100, growth_rate=36, bottleneck=False
    ),
    "SparseNet-100-{16,32,64}": dict(
        aggregation="sparse", depth=100, growth_rate=(16, 32, 64), bottleneck=False
    ),
    "SparseNet-BC-100-24": dict(
        aggregation="sparse", depth=100, growth_rate=24, bottleneck=True
    ),
    "SparseNet-BC-100-{16,32,64}": dict(
        aggregation="sparse", depth=100, growth_rate=(16, 32, 64), bottleneck=True
    ),
    "SparseNet-BC-100-{32,64,128}": dict(
        aggregation="sparse", depth=100, growth_rate=(32, 64, 128), bottleneck=True
    ),
    "DenseNet-40-12": dict(
        aggregation="dense", depth=40, growth_rate=12, bottleneck=False
    ),
    "DenseNet-100-12": dict(
        aggregation="dense", depth=100, growth_rate=12, bottleneck=False
    ),
    "DenseNet-100-24": dict(
        aggregation="dense", depth=100, growth_rate=24, bottleneck=False
    ),
    "DenseNet-BC-100-12": dict(
        aggregation="dense", depth=100, growth_rate=12, bottleneck=True
    ),
    "DenseNet-BC-250-24": dict(
        aggregation="dense", depth=250, growth_rate=24, bottleneck=True
    ),
    "DenseNet-BC-190-40": dict(
        aggregation="dense", depth=190, growth_rate=40, bottleneck=True
    ),
}

# Parameter counts printed in Zhu et al. (2018), CIFAR-100 table (also the
# README of github.com/Lyken17/SparseNet), as printed. See `docs/sparsenet.md`
# for how each compares with ours: two SparseNet-BC rows do not match and the
# two large DenseNet-BC rows are Huang et al.'s CIFAR-10 (10-class) counts.
PAPER_PARAMS: dict[str, str] = {
    "SparseNet-40-24": "0.76M",
    "SparseNet-100-24": "2.52M",
    "SparseNet-100-36": "5.65M",
    "SparseNet-100-{16,32,64}": "7.22M",
    "SparseNet-BC-100-24": "1.46M",
    "SparseNet-BC-100-{16,32,64}": "4.38M",
    "SparseNet-BC-100-{32,64,128}": "16.72M",
    "DenseNet-40-12": "1.1M",
    "DenseNet-100-12": "7.2M",
    "DenseNet-100-24": "28.28M",
    "DenseNet-BC-100-12": "0.8M",
    "DenseNet-BC-250-24": "15.3M",
    "DenseNet-BC-190-40": "25.6M",
}

# Official SparseNet code (PyTorch, Lyken17/SparseNet): conv weights
# ~ N(0, 2 / (k * k * out_channels)), i.e. He normal over fan-out, not
# truncated; the classifier keeps PyTorch's default Linear weight init
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with a zero bias.
def _conv_initializer() -> keras.initializers.Initializer:
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _dense_initializer() -> keras.initializers.Initializer:
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


# PyTorch BatchNorm2d defaults (momentum 0.1 there is 0.9 here).
_BN = dict(momentum=0.9, epsilon=1e-5)


def aggregated_indices(num_outputs: int, aggregation: str = "sparse") -> list[int]:
    """Which of a block's `num_outputs` tensors so far are concatenated.

    Inside a block, tensor 0 is the block input and tensor `j >= 1` is the
    output of layer `j`. After layer `i` (so `num_outputs = i + 1`), the
    next consumer (layer `i + 1`, or the transition / classifier after the
    last layer) reads:

    * `"sparse"`: the tensors at exponential offsets 1, 2, 4, 8, ... back
      from it, i.e. indices `i, i - 1, i - 3, i - 7, ...` (those >= 0),
      nearest first. The block input is included only when the offset
      lands on it (`i + 1` a power of two).
    * `"dense"`: all of them, in order `0, 1, ..., i`.

    Args:
        num_outputs: int >= 1, number of tensors produced so far in the
            block (block input included).
        aggregation: `"sparse"` or `"dense"`.

    Returns:
        The list of indices, in concatenation order.

    Raises:
        ValueError: for an unknown `aggregation` or `num_outputs < 1`.

    Example:

    >>> aggregated_indices(8, "sparse")  # layer 8 reads offsets 1, 2, 4, 8
    [7, 6, 4, 0]
    >>> aggregated_indices(4, "dense")
    [0, 1, 2, 3]
    """
    _check_aggregation(aggregation)
    if not isinstance(num_outputs, int) or num_outputs < 1:
        raise ValueError(
            "`num_outputs` must be an integer >= 1. "
            f"Received: num_outputs={num_outputs!r}"
        )
    if aggregation == "dense":
        return list(range(num_outputs))
    indices = []
    offset = 1
    while offset <= num_outputs:
        indices.append(num_outputs - offset)
        offset *= 2
    return indices


def _check_aggregation(aggregation: Any) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(
            f"`aggregation` must be one of {AGGREGATIONS}. "
            f"Received: aggregation={aggregation!r}"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _resolve(
    depth: Any,
    growth_rate: Any,
    bottleneck: Any,
    compression: Any,
    dropout_rate: Any,
    num_classes: Any,
    input_shape: Any,
    aggregation: Any,
    num_blocks: Any,
    stem_channels: Any,
) -> dict[str, Any]:
    """Validates the constructor arguments and derives the architecture."""
    _check_aggregation(aggregation)
    if not isinstance(bottleneck, bool):
        raise ValueError(
            f"`bottleneck` must be a bool. Received: bottleneck={bottleneck!r}"
        )
    if not _is_int(num_blocks) or num_blocks < 1:
        raise ValueError(
            f"`num_blocks` must be an integer >= 1. Received: num_blocks={num_blocks!r}"
        )
    # Depth counts weighted layers: stem conv, 1 (or 2 with bottleneck) conv
    # per dense layer, one 1x1 conv per transition, the classifier.
    convs_per_layer = 2 if bottleneck else 1
    per_block = convs_per_layer * num_blocks
    if (
        not _is_int(depth)
        or depth - num_blocks - 1 < per_block
        or (depth - num_blocks - 1) % per_block
    ):
        examples = ", ".join(
            str(per_block * n + num_blocks + 1) for n in (1, 2, 3, 6, 16)
        )
        raise ValueError(
            f"`depth` must equal {per_block} * n + {num_blocks + 1} for an integer "
            f"n >= 1 (n layers per block) with num_blocks={num_blocks}, "
            f"bottleneck={bottleneck}, e.g. {examples}. Received: depth={depth!r}"
        )
    layers_per_block = (depth - num_blocks - 1) // per_block

    if _is_int(growth_rate):
        growth = (growth_rate,) * num_blocks
    elif isinstance(growth_rate, Sequence) and not isinstance(growth_rate, str):
        growth = tuple(growth_rate)
        if len(growth) != num_blocks:
            raise ValueError(
                f"`growth_rate` must be an int or a sequence of {num_blocks} ints "
                f"(one per block, num_blocks={num_blocks}). "
                f"Received: growth_rate={growth_rate!r}"
            )
    else:
        growth = None
    if growth is None or not all(_is_int(g) and g >= 1 for g in growth):
        raise ValueError(
            f"`growth_rate` must be a positive int or a sequence of {num_blocks} "
            f"positive ints. Received: growth_rate={growth_rate!r}"
        )

    if compression is None:
        compression = 0.5 if bottleneck else 1.0
    if (
        isinstance(compression, bool)
        or not isinstance(compression, (int, float))
        or not 0.0 < compression <= 1.0
    ):
        raise ValueError(
            "`compression` must be a float in (0, 1] (or None: 0.5 with "
            f"bottleneck, else 1). Received: compression={compression!r}"
        )
    if (
        isinstance(dropout_rate, bool)
        or not isinstance(dropout_rate, (int, float))
        or not 0.0 <= dropout_rate < 1.0
    ):
        raise ValueError(
            "`dropout_rate` must be a float in [0, 1). "
            f"Received: dropout_rate={dropout_rate!r}"
        )
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(
            "`num_classes` must be an integer >= 1. "
            f"Received: num_classes={num_classes!r}"
        )
    if (
        not isinstance(input_shape, Sequence)
        or isinstance(input_shape, str)
        or len(input_shape) != 3
        or not all(d is None or (_is_int(d) and d >= 1) for d in input_shape)
    ):
        raise ValueError(
            "`input_shape` must be a tuple of 3 positive ints (or None for a "
            "spatial size), e.g. (32, 32, 3) for channels_last. "
            f"Received: input_shape={input_shape!r}"
        )
    input_shape = tuple(input_shape)
    channels_last = keras.config.image_data_format() == "channels_last"
    channels = input_shape[-1] if channels_last else input_shape[0]
    spatial = input_shape[:2] if channels_last else input_shape[1:]
    if channels is None:
        raise ValueError(
            "The channel dimension of `input_shape` must be known (image data "
            f"format {keras.config.image_data_format()!r}). "
            f"Received: input_shape={input_shape!r}"
        )
    min_size = 2 ** (num_blocks - 1)
    if any(d is not None and d < min_size for d in spatial):
        raise ValueError(
            f"The spatial size in `input_shape` must be >= {min_size} "
            f"({num_blocks - 1} average poolings of stride 2). "
            f"Received: input_shape={input_shape!r}"
        )
    if stem_channels is None:
        stem_channels = 2 * growth[0]
    if not _is_int(stem_channels) or stem_channels < 1:
        raise ValueError(
            "`stem_channels` must be a positive int (or None for "
            f"2 * growth_rate[0]). Received: stem_channels={stem_channels!r}"
        )

    # Channel plan: for each block, the width every layer reads and what the
    # block hands on (to its transition, or to the classifier).
    blocks = []
    width = stem_channels
    for b in range(num_blocks):
        outputs = [width]
        layer_inputs = []
        for _ in range(layers_per_block):
            layer_inputs.append(
                sum(outputs[j] for j in aggregated_indices(len(outputs), aggregation))
            )
            outputs.append(growth[b])
        block_out = sum(
            outputs[j] for j in aggregated_indices(len(outputs), aggregation)
        )
        transition_out = None
        if b < num_blocks - 1:
            transition_out = int(math.floor(block_out * compression))
            if transition_out < 1:
                raise ValueError(
                    f"`compression`={compression!r} leaves transition {b + 1} with "
                    f"no channels ({block_out} * {compression} < 1)."
                )
            width = transition_out
        blocks.append(
            dict(
                growth=growth[b],
                layer_inputs=layer_inputs,
                output=block_out,
                transition_output=transition_out,
            )
        )
    return dict(
        depth=depth,
        growth=growth,
        bottleneck=bottleneck,
        compression=float(compression),
        dropout_rate=float(dropout_rate),
        num_classes=num_classes,
        input_shape=input_shape,
        input_channels=channels,
        aggregation=aggregation,
        num_blocks=num_blocks,
        layers_per_block=layers_per_block,
        stem_channels=stem_channels,
        blocks=blocks,
    )


def count_trainable_params(
    depth: int = 40,
    growth_rate: int | Sequence[int] = 12,
    bottleneck: bool = False,
    compression: float | None = None,
    num_classes: int = 10,
    input_channels: int = 3,
    aggregation: str = "sparse",
    num_blocks: int = 3,
    stem_channels: int | None = None,
) -> int:
    """Trainable parameter count of an `AggregationNet`, without building it.

    Counts conv kernels (no biases), BatchNorm gamma and beta (the moving
    mean and variance are not trainable) and the classifier's kernel and
    bias: the same number as `sum(w.size for w in model.trainable_weights)`
    and as PyTorch's `sum(p.numel() for p in model.parameters())`.

    Args:
        depth, growth_rate, bottleneck, compression, num_classes,
        aggregation, num_blocks, stem_channels: as for `AggregationNet`.
        input_channels: channels of the input images.

    Returns:
        The number of trainable scalars.

    Raises:
        ValueError: for the same bad arguments as `AggregationNet`.

    Example:

    >>> count_trainable_params(depth=40, growth_rate=24, num_classes=100)
    757252
    """
    spec = _resolve(
        depth,
        growth_rate,
        bottleneck,
        compression,
        0.0,
        num_classes,
        (32, 32, input_channels)
        if keras.config.image_data_format() == "channels_last"
        else (input_channels, 32, 32),
        aggregation,
        num_blocks,
        stem_channels,
    )
    total = 9 * input_channels * spec["stem_channels"]
    for block in spec["blocks"]:
        g = block["growth"]
        for c in block["layer_inputs"]:
            if spec["bottleneck"]:
                total += 2 * c + c * 4 * g + 2 * 4 * g + 9 * 4 * g * g
            else:
                total += 2 * c + 9 * c * g
        c = block["output"]
        if block["transition_output"] is not None:
            total += 2 * c + c * block["transition_output"]
        else:
            total += 2 * c + c * num_classes + num_classes
    return total


def _conv(filters: int, size: int, name: str) -> keras.layers.Layer:
    return keras.layers.Conv2D(
        filters,
        size,
        padding="same",
        use_bias=False,
        kernel_initializer=_conv_initializer(),
        name=name,
    )


def _bn_relu(x: Any, axis: int, prefix: str) -> Any:
    x = keras.layers.BatchNormalization(axis=axis, name=f"{prefix}_bn", **_BN)(x)
    return keras.layers.ReLU(name=f"{prefix}_relu")(x)


def _dropout(x: Any, rate: float, name: str) -> Any:
    return keras.layers.Dropout(rate, name=name)(x) if rate > 0 else x


def _build_graph(spec: dict[str, Any], classifier_activation: Any) -> tuple[Any, Any]:
    axis = -1 if keras.config.image_data_format() == "channels_last" else 1
    rate = spec["dropout_rate"]
    inputs = keras.Input(shape=spec["input_shape"], name="images")
    x = _conv(spec["stem_channels"], 3, "stem_conv")(inputs)
    for b, block in enumerate(spec["blocks"], start=1):
        g = block["growth"]
        outputs = [x]
        for i in range(1, spec["layers_per_block"] + 1):
            prefix = f"block{b}_layer{i}"
            h = x
            if spec["bottleneck"]:
                h = _bn_relu(h, axis, f"{prefix}_1x1")
                h = _conv(4 * g, 1, f"{prefix}_conv1x1")(h)
                h = _dropout(h, rate, f"{prefix}_drop1x1")
            h = _bn_relu(h, axis, f"{prefix}_3x3")
            h = _conv(g, 3, f"{prefix}_conv3x3")(h)
            h = _dropout(h, rate, f"{prefix}_drop3x3")
            outputs.append(h)
            picked = [
                outputs[j]
                for j in aggregated_indices(len(outputs), spec["aggregation"])
            ]
            x = keras.layers.Concatenate(axis=axis, name=f"{prefix}_aggregate")(picked)
        if block["transition_output"] is not None:
            prefix = f"transition{b}"
            x = _bn_relu(x, axis, prefix)
            x = _conv(block["transition_output"], 1, f"{prefix}_conv")(x)
            x = _dropout(x, rate, f"{prefix}_drop")
            x = keras.layers.AveragePooling2D(2, name=f"{prefix}_pool")(x)
    x = _bn_relu(x, axis, "final")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(
        spec["num_classes"],
        activation=classifier_activation,
        kernel_initializer=_dense_initializer(),
        bias_initializer="zeros",
        name="predictions",
    )(x)
    return inputs, outputs


# Arguments a preset name fixes (`from_name` refuses to override them).
_ARCHITECTURE_ARGS = frozenset(
    {
        "aggregation",
        "depth",
        "growth_rate",
        "bottleneck",
        "compression",
        "num_blocks",
        "stem_channels",
    }
)


def _normalize_preset_name(name: str) -> str:
    return re.sub(r"\s+", "", name).lower()


@keras.saving.register_keras_serializable(package="keras_sparse")
class AggregationNet(keras.Model):
    """DenseNet-style CIFAR network with sparse or dense aggregation.

    The network is a 3x3 stem convolution, `num_blocks` blocks of
    `layers_per_block` layers joined by transitions, then BN-ReLU, global
    average pooling and a dense classifier. Inside a block, tensor 0 is the
    block input and tensor `j` the output of layer `j`; every layer is a
    pre-activation unit that adds `growth_rate` channels:

    * plain: BN-ReLU-Conv3x3(`growth_rate`);
    * `bottleneck=True` ("BC"): BN-ReLU-Conv1x1(`4 * growth_rate`)-
      BN-ReLU-Conv3x3(`growth_rate`).

    Layer `i` reads the concatenation chosen by `aggregation`:

    * `"sparse"` (SparseNet): the tensors at exponential offsets 1, 2, 4,
      8, ... before it, i.e. `i - 1, i - 2, i - 4, ...` (those >= 0; 0 is
      the block input), nearest first;
    * `"dense"` (DenseNet): all of `0, 1, ..., i - 1`.

    After the last layer `N` the block hands on the same aggregation taken
    as if for a layer `N + 1`: for SparseNet, the outputs of layers
    `N, N - 1, N - 3, N - 7, ...` (plus the block input when `N + 1` is a
    power of two), exactly as the official code does; for DenseNet, all
    `N + 1` tensors. A transition is BN-ReLU-Conv1x1(`floor(compression *
    C)`)-AvgPool(2); the last block feeds BN-ReLU-GlobalAvgPool-Dense.

    Other conventions (see `docs/sparsenet.md`): the stem has
    `2 * growth_rate[0]` channels, which reproduces the parameter counts in
    Zhu et al. (2018) (Huang et al. used 16 for non-BC DenseNets: pass
    `stem_channels=16`); convolutions have no bias and He-normal fan-out
    initialization `N(0, 2 / (k * k * filters))` as in the official
    SparseNet code; the classifier uses PyTorch's default uniform kernel
    init and a zero bias; BatchNorm uses momentum 0.9 (PyTorch's 0.1) and
    epsilon 1e-5; dropout, when enabled, follows every convolution except
    the stem (Huang et al.). No weight decay is built in: leave it to the
    optimizer (the papers use L2 1e-4 on conv and dense kernels with SGD,
    Nesterov momentum 0.9). Inputs are used as given: normalize images
    beforehand (e.g. per-channel mean and std).

    Where the two official SparseNet implementations disagree, the PyTorch
    one (which produced the paper's results) is followed: no ReLU after the
    transition convolution (the TensorFlow port adds one), and a working
    bottleneck (the TensorFlow port's bottleneck feeds its second BN with
    the layer input). Dropout is element-wise `Dropout` as in Huang et
    al.; the official PyTorch code uses channel-wise `Dropout2d`.

    `depth` counts weighted layers: stem + `num_blocks * N` (or
    `2 * num_blocks * N` with bottleneck) + `num_blocks - 1` transitions +
    classifier, so with 3 blocks `N = (depth - 4) / 3`, or `(depth - 4) / 6`
    with bottleneck.

    Parameter counts (`count_trainable_params`) of the presets match the
    counts printed by Zhu et al. (2018) except for
    `SparseNet-BC-100-{16,32,64}` (4.37M here, 4.38M printed) and
    `SparseNet-BC-100-{32,64,128}` (17.34M here, 16.72M printed; no
    variant of the conventions we tried reproduces it), and
    `DenseNet-BC-250-24` / `DenseNet-BC-190-40`, whose printed 15.3M /
    25.6M are Huang et al.'s 10-class counts (15.48M / 25.82M with 100
    classes; 15.32M / 25.62M with `num_classes=10`). `docs/sparsenet.md`
    gives the full table and the evidence.

    Args:
        depth: int, total number of weighted layers (see above).
        growth_rate: int, or a sequence of `num_blocks` ints (one growth
            rate per block, e.g. `(16, 32, 64)`).
        bottleneck: bool, whether layers use the 1x1 bottleneck ("B").
        compression: float in (0, 1], transition output width as a
            fraction of its input ("C" when < 1). `None` means 0.5 with
            bottleneck and 1.0 without (the papers' BC and non-BC models).
        dropout_rate: float in [0, 1), dropout after every convolution but
            the stem; 0 (the default) adds no dropout layers.
        num_classes: int, number of outputs of the classifier.
        input_shape: tuple of 3 ints, the image shape without the batch
            dimension, in `keras.config.image_data_format()` order. Spatial
            sizes may be `None`.
        aggregation: `"sparse"` or `"dense"`.
        num_blocks: int, number of blocks (3 for CIFAR).
        stem_channels: int or `None` (`2 * growth_rate[0]`), width of the
            3x3 stem convolution.
        classifier_activation: activation of the classifier, `"softmax"`
            by default; `None` returns logits.
        name: the model's name.
        **kwargs: passed to `keras.Model` (e.g. `trainable`).

    Input shape:
        4D tensor `(batch, rows, cols, channels)` for `channels_last`, or
        `(batch, channels, rows, cols)` for `channels_first`.

    Output shape:
        2D tensor `(batch, num_classes)`.

    Raises:
        ValueError: for an unknown `aggregation`; a `depth` that does not
            give an integer number of layers per block; a `growth_rate`
            that is not a positive int or `num_blocks` positive ints; a
            `compression` outside (0, 1]; a `dropout_rate` outside [0, 1);
            `num_classes < 1`; a malformed `input_shape`; a non-positive
            `stem_channels`; and, in `from_name`, an unknown preset name
            (the message lists the known names).

    Example:

    >>> model = AggregationNet(depth=40, growth_rate=24, aggregation="sparse",
    ...                        num_classes=100, input_shape=(32, 32, 3))
    >>> model.output.shape
    (None, 100)
    >>> count_trainable_params(depth=40, growth_rate=24, num_classes=100)
    757252
    >>> model = AggregationNet.from_name("DenseNet-BC-100-12", num_classes=100)
    >>> type(model).__name__
    'DenseNet'

    References:
        - Zhu, Deng, Maire, Deng, Mori, Tan. "Sparsely Aggregated
          Convolutional Networks." ECCV 2018, arXiv:1801.05895 (v1:
          "Sparsely Connected Convolutional Networks"). Official code:
          https://github.com/Lyken17/SparseNet
        - Huang, Liu, van der Maaten, Weinberger. "Densely Connected
          Convolutional Networks." CVPR 2017, arXiv:1608.06993.
    """

    _default_name = "aggregation_net"

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int | Sequence[int] = 12,
        bottleneck: bool = False,
        compression: float | None = None,
        dropout_rate: float = 0.0,
        num_classes: int = 10,
        input_shape: Sequence[int | None] = (32, 32, 3),
        aggregation: str = "sparse",
        num_blocks: int = 3,
        stem_channels: int | None = None,
        classifier_activation: Any = "softmax",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        spec = _resolve(
            depth,
            growth_rate,
            bottleneck,
            compression,
            dropout_rate,
            num_classes,
            input_shape,
            aggregation,
            num_blocks,
            stem_channels,
        )
        inputs, outputs = _build_graph(spec, classifier_activation)
        super().__init__(
            inputs=inputs, outputs=outputs, name=name or self._default_name, **kwargs
        )
        # Constructor arguments as given (get_config returns these), plus the
        # resolved values for introspection.
        self._init_args = dict(
            depth=depth,
            growth_rate=growth_rate if _is_int(growth_rate) else list(growth_rate),
            bottleneck=bottleneck,
            compression=compression,
            dropout_rate=dropout_rate,
            num_classes=num_classes,
            input_shape=list(input_shape),
            aggregation=aggregation,
            num_blocks=num_blocks,
            stem_channels=stem_channels,
            classifier_activation=classifier_activation,
        )
        self.aggregation = spec["aggregation"]
        self.depth = spec["depth"]
        self.growth_rates = spec["growth"]
        self.layers_per_block = spec["layers_per_block"]
        self.bottleneck = spec["bottleneck"]
        self.compression = spec["compression"]
        self.stem_channels = spec["stem_channels"]

    def get_config(self) -> dict[str, Any]:
        config = {"name": self.name, "trainable": self.trainable}
        config.update(
            {
                k: (list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in self._init_args.items()
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AggregationNet:
        return cls(**config)

    # Presets ---------------------------------------------------------------

    @classmethod
    def _preset_names(cls) -> list[str]:
        return list(PRESETS)

    @classmethod
    def from_name(cls, preset: str, **kwargs: Any) -> AggregationNet:
        """Builds a model from the papers' names, e.g. `"SparseNet-100-36"`.

        Args:
            preset: one of the names in `PRESETS` that this class builds
                (whitespace and case are ignored); `AggregationNet` accepts
                all of them and returns a `SparseNet` or `DenseNet`.
            **kwargs: the remaining constructor arguments
                (`num_classes`, `input_shape`, `dropout_rate`,
                `classifier_activation`, `name`, ...). The architecture
                (`depth`, `growth_rate`, `bottleneck`, `compression`,
                `num_blocks`, `stem_channels`, `aggregation`) is the
                preset's and may not be overridden.

        Returns:
            The model.

        Raises:
            ValueError: for an unknown preset name (the message lists the
                known ones), or for kwargs that redefine the preset.

        Example:

        >>> model = SparseNet.from_name(
        ...     "SparseNet-BC-100-{16,32,64}", num_classes=100,
        ...     input_shape=(32, 32, 3))
        """
        known = cls._preset_names()
        lookup = {_normalize_preset_name(n): n for n in known}
        key = _normalize_preset_name(preset) if isinstance(preset, str) else None
        if key not in lookup:
            raise ValueError(
                f"Unknown {cls.__name__} preset {preset!r}. "
                f"Known presets: {', '.join(known)}."
            )
        arch = dict(PRESETS[lookup[key]])
        clash = sorted(_ARCHITECTURE_ARGS & set(kwargs))
        if clash:
            raise ValueError(
                f"Preset {lookup[key]!r} fixes {clash}; build the model with "
                f"the constructor to change them. Received: "
                + ", ".join(f"{k}={kwargs[k]!r}" for k in clash)
            )
        target = SparseNet if arch.pop("aggregation") == "sparse" else DenseNet
        return target(**arch, **kwargs)


class _FixedAggregationNet(AggregationNet):
    """`AggregationNet` whose subclass fixes `aggregation` (shared code)."""

    _aggregation = "sparse"

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int | Sequence[int] = 12,
        bottleneck: bool = False,
        compression: float | None = None,
        dropout_rate: float = 0.0,
        num_classes: int = 10,
        input_shape: Sequence[int | None] = (32, 32, 3),
        num_blocks: int = 3,
        stem_channels: int | None = None,
        classifier_activation: Any = "softmax",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if "aggregation" in kwargs:
            raise ValueError(
                f"{type(self).__name__} fixes aggregation={self._aggregation!r}; use "
                f"`AggregationNet` to choose it. Received: "
                f"aggregation={kwargs['aggregation']!r}"
            )
        super().__init__(
            depth=depth,
            growth_rate=growth_rate,
            bottleneck=bottleneck,
            compression=compression,
            dropout_rate=dropout_rate,
            num_classes=num_classes,
            input_shape=input_shape,
            aggregation=self._aggregation,
            num_blocks=num_blocks,
            stem_channels=stem_channels,
            classifier_activation=classifier_activation,
            name=name,
            **kwargs,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("aggregation")
        return config

    @classmethod
    def _preset_names(cls) -> list[str]:
        return [n for n, a in PRESETS.items() if a["aggregation"] == cls._aggregation]


@keras.saving.register_keras_serializable(package="keras_sparse")
class SparseNet(_FixedAggregationNet):
    """SparseNet (Zhu et al., 2018): `AggregationNet` with sparse aggregation.

    Layer `i` of a block reads only the outputs at exponential offsets
    1, 2, 4, 8, ... before it (`i - 1, i - 2, i - 4, ...`; 0 is the block
    input), and a block hands its transition the same aggregation of its
    last outputs. See `AggregationNet` for the layers and the conventions;
    the arguments are the same except `aggregation`, which is fixed.

    Args:
        depth: int, weighted layers; `(depth - 4) / 3` layers per block, or
            `(depth - 4) / 6` with bottleneck (3 blocks).
        growth_rate: int, or one int per block, e.g. `(16, 32, 64)`.
        bottleneck: bool, BN-ReLU-Conv1x1(4k) before each 3x3 conv.
        compression: float in (0, 1]; `None`: 0.5 with bottleneck, else 1.
        dropout_rate: float in [0, 1), after every conv but the stem.
        num_classes: int, classifier width.
        input_shape: tuple of 3 ints, e.g. `(32, 32, 3)`.
        num_blocks: int, 3 for CIFAR.
        stem_channels: int or `None` (`2 * growth_rate[0]`).
        classifier_activation: `"softmax"` (default), or `None` for logits.
        name: the model's name.
        **kwargs: passed to `keras.Model`.

    Input shape:
        `(batch, rows, cols, channels)` (channels_last) or
        `(batch, channels, rows, cols)` (channels_first).

    Output shape:
        `(batch, num_classes)`.

    Raises:
        ValueError: for bad arguments, as `AggregationNet`; `from_name`
            for a name that is not a SparseNet preset.

    Example:

    >>> model = SparseNet.from_name("SparseNet-100-{16,32,64}",
    ...                             num_classes=100, input_shape=(32, 32, 3))
    >>> small = SparseNet(depth=22, growth_rate=8, num_classes=10)

    References:
        Zhu, Deng, Maire, Deng, Mori, Tan. "Sparsely Aggregated
        Convolutional Networks." ECCV 2018, arXiv:1801.05895.
        https://github.com/Lyken17/SparseNet
    """

    _default_name = "sparsenet"
    _aggregation = "sparse"

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int | Sequence[int] = 24,
        bottleneck: bool = False,
        compression: float | None = None,
        dropout_rate: float = 0.0,
        num_classes: int = 10,
        input_shape: Sequence[int | None] = (32, 32, 3),
        num_blocks: int = 3,
        stem_channels: int | None = None,
        classifier_activation: Any = "softmax",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            depth=depth,
            growth_rate=growth_rate,
            bottleneck=bottleneck,
            compression=compression,
            dropout_rate=dropout_rate,
            num_classes=num_classes,
            input_shape=input_shape,
            num_blocks=num_blocks,
            stem_channels=stem_channels,
            classifier_activation=classifier_activation,
            name=name,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="keras_sparse")
class DenseNet(_FixedAggregationNet):
    """DenseNet for CIFAR (Huang et al., 2017): dense aggregation.

    Layer `i` of a block reads the concatenation of the block input and
    all earlier outputs in the block; a block hands on all of them. See
    `AggregationNet` for the layers and the conventions. The stem has
    `2 * growth_rate[0]` channels by default, as in DenseNet-BC and as the
    SparseNet paper's DenseNet parameter counts imply; Huang et al.'s
    non-BC models used 16 (`stem_channels=16`).

    Args:
        depth: int, weighted layers; `(depth - 4) / 3` layers per block, or
            `(depth - 4) / 6` with bottleneck (3 blocks).
        growth_rate: int, or one int per block.
        bottleneck: bool, BN-ReLU-Conv1x1(4k) before each 3x3 conv.
        compression: float in (0, 1]; `None`: 0.5 with bottleneck, else 1.
        dropout_rate: float in [0, 1), after every conv but the stem.
        num_classes: int, classifier width.
        input_shape: tuple of 3 ints, e.g. `(32, 32, 3)`.
        num_blocks: int, 3 for CIFAR.
        stem_channels: int or `None` (`2 * growth_rate[0]`).
        classifier_activation: `"softmax"` (default), or `None` for logits.
        name: the model's name.
        **kwargs: passed to `keras.Model`.

    Input shape:
        `(batch, rows, cols, channels)` (channels_last) or
        `(batch, channels, rows, cols)` (channels_first).

    Output shape:
        `(batch, num_classes)`.

    Raises:
        ValueError: for bad arguments, as `AggregationNet`; `from_name`
            for a name that is not a DenseNet preset.

    Example:

    >>> model = DenseNet.from_name("DenseNet-BC-100-12", num_classes=100,
    ...                            input_shape=(32, 32, 3))
    >>> huang = DenseNet(depth=40, growth_rate=12, stem_channels=16)

    References:
        Huang, Liu, van der Maaten, Weinberger. "Densely Connected
        Convolutional Networks." CVPR 2017, arXiv:1608.06993.
    """

    _default_name = "densenet"
    _aggregation = "dense"
