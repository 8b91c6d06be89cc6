"""Named SparseNet / DenseNet configurations from the papers (presets).

Every preset is a 3-block CIFAR network with the default stem
(`2 * growth_rate[0]`) and compression (0.5 for BC, else 1); the remaining
arguments (`num_classes`, `input_shape`, `dropout_rate`, ...) are the
caller's. `docs/sparsenet.md` compares their parameter counts with the
papers'.
"""

from __future__ import annotations

import re
from typing import Any

from keras_sparse._validation import invalid_value

__all__ = ["ARCHITECTURE_ARGS", "PRESETS", "find_preset"]

# name -> architecture arguments of `AggregationNet`.
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

# Arguments a preset fixes (`from_name` refuses to override them).
ARCHITECTURE_ARGS = frozenset(
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


def _normalize(name: str) -> str:
    return re.sub(r"\s+", "", name).lower()


def find_preset(
    name: Any, aggregation: str | None = None, owner: str = "AggregationNet"
) -> tuple[str, dict[str, Any]]:
    """Looks a preset up by name, ignoring whitespace and case.

    Args:
        name: the preset's name, e.g. `"SparseNet-BC-100-{16, 32, 64}"`.
        aggregation: `None` to search all presets, or `"sparse"` /
            `"dense"` to search only those with that aggregation.
        owner: the class name used in the error message.

    Returns:
        `(canonical name, a copy of its architecture arguments)`.

    Raises:
        ValueError: for an unknown name; the message lists the known ones.

    Example:

    >>> find_preset("sparsenet-40-24")
    ('SparseNet-40-24', {'aggregation': 'sparse', 'depth': 40, 'growth_rate': 24, 'bottleneck': False})
    """  # noqa: E501
    known = [
        n
        for n, arch in PRESETS.items()
        if aggregation is None or arch["aggregation"] == aggregation
    ]
    lookup = {_normalize(n): n for n in known}
    key = _normalize(name) if isinstance(name, str) else None
    if key not in lookup:
        raise ValueError(
            invalid_value(
                "preset",
                f"a known {owner} preset name",
                name,
                fix=f"Known presets: {', '.join(known)}.",
            )
        )
    canonical = lookup[key]
    return canonical, dict(PRESETS[canonical])
