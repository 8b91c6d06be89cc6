"""The plan of a sparse layer: how it computes `x @ W`, decided once.

A `MatmulPlan` is built from a connectivity when a layer is built (or its
connectivity is loaded): the implementation `implementation="auto"`
resolves to, and the index operands that implementation reads, as backend
tensors made once. A layer whose connectivity may change during training
passes its integer variables instead (`sources`), so that replacing the
connectivity assigns variables and nothing is retraced.

All implementations share one semantics, that of `keras.layers.Dense`
with the masked kernel restricted to the connections: an input reaches
only the outputs it is connected to, also when it is NaN or infinite
(the `"dense"` kernel adds a non-finite input's contributions through the
sparse kernel instead of multiplying it by the absent zeros).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from keras import ops

from keras_sparse.ops import backend, csr_cpu, portable

__all__ = ["IMPLEMENTATIONS", "MatmulPlan", "choose_implementation", "make_plan"]

IMPLEMENTATIONS = ("auto", "sparse", "csr", "dense")

# Above this many entries `"auto"` never forms the dense kernel.
MAX_AUTO_DENSE_ENTRIES = 1 << 24


def choose_implementation(
    connectivity: Any,
    backend_name: str | None = None,
    csr: bool | None = None,
    dtype: str = "float32",
) -> str:
    """The kernel that `implementation="auto"` runs for a connectivity.

    The rule comes from `benchmarks/` (training step on 2 CPU cores, see
    `docs/benchmarks.md`); nothing is timed at run time. With the compiled
    CPU kernels available (Numba, CPU placement): `"csr"` up to
    `AUTO_CSR_MAX_DENSITY` of the backend's binding (TensorFlow 10 %, JAX
    20 %, PyTorch 10 %), `"dense"` above. Without them (GPU, or no Numba):
    `"sparse"` up to `AUTO_SPARSE_MAX_DENSITY` (TensorFlow 1 %, JAX 0.5 %,
    PyTorch 0.2 %), `"dense"` above. A layer whose dense kernel would
    exceed 2**24 entries (64 MiB in float32) never uses `"dense"`.

    Args:
        connectivity: the layer's `Connectivity` (anything with `shape`
            and `density`).
        backend_name: `"tensorflow"`, `"jax"` or `"torch"`; default the
            current Keras backend.
        csr: whether the compiled kernels are available; default: detected
            (for the current backend only).
        dtype: the layer's compute dtype (unused by the rule today: the
            layer sums float16/bfloat16 products in float32 on `"sparse"` and
            `"csr"`, and every kernel computes float64 exactly).

    Returns:
        `"sparse"`, `"csr"` or `"dense"`.
    """
    binding = backend.binding(backend_name or backend.NAME)
    if csr is None:
        csr = (
            backend.csr_available()
            if binding is backend.binding(backend.NAME)
            else False
        )
    density = connectivity.density
    n_in, n_out = connectivity.shape
    too_big = n_in * n_out > MAX_AUTO_DENSE_ENTRIES
    if csr:
        return "csr" if density <= binding.AUTO_CSR_MAX_DENSITY or too_big else "dense"
    if too_big:
        return "sparse"
    return "sparse" if density <= binding.AUTO_SPARSE_MAX_DENSITY else "dense"


@dataclasses.dataclass(frozen=True)
class MatmulPlan:
    """How a layer computes `x @ W` for its connectivity (immutable).

    Attributes:
        implementation: `"sparse"`, `"csr"` or `"dense"`.
        shape: `(num_inputs, num_outputs)`.
        nnz: number of connections.
        full: every connection exists (the values are the transposed
            dense kernel, no index is needed).
        input_indices, output_indices: `(nnz,)` integer tensors (or
            variables) in canonical order.
        csr_arrays: `(indptr, indices, perm)` for `"csr"`, and for a
            fixed, not full `"dense"` connectivity where the binding sends
            non-finite inputs through the kernels (`DENSE_NON_FINITE_CSR`);
            else `None`.
    """

    implementation: str
    shape: tuple[int, int]
    nnz: int
    full: bool
    input_indices: Any
    output_indices: Any
    csr_arrays: tuple[Any, ...] | None

    def pairs(self) -> Any:
        """`(nnz, 2)` `(input, output)` positions, or `None` when full."""
        if self.full:
            return None
        return ops.stack(
            [_read(self.input_indices), _read(self.output_indices)], axis=1
        )

    def densify(self, values: Any) -> Any:
        """The dense `(num_inputs, num_outputs)` kernel of `values`."""
        if self.full:
            return portable.densify(values, None, self.shape)
        return backend.densify(values, self.pairs(), self.shape)

    def sparse_matmul(self, x: Any, values: Any) -> Any:
        """`x @ W` by the portable gather + segment-sum (any device)."""
        return portable.sparse_matmul(
            x,
            values,
            _read(self.input_indices),
            _read(self.output_indices),
            self.shape[1],
        )

    def matmul(self, x: Any, values: Any) -> Any:
        """`x @ W` for 2-D `x` and `(nnz,)` `values` of `x`'s dtype."""
        if self.implementation == "csr":
            assert self.csr_arrays is not None
            arrays = tuple(_read(a) for a in self.csr_arrays)
            return backend.csr_matmul(x, values, arrays, self.shape)
        if self.implementation == "sparse":
            return self.sparse_matmul(x, values)
        return self._dense_matmul(x, values)

    def _dense_matmul(self, x: Any, values: Any) -> Any:
        def plain() -> Any:
            if self.full:
                return portable.masked_dense_matmul(x, values, None, self.shape)
            return backend.matmul(x, self.densify(values))

        def guarded() -> Any:
            # A non-finite input times an absent (zero) weight would poison
            # every output; its contributions go through a sparse kernel: the
            # compiled one where it runs. The gather + segment-sum has
            # `O(batch * nnz)` intermediates, which JAX keeps as residuals of
            # the differentiated `cond` on every step, taken or not (9180 ->
            # 230 at 20 %: 155 ms per step, 34 ms with the compiled kernel;
            # masked dense 10-15 ms).
            finite = ops.isfinite(x)
            clean = ops.where(finite, x, ops.zeros_like(x))
            rest = ops.where(finite, ops.zeros_like(x), x)
            if self.full:
                dense = portable.masked_dense_matmul(clean, values, None, self.shape)
            else:
                dense = backend.matmul(clean, self.densify(values))
            if self.csr_arrays is not None:
                arrays = tuple(_read(a) for a in self.csr_arrays)
                return dense + backend.csr_matmul(rest, values, arrays, self.shape)
            return dense + self.sparse_matmul(rest, values)

        if self.full:
            return plain()  # every input is connected to every output
        return backend.cond(ops.all(ops.isfinite(x)), plain, guarded)


def _read(source: Any) -> Any:
    """A plan operand as a tensor: constants as they are, variables' values."""
    value = getattr(source, "value", None)
    return source if value is None else value


def make_plan(
    connectivity: Any,
    implementation: str,
    sources: dict[str, Any] | None = None,
) -> MatmulPlan:
    """Builds the `MatmulPlan` of a connectivity.

    Args:
        connectivity: a `Connectivity`.
        implementation: one of `IMPLEMENTATIONS` (`"auto"` is resolved by
            `choose_implementation`).
        sources: for a connectivity that changes during training, the
            layer's integer variables `input_indices`, `output_indices` and,
            for `"csr"`, `indptr`, `indices`, `perm`; `None` for a fixed
            connectivity (constants).

    Returns:
        The plan.
    """
    impl = implementation
    if impl == "auto":
        impl = choose_implementation(connectivity)
    n_in, n_out = connectivity.shape
    full = sources is None and connectivity.nnz == n_in * n_out
    csr_arrays = None
    if sources is not None:
        rows, cols = sources["input_indices"], sources["output_indices"]
        if impl == "csr":
            csr_arrays = (sources["indptr"], sources["indices"], sources["perm"])
    else:
        index = np.int32 if max(n_in, n_out) < 2**31 else np.int64
        rows = backend.host_constant(connectivity.input_indices.astype(index))
        cols = backend.host_constant(connectivity.output_indices.astype(index))
        # "dense" keeps the CSR operands too where the binding asks for them
        # (`DENSE_NON_FINITE_CSR`, JAX): its non-finite branch runs on them.
        guard = backend.DENSE_NON_FINITE_CSR and backend.csr_available()
        if impl == "csr" or (impl == "dense" and not full and guard):
            csr = csr_cpu.CSRPlan.from_connectivity(connectivity)
            csr_arrays = tuple(backend.host_constant(a) for a in csr.arrays)
    return MatmulPlan(
        impl, (n_in, n_out), int(connectivity.nnz), full, rows, cols, csr_arrays
    )
