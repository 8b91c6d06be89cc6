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
(the `"dense"` kernel adds a non-finite input's terms as IEEE arithmetic
sums them over its connections, instead of multiplying it by the absent
zeros).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
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
    `AUTO_CSR_MAX_DENSITY` of the backend's binding (20 % on TensorFlow
    and JAX, 30 % on PyTorch), `"dense"` above. Without them (GPU, or no Numba):
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
        csr_arrays: `(indptr, indices, perm)` for `"csr"`, else `None`.
        positions: for a fixed, not full `"dense"` connectivity, the
            `(nnz,)` integer tensor of flat positions `output * num_inputs +
            input` of the values in the transposed kernel (ascending: the
            canonical order); else `None` (computed from the indices).
    """

    implementation: str
    shape: tuple[int, int]
    nnz: int
    full: bool
    input_indices: Any
    output_indices: Any
    csr_arrays: tuple[Any, ...] | None
    positions: Any = None

    def kernel_t(self, values: Any) -> Any:
        """The transposed dense `(num_outputs, num_inputs)` kernel of `values`.

        Transposed because the canonical order (by output, then input) is
        its row-major order: a full connectivity's values are it, with no
        copy, and the scatter (and its gradient, a gather) of a partial one
        runs through memory in order.
        """
        n_in, n_out = self.shape
        if self.full:
            return ops.reshape(values, (n_out, n_in))
        positions = self.positions
        if positions is None:  # indices in variables: computed per call
            rows, cols = _read(self.input_indices), _read(self.output_indices)
            if n_in * n_out >= 2**31:
                rows, cols = ops.cast(rows, "int64"), ops.cast(cols, "int64")
            positions = cols * n_in + rows
        return backend.densify(values, positions, (n_out, n_in))

    def densify(self, values: Any) -> Any:
        """The dense `(num_inputs, num_outputs)` kernel of `values`."""
        return ops.transpose(self.kernel_t(values))

    def _csr_matmul(self, x: Any, values: Any) -> Any:
        assert self.csr_arrays is not None
        arrays = tuple(_read(a) for a in self.csr_arrays)
        return backend.csr_matmul(x, values, arrays, self.shape)

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
            return self._csr_matmul(x, values)
        if self.implementation == "sparse":
            return self.sparse_matmul(x, values)
        return self._dense_matmul(x, values)

    def _guarded_product(self, product: Any, x: Any, kernel_t: Any, values: Any) -> Any:
        """`x @ W` summed over the connections only, for `x` with NaN or
        infinite entries (which times an absent zero would poison every
        output); `product` is the dense `x @ W`, kept in the rows without.

        As IEEE arithmetic has it: a non-finite input's term is NaN for a NaN
        input, or for an infinite one and a zero or NaN weight, else
        infinite with the sign of the product; a sum with a NaN term, or
        infinite terms of both signs, is NaN, else infinite if a term is.

        In a row with a non-finite input, the finite terms are a dense
        product of `x` with each infinite input replaced by its sign and
        each NaN by 0 (a replaced input times an infinite weight keeps the
        sign the term has), and to every output a non-finite input reaches
        the sum of its terms is added, NaN or an infinity, from counts of
        the terms' kinds: dense products of 0/1 indicators of the inputs'
        and the weights' classes (a count is only compared with 0, so any
        float dtype is exact). float16 and bfloat16 are summed in float32.

        Where the backend holds the buffers of both branches of a cond in
        every step (`COND_ALLOCATES_BOTH_BRANCHES`: XLA on JAX, where glibc
        gives buffers over 32 MB fresh pages each call), this runs over
        chunks of about 2**15 entries of `x` and of the kernel (at least 64
        inputs wide): the gather + segment-sum this replaced, `batch * nnz`,
        took 1.1 GB and 4,100 page faults per step at 9180 -> 230, 50 %,
        batch 256.
        """
        n_in, n_out = self.shape
        dtype = keras.backend.standardize_dtype(x.dtype)
        acc = "float32" if dtype in ("float16", "bfloat16") else dtype

        def const(value: float, dtype: Any) -> Any:
            # Made by an op, not converted from a Python number: torch.export
            # cannot save a converted number (a tensor constant) inside a
            # cond's branch, where this runs.
            return ops.zeros((), dtype=dtype) + value

        one = ops.ones_like(values)
        zero_v = const(0, values.dtype)
        # 1: positive weight, 2: negative, 3: zero or NaN; 0: no connection.
        code = ops.where(
            ops.greater(values, zero_v),
            one,
            ops.where(ops.less(values, zero_v), one + one, one + one + one),
        )
        c_none, c_pos, c_neg, c_nan = (const(c, "int8") for c in (0, 1, 2, 3))
        zero, inf = const(0, acc), const(float("inf"), dtype)
        codes = self.kernel_t(ops.cast(code, "int8"))
        batch = ops.shape(x)[0]

        def chunk(start: Any, width: int, sums: Any) -> Any:
            xs = ops.slice(x, (0, start), (batch, width))
            ks = ops.cast(ops.slice(kernel_t, (0, start), (n_out, width)), acc)
            cs = ops.slice(codes, (0, start), (n_out, width))
            proxy = ops.where(
                ops.isfinite(xs),
                xs,
                ops.where(ops.isnan(xs), ops.zeros_like(xs), ops.sign(xs)),
            )
            x_pos = ops.cast(ops.equal(xs, inf), acc)
            x_neg = ops.cast(ops.equal(xs, -inf), acc)
            x_nan = ops.cast(ops.isnan(xs), acc)
            k_pos, k_neg, k_nan = (
                ops.cast(ops.equal(cs, c), acc) for c in (c_pos, c_neg, c_nan)
            )

            def count(a: Any, k: Any) -> Any:
                return backend.matmul(a, k, transpose_b=True)

            finite, positive, negative, nan = sums
            return (
                finite + count(ops.cast(proxy, acc), ks),
                positive + count(x_pos, k_pos) + count(x_neg, k_neg),
                negative + count(x_pos, k_neg) + count(x_neg, k_pos),
                nan
                + count(x_nan, ops.cast(ops.not_equal(cs, c_none), acc))
                + count(x_pos + x_neg, k_nan),
            )

        width = n_in
        if backend.COND_ALLOCATES_BOTH_BRANCHES:
            rows = max(n_out, x.shape[0] if isinstance(x.shape[0], int) else 256)
            width = int(min(n_in, max(64, 2**15 // rows)))
        steps, tail = divmod(n_in, width)
        zeros = ops.zeros((batch, n_out), dtype=acc)
        sums = (zeros, zeros, zeros, zeros)
        if steps == 1:
            sums = chunk(0, width, sums)
        elif steps:
            sums = ops.fori_loop(
                0, steps, lambda i, s: chunk(i * width, width, s), sums
            )
        if tail:
            sums = chunk(steps * width, tail, sums)
        finite, positive, negative, nan = sums
        nan = ops.logical_or(
            ops.greater(nan, zero),
            ops.logical_and(ops.greater(positive, zero), ops.greater(negative, zero)),
        )
        # Added, not substituted: a finite input times an infinite weight in
        # `finite` meets the counted infinities as IEEE sums have them.
        infinite = ops.where(
            ops.greater(positive, zero),
            zeros + float("inf"),
            ops.where(ops.greater(negative, zero), zeros - float("inf"), zeros),
        )
        guarded = ops.cast(
            finite + ops.where(nan, zeros + float("nan"), infinite), dtype
        )
        clean_row = ops.all(ops.isfinite(x), axis=1, keepdims=True)
        return ops.where(clean_row, product, guarded)

    def _dense_matmul(self, x: Any, values: Any) -> Any:
        kernel_t = self.kernel_t(values)
        product = backend.matmul(x, kernel_t, transpose_b=True)
        if self.full:
            return product  # every input reaches every output

        def keep(product: Any, x: Any, kernel_t: Any, values: Any) -> Any:
            return product

        def guarded(product: Any, x: Any, kernel_t: Any, values: Any) -> Any:
            return self._guarded_product(product, x, kernel_t, values)

        # The sum of `x` is finite exactly when every entry is, but for
        # finite entries whose sum overflows (then the guarded branch runs,
        # with the same result). One pass: `all(isfinite(x))` took 5.5 ms of
        # a 9180 -> 230, batch 256 step on PyTorch, the sum 0.2 ms.
        half = keras.backend.standardize_dtype(x.dtype) == "float16"
        finite = ops.isfinite(ops.sum(ops.cast(x, "float32") if half else x))
        # The product stays outside the cond, and the cond is differentiated
        # as `keep` on every backend: the derivatives are the dense
        # product's, which in reverse mode equal those of the sum over the
        # connections (an absent weight's gradient is never read: the
        # kernel's gradient is gathered at the connections), also for
        # non-finite inputs, whose terms `guarded` adds as constants. JAX and
        # TensorFlow then keep no intermediates of the branch not taken
        # (they did: 10-15 ms of a 9180 -> 230 step at 20 %). Forward-mode
        # tangents (JAX `jvp`) are the product's: a non-finite input makes
        # its row's tangents NaN.
        return backend.cond_true_gradient(
            finite, keep, guarded, product, x, kernel_t, values
        )


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
    csr_arrays = positions = None
    if sources is not None:
        rows, cols = sources["input_indices"], sources["output_indices"]
        if impl == "csr":
            csr_arrays = (sources["indptr"], sources["indices"], sources["perm"])
    else:
        index = np.int32 if max(n_in, n_out) < 2**31 else np.int64
        rows = backend.host_constant(connectivity.input_indices.astype(index))
        cols = backend.host_constant(connectivity.output_indices.astype(index))
        if impl == "csr":
            csr = csr_cpu.CSRPlan.from_connectivity(connectivity)
            csr_arrays = tuple(backend.host_constant(a) for a in csr.arrays)
        if impl == "dense" and not full:
            small = n_in * n_out < 2**31 and backend.DENSIFY_INDEX_DTYPE == "int32"
            flat = np.int32 if small else np.int64
            positions = backend.host_constant(
                connectivity.output_indices.astype(flat) * n_in
                + connectivity.input_indices.astype(flat)
            )
    return MatmulPlan(
        impl,
        (n_in, n_out),
        int(connectivity.nnz),
        full,
        rows,
        cols,
        csr_arrays,
        positions,
    )
