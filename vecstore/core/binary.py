"""Binary quantisation kernels: one sign bit per dimension, packed in uint64 words, Hamming distance.

A row's code has bit ``j`` set when ``vector[j] > centre[j]`` (the centre is the segment mean, so the
bits split every dimension about evenly). Bit ``j`` lives in word ``j // 64`` at position ``j % 64``;
padding bits past ``dim`` are zero in every code, so they never add to a distance.

The Hamming distance of two codes estimates the angle between the centred vectors; the engine uses
it to pick ``k x oversampling`` candidates and rescores those on the float vectors.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from vecstore.core.topk import heap_drain_sorted, heap_offer, worse

WORD_BITS = 64


@intrinsic
def popcount(typingctx, word):
    """Set bits of a uint64, as one ``popcnt`` instruction (LLVM's ctpop)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


def code_words(dim: int) -> int:
    """uint64 words per code of ``dim`` bits."""
    return (dim + WORD_BITS - 1) // WORD_BITS


@njit(nogil=True, cache=True, parallel=True)
def pack_signs(vectors, centre):
    """Codes uint64 [n, words] of ``vectors`` float32 [n, dim] about ``centre`` float32 [dim]."""
    n, dim = vectors.shape
    words = (dim + WORD_BITS - 1) // WORD_BITS
    codes = np.empty((n, words), dtype=np.uint64)
    for i in prange(n):
        for w in range(words):
            codes[i, w] = _word(vectors[i], centre, w, 1.0)
    return codes


@njit(nogil=True, cache=True, inline="always")
def _word(vector, centre, w, scale):
    """Bits ``64 w .. 64 w + 63`` of a code, gathered in a register (one store per word, not per bit)."""
    bits = np.uint64(0)
    start = w * WORD_BITS
    for b in range(min(WORD_BITS, vector.shape[0] - start)):
        if np.float32(vector[start + b] * scale) > centre[start + b]:
            bits |= np.uint64(1) << np.uint64(b)
    return bits


@njit(nogil=True, cache=True)
def pack_sign_row(vector, centre, unit):
    """The code of one vector (``pack_signs`` without the thread start-up a single query cannot repay);
    ``unit`` scales the vector to unit length first (cosine), as the stored rows were."""
    dim = vector.shape[0]
    scale = 1.0
    if unit:
        sq = 0.0
        for j in range(dim):
            sq += np.float64(vector[j]) * np.float64(vector[j])
        scale = 1.0 / np.sqrt(sq) if sq > 0 else 1.0
    words = (dim + WORD_BITS - 1) // WORD_BITS
    code = np.empty(words, dtype=np.uint64)
    for w in range(words):
        code[w] = _word(vector, centre, w, scale)
    return code


@njit(nogil=True, cache=True)
def hamming(a, b):
    """Bits that differ between two codes (uint64 [words] each)."""
    total = 0
    for w in range(a.shape[0]):
        total += popcount(a[w] ^ b[w])
    return total


@njit(nogil=True, cache=True)
def hamming_topk(codes, query_code, offsets, keys, k):
    """The ``k`` rows of ``offsets`` whose codes are nearest ``query_code`` by Hamming distance, ties
    by the smaller key: offsets int64 [k] and distances float32 [k], padded -1 / +inf."""
    cap = min(k, offsets.shape[0])
    hd = np.empty(cap, dtype=np.float32)
    hk = np.empty(cap, dtype=np.int64)
    ho = np.empty(cap, dtype=np.int64)
    size = 0
    words = codes.shape[1]
    for j in range(offsets.shape[0]):
        row = offsets[j]
        total = 0
        for w in range(words):
            total += popcount(codes[row, w] ^ query_code[w])
        d = np.float32(total)
        if size < cap or worse(hd[0], hk[0], d, keys[row]):
            size = heap_offer(hd, hk, ho, size, d, keys[row], row)
    out_offsets = np.empty(k, dtype=np.int64)
    out_distances = np.empty(k, dtype=np.float32)
    heap_drain_sorted(hd, hk, ho, size, out_offsets, out_distances)
    return out_offsets, out_distances


@njit(nogil=True, cache=True, parallel=True)
def hamming_topk_batch(codes, query_codes, offsets, keys, k):
    """``hamming_topk`` for each query code (one query per thread): [q, k] offsets and distances."""
    nq = query_codes.shape[0]
    out_offsets = np.empty((nq, k), dtype=np.int64)
    out_distances = np.empty((nq, k), dtype=np.float32)
    for i in prange(nq):
        o, d = hamming_topk(codes, query_codes[i], offsets, keys, k)
        out_offsets[i] = o
        out_distances[i] = d
    return out_offsets, out_distances


@njit(nogil=True, cache=True)
def hamming_candidates(codes, query_code, offsets, count):
    """``count`` rows of ``offsets`` nearest ``query_code``: every row closer than some distance t, then
    rows at t in offset order (int64 [count], -1 padded, unordered). Distances are small integers, so a
    histogram finds t in two passes where a heap of ``count`` would sift on every tie."""
    n = offsets.shape[0]
    words = codes.shape[1]
    distances = np.empty(n, dtype=np.int64)
    histogram = np.zeros(words * WORD_BITS + 2, dtype=np.int64)
    for j in range(n):
        row = offsets[j]
        total = 0
        for w in range(words):
            total += popcount(codes[row, w] ^ query_code[w])
        distances[j] = total
        histogram[total] += 1
    out = np.full(count, -1, dtype=np.int64)
    if n <= count:
        out[:n] = offsets
        return out
    threshold = 0
    below = 0  # rows strictly closer than the threshold
    while below + histogram[threshold] < count:
        below += histogram[threshold]
        threshold += 1
    at_threshold = count - below
    filled = 0
    for j in range(n):
        d = distances[j]
        if d < threshold or (d == threshold and at_threshold > 0):
            if d == threshold:
                at_threshold -= 1
            out[filled] = offsets[j]
            filled += 1
    return out
