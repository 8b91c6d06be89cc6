"""Training throughput and memory: SparseNet vs DenseNet of similar size.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/densenet_throughput.py \
        --model SparseNet-40-24 --out benchmarks/results/densenet_jax_SparseNet-40-24.json

One model per process (so peak memory is that model's): images per second
of `train_on_batch` (SGD + Nesterov, batch 64, 32x32x3 random data, 100
classes), median over `--steps` steps after `--warmup`.
"""

from __future__ import annotations

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median_seconds, peak_rss_mb, write_result  # noqa: E402

from keras_sparse.models.densenet import AggregationNet  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="SparseNet-40-24")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    model = AggregationNet.from_name(args.model, num_classes=100, input_shape=(32, 32, 3))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 100, args.batch)
    step = median_seconds(lambda: model.train_on_batch(x, y), args.steps, args.warmup)
    result = dict(
        model=args.model,
        params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        batch=args.batch,
        step_s=round(step, 3),
        images_per_s=round(args.batch / step, 1),
        peak_rss_mb=round(peak_rss_mb()),
    )
    write_result(args.out, result)


if __name__ == "__main__":
    main()
