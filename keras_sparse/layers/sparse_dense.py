"""`SparseDense`: a Dense layer whose kernel exists only on given connections."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_sparse.connectivity.connectivity import Connectivity
from keras_sparse.initializers.sparse_variance_scaling import kernel_values_initializer
from keras_sparse.layers.connectivity_layer import ConnectivityLayer
from keras_sparse.ops import csr_cpu
from keras_sparse.ops import portable as _kernels
from keras_sparse.ops import tf_densify
from keras_sparse.ops.csr_backend import csr_available, make_csr_matmul

__all__ = ["SparseDense"]

IMPLEMENTATIONS = ("auto", "sparse", "csr", "dense")

# `kernel` refuses to materialize more dense entries than this.
_MAX_DENSE_KERNEL_ENTRIES = 1 << 28


# Measured crossovers (9180 -> 230, batch 256, training step, 2 CPU cores;
# docs/benchmarks.md). Without the compiled kernel: the portable sparse
# kernel up to this density, the dense one above.
_SPARSE_DENSITY_THRESHOLD = {"tensorflow": 0.01, "jax": 0.005, "torch": 0.002}
# With the compiled CPU kernel: portable sparse up to the first density,
# csr up to the second, dense above.
_CSR_MAX_DENSITY = {"tensorflow": 0.25, "jax": 0.2, "torch": 0.25}
# Above this many entries the dense kernel is never formed.
_MAX_AUTO_DENSE_ENTRIES = 1 << 24


def choose_implementation(
    connectivity: Connectivity, backend: str | None = None, csr: bool | None = None
) -> str:
    """The kernel that `implementation="auto"` runs for a connectivity.

    The rule comes from `benchmarks/` (training step on 2 CPU cores, see
    `docs/benchmarks.md`); nothing is timed at run time.

    With the compiled CPU kernel available (Numba, CPU placement):

    - TensorFlow: `"csr"` up to 25 % density, `"dense"` above;
    - JAX: `"csr"` up to 20 %, `"dense"` above;
    - PyTorch: `"csr"` up to 25 %, `"dense"` above.

    (The portable `"sparse"` kernel is within 10 % of `"csr"` only for tiny
    problems, such as 0.1 % of 9180 x 230 at batch 32 on JAX, and 2-10x
    slower once `nnz * batch` grows, so it is not picked with `"csr"`
    available.)

    Without it (GPU, or no Numba): `"sparse"` up to 1 % (TensorFlow),
    0.5 % (JAX), 0.2 % (PyTorch), `"dense"` above. In every case a layer
    whose dense kernel would exceed 2**24 entries (64 MiB in float32) never
    uses `"dense"`.

    Args:
        connectivity: the layer's `Connectivity`.
        backend: `"tensorflow"`, `"jax"` or `"torch"`; default the current
            Keras backend.
        csr: whether the compiled kernel is available; default: detected.

    Returns:
        `"sparse"`, `"csr"` or `"dense"`.
    """
    backend = backend or keras.backend.backend()
    if csr is None:
        csr = csr_available(backend)
    density = connectivity.density
    n_in, n_out = connectivity.shape
    too_big = n_in * n_out > _MAX_AUTO_DENSE_ENTRIES
    if csr:
        csr_max = _CSR_MAX_DENSITY.get(backend, 0.25)
        return "csr" if density <= csr_max or too_big else "dense"
    if too_big:
        return "sparse"
    threshold = _SPARSE_DENSITY_THRESHOLD.get(backend, 0.002)
    return "sparse" if density <= threshold else "dense"


@keras.saving.register_keras_serializable(package="keras_sparse")
class SparseDense(ConnectivityLayer):
    """A densely-shaped layer whose kernel exists only on given connections.

    `SparseDense` computes `output = activation(inputs @ W + bias)` like
    `keras.layers.Dense`, where `W` is a `(num_inputs, units)` kernel that is
    zero, and has no parameter, wherever `connectivity` has no connection.
    Only the `nnz` existing connections are trainable values
    (`kernel_values`, in the connectivity's canonical order), so
    `count_params()` is `nnz + units` (with bias), and no optimizer,
    regularizer, constraint or reload can create a new connection.

    Args:
        units: positive int, the number of outputs; must equal
            `connectivity.num_outputs`.
        connectivity: a `keras_sparse.Connectivity` of shape
            `(num_inputs, units)`, or anything `as_connectivity` accepts (a
            dense 0/1 array, a SciPy sparse matrix, a pandas DataFrame).
        activation: activation function or name; default none (linear).
        use_bias: bool, whether every output has a bias (default True).
        kernel_initializer: initializer of the connection weights. The
            default, `SparseVarianceScaling(mode="fan_in")`, scales each
            output unit by its own fan-in. Keras's `VarianceScaling` family
            (`"glorot_uniform"`, `"he_normal"`, ...) is applied with the
            dense kernel's fans, as in a `Dense` layer; elementwise
            initializers apply as they are.
        bias_initializer: initializer of the bias (default `"zeros"`).
        kernel_regularizer: regularizer on the `(nnz,)` kernel values. The
            absent connections are zero, so L1/L2 penalties equal those of
            the dense masked kernel.
        bias_regularizer: regularizer on the bias.
        activity_regularizer: regularizer on the output.
        kernel_constraint: constraint on the `(nnz,)` kernel values.
            Elementwise constraints (e.g. `NonNeg`) act as on `Dense`; norm
            constraints see the vector of all values, not one column.
        bias_constraint: constraint on the bias.
        implementation: `"auto"` (default; see `choose_implementation`),
            `"sparse"` (portable `keras.ops` gather + segment-sum, memory and
            work `O(batch * nnz)`, any device), `"csr"` (compiled
            multithreaded CPU kernels, `keras_sparse.ops.csr_cpu`, with
            hand-written gradients; float32 internally), or `"dense"`
            (values scattered into a dense kernel, then matmul). All give the
            same result to float32 rounding.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        N-D tensor `(..., num_inputs)`, float (float16, bfloat16 and
        float32 policies are supported).

    Output shape:
        N-D tensor `(..., units)`.

    Raises:
        ValueError: if `units` is not a positive int or differs from
            `connectivity.num_outputs`, `implementation` is unknown, the
            input's last axis differs from `connectivity.num_inputs`, or a
            loaded file holds a different connectivity than the layer's.
        TypeError: if `connectivity` is of an unsupported type.
        NotImplementedError: for `implementation="csr"` where the compiled
            kernel cannot run (no Numba, or a GPU placement).

    Example:

    >>> import keras
    >>> from keras_sparse import Connectivity
    >>> from keras_sparse.connectivity import random_connectivity
    >>> from keras_sparse.layers import SparseDense
    >>> conn = random_connectivity(9180, 230, density=0.01, seed=0)
    >>> model = keras.Sequential([
    ...     keras.Input((9180,)),
    ...     SparseDense(230, conn, activation="relu"),
    ...     keras.layers.Dense(1),
    ... ])
    >>> model.count_params()  # 21114 + 230 + 231, not 2.1 million
    21575

    References:
        Unit-scaled sparse initialization: Evci et al., "Rigging the
        Lottery", ICML 2020.
    """

    def __init__(
        self,
        units: int,
        connectivity: Any,
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
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or (
            units < 1
        ):
            raise ValueError(
                "Received an invalid value for `units`, expected a positive "
                f"integer. Received: units={units!r}"
            )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                "Received an invalid value for `implementation`, expected one of "
                f"{IMPLEMENTATIONS}. Received: implementation={implementation!r}"
            )
        if implementation == "csr" and not csr_available():
            raise NotImplementedError(
                "implementation='csr' (compiled CPU kernels) is not available on the "
                f"{keras.backend.backend()!r} backend here: it needs Numba and a CPU "
                "placement (no GPU). Use implementation='auto' or 'sparse'."
            )
        self._set_connectivity(connectivity)
        if self._connectivity.num_outputs != units:
            raise ValueError(
                f"`units` must equal `connectivity.num_outputs`. Received: "
                f"units={units}, connectivity of shape "
                f"{self._connectivity.shape} (num_outputs="
                f"{self._connectivity.num_outputs})."
            )
        self.units = int(units)
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
        self.implementation = implementation
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: self._connectivity.num_inputs}
        )
        self.supports_masking = True
        self._index_arrays: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    # ------------------------------------------------------------------ build
    def build(self, input_shape: Any) -> None:
        num_inputs = input_shape[-1]
        if num_inputs != self._connectivity.num_inputs:
            raise ValueError(
                "The last axis of the input must match "
                f"`connectivity.num_inputs`={self._connectivity.num_inputs}. "
                f"Received input shape {tuple(input_shape)}."
            )
        nnz = self._connectivity.nnz
        if isinstance(self._connectivity, Connectivity):
            initializer = kernel_values_initializer(
                self.kernel_initializer, self._connectivity
            )
        else:
            initializer = "zeros"  # Overwritten by the loaded weights.
        self.kernel_values = self.add_weight(
            name="kernel_values",
            shape=(nnz,),
            initializer=initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self._make_plan()

    def _make_plan(self) -> None:
        conn = self._connectivity
        self._csr_matmul = None
        if not isinstance(conn, Connectivity):
            self._index_arrays = None
            return
        if self.resolved_implementation == "csr":
            self._csr_matmul = make_csr_matmul(csr_cpu.CSRPlan(conn))
            # tf.numpy_function cannot be compiled by XLA.
            self.supports_jit = keras.backend.backend() != "tensorflow"
        rows, cols = conn.input_indices, conn.output_indices
        full = conn.nnz == conn.num_inputs * conn.num_outputs
        self._index_arrays = (rows, cols, None if full else np.stack([rows, cols], axis=1))

    def _indices(self) -> tuple[Any, Any, Any]:
        # NumPy arrays are converted at each call: under tf.function and
        # jax.jit they become constants of the traced program (a tensor
        # cached from an earlier trace would leak out of it), and on PyTorch
        # the conversion shares memory.
        if self._index_arrays is None:
            _ = self.connectivity  # raises the explanatory RuntimeError
        assert self._index_arrays is not None
        return tuple(  # type: ignore[return-value]
            None if a is None else ops.convert_to_tensor(a) for a in self._index_arrays
        )

    def _saved_variables(self) -> list[Any]:
        return [self.kernel_values] + ([self.bias] if self.use_bias else [])

    def _on_connectivity_loaded(self) -> None:
        self._make_plan()

    # ------------------------------------------------------------------- call
    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self._compute(inputs, self.kernel_values, self.bias, training)

    def _compute(
        self, inputs: Any, kernel_values: Any, bias: Any, training: bool | None = None
    ) -> Any:
        """The layer's function of explicit tensors (used by `call`).

        `training=False` (inference, e.g. `predict`) lets the `csr` kernel
        skip what only the gradient needs; results are the same.
        """
        rows, cols, pairs = self._indices()
        values = ops.cast(kernel_values, inputs.dtype)
        shape = self._connectivity.shape
        impl = self.resolved_implementation
        x = inputs
        batch_shape = None
        if len(inputs.shape) != 2:
            batch_shape = ops.shape(inputs)[:-1]
            x = ops.reshape(inputs, (-1, shape[0]))
        if impl == "dense":
            if pairs is not None and keras.backend.backend() == "tensorflow":
                # Benchmarked fast path (keras_sparse/ops/tf_densify.py).
                outputs = ops.matmul(x, tf_densify.densify(values, self._index_arrays[2], shape))
            else:
                outputs = _kernels.masked_dense_matmul(x, values, pairs, shape)
        elif impl == "csr":
            # The compiled kernels run in float32 (also under mixed precision).
            outputs = self._csr_matmul(
                ops.cast(x, "float32"), ops.cast(values, "float32"), save_x=training is not False
            )
            outputs = ops.cast(outputs, inputs.dtype)
        else:
            outputs = _kernels.sparse_matmul(x, values, rows, cols, self.units)
        if batch_shape is not None:
            outputs = ops.reshape(outputs, tuple(batch_shape) + (self.units,))
        if bias is not None:
            outputs = ops.add(outputs, ops.cast(bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(input_shape)[:-1] + (self.units,)

    # ------------------------------------------------------------- inspection
    @property
    def resolved_implementation(self) -> str:
        """`"sparse"` or `"dense"`: the kernel this layer runs."""
        if self.implementation != "auto":
            return self.implementation
        return choose_implementation(self.connectivity)

    @property
    def kernel(self) -> Any:
        """The effective dense `(num_inputs, units)` kernel, zeros where absent.

        For inspection: it is built on request (never on the sparse path).

        Raises:
            ValueError: if the dense kernel would exceed 2**28 entries;
                use `kernel_values` or `edge_table()` instead.
        """
        n_in, n_out = self._connectivity.shape
        if n_in * n_out > _MAX_DENSE_KERNEL_ENTRIES:
            raise ValueError(
                f"The dense kernel of layer '{self.name}' would have "
                f"{n_in * n_out:,} entries; use `kernel_values` (the {self.nnz:,} "
                "stored weights) or `edge_table()` instead."
            )
        _, _, pairs = self._indices()
        return _kernels.densify(self.kernel_values, pairs, (n_in, n_out))

    def edge_table(self) -> Any:
        """One row per connection: `input`, `output`, `weight` (+ indices).

        Returns:
            A pandas DataFrame with columns `input`, `output` (names when
            the connectivity has them, indices otherwise), `weight` (the
            current float value), `input_index`, `output_index`, in the
            canonical order (by output, then input).
        """
        table = self.connectivity.to_edge_table()
        table.insert(2, "weight", ops.convert_to_numpy(self.kernel_values))
        return table

    # ---------------------------------------------------------- serialization
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "connectivity": self._connectivity_config(),
                **self._weight_options_config(),
                "implementation": self.implementation,
            }
        )
        return config
