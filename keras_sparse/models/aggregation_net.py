"""SparseNet and DenseNet for CIFAR-sized images, backend-agnostic Keras 3.

Three functional-subclass models share one builder and one signature:

* `AggregationNet` -- the general network, with `aggregation="sparse"` or
  `"dense"`;
* `SparseNet` -- `aggregation="sparse"` (Zhu et al., ECCV 2018);
* `DenseNet` -- `aggregation="dense"` (Huang et al., CVPR 2017).

The constructor arguments are validated into a frozen `_Architecture` (the
channel plan), from which both the Keras graph and the static parameter
count are derived. Named configurations from the papers live in
`keras_sparse.models.aggregation_net_presets`. Only public `keras` /
`keras.layers` APIs are used, so the models run on the TensorFlow, JAX and
PyTorch backends. `docs/sparsenet.md` lists every convention with its
source and compares the presets' parameter counts with the papers'.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import keras

from keras_sparse._validation import (
    float_in_range,
    invalid_value,
    is_int,
    one_of,
    positive_int,
)
from keras_sparse.models.aggregation_net_presets import (
    ARCHITECTURE_ARGS,
    PRESETS,
    find_preset,
)

__all__ = [
    "AggregationNet",
    "DenseNet",
    "PRESETS",
    "SparseNet",
    "aggregated_indices",
    "count_trainable_params",
]

_AGGREGATIONS = ("sparse", "dense")


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
    one_of(aggregation, "aggregation", _AGGREGATIONS)
    num_outputs = positive_int(num_outputs, "num_outputs")
    if aggregation == "dense":
        return list(range(num_outputs))
    indices = []
    offset = 1
    while offset <= num_outputs:
        indices.append(num_outputs - offset)
        offset *= 2
    return indices


@dataclasses.dataclass(frozen=True)
class _Block:
    """The channel plan of one block."""

    growth: int
    layer_inputs: tuple[int, ...]  # channels each layer reads
    output: int  # channels the block hands on (aggregated)
    transition_output: int | None  # None for the last block


@dataclasses.dataclass(frozen=True)
class _Architecture:
    """A validated `AggregationNet` architecture and its channel plan."""

    depth: int
    growth: tuple[int, ...]
    bottleneck: bool
    compression: float
    dropout_rate: float
    num_classes: int
    input_shape: tuple[int | None, ...]
    input_channels: int
    aggregation: str
    num_blocks: int
    layers_per_block: int
    stem_channels: int
    blocks: tuple[_Block, ...]

    def trainable_params(self) -> int:
        """The number of trainable scalars of the network, without building it.

        Conv kernels (no biases), BatchNorm gamma and beta, and the
        classifier's kernel and bias.
        """
        total = 9 * self.input_channels * self.stem_channels
        for block in self.blocks:
            g = block.growth
            for c in block.layer_inputs:
                if self.bottleneck:
                    total += 2 * c + c * 4 * g + 2 * 4 * g + 9 * 4 * g * g
                else:
                    total += 2 * c + 9 * c * g
            c = block.output
            if block.transition_output is not None:
                total += 2 * c + c * block.transition_output
            else:
                total += 2 * c + c * self.num_classes + self.num_classes
        return total


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
) -> _Architecture:
    """Validates the constructor arguments and derives the architecture."""
    one_of(aggregation, "aggregation", _AGGREGATIONS)
    if not isinstance(bottleneck, bool):
        raise ValueError(invalid_value("bottleneck", "a bool", bottleneck))
    num_blocks = positive_int(num_blocks, "num_blocks")
    # Depth counts weighted layers: stem conv, 1 (or 2 with bottleneck) conv
    # per dense layer, one 1x1 conv per transition, the classifier.
    per_block = (2 if bottleneck else 1) * num_blocks
    if (
        not is_int(depth)
        or depth - num_blocks - 1 < per_block
        or (depth - num_blocks - 1) % per_block
    ):
        examples = ", ".join(
            str(per_block * n + num_blocks + 1) for n in (1, 2, 3, 6, 16)
        )
        raise ValueError(
            invalid_value(
                "depth",
                f"{per_block} * n + {num_blocks + 1} for an integer n >= 1 (n "
                f"layers per block) with num_blocks={num_blocks}, "
                f"bottleneck={bottleneck}, e.g. {examples}",
                depth,
            )
        )
    layers_per_block = (int(depth) - num_blocks - 1) // per_block

    if is_int(growth_rate):
        growth: tuple[Any, ...] = (growth_rate,) * num_blocks
    elif isinstance(growth_rate, Sequence) and not isinstance(growth_rate, str):
        growth = tuple(growth_rate)
        if len(growth) != num_blocks:
            raise ValueError(
                invalid_value(
                    "growth_rate",
                    f"an int or a sequence of {num_blocks} ints (one per block, "
                    f"num_blocks={num_blocks})",
                    growth_rate,
                )
            )
    else:
        growth = ()
    if not growth or not all(is_int(g) and g >= 1 for g in growth):
        raise ValueError(
            invalid_value(
                "growth_rate",
                f"a positive int or a sequence of {num_blocks} positive ints",
                growth_rate,
            )
        )
    growth = tuple(int(g) for g in growth)

    if compression is None:
        compression = 0.5 if bottleneck else 1.0
    compression = float_in_range(
        compression,
        "compression",
        0.0,
        1.0,
        low_inclusive=False,
        fix="None means 0.5 with bottleneck, else 1.",
    )
    dropout_rate = float_in_range(
        dropout_rate, "dropout_rate", 0.0, 1.0, high_inclusive=False
    )
    num_classes = positive_int(num_classes, "num_classes")
    if (
        not isinstance(input_shape, Sequence)
        or isinstance(input_shape, str)
        or len(input_shape) != 3
        or not all(d is None or (is_int(d) and d >= 1) for d in input_shape)
    ):
        raise ValueError(
            invalid_value(
                "input_shape",
                "a tuple of 3 positive ints (or None for a spatial size), e.g. "
                "(32, 32, 3) for channels_last",
                input_shape,
            )
        )
    input_shape = tuple(None if d is None else int(d) for d in input_shape)
    channels_last = keras.config.image_data_format() == "channels_last"
    channels = input_shape[-1] if channels_last else input_shape[0]
    spatial = input_shape[:2] if channels_last else input_shape[1:]
    if channels is None:
        raise ValueError(
            invalid_value(
                "input_shape",
                "a known channel dimension (image data format "
                f"{keras.config.image_data_format()!r})",
                input_shape,
            )
        )
    min_size = 2 ** (num_blocks - 1)
    if any(d is not None and d < min_size for d in spatial):
        raise ValueError(
            invalid_value(
                "input_shape",
                f"a spatial size >= {min_size} ({num_blocks - 1} average "
                "poolings of stride 2)",
                input_shape,
            )
        )
    if stem_channels is None:
        stem_channels = 2 * growth[0]
    stem_channels = positive_int(
        stem_channels,
        "stem_channels",
        fix="None means 2 * growth_rate[0].",
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
                    invalid_value(
                        "compression",
                        f"a value that leaves transition {b + 1} at least one "
                        f"channel ({block_out} * compression >= 1)",
                        compression,
                    )
                )
            width = transition_out
        blocks.append(
            _Block(
                growth=growth[b],
                layer_inputs=tuple(layer_inputs),
                output=block_out,
                transition_output=transition_out,
            )
        )
    return _Architecture(
        depth=int(depth),
        growth=growth,
        bottleneck=bottleneck,
        compression=compression,
        dropout_rate=dropout_rate,
        num_classes=num_classes,
        input_shape=input_shape,
        input_channels=int(channels),
        aggregation=aggregation,
        num_blocks=num_blocks,
        layers_per_block=layers_per_block,
        stem_channels=stem_channels,
        blocks=tuple(blocks),
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
    bias: the same number as `trainable_param_count(model)` of the built
    model and as PyTorch's `sum(p.numel() for p in model.parameters())`.

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
    channels_last = keras.config.image_data_format() == "channels_last"
    input_shape = (
        (32, 32, input_channels) if channels_last else (input_channels, 32, 32)
    )
    return _resolve(
        depth,
        growth_rate,
        bottleneck,
        compression,
        0.0,
        num_classes,
        input_shape,
        aggregation,
        num_blocks,
        stem_channels,
    ).trainable_params()


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


def _build_graph(arch: _Architecture, classifier_activation: Any) -> tuple[Any, Any]:
    axis = -1 if keras.config.image_data_format() == "channels_last" else 1
    rate = arch.dropout_rate
    inputs = keras.Input(shape=arch.input_shape, name="images")
    x = _conv(arch.stem_channels, 3, "stem_conv")(inputs)
    for b, block in enumerate(arch.blocks, start=1):
        g = block.growth
        outputs = [x]
        for i in range(1, arch.layers_per_block + 1):
            prefix = f"block{b}_layer{i}"
            h = x
            if arch.bottleneck:
                h = _bn_relu(h, axis, f"{prefix}_1x1")
                h = _conv(4 * g, 1, f"{prefix}_conv1x1")(h)
                h = _dropout(h, rate, f"{prefix}_drop1x1")
            h = _bn_relu(h, axis, f"{prefix}_3x3")
            h = _conv(g, 3, f"{prefix}_conv3x3")(h)
            h = _dropout(h, rate, f"{prefix}_drop3x3")
            outputs.append(h)
            picked = [
                outputs[j] for j in aggregated_indices(len(outputs), arch.aggregation)
            ]
            x = keras.layers.Concatenate(axis=axis, name=f"{prefix}_aggregate")(picked)
        if block.transition_output is not None:
            prefix = f"transition{b}"
            x = _bn_relu(x, axis, prefix)
            x = _conv(block.transition_output, 1, f"{prefix}_conv")(x)
            x = _dropout(x, rate, f"{prefix}_drop")
            x = keras.layers.AveragePooling2D(2, name=f"{prefix}_pool")(x)
    x = _bn_relu(x, axis, "final")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(
        arch.num_classes,
        activation=classifier_activation,
        kernel_initializer=_dense_initializer(),
        bias_initializer="zeros",
        name="predictions",
    )(x)
    return inputs, outputs


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
            rate per block, e.g. `(16, 32, 64)`), or `None` for the class
            default: 12 (`AggregationNet`, `DenseNet`, as DenseNet-40-12)
            or 24 (`SparseNet`, as SparseNet-40-24).
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
        aggregation: `"sparse"` or `"dense"`; `None` (the default) means
            `"sparse"` for `AggregationNet`. `SparseNet` and `DenseNet` fix
            it (passing the other value raises).
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
            (the message lists the known names); in `SparseNet` and `DenseNet`,
            an `aggregation` other than theirs.

    Example:

    A one-block network (a CIFAR one has 3 blocks, e.g. depth 40):

    >>> from keras_sparse.models import trainable_param_count
    >>> model = AggregationNet(depth=4, num_blocks=1, growth_rate=4,
    ...                        aggregation="sparse", num_classes=10)
    >>> model.output.shape, model.layers_per_block
    ((None, 10), 2)
    >>> count = count_trainable_params(depth=4, num_blocks=1, growth_rate=4)
    >>> count, count == trainable_param_count(model)
    (1082, True)

    References:
        - Zhu, Deng, Maire, Deng, Mori, Tan. "Sparsely Aggregated
          Convolutional Networks." ECCV 2018, arXiv:1801.05895 (v1:
          "Sparsely Connected Convolutional Networks"). Official code:
          https://github.com/Lyken17/SparseNet
        - Huang, Liu, van der Maaten, Weinberger. "Densely Connected
          Convolutional Networks." CVPR 2017, arXiv:1608.06993.
    """

    _default_name: ClassVar[str] = "aggregation_net"
    _default_growth_rate: ClassVar[int] = 12
    # The aggregation a subclass fixes (None: chosen by the caller).
    _fixed_aggregation: ClassVar[str | None] = None

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int | Sequence[int] | None = None,
        bottleneck: bool = False,
        compression: float | None = None,
        dropout_rate: float = 0.0,
        num_classes: int = 10,
        input_shape: Sequence[int | None] = (32, 32, 3),
        aggregation: str | None = None,
        num_blocks: int = 3,
        stem_channels: int | None = None,
        classifier_activation: Any = "softmax",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        fixed = self._fixed_aggregation
        if fixed is not None and aggregation not in (None, fixed):
            raise ValueError(
                invalid_value(
                    "aggregation",
                    f"None or {fixed!r} ({type(self).__name__} fixes it)",
                    aggregation,
                    fix="Use `AggregationNet` to choose the aggregation.",
                )
            )
        if aggregation is None:
            aggregation = fixed or "sparse"
        if growth_rate is None:
            growth_rate = self._default_growth_rate
        arch = _resolve(
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
        inputs, outputs = _build_graph(arch, classifier_activation)
        super().__init__(
            inputs=inputs, outputs=outputs, name=name or self._default_name, **kwargs
        )
        self._architecture = arch
        # Constructor arguments as given (get_config returns these).
        given_growth: Any = growth_rate
        self._init_args: dict[str, Any] = dict(
            depth=arch.depth,
            growth_rate=int(given_growth)
            if is_int(given_growth)
            else [int(g) for g in given_growth],
            bottleneck=bottleneck,
            compression=compression,
            dropout_rate=dropout_rate,
            num_classes=arch.num_classes,
            input_shape=list(arch.input_shape),
            aggregation=aggregation,
            num_blocks=arch.num_blocks,
            stem_channels=stem_channels,
            classifier_activation=classifier_activation,
        )
        if fixed is not None:
            del self._init_args["aggregation"]

    # Resolved architecture, for introspection.
    @property
    def aggregation(self) -> str:
        """`"sparse"` or `"dense"`."""
        return self._architecture.aggregation

    @property
    def depth(self) -> int:
        """Number of weighted layers."""
        return self._architecture.depth

    @property
    def growth_rates(self) -> tuple[int, ...]:
        """The growth rate of each block."""
        return self._architecture.growth

    @property
    def layers_per_block(self) -> int:
        """Layers in each block."""
        return self._architecture.layers_per_block

    @property
    def bottleneck(self) -> bool:
        """Whether layers have the 1x1 bottleneck."""
        return self._architecture.bottleneck

    @property
    def compression(self) -> float:
        """The transitions' compression (the default resolved)."""
        return self._architecture.compression

    @property
    def stem_channels(self) -> int:
        """Width of the stem convolution (the default resolved)."""
        return self._architecture.stem_channels

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "trainable": self.trainable}
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

        >>> model = SparseNet.from_name("SparseNet-40-24", num_classes=100,
        ...                             input_shape=(8, 8, 3))
        >>> model.growth_rates, model.output.shape
        ((24, 24, 24), (None, 100))
        """
        name, arch = find_preset(preset, cls._fixed_aggregation, owner=cls.__name__)
        clash = sorted(ARCHITECTURE_ARGS & set(kwargs))
        if clash:
            raise ValueError(
                f"Preset {name!r} fixes {clash}; build the model with the "
                "constructor to change them. Received: "
                + ", ".join(f"{k}={kwargs[k]!r}" for k in clash)
            )
        target = SparseNet if arch.pop("aggregation") == "sparse" else DenseNet
        return target(**arch, **kwargs)


@keras.saving.register_keras_serializable(package="keras_sparse")
class SparseNet(AggregationNet):
    """SparseNet (Zhu et al., 2018): `AggregationNet` with sparse aggregation.

    Layer `i` of a block reads only the outputs at exponential offsets
    1, 2, 4, 8, ... before it (`i - 1, i - 2, i - 4, ...`; 0 is the block
    input), and a block hands its transition the same aggregation of its
    last outputs. See `AggregationNet` for the layers and the conventions;
    the arguments are the same, and `aggregation` is fixed.

    Args:
        growth_rate: int, or one int per block; `None` (the default)
            means 24.
        aggregation: `None` or `"sparse"`: fixed by the class.
        depth, bottleneck, compression, dropout_rate, num_classes,
        input_shape, num_blocks, stem_channels, classifier_activation,
        name, **kwargs: as for `AggregationNet`.

    Input shape:
        `(batch, rows, cols, channels)` (channels_last) or
        `(batch, channels, rows, cols)` (channels_first).

    Output shape:
        `(batch, num_classes)`.

    Raises:
        ValueError: for bad arguments, as `AggregationNet`; `from_name`
            for a name that is not a SparseNet preset.

    Example:

    >>> model = SparseNet(depth=4, num_blocks=1)  # growth_rate 24
    >>> model.growth_rates, model.layers_per_block
    ((24,), 2)

    References:
        Zhu, Deng, Maire, Deng, Mori, Tan. "Sparsely Aggregated
        Convolutional Networks." ECCV 2018, arXiv:1801.05895.
        https://github.com/Lyken17/SparseNet
    """

    _default_name = "sparsenet"
    _default_growth_rate = 24
    _fixed_aggregation = "sparse"


@keras.saving.register_keras_serializable(package="keras_sparse")
class DenseNet(AggregationNet):
    """DenseNet for CIFAR (Huang et al., 2017): dense aggregation.

    Layer `i` of a block reads the concatenation of the block input and
    all earlier outputs in the block; a block hands on all of them. See
    `AggregationNet` for the layers and the conventions. The stem has
    `2 * growth_rate[0]` channels by default, as in DenseNet-BC and as the
    SparseNet paper's DenseNet parameter counts imply; Huang et al.'s
    non-BC models used 16 (`stem_channels=16`).

    Args:
        growth_rate: int, or one int per block; `None` (the default)
            means 12.
        aggregation: `None` or `"dense"`: fixed by the class.
        depth, bottleneck, compression, dropout_rate, num_classes,
        input_shape, num_blocks, stem_channels, classifier_activation,
        name, **kwargs: as for `AggregationNet`.

    Input shape:
        `(batch, rows, cols, channels)` (channels_last) or
        `(batch, channels, rows, cols)` (channels_first).

    Output shape:
        `(batch, num_classes)`.

    Raises:
        ValueError: for bad arguments, as `AggregationNet`; `from_name`
            for a name that is not a DenseNet preset.

    Example:

    >>> huang = DenseNet(depth=4, num_blocks=1, stem_channels=16)
    >>> huang.aggregation, huang.stem_channels
    ('dense', 16)

    References:
        Huang, Liu, van der Maaten, Weinberger. "Densely Connected
        Convolutional Networks." CVPR 2017, arXiv:1608.06993.
    """

    _default_name = "densenet"
    _default_growth_rate = 12
    _fixed_aggregation = "dense"
