"""A software prefetch for Numba kernels: ask the CPU to start loading a row before it is needed.

Graph search reads rows in an order no hardware prefetcher can guess; issuing the load for every
neighbour before computing the first distance overlaps their cache misses (the same trick hnswlib
plays with ``_mm_prefetch``). A scan of scattered rows (one term's rows inside a window) gains the same
way from loading the next row whole while the current one is scored. Emits LLVM's ``llvm.prefetch``
(read, high locality, data cache).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Bytes in a cache line: the stride of a whole-row prefetch.
CACHE_LINE = 64


def _emit_prefetch(builder, ptr) -> None:
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch")
    builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])


@intrinsic
def prefetch_row(typingctx, array, row):
    """Prefetch the first cache line of ``array[row]`` (a 1-d or 2-d array; no bounds check)."""
    if not isinstance(array, types.Array) or array.ndim not in (1, 2) or not isinstance(row, types.Integer):
        return None
    sig = types.void(array, row)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        indices = [index] if aryty.ndim == 1 else [index, context.get_constant(types.intp, 0)]
        _emit_prefetch(builder, cgutils.get_item_pointer(context, builder, aryty, ary, indices, wraparound=False))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def prefetch_item(typingctx, array, row, col):
    """Prefetch the cache line holding ``array[row, col]`` (a 2-d array; no bounds check)."""
    if not isinstance(array, types.Array) or array.ndim != 2:
        return None
    if not isinstance(row, types.Integer) or not isinstance(col, types.Integer):
        return None
    sig = types.void(array, row, col)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        indices = [context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 2)]
        _emit_prefetch(builder, cgutils.get_item_pointer(context, builder, aryty, ary, indices, wraparound=False))
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always")
def prefetch_whole_row(array, row):
    """Prefetch every cache line of ``array[row]`` (a C-contiguous 2-d array; no bounds check)."""
    step = max(1, CACHE_LINE // array.itemsize)
    for col in range(0, array.shape[1], step):
        prefetch_item(array, row, col)
