"""Compiled CPU kernels for `x @ W` with a sparse `W` (Numba, multithreaded).

A training step of a sparse layer needs three products, each
`O(nnz * batch)`:

- forward, `y = x @ W`;
- input gradient, `dx = dy @ W.T` (skipped when the input needs none);
- value gradient, `dvalues[e] = sum_b x[b, i_e] * dy[b, j_e]`, a sampled
  dense-dense product over the existing connections only.

All three walk `W` input by input (CSR of the `(num_inputs, num_outputs)`
kernel) over a block of samples at a time. The block's slice of the dense
side is transposed on the fly, a tile of 128 inputs (64 in float64) at a
time, into a buffer that stays in cache, so every connection is one
vectorized multiply-add over the block's samples and no transposed copy of
`x`, `dy` or `dx` is ever written to memory. Those per-connection loops
are emitted as explicit vector code too (`_scatter_rows`, `_gather_rows`,
`_dot_rows`): Numba's own loops over the samples carried alias checks and
remainder loops per connection. The transposes themselves run
in SIMD registers, 16 x 16 float32 (8 x 8 float64) elements at a time with
AVX-512 and 8 x 8 elsewhere: a Numba intrinsic emits the vector loads, the
`log2(side)` rounds of two-source shuffles and the vector stores (an
element-by-element transpose cost more than all the multiply-adds of a 1 %
layer). Tiles of inputs without a
connection are skipped. Threads own disjoint sample blocks (forward, input
gradient) or disjoint input tiles (value gradient), so no two threads write
the same memory. Memory beyond the arrays handed in and out is
`O(num_outputs * block)` per thread, plus, in the forward and input
gradient, one input-major copy of the values: the values stay in the
layer's canonical order and those kernels gather them through the plan's
permutation once per call, in parallel (reading through the permutation in
every sample block cost a cache miss per connection on wide layers). No
`O(nnz)` work happens outside the kernels.

The three products are named as in sparse linear algebra: `spmm` (sparse
times dense, `x @ W`), `spmm_t` (`dy @ W.T`) and `sddmm` (sampled
dense-dense product). Each is the derivative of the other two (see
`keras_sparse.ops.backend`), so gradients of any order use the same kernels.

Measured against the previous transposed-copy kernels and SciPy in
`benchmarks/` (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

try:  # Numba is a dependency, but keep the package importable without it.
    import numba

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None  # type: ignore[assignment]
    _HAVE_NUMBA = False

__all__ = [
    "available",
    "CSRPlan",
    "kernel_thread",
    "set_kernel_thread",
    "uses_kernel_thread",
    "spmm",
    "spmm_t",
    "sddmm",
]

# Numba's fast-math flags without `nnan`/`ninf`: NaN and inf propagate as
# IEEE arithmetic says, so a non-finite input reaches exactly the outputs it
# is connected to, on every kernel (tests/layers/test_dense_parity.py).
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# Bytes of one row of the cache-resident tile (inputs per tile: 128 float32,
# 64 float64); wider tiles write `dx` in longer runs of each row.
_TILE_BYTES = 512
# Largest sample block: `num_outputs * block` accumulators per thread.
_MAX_BLOCK = 128
# Connections ahead whose `dy` row the value gradient prefetches: with it
# (and the local sums) the 2 M-connection wide layer's value gradient was
# 1.22x faster on a 2-core AMD EPYC (Zen 4; 1.24x and 1.41x in two more
# runs), 9180 -> 230 unchanged (`benchmarks/kernel_ab.py`,
# `kernel_ab_epyc_zen4.json`, docs/benchmarks.md).
_PREFETCH_VALUES_GRAD = 8
# The forward and input gradient index with unsigned integers
# (`np.uint64(indices[k])`, loop counters from `np.uint64(indptr[i])`): a
# signed index makes Numba emit the negative-index wrap-around for every
# connection. Side by side without it (`benchmarks/kernel_ab.py`,
# `kernel_ab_epyc_zen4_indices.json`, AMD EPYC Zen 4): forward 1.01-1.17x
# (wide layer 1.16x), input gradient 1.00-1.35x (wide 1.35x). The value
# gradient gained nothing from it (0.94-1.04x) and keeps its signed index.
# The plan's indices are never negative. Since then the vector loops below
# do the per-connection work and zero-extend the index (`_row_index`); the
# unsigned indexing remains in the forward's and input gradient's loops
# over a block's last samples (fewer than one vector).
# The per-connection loops over a block's samples are Numba intrinsics that
# emit explicit vector code (`_scatter_rows`, `_gather_rows`, `_dot_rows`).
# Side by side with Numba's own loops (`benchmarks/kernel_ab.py`,
# `kernel_ab_epyc_zen4_rows.json`, AMD EPYC Zen 4, 60 turns): forward
# 1.01-1.20x, input gradient 1.00-1.50x, value gradient 1.01-1.72x over the
# 9180 -> 230 cases and the wide layer (1.10x / 1.23x / 1.21x there);
# forward and input gradient bit-identical.


def available() -> bool:
    """Whether the compiled kernels can run (Numba importable)."""
    return _HAVE_NUMBA


def _square_sides() -> tuple[int, int]:
    """Elements per side of the squares transposed in registers, `(float32,
    float64)`: one 64-byte row per register with AVX-512 (16, 8); 8 x 8
    elsewhere, so that a float32 square's rows fill 8 of AVX2's 16
    registers instead of spilling 32 half rows (on an AMD EPYC with AVX2,
    in a scratch A/B: 16 x 16 float32 squares made the value gradient 1.25x
    slower; float64 was 1.1x faster with 8 x 8 than with 4 x 4).
    Numba compiles for the host unless `NUMBA_CPU_FEATURES` says otherwise.
    `KERAS_SPARSE_TRANSPOSE_SIDES="16,8"` (or `"8,8"`) overrides the choice,
    for tests and benchmarks on any host; compiled kernels cached under
    another choice are reused, so set `NUMBA_CACHE_DIR` apart with it."""
    override = os.environ.get("KERAS_SPARSE_TRANSPOSE_SIDES")
    if override:
        sides = tuple(int(v) for v in override.split(","))
        if sides not in ((16, 8), (8, 8)):
            raise ValueError(
                "KERAS_SPARSE_TRANSPOSE_SIDES must be '16,8' or '8,8' (float32 and "
                f"float64 square sides); received {override!r}. Unset it to let "
                "the host's vector width decide."
            )
        return sides  # type: ignore[return-value]
    try:
        from numba.core import config

        features = getattr(config, "CPU_FEATURES", None)
        if features is None:
            from llvmlite import binding

            features = binding.get_host_cpu_features().flatten()
    except Exception:  # pragma: no cover - llvmlite without host detection
        features = ""
    return (16, 8) if "+avx512f" in str(features).split(",") else (8, 8)


_SIDE_F32, _SIDE_F64 = _square_sides() if _HAVE_NUMBA else (16, 8)


if _HAVE_NUMBA:
    from llvmlite import binding as llvm_binding
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.extending import intrinsic

    @intrinsic
    def _transpose_square(typingctx, src, r0, c0, dst, d0, e0):  # type: ignore[no-untyped-def]
        # dst[d0 + j, e0 + t] = src[r0 + t, c0 + j] for t, j < n (`_SIDE_F32`
        # or `_SIDE_F64`): n vector loads, log2(n) rounds of two-source
        # shuffles (each swaps the off-diagonal blocks of size h), n vector
        # stores. Both arrays 2-D, C-contiguous, same float dtype; no bounds
        # check.
        if not (
            isinstance(src, types.Array)
            and isinstance(dst, types.Array)
            and src.ndim == dst.ndim == 2
            and src.layout == dst.layout == "C"
            and src.dtype == dst.dtype
            and isinstance(src.dtype, types.Float)
        ):
            return None
        itemsize = src.dtype.bitwidth // 8
        n = _SIDE_F64 if itemsize == 8 else _SIDE_F32
        sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            intp = context.get_value_type(types.intp)
            vec = ir.VectorType(context.get_data_type(signature.args[0].dtype), n)
            byte_ptr = ir.IntType(8).as_pointer()

            def vector(which, t):  # pointer to array[r + t, c:c + n]
                # which = 0: (src, r0, c0); which = 3: (dst, d0, e0)
                array_type = signature.args[which]
                value, r, c = args[which], args[which + 1], args[which + 2]
                array = context.make_array(array_type)(context, builder, value)
                stride = cgutils.unpack_tuple(builder, array.strides, 2)[0]
                r = builder.add(r, ir.Constant(intp, t))
                offset = builder.add(
                    builder.mul(r, stride), builder.mul(c, ir.Constant(intp, itemsize))
                )
                base = builder.bitcast(array.data, byte_ptr)
                return builder.bitcast(builder.gep(base, [offset]), vec.as_pointer())

            rows = [builder.load(vector(0, t), align=itemsize) for t in range(n)]
            mask = ir.VectorType(ir.IntType(32), n)
            h = n // 2
            while h:
                low = [c if c & h == 0 else n + c - h for c in range(n)]
                high = [c + h if c & h == 0 else n + c for c in range(n)]
                for r in range(n):
                    if r & h == 0:
                        a, b = rows[r], rows[r + h]
                        rows[r] = builder.shuffle_vector(a, b, ir.Constant(mask, low))
                        rows[r + h] = builder.shuffle_vector(
                            a, b, ir.Constant(mask, high)
                        )
                h //= 2
            for j in range(n):
                builder.store(rows[j], vector(3, j), align=itemsize)
            return context.get_dummy_value()

        return sig, codegen

    # `llvm.prefetch`'s name: typed pointers (LLVM < 15) carry the pointee.
    _PREFETCH = (
        "llvm.prefetch.p0"
        if llvm_binding.llvm_version_info[0] >= 15
        else "llvm.prefetch.p0i8"
    )

    def _prefetch_row(context, builder, data, stride, row):  # type: ignore[no-untyped-def]
        # Prefetch the first cache lines (at most 4, 256 bytes) of row `row`
        # of a C array (data as i8*, byte stride) into every cache level, for
        # reading; a prefetch never faults. The value gradient reads the wide
        # layer's `dy` rows in random order from a block larger than L2:
        # fetched a few connections ahead, their misses overlap.
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32]),
            _PREFETCH,
        )
        start = builder.mul(row, stride)
        for line in range(4):
            offset = ir.Constant(intp, 64 * line)
            with builder.if_then(builder.icmp_signed("<", offset, stride)):
                pointer = builder.gep(data, [builder.add(start, offset)])
                # read, locality 3 (keep in all levels), data cache
                locality = [
                    ir.Constant(i32, 0),
                    ir.Constant(i32, 3),
                    ir.Constant(i32, 1),
                ]
                builder.call(fn, [pointer, *locality])

    def _array_parts(context, builder, array_type, value):  # type: ignore[no-untyped-def]
        # (data as i8*, byte stride of the first axis) of an array argument.
        array = context.make_array(array_type)(context, builder, value)
        stride = cgutils.unpack_tuple(builder, array.strides, array_type.ndim)[0]
        return builder.bitcast(array.data, ir.IntType(8).as_pointer()), stride

    def _rows_signature(acc, indices, vk, src):  # type: ignore[no-untyped-def]
        # The operand checks shared by the row loops (`_scatter_rows`,
        # `_gather_rows`, `_dot_rows`).
        return (
            isinstance(acc, types.Array)
            and isinstance(src, types.Array)
            and acc.ndim == src.ndim == 2
            and acc.layout == src.layout == "C"
            and acc.dtype == src.dtype == vk.dtype
            and isinstance(acc.dtype, types.Float)
            and isinstance(indices, types.Array)
            and indices.ndim == vk.ndim == 1
            and isinstance(indices.dtype, types.Integer)
        )

    def _row_index(context, builder, signature, args, ind_at, k):  # type: ignore[no-untyped-def]
        # indices[k] (argument `ind_at`) as intp; the plan's indices are never
        # negative, so int32 ones are zero-extended.
        intp = context.get_value_type(types.intp)
        ind = context.make_array(signature.args[ind_at])(context, builder, args[ind_at])
        o = builder.load(builder.gep(ind.data, [k]))
        return builder.zext(o, intp) if o.type.width < intp.width else o

    def _connection(context, builder, signature, args, k, ind_at, vk_at):  # type: ignore[no-untyped-def]
        # (row of connection k as intp, its value broadcast to a vector).
        vk_type = signature.args[vk_at]
        vka = context.make_array(vk_type)(context, builder, args[vk_at])
        o = _row_index(context, builder, signature, args, ind_at, k)
        v = builder.load(builder.gep(vka.data, [k]))
        n = _SIDE_F64 if vk_type.dtype.bitwidth == 64 else _SIDE_F32
        vec = ir.VectorType(v.type, n)
        broadcast = builder.insert_element(
            ir.Constant(vec, ir.Undefined), v, ir.Constant(ir.IntType(32), 0)
        )
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n)
        return o, builder.shuffle_vector(broadcast, broadcast, zeros)

    def _vector_of(context, signature, at):  # type: ignore[no-untyped-def]
        # (intp, one vector of the dtype of argument `at`, its element size):
        # `_SIDE_F32` or `_SIDE_F64` elements, the rows the squares transpose.
        float_type = signature.args[at].dtype
        n = _SIDE_F64 if float_type.bitwidth == 64 else _SIDE_F32
        vec = ir.VectorType(context.get_data_type(float_type), n)
        return context.get_value_type(types.intp), vec, float_type.bitwidth // 8

    def _operands(context, builder, signature, args, first, second):  # type: ignore[no-untyped-def]
        # `_vector_of` for argument `first`, and (data, stride) of the 2-D
        # arguments `first` and `second`.
        intp, vec, align = _vector_of(context, signature, first)
        parts = [
            _array_parts(context, builder, signature.args[at], args[at])
            for at in (first, second)
        ]
        return intp, vec, align, parts[0], parts[1]

    def _multiply_add(builder, a, b, c):  # type: ignore[no-untyped-def]
        # a * b + c, contractible into one fused multiply-add.
        return builder.fadd(
            c, builder.fmul(a, b, flags=("contract",)), flags=("contract",)
        )

    def _vector_at(context, builder, data, stride, row, col, vec):  # type: ignore[no-untyped-def]
        # Pointer to `vec` elements at [row, col] of a C array (data, stride).
        intp = context.get_value_type(types.intp)
        itemsize = 8 if isinstance(vec.element, ir.DoubleType) else 4
        offset = builder.add(
            builder.mul(row, stride), builder.mul(col, ir.Constant(intp, itemsize))
        )
        return builder.bitcast(builder.gep(data, [offset]), vec.as_pointer())

    @intrinsic
    def _scatter_rows(typingctx, acc, indices, vk, k0, k1, src, s, nbw):  # type: ignore[no-untyped-def]
        # acc[indices[k], c:c + n] += vk[k] * src[s, c:c + n] for k0 <= k < k1
        # and c = 0, n, ... < nbw (n: `_SIDE_F32`/`_SIDE_F64`, one vector;
        # nbw a multiple of n). The forward's inner loop as explicit vector
        # code: Numba's own loop over the samples carries alias checks and a
        # remainder loop per connection, and its widest body never ran at
        # the wide layer's 32-sample blocks. No bounds check.
        if not _rows_signature(acc, indices, vk, src):
            return None
        intp_t = types.intp
        sig = types.void(acc, indices, vk, intp_t, intp_t, src, intp_t, intp_t)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            intp, vec, align, (acc_data, acc_stride), (src_data, src_stride) = (
                _operands(context, builder, signature, args, 0, 5)
            )
            n = vec.count
            k0, k1, s, nbw = args[3], args[4], args[6], args[7]
            chunks = builder.udiv(nbw, ir.Constant(intp, n))
            with cgutils.for_range(builder, builder.sub(k1, k0), intp=intp) as loop:
                k = builder.add(loop.index, k0)
                o, v = _connection(context, builder, signature, args, k, 1, 2)
                with cgutils.for_range(builder, chunks, intp=intp) as inner:
                    c = builder.mul(inner.index, ir.Constant(intp, n))
                    x = builder.load(
                        _vector_at(context, builder, src_data, src_stride, s, c, vec),
                        align=align,
                    )
                    p = _vector_at(context, builder, acc_data, acc_stride, o, c, vec)
                    a = builder.load(p, align=align)
                    builder.store(_multiply_add(builder, v, x, a), p, align=align)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def _gather_rows(typingctx, dst, r, src, indices, vk, k0, k1, nbw):  # type: ignore[no-untyped-def]
        # dst[r, c:c + n] = sum over k0 <= k < k1 of vk[k] * src[indices[k],
        # c:c + n] for c = 0, n, ... < nbw (summed in order of k, as the
        # scalar loop would). Four vectors of a row at a time, each summed in
        # a register, then one at a time. The input gradient's inner loop
        # (see `_scatter_rows`). No bounds check.
        if not _rows_signature(dst, indices, vk, src):
            return None
        intp_t = types.intp
        sig = types.void(dst, intp_t, src, indices, vk, intp_t, intp_t, intp_t)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            intp, vec, align, (dst_data, dst_stride), (src_data, src_stride) = (
                _operands(context, builder, signature, args, 0, 2)
            )
            n = vec.count
            r, k0, k1, nbw = args[1], args[5], args[6], args[7]
            count = builder.sub(k1, k0)
            zero = ir.Constant(vec, [0.0] * n)

            def group(c0, width):  # type: ignore[no-untyped-def]
                sums = [cgutils.alloca_once_value(builder, zero) for _ in range(width)]
                with cgutils.for_range(builder, count, intp=intp) as loop:
                    k = builder.add(loop.index, k0)
                    o, v = _connection(context, builder, signature, args, k, 3, 4)
                    for g in range(width):
                        c = builder.add(c0, ir.Constant(intp, g * n))
                        d = builder.load(
                            _vector_at(
                                context, builder, src_data, src_stride, o, c, vec
                            ),
                            align=align,
                        )
                        total = _multiply_add(builder, v, d, builder.load(sums[g]))
                        builder.store(total, sums[g])
                for g in range(width):
                    c = builder.add(c0, ir.Constant(intp, g * n))
                    builder.store(
                        builder.load(sums[g]),
                        _vector_at(context, builder, dst_data, dst_stride, r, c, vec),
                        align=align,
                    )

            quads = builder.udiv(nbw, ir.Constant(intp, 4 * n))
            with cgutils.for_range(builder, quads, intp=intp) as outer:
                group(builder.mul(outer.index, ir.Constant(intp, 4 * n)), 4)
            start = builder.mul(quads, ir.Constant(intp, 4 * n))
            rest = builder.udiv(builder.sub(nbw, start), ir.Constant(intp, n))
            with cgutils.for_range(builder, rest, intp=intp) as outer:
                c0 = builder.add(start, builder.mul(outer.index, ir.Constant(intp, n)))
                group(c0, 1)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def _dot_rows(typingctx, sums, s0, src, s, rows, indices, k0, k1, ahead, nbw):  # type: ignore[no-untyped-def]
        # sums[k - s0] += dot(src[s, :nbw], rows[indices[k], :nbw]) for
        # k0 <= k < k1 (nbw a multiple of one vector, `_SIDE_F32` or
        # `_SIDE_F64` elements): the value gradient's inner loop (see
        # `_scatter_rows`). Four vectors at a time, each summed in a
        # register, then one at a time; the row of connection
        # k + `_PREFETCH_VALUES_GRAD` is prefetched while k < ahead. No
        # bounds check.
        if not (
            isinstance(sums, types.Array) and _rows_signature(rows, indices, sums, src)
        ):
            return None
        intp_t = types.intp
        sig = types.void(
            sums, intp_t, src, intp_t, rows, indices, intp_t, intp_t, intp_t, intp_t
        )

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            intp, vec, align, (src_data, src_stride), (rows_data, rows_stride) = (
                _operands(context, builder, signature, args, 2, 4)
            )
            n = vec.count
            out = context.make_array(signature.args[0])(context, builder, args[0])
            s0, s, k0, k1, ahead, nbw = (args[i] for i in (1, 3, 6, 7, 8, 9))
            quads = builder.udiv(nbw, ir.Constant(intp, 4 * n))
            singles = builder.udiv(
                builder.sub(nbw, builder.mul(quads, ir.Constant(intp, 4 * n))),
                ir.Constant(intp, n),
            )
            zero = ir.Constant(vec, [0.0] * n)

            def row_of(k):  # type: ignore[no-untyped-def]
                return _row_index(context, builder, signature, args, 5, k)

            with cgutils.for_range(builder, builder.sub(k1, k0), intp=intp) as loop:
                k = builder.add(loop.index, k0)
                with builder.if_then(builder.icmp_signed("<", k, ahead)):
                    later = builder.add(k, ir.Constant(intp, _PREFETCH_VALUES_GRAD))
                    _prefetch_row(
                        context, builder, rows_data, rows_stride, row_of(later)
                    )
                o = row_of(k)
                # zeroed here, for every connection
                totals = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]

                def step(c, g):  # type: ignore[no-untyped-def]
                    a = builder.load(
                        _vector_at(context, builder, src_data, src_stride, s, c, vec),
                        align=align,
                    )
                    b = builder.load(
                        _vector_at(context, builder, rows_data, rows_stride, o, c, vec),
                        align=align,
                    )
                    total = _multiply_add(builder, a, b, builder.load(totals[g]))
                    builder.store(total, totals[g])

                with cgutils.for_range(builder, quads, intp=intp) as q:
                    c0 = builder.mul(q.index, ir.Constant(intp, 4 * n))
                    for g in range(4):
                        step(builder.add(c0, ir.Constant(intp, g * n)), g)
                start = builder.mul(quads, ir.Constant(intp, 4 * n))
                with cgutils.for_range(builder, singles, intp=intp) as q:
                    step(
                        builder.add(start, builder.mul(q.index, ir.Constant(intp, n))),
                        0,
                    )
                total = builder.fadd(
                    builder.fadd(builder.load(totals[0]), builder.load(totals[1])),
                    builder.fadd(builder.load(totals[2]), builder.load(totals[3])),
                )
                h = n // 2
                while h:  # pairwise sums of the vector's halves
                    upper = builder.shuffle_vector(
                        total,
                        total,
                        ir.Constant(
                            ir.VectorType(ir.IntType(32), n),
                            [(c + h) % n for c in range(n)],
                        ),
                    )
                    total = builder.fadd(total, upper)
                    h //= 2
                scalar = builder.extract_element(total, ir.Constant(ir.IntType(32), 0))
                at = builder.gep(out.data, [builder.sub(k, s0)])
                builder.store(builder.fadd(builder.load(at), scalar), at)
            return context.get_dummy_value()

        return sig, codegen

    @numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)
    def _load_tile(a, b0, nb, i0, ni, tile):  # pragma: no cover
        # tile[j, t] = a[b0 + t, i0 + j] for j < ni, t < nb. Squares row band
        # by row band: n rows of `a` are read along the tile's width before
        # the next n (n streams; column by column, nb streams of one cache
        # line each). With the 8 x 8 squares, forward 1.45x and value
        # gradient 1.40x faster on an AMD EPYC, 9180 -> 230 at 1 %
        # (`benchmarks/kernel_ab.py`, docs/benchmarks.md).
        n = _SIDE_F64 if a.itemsize == 8 else _SIDE_F32
        nbw = nb - nb % n
        niw = ni - ni % n
        for t0 in range(0, nbw, n):
            for q in range(0, niw, n):
                _transpose_square(a, b0 + t0, i0 + q, tile, q, t0)
        for t in range(nbw, nb):
            for j in range(niw):
                tile[j, t] = a[b0 + t, i0 + j]
        for t in range(nb):
            for j in range(niw, ni):
                tile[j, t] = a[b0 + t, i0 + j]

    @numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)
    def _store_tile(tile, ni, nb, out, b0, i0):  # pragma: no cover
        # out[b0 + t, i0 + j] = tile[j, t] for j < ni, t < nb.
        n = _SIDE_F64 if tile.itemsize == 8 else _SIDE_F32
        nbw = nb - nb % n
        niw = ni - ni % n
        for t0 in range(0, nbw, n):
            for q in range(0, niw, n):
                _transpose_square(tile, q, t0, out, b0 + t0, i0 + q)
        for t in range(nbw, nb):
            for j in range(niw):
                out[b0 + t, i0 + j] = tile[j, t]
        for t in range(nb):
            for j in range(niw, ni):
                out[b0 + t, i0 + j] = tile[j, t]

    @numba.njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
    def _input_major(values, perm):  # pragma: no cover
        # The values in the kernels' (input-major) order, gathered once per
        # call inside the kernel: on the 2 M-connection layer, reading
        # `values[perm[k]]` in every sample block cost a cache miss per
        # connection and block (forward 58 -> 41 ms with this gather, which
        # takes 2.8 ms; no change at 9180 -> 230).
        out = np.empty(perm.size, dtype=values.dtype)
        for k in numba.prange(perm.size):
            out[k] = values[perm[k]]
        return out

    @numba.njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
    def _forward(x, indptr, indices, values, perm, n_out, blk, out):  # pragma: no cover
        # out[b, o] = sum over connections (i -> o) of values * x[b, i];
        # input-major CSR (indptr/indices by input), `values` canonical.
        # Tiles of inputs without a connection are skipped. (Prefetching the
        # accumulator rows of later connections, as `_values_grad` does its
        # `dy` rows, changed the wide layer's forward by 0.99-1.03x; software
        # prefetches of the next tile of `x` while transposing the current
        # one, here and in `_values_grad`, 0.92-0.99x on the forward and
        # value gradient with every call after a 2 ms idle gap, as in a
        # step: `kernel_ab.py --gap-ms 2`, a scratch A/B on a 2-core AMD
        # EPYC, Zen 4.)
        batch, n_in = x.shape
        width = _TILE_BYTES // x.itemsize
        side = _SIDE_F64 if x.itemsize == 8 else _SIDE_F32
        vk = _input_major(values, perm)
        for bb in numba.prange((batch + blk - 1) // blk):
            b0 = bb * blk
            nb = min(blk, batch - b0)
            nbw = nb - nb % side
            acc = np.zeros((n_out, nb), dtype=x.dtype)
            tile = np.empty((width, nb), dtype=x.dtype)
            for i0 in range(0, n_in, width):
                ni = min(width, n_in - i0)
                if indptr[i0 + ni] == indptr[i0]:
                    continue
                _load_tile(x, b0, nb, i0, ni, tile)
                for j in range(ni):
                    i = i0 + j
                    _scatter_rows(
                        acc, indices, vk, indptr[i], indptr[i + 1], tile, j, nbw
                    )
                    if nbw < nb:
                        xs = tile[j]
                        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                            v = vk[k]
                            row = acc[np.uint64(indices[k])]
                            for t in range(nbw, nb):
                                row[t] += v * xs[t]
            _store_tile(acc, n_out, nb, out, b0, 0)

    @numba.njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
    def _input_grad(
        dy, indptr, indices, values, perm, n_in, blk, out
    ):  # pragma: no cover
        # out[b, i] = sum over connections (i -> o) of values * dy[b, o];
        # `values` canonical.
        batch, n_out = dy.shape
        width = _TILE_BYTES // dy.itemsize
        side = _SIDE_F64 if dy.itemsize == 8 else _SIDE_F32
        vk = _input_major(values, perm)
        for bb in numba.prange((batch + blk - 1) // blk):
            b0 = bb * blk
            nb = min(blk, batch - b0)
            nbw = nb - nb % side
            dyt = np.empty((n_out, nb), dtype=dy.dtype)
            _load_tile(dy, b0, nb, 0, n_out, dyt)
            tile = np.empty((width, nb), dtype=dy.dtype)
            for i0 in range(0, n_in, width):
                ni = min(width, n_in - i0)
                for j in range(ni):
                    i = i0 + j
                    _gather_rows(
                        tile, j, dyt, indices, vk, indptr[i], indptr[i + 1], nbw
                    )
                    if nbw < nb:
                        acc = tile[j]
                        acc[nbw:] = 0
                        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                            v = vk[k]
                            d = dyt[np.uint64(indices[k])]
                            for t in range(nbw, nb):
                                acc[t] += v * d[t]
                _store_tile(tile, ni, nb, out, b0, i0)

    @numba.njit(parallel=True, fastmath=_FASTMATH, cache=True, nogil=True)
    def _values_grad(
        x, dy, indptr, indices, perm, blk, n_chunks, out
    ):  # pragma: no cover
        # out[perm[k]] = sum_b x[b, i] * dy[b, indices[k]] for connection k of
        # input i. Threads own chunks of input tiles; a tile's sums build up
        # in a local buffer (over the sample blocks), written to `out` once
        # (one random write per connection instead of a zeroing pass and a
        # read-modify-write per block). The `dy` row of the connection
        # `_PREFETCH_VALUES_GRAD` ahead is prefetched.
        batch, n_in = x.shape
        n_out = dy.shape[1]
        width = _TILE_BYTES // x.itemsize
        side = _SIDE_F64 if x.itemsize == 8 else _SIDE_F32
        nblk = (batch + blk - 1) // blk
        dyt = np.empty((nblk, n_out, blk), dtype=dy.dtype)
        for bb in numba.prange(nblk):
            b0 = bb * blk
            _load_tile(dy, b0, min(blk, batch - b0), 0, n_out, dyt[bb])
        n_tiles = (n_in + width - 1) // width
        size = (n_tiles + n_chunks - 1) // n_chunks
        for c in numba.prange(n_chunks):
            tile = np.empty((width, blk), dtype=x.dtype)
            sums = np.empty(0, dtype=x.dtype)
            for q in range(c * size, min((c + 1) * size, n_tiles)):
                i0 = q * width
                ni = min(width, n_in - i0)
                k0 = indptr[i0]
                k1 = indptr[i0 + ni]
                if k1 == k0:
                    continue
                if sums.size < k1 - k0:
                    sums = np.empty(2 * (k1 - k0), dtype=x.dtype)
                sums[: k1 - k0] = 0
                ahead = k1 - _PREFETCH_VALUES_GRAD
                for bb in range(nblk):
                    b0 = bb * blk
                    nb = min(blk, batch - b0)
                    rows = dyt[bb]
                    _load_tile(x, b0, nb, i0, ni, tile)
                    nbw = nb - nb % side
                    for j in range(ni):
                        i = i0 + j
                        _dot_rows(
                            sums,
                            k0,
                            tile,
                            j,
                            rows,
                            indices,
                            indptr[i],
                            indptr[i + 1],
                            ahead,
                            nbw,
                        )
                        if nbw < nb:
                            xs = tile[j]
                            for k in range(indptr[i], indptr[i + 1]):
                                d = rows[indices[k]]
                                s = xs[0] * 0
                                for t in range(nbw, nb):
                                    s += xs[t] * d[t]
                                sums[k - k0] += s
                for k in range(k0, k1):
                    out[perm[k]] = sums[k - k0]


class CSRPlan:
    """A connectivity laid out for the kernels (built once per connectivity).

    Attributes:
        shape: `(num_inputs, num_outputs)`.
        index_dtype: int32, or int64 when `nnz >= 2**31`.
        indptr: `(num_inputs + 1,)` CSR pointers of `W` (by input).
        indices: `(nnz,)` output of each connection, in input-major order.
        perm: `(nnz,)` canonical (output-major) position of each input-major
            connection: `values[perm]` is input-major.
    """

    def __init__(
        self,
        input_indices: np.ndarray,
        output_indices: np.ndarray,
        shape: tuple[int, int],
    ) -> None:
        n_in, n_out = int(shape[0]), int(shape[1])
        nnz = int(np.asarray(input_indices).size)
        # int32 indices (and pointers) whenever they fit: half the memory, and
        # what JAX passes without 64-bit mode (the XLA FFI kernels).
        index = np.int32 if nnz < 2**31 else np.int64
        self.index_dtype = np.dtype(index)
        self.shape = (n_in, n_out)
        rows = np.asarray(input_indices).astype(index)
        cols = np.asarray(output_indices).astype(index)
        order = np.lexsort((cols, rows))
        self.perm = order.astype(index)
        self.indices = cols[order]
        fan_out = np.bincount(rows, minlength=n_in)
        self.indptr = np.zeros(n_in + 1, dtype=index)
        np.cumsum(fan_out, out=self.indptr[1:])

    @classmethod
    def from_connectivity(cls, connectivity: Any) -> CSRPlan:
        return cls(
            connectivity.input_indices,
            connectivity.output_indices,
            connectivity.shape,
        )

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(indptr, indices, perm)`, the index operands of the kernels."""
        return self.indptr, self.indices, self.perm


def block(batch: int) -> int:
    """Samples per block (`spmm`, `spmm_t`): enough blocks for every thread,
    at most 128."""
    threads = max(1, numba.get_num_threads())
    return int(min(_MAX_BLOCK, max(8, -(-batch // threads))))


def sddmm_block(batch: int) -> int:
    """Samples per block of `sddmm`: long dot products."""
    return int(max(1, min(batch, 256)))


def chunks() -> int:
    """Chunks of input tiles in `sddmm` (threads own chunks)."""
    return 4 * max(1, numba.get_num_threads())


def _contiguous(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


# One host thread for every kernel launch (`set_kernel_thread`). Numba's
# OpenMP layer (libgomp) keeps one worker team per host thread that has
# entered a parallel region; the frameworks call the kernels from their own
# executor threads, so several teams end up competing for the cores and
# libgomp stops spin-waiting (docs/benchmarks.md, "Kernels inside a step").
# "on": None (each binding's default), True or False (every call).
_KERNEL_THREAD: dict[str, Any] = {"on": None, "pool": None, "ident": None}


def set_kernel_thread(on: bool | None) -> None:
    """Whether kernels called through this module's NumPy API (`spmm`,
    `spmm_t`, `sddmm`: the TensorFlow, PyTorch and `jax.pure_callback`
    paths) are launched from one library-owned thread instead of the
    calling thread.

    The calling thread waits for the result (the hand-off costs about
    25 us); the kernels release the GIL. The XLA FFI path (JAX) calls the
    kernels in place and is never affected.

    By default (`None`) TensorFlow's binding uses the kernel thread
    whenever Numba runs more than one thread, and the other bindings
    launch in place. TensorFlow runs the kernels from several of its
    executor threads; libgomp gives each of them a worker team of its own,
    and once it manages more threads than there are cores its workers
    stop spin-waiting. On a 2-core AMD EPYC (Zen 4), in pairs of fresh
    processes, TensorFlow's 9180 -> 230 training step was 1.33x, 1.46x and
    1.23x faster with the kernel thread at 0.1 %, 1 % and 10 % density in
    one run, 1.16x, 0.95x and 0.93x in the next (a noisy one) and 1.35x,
    1.37x and 1.13x in a third, quieter one (faster in 7 of 8 pairs at
    each density) and 1.07x, 1.16x and 1.09x in a fourth (faster in 4, 5
    and 3 of 5 pairs), PyTorch's 0.54-0.94x (slower: PyTorch
    calls the kernels from the thread that runs the step, so the hand-off
    only costs)
    (`benchmarks/kernel_thread_step.py`, docs/benchmarks.md). Kernels run
    on the kernel thread with the calling thread's
    `numba.get_num_threads()`.

    Args:
        on: bool or None. `True` or `False` for every call, whatever the
            binding; `None` restores the bindings' defaults.

    Raises:
        TypeError: if `on` is neither a bool nor None.

    Example:

    >>> from keras_sparse.ops import csr_cpu
    >>> csr_cpu.set_kernel_thread(True); csr_cpu.kernel_thread()
    True
    >>> csr_cpu.set_kernel_thread(None); print(csr_cpu.kernel_thread())
    None
    """
    if on is not None and not isinstance(on, (bool, np.bool_)):
        raise TypeError(
            "Received an invalid value for `on`, expected True, False or None "
            f"(the bindings' defaults). Received: on={on!r}"
        )
    _KERNEL_THREAD["on"] = None if on is None else bool(on)


def kernel_thread() -> bool | None:
    """The `set_kernel_thread` setting: `True`/`False` for every call, or
    `None` when each binding chooses (TensorFlow's uses the thread)."""
    return _KERNEL_THREAD["on"]


def _remember_ident() -> None:
    _KERNEL_THREAD["ident"] = threading.get_ident()


def _forget_pool() -> None:
    # A forked child has no kernel thread: make it start its own.
    _KERNEL_THREAD.update(pool=None, ident=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def uses_kernel_thread(prefer: bool = False) -> bool:
    """Whether a call launches from the kernel thread.

    Args:
        prefer: bool, the calling binding's default (its `KERNEL_THREAD`).

    Returns:
        The `set_kernel_thread` setting if it is `True` or `False`; else
        `prefer` when Numba runs more than one thread (with one, no worker
        team exists to compete), `False` otherwise.

    Example:

    >>> from keras_sparse.ops import csr_cpu
    >>> csr_cpu.uses_kernel_thread(False)
    False
    """
    on = _KERNEL_THREAD["on"]
    if on is not None:
        return bool(on)
    return bool(prefer) and _HAVE_NUMBA and numba.get_num_threads() > 1


def _launch(kernel: Any, *args: Any, thread: bool = False) -> None:
    if not uses_kernel_thread(thread) or (
        threading.get_ident() == _KERNEL_THREAD["ident"]
    ):
        kernel(*args)
        return
    pool = _KERNEL_THREAD["pool"]
    if pool is None:
        pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="keras_sparse_kernels",
            initializer=_remember_ident,
        )
        _KERNEL_THREAD["pool"] = pool
    # Numba's thread count is per thread: run with the caller's.
    pool.submit(_with_threads, numba.get_num_threads(), kernel, *args).result()


def _with_threads(threads: int, kernel: Any, *args: Any) -> None:
    numba.set_num_threads(threads)
    kernel(*args)


def spmm(
    x: np.ndarray,
    values: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    perm: np.ndarray,
    num_outputs: int,
    *,
    kernel_thread: bool = False,
) -> np.ndarray:
    """`x @ W`: `x` `(batch, num_inputs)` -> `(batch, num_outputs)`.

    `values` `(nnz,)` in canonical order; the index arrays as in `CSRPlan`.
    Float32 or float64 (the result has `x`'s dtype). `kernel_thread`: the
    caller's default for `set_kernel_thread(None)` (see
    `uses_kernel_thread`).
    """
    x = _contiguous(x)
    out = np.empty((x.shape[0], int(num_outputs)), dtype=x.dtype)
    v = _contiguous(np.asarray(values, dtype=x.dtype))
    _launch(
        _forward,
        x,
        indptr,
        indices,
        v,
        perm,
        int(num_outputs),
        block(x.shape[0]),
        out,
        thread=kernel_thread,
    )
    return out


def spmm_t(
    dy: np.ndarray,
    values: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    perm: np.ndarray,
    num_inputs: int,
    *,
    kernel_thread: bool = False,
) -> np.ndarray:
    """`dy @ W.T`: `dy` `(batch, num_outputs)` -> `(batch, num_inputs)`;
    `kernel_thread` as in `spmm`."""
    dy = _contiguous(dy)
    out = np.empty((dy.shape[0], int(num_inputs)), dtype=dy.dtype)
    v = _contiguous(np.asarray(values, dtype=dy.dtype))
    _launch(
        _input_grad,
        dy,
        indptr,
        indices,
        v,
        perm,
        int(num_inputs),
        block(dy.shape[0]),
        out,
        thread=kernel_thread,
    )
    return out


def sddmm(
    x: np.ndarray,
    dy: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    perm: np.ndarray,
    *,
    kernel_thread: bool = False,
) -> np.ndarray:
    """`out[e] = sum_b x[b, i_e] * dy[b, j_e]` -> `(nnz,)`, canonical order.

    The gradient of `sum(spmm(x, values) * dy)` with respect to `values`;
    `kernel_thread` as in `spmm`.
    """
    x, dy = _contiguous(x), _contiguous(np.asarray(dy, dtype=x.dtype))
    out = np.empty(perm.size, dtype=x.dtype)  # every entry written by the kernel
    _launch(
        _values_grad,
        x,
        dy,
        indptr,
        indices,
        perm,
        sddmm_block(x.shape[0]),
        chunks(),
        out,
        thread=kernel_thread,
    )
    return out
