"""`SparseDense`: a Dense layer whose kernel exists only on given connections."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_sparse._validation import one_of, positive_int
from keras_sparse.initializers.sparse_variance_scaling import kernel_values_initializer
from keras_sparse.layers.connectivity_layer import ConnectivityLayer
from keras_sparse.ops import backend, csr_cpu
from keras_sparse.ops.plan import IMPLEMENTATIONS, choose_implementation, make_plan

__all__ = ["SparseDense", "choose_implementation"]

# `kernel` refuses to materialize more dense entries than this.
_MAX_DENSE_KERNEL_ENTRIES = 1 << 28


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
            work `O(batch * nnz)`, any device), `"csr"` (three products,
            `x @ W`, `dy @ W.T` and the sampled value gradient, each the
            derivative of the others: Numba CPU kernels,
            `keras_sparse.ops.csr_cpu`, or `torch.sparse` on PyTorch CUDA
            tensors), or `"dense"` (values placed into a dense kernel, then
            matmul). All compute the same function, with gradients of any
            order, in the compute dtype (float16/bfloat16 products summed in
            float32), and a NaN or inf input reaches only the outputs it is
            connected to.
        mutable_connectivity: bool (default False). With True the
            connection indices live in integer variables (counted as
            non-trainable weights) and a `kernel_mask` is kept, so that
            `set_connectivity` / `set_kernel_mask` (sparse training,
            `keras_sparse.training`) change connections without retracing.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        N-D tensor `(..., num_inputs)`: any float or integer dtype (cast to
        the compute dtype), or a sparse tensor of the backend (densified).

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
        mutable_connectivity: bool = False,
        **kwargs: Any,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        units = positive_int(units, "units")
        one_of(implementation, "implementation", IMPLEMENTATIONS)
        if implementation == "csr" and not backend.csr_available():
            raise NotImplementedError(
                "implementation='csr' (compiled CPU kernels) is not available on the "
                f"{backend.NAME!r} backend here: it needs Numba and a CPU "
                "placement (or, on PyTorch, a CUDA device). Use "
                "implementation='auto' or 'sparse'."
            )
        self._init_connectivity(connectivity, mutable_connectivity)
        if self._declared.shape[1] != units:
            raise ValueError(
                f"`units` must equal `connectivity.num_outputs`. Received: "
                f"units={units}, connectivity of shape "
                f"{self._declared.shape} (num_outputs={self._declared.shape[1]})."
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
            min_ndim=2, axes={-1: self._declared.shape[0]}
        )
        self.supports_masking = True

    # ------------------------------------------------------------------ build
    def build(self, input_shape: Any) -> None:
        num_inputs = input_shape[-1]
        if num_inputs != self._declared.shape[0]:
            raise ValueError(
                "The last axis of the input must match "
                f"`connectivity.num_inputs`={self._declared.shape[0]}. "
                f"Received input shape {tuple(input_shape)}."
            )
        nnz = self._declared.nnz
        if self._connectivity is not None:
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
        if self.mutable_connectivity:
            extra = {}
            if self._resolve() == "csr":
                extra = {"indptr": num_inputs + 1, "indices": nnz, "perm": nnz}
            self._add_connectivity_variables(extra)
        if self._connectivity is not None:
            self._make_plan()

    def _resolve(self) -> str:
        if self.implementation != "auto":
            return self.implementation
        return choose_implementation(self._declared, dtype=self.compute_dtype)

    def _connectivity_arrays(self, conn: Any) -> dict[str, np.ndarray]:
        arrays = super()._connectivity_arrays(conn)
        if "indptr" in getattr(self, "_index_variables", {}) or (
            self.mutable_connectivity and self._resolve() == "csr"
        ):
            csr = csr_cpu.CSRPlan.from_connectivity(conn)
            arrays.update(indptr=csr.indptr, indices=csr.indices, perm=csr.perm)
        return arrays

    def _make_plan(self) -> None:
        sources = self._index_variables if self.mutable_connectivity else None
        self._plan = make_plan(self.connectivity, self._resolve(), sources)

    def _saved_variables(self) -> list[Any]:
        return [self.kernel_values] + ([self.bias] if self.use_bias else [])

    # ------------------------------------------------------------------- call
    def call(self, inputs: Any) -> Any:
        if self._plan is None:
            _ = self.connectivity  # raises the explanatory RuntimeError
        plan = self._plan
        # Sparse inputs (tf.SparseTensor, JAX BCOO, torch sparse) are
        # densified; integer inputs are cast: the layer computes in its
        # compute dtype, as `Dense` does.
        x = backend.dense_input(inputs)
        dtype = self.compute_dtype
        x = ops.cast(x, dtype)
        values = ops.cast(self.kernel_values, dtype)
        if self.mutable_connectivity:
            values = values * ops.cast(self.kernel_mask, dtype)
        n_in = self._declared.shape[0]
        batch_shape = None
        if len(x.shape) != 2:
            batch_shape = ops.shape(x)[:-1]
            x = ops.reshape(x, (-1, n_in))
        if plan.implementation != "dense" and dtype in ("float16", "bfloat16"):
            # Gathered products are summed in float32 (as a float16/bfloat16
            # matmul accumulates): in half precision a sum over a wide fan-in
            # loses most of its digits.
            outputs = ops.cast(
                plan.matmul(ops.cast(x, "float32"), ops.cast(values, "float32")), dtype
            )
        else:
            outputs = plan.matmul(x, values)
        if batch_shape is not None:
            outputs = ops.reshape(outputs, tuple(batch_shape) + (self.units,))
        if self.bias is not None:
            outputs = ops.add(outputs, ops.cast(self.bias, dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(input_shape)[:-1] + (self.units,)

    # ------------------------------------------------------------- inspection
    @property
    def resolved_implementation(self) -> str:
        """`"sparse"`, `"csr"` or `"dense"`: the kernel this layer runs."""
        if self._plan is not None:
            return str(self._plan.implementation)
        return self._resolve()

    @property
    def kernel(self) -> Any:
        """The effective dense `(num_inputs, units)` kernel, zeros where absent.

        For inspection: it is built on request (never on the sparse path).
        With `mutable_connectivity`, inactive connections (`kernel_mask`
        0) are zero.

        Raises:
            ValueError: if the dense kernel would exceed 2**28 entries;
                use `kernel_values` or `edge_table()` instead.
        """
        n_in, n_out = self._declared.shape
        if n_in * n_out > _MAX_DENSE_KERNEL_ENTRIES:
            raise ValueError(
                f"The dense kernel of layer '{self.name}' would have "
                f"{n_in * n_out:,} entries; use `kernel_values` (the {self.nnz:,} "
                "stored weights) or `edge_table()` instead."
            )
        if self._plan is None:
            _ = self.connectivity  # raises the explanatory RuntimeError
        values = ops.convert_to_tensor(self.kernel_values)
        if self.mutable_connectivity:
            values = values * ops.convert_to_tensor(self.kernel_mask)
        return self._plan.densify(values)

    def edge_table(self) -> Any:
        """One row per connection: `input`, `output`, `weight` (+ indices).

        Returns:
            A pandas DataFrame with columns `input`, `output` (names when
            the connectivity has them, indices otherwise), `weight` (the
            current float value; 0 where `kernel_mask` is 0),
            `input_index`, `output_index`, in the
            canonical order (by output, then input).
        """
        table = self.connectivity.to_edge_table()
        weight = ops.convert_to_numpy(self.kernel_values)
        if self.mutable_connectivity:
            weight = weight * ops.convert_to_numpy(self.kernel_mask)
        table.insert(2, "weight", weight)
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
                "mutable_connectivity": self.mutable_connectivity,
            }
        )
        return config
