"""SET / RigL training speed: our sparse kernels vs a masked dense kernel.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/sparse_training_speed.py \
        --out benchmarks/results/sparse_training_speed_torch.json

Every reference implementation of SET and RigL (google-research/rigl,
jaxpruner, sparse_learning, GraNet, SRigL) keeps a dense weight tensor and a
0/1 mask of the same shape: the forward pass multiplies them, the gradient,
the optimizer state and the update are dense. This script times the same
algorithm on the same network, in one process, in four forms:

- `sparse`: `SparseDense(conn, mutable_connectivity=True)` with the
  implementation chosen automatically, updated by `keras_sparse.training`'s
  `SET` / `RigL` (what a user of this library runs);
- `sparse_dense_impl`: the same layer and callbacks with
  `implementation="dense"` (the `nnz` values are scattered into a dense
  kernel each step; optimizer state stays `(nnz,)`);
- `masked_dense`: what the peers do, written here with plain Keras: a
  layer with a dense `(n_in, n_out)` kernel and a non-trainable 0/1 mask of
  the same shape, computing `x @ (kernel * mask) + b`; its drop/grow
  (below) sets mask entries, zeroes regrown weights and their optimizer
  slots, and for RigL takes the dense gradient `x^T dz` whole, as the peers
  do;
- `dense`: a plain `keras.layers.Dense` network, no mask (reference).

Network: MLP `--inputs`-`--width` x `--depth`-10 (default 784-1000-1000-
1000-10, the SET tutorial's), hidden layers at each `--sparsities` value
(uniform random connectivity; the 10-way output layer dense in every form),
ReLU, softmax cross-entropy, SGD with momentum 0.9, batch `--batch`
(default 128), random inputs and labels (speed does not depend on them).

Measured (medians; the forms take turns, `common.interleaved_medians`, so
foreign load on the shared machine falls on all alike):
- `step_ms`: one `train_on_batch` (forward, backward, optimizer);
- `set_update_ms` / `rigl_update_ms`: one connectivity update of every
  hidden layer (drop 30 %, grow as many; RigL's gradient batch is 128
  images);
- `per_100_steps_s`: `100 * step + update`, RigL's default interval
  (one update per 100 steps); SET's tutorial updates once per epoch.
The JSON also has each `sparse` layer's resolved implementation.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import interleaved_medians, write_result  # noqa: E402

from keras_sparse.connectivity import random_connectivity  # noqa: E402
from keras_sparse.layers import SparseDense  # noqa: E402
from keras_sparse.training import SET, RigL  # noqa: E402
from keras_sparse.training import algorithms as alg  # noqa: E402
from keras_sparse.training._gradients import (  # noqa: E402
    layer_inputs_and_output_grads,
)
from keras_sparse.training.optimizer_state import optimizer_slots  # noqa: E402

FORMS = ("sparse", "sparse_dense_impl", "masked_dense", "dense")
DROP_FRACTION = 0.3


class MaskedDense(keras.layers.Layer):
    """`activation(x @ (kernel * mask) + bias)`: the peers' simulated sparsity."""

    def __init__(self, units, mask, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self._initial_mask = np.asarray(mask, dtype="float32")
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        mask = self._initial_mask
        self.kernel = self.add_weight(
            name="kernel", shape=mask.shape, initializer="glorot_uniform"
        )
        self.mask = self.add_weight(
            name="mask",
            shape=mask.shape,
            initializer=lambda shape, dtype=None: keras.ops.convert_to_tensor(mask),
            trainable=False,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer="zeros"
        )
        self.kernel.assign(self.kernel * self.mask)

    def call(self, inputs):
        z = keras.ops.matmul(inputs, self.kernel * self.mask) + self.bias
        return self.activation(z)


class MaskedDropGrow:
    """SET / RigL on `MaskedDense` masks, as the dense-and-mask peers do it.

    `update(step)` drops the `floor(f * nnz)` active weights of smallest
    `|w|` per layer and grows as many among the positions not kept: at
    random (SET) or where `|x^T dz|` of one batch is largest (RigL, dense
    gradient formed whole). Dropped and regrown weights are set to 0, and
    every optimizer slot of a regrown position to 0.
    """

    def __init__(self, model, layers, rule, data, seed=0, batch_size=128):
        self.model, self.layers, self.rule = model, layers, rule
        self.data, self.seed, self.batch_size = data, seed, batch_size

    def update(self, step):
        optimizer = self.model.optimizer
        captured = None
        if self.rule == "rigl":
            rng = np.random.default_rng([self.seed, step])
            index = np.sort(
                rng.choice(len(self.data[0]), self.batch_size, replace=False)
            )
            captured = layer_inputs_and_output_grads(
                self.model,
                self.layers,
                self.data[0][index],
                self.data[1][index],
                keras.losses.get(self.model.loss),
            )
        for i, layer in enumerate(self.layers):
            kernel = keras.ops.convert_to_numpy(layer.kernel).reshape(-1)
            mask = keras.ops.convert_to_numpy(layer.mask).reshape(-1)
            active = np.flatnonzero(mask)
            count = int(math.floor(DROP_FRACTION * active.size))
            drop = active[alg.drop_smallest(np.abs(kernel[active]), count)]
            kept = np.setdiff1d(active, drop)
            if self.rule == "set":
                grown = alg.random_absent_positions(
                    mask.size, kept, count, np.random.default_rng([self.seed, step, i])
                )
            else:
                x, dz = captured[id(layer)]
                score = np.abs(x.T @ dz).reshape(-1)  # the whole dense gradient
                score[kept] = -1.0
                grown = np.argpartition(score, score.size - count)[-count:]
            mask[drop] = 0.0
            kernel[drop] = 0.0
            mask[grown] = 1.0
            kernel[grown] = 0.0
            shape = tuple(layer.kernel.shape)
            layer.mask.assign(mask.reshape(shape))
            layer.kernel.assign(kernel.reshape(shape))
            for slot in optimizer_slots(optimizer, layer.kernel):
                values = keras.ops.convert_to_numpy(slot).reshape(-1)
                values[grown] = 0.0
                slot.assign(values.reshape(shape))


def build(form, args, density, seed=0):
    keras.utils.set_random_seed(seed)
    sizes = [args.inputs] + [args.width] * args.depth
    layers = [keras.Input((args.inputs,))]
    for i in range(args.depth):
        name = f"hidden{i + 1}"
        n_in, n_out = sizes[i], sizes[i + 1]
        if form == "dense":
            layers.append(keras.layers.Dense(n_out, activation="relu", name=name))
            continue
        conn = random_connectivity(n_in, n_out, density=density, seed=100 * seed + i)
        if form == "masked_dense":
            mask = np.zeros((n_in, n_out), dtype="float32")
            mask[conn.input_indices, conn.output_indices] = 1.0
            layers.append(MaskedDense(n_out, mask, activation="relu", name=name))
        else:
            impl = "dense" if form == "sparse_dense_impl" else "auto"
            layers.append(
                SparseDense(
                    n_out,
                    conn,
                    activation="relu",
                    implementation=impl,
                    mutable_connectivity=True,
                    name=name,
                )
            )
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy"
    )
    return model


def updater(form, rule, model, args, data):
    """A zero-argument function doing one connectivity update per call."""
    hidden = [model.get_layer(f"hidden{i + 1}") for i in range(args.depth)]
    if form == "masked_dense":
        cb = MaskedDropGrow(model, hidden, rule, data)
        state = {"step": 0}

        def update():
            state["step"] += 1
            cb.update(state["step"])

        return update
    names = [layer.name for layer in hidden]
    if rule == "set":
        cb = SET(DROP_FRACTION, update_interval=1, layers=names)
    else:
        # update_interval=1: every batch end is an update; end_step far away,
        # so the cosine fraction stays ~0.3 over the timed calls.
        cb = RigL(
            DROP_FRACTION,
            update_interval=1,
            end_step=10**9,
            data=data,
            batch_size=128,
            layers=names,
        )
    cb.set_model(model)
    cb.on_train_begin()
    return lambda: cb.on_train_batch_end(0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=784)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--sparsities", type=float, nargs="+", default=[0.9, 0.98, 0.99]
    )
    parser.add_argument("--forms", nargs="+", default=list(FORMS))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per form")
    parser.add_argument("--updates", type=int, default=5, help="timed updates")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and counts (a smoke test)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.inputs, args.width, args.depth, args.batch = 40, 64, 2, 16
        args.steps, args.updates, args.rounds, args.warmup = 2, 2, 1, 1
        args.sparsities = args.sparsities[:1]

    rng = np.random.default_rng(0)
    n_data = max(4 * args.batch, 256)
    x = rng.random((n_data, args.inputs), dtype=np.float32)
    y = rng.integers(0, 10, n_data).astype("int32")
    xb = keras.ops.convert_to_tensor(x[: args.batch])
    yb = keras.ops.convert_to_tensor(y[: args.batch])

    rows = []
    for sparsity in args.sparsities:
        density = round(1.0 - sparsity, 6)
        models = {form: build(form, args, density) for form in args.forms}
        for model in models.values():
            model.train_on_batch(xb, yb)  # builds the optimizer
        steps = interleaved_medians(
            {f: (lambda m=m: m.train_on_batch(xb, yb)) for f, m in models.items()},
            steps=args.steps,
            warmup=args.warmup,
            rounds=args.rounds,
        )
        updates = {}
        for rule in ("set", "rigl"):
            fns = {
                f: updater(f, rule, m, args, (x, y))
                for f, m in models.items()
                if f != "dense"
            }
            updates[rule] = interleaved_medians(
                fns,
                steps=args.updates,
                warmup=1,
                rounds=min(args.rounds, args.updates),
                turn_warmup=0,
            )
        for form, model in models.items():
            row = {
                "sparsity": sparsity,
                "form": form,
                "step_ms": round(1e3 * steps[form], 3),
            }
            if form != "dense":
                for rule in ("set", "rigl"):
                    row[f"{rule}_update_ms"] = round(1e3 * updates[rule][form], 2)
                    row[f"{rule}_per_100_steps_s"] = round(
                        100 * steps[form] + updates[rule][form], 3
                    )
            if form == "sparse":
                row["implementations"] = sorted(
                    {
                        model.get_layer(f"hidden{i + 1}").resolved_implementation
                        for i in range(args.depth)
                    }
                )
            rows.append(row)
        base = {r["form"]: r for r in rows if r["sparsity"] == sparsity}
        if "sparse" in base:
            for r in base.values():
                r["step_vs_sparse"] = round(r["step_ms"] / base["sparse"]["step_ms"], 2)
                for rule in ("set", "rigl"):
                    key = f"{rule}_per_100_steps_s"
                    if key in r:
                        r[f"{rule}_per_100_steps_vs_sparse"] = round(
                            r[key] / base["sparse"][key], 2
                        )
        for r in base.values():
            print(r, flush=True)
    sizes = "-".join(str(s) for s in [args.inputs] + [args.width] * args.depth + [10])
    write_result(
        args.out,
        {
            "setting": (
                f"MLP {sizes}, hidden layers sparse (uniform random), batch "
                f"{args.batch}, SGD momentum 0.9, drop fraction 0.3; medians "
                f"over {args.steps} interleaved steps and {args.updates} updates"
            ),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "rows": rows,
            "command": "KERAS_BACKEND="
            + keras.backend.backend()
            + " .venv/bin/python benchmarks/sparse_training_speed.py"
            + (" --quick" if args.quick else ""),
        },
    )


if __name__ == "__main__":
    main()
