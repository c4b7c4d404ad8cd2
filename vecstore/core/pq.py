"""Product quantisation kernels: k-means codebooks, encoding, and asymmetric distance (ADC) scans.

A vector of ``dim`` values is cut into ``m`` sub-vectors of ``dsub = dim / m`` values; each is replaced
by the index of its nearest centroid among ``ksub`` (256 for 8-bit codes) learnt by k-means on a sample
of that sub-space. Codebooks are float32 [m, ksub, dsub], codes uint8 [n, m].

A query is compared with codes through a table float32 [m, ksub] of its distance to every centroid
of every sub-space (squared L2, or negative inner product); a row's estimate is the sum of ``m``
table entries, one per code byte.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vecstore.core.topk import drained, heap_arrays, offer_if_kept

L2, IP = 0, 1


@njit(nogil=True, cache=True)
def _sq_dist(a, b):
    acc = np.float32(0.0)
    for j in range(a.shape[0]):
        diff = a[j] - b[j]
        acc += diff * diff
    return acc


@njit(nogil=True, cache=True)
def kmeans_plus_plus(data, n_clusters, seed):
    """k-means++ seeding: the first centre uniformly, each next one with probability proportional to
    the squared distance to the nearest centre chosen so far. Deterministic for a given ``seed``."""
    np.random.seed(seed)
    n, dim = data.shape
    centroids = np.empty((n_clusters, dim), dtype=np.float32)
    centroids[0] = data[np.random.randint(n)]
    nearest = np.empty(n, dtype=np.float64)
    for i in range(n):
        nearest[i] = _sq_dist(data[i], centroids[0])
    for c in range(1, n_clusters):
        total = nearest.sum()
        if total <= 0.0:  # every point already coincides with a centre: any point will do
            pick = np.random.randint(n)
        else:
            target = np.random.random() * total
            acc = 0.0
            pick = n - 1
            for i in range(n):
                acc += nearest[i]
                if acc >= target:
                    pick = i
                    break
        centroids[c] = data[pick]
        for i in range(n):
            d = _sq_dist(data[i], centroids[c])
            if d < nearest[i]:
                nearest[i] = d
    return centroids


@njit(nogil=True, cache=True)
def _nearest(row, start, books_t, acc):
    """Index (ties to the lower) and squared distance of the centroid nearest ``row[start:start + dsub]``
    among ``books_t`` float32 [dsub, k] (centroids as columns: the inner loop runs over centroids, which
    vectorises; ``acc`` is float32 [k] scratch)."""
    dsub, k = books_t.shape
    acc[:] = 0.0
    for j in range(dsub):
        x = row[start + j]
        for c in range(k):
            diff = x - books_t[j, c]
            acc[c] += diff * diff
    best = 0
    for c in range(1, k):
        if acc[c] < acc[best]:
            best = c
    return best, acc[best]


@njit(nogil=True, cache=True, parallel=True)
def assign(data, centroids, labels, distances):
    """Nearest centroid of every row (ties to the lower index) and its squared distance, in place."""
    books_t = np.ascontiguousarray(centroids.T)
    for i in prange(data.shape[0]):
        acc = np.empty(centroids.shape[0], dtype=np.float32)
        labels[i], distances[i] = _nearest(data[i], 0, books_t, acc)


@njit(nogil=True, cache=True)
def kmeans(data, n_clusters, iterations, seed):
    """Lloyd's k-means from k-means++ seeds: centroids float32 [n_clusters, dim] and the objective
    (sum of squared distances to the assigned centroid) after each assignment, float64 [iterations + 1].

    An emptied cluster is re-seeded with the row farthest from its centroid, so no centroid is wasted.
    The result depends only on ``data`` and ``seed``: the parallel step writes per-row results and
    every sum runs serially.
    """
    n, dim = data.shape
    centroids = kmeans_plus_plus(data, n_clusters, seed)
    labels = np.empty(n, dtype=np.int64)
    distances = np.empty(n, dtype=np.float32)
    objective = np.empty(iterations + 1, dtype=np.float64)
    assign(data, centroids, labels, distances)
    objective[0] = distances.astype(np.float64).sum()
    sums = np.empty((n_clusters, dim), dtype=np.float64)
    counts = np.empty(n_clusters, dtype=np.int64)
    for it in range(iterations):
        sums[:] = 0.0
        counts[:] = 0
        for i in range(n):
            c = labels[i]
            counts[c] += 1
            for j in range(dim):
                sums[c, j] += data[i, j]
        for c in range(n_clusters):
            if counts[c] > 0:
                for j in range(dim):
                    centroids[c, j] = sums[c, j] / counts[c]
            else:
                far = np.argmax(distances)
                centroids[c] = data[far]
                distances[far] = 0.0  # not picked again by the next empty cluster
        assign(data, centroids, labels, distances)
        objective[it + 1] = distances.astype(np.float64).sum()
    return centroids, objective


def train_codebooks(sample, m, ksub, iterations, seed, checkpoint=None):
    """Codebooks float32 [m, ksub, dim / m]: k-means in each sub-space of ``sample`` (seed + sub-space).
    ``checkpoint()``, when given, runs before each sub-space (it may raise to stop a long training).
    Plain Python around the compiled k-means: m calls cost nothing beside them, and a checkpoint can run."""
    dsub = sample.shape[1] // m
    codebooks = np.empty((m, ksub, dsub), dtype=np.float32)
    for s in range(m):
        if checkpoint is not None:
            checkpoint()
        part = np.ascontiguousarray(sample[:, s * dsub : (s + 1) * dsub])
        centroids, _ = kmeans(part, ksub, iterations, np.int64(seed + s))
        codebooks[s] = centroids
    return codebooks


@njit(nogil=True, cache=True, parallel=True, fastmath=True)
def encode(vectors, codebooks):
    """Codes uint8 [n, m]: the nearest centroid of each sub-vector (ties to the lower index)."""
    n = vectors.shape[0]
    m, ksub, dsub = codebooks.shape
    # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c, and |x|^2 is the same for every c: one multiply-add per
    # centroid and dimension instead of a subtract, a multiply and an add
    scaled_t = np.empty((m, dsub, ksub), dtype=np.float32)
    norms = np.zeros((m, ksub), dtype=np.float32)
    for s in range(m):
        for c in range(ksub):
            for j in range(dsub):
                scaled_t[s, j, c] = np.float32(-2.0) * codebooks[s, c, j]
                norms[s, c] += codebooks[s, c, j] * codebooks[s, c, j]
    codes = np.empty((n, m), dtype=np.uint8)
    for i in prange(n):
        acc = np.empty(ksub, dtype=np.float32)
        for s in range(m):
            acc[:] = norms[s]
            base = s * dsub
            j = 0
            while j + 4 <= dsub:  # four dimensions per pass over the centroids: a quarter of the stores
                x0, x1, x2, x3 = (
                    vectors[i, base + j],
                    vectors[i, base + j + 1],
                    vectors[i, base + j + 2],
                    vectors[i, base + j + 3],
                )
                for c in range(ksub):
                    acc[c] += (x0 * scaled_t[s, j, c] + x1 * scaled_t[s, j + 1, c]) + (
                        x2 * scaled_t[s, j + 2, c] + x3 * scaled_t[s, j + 3, c]
                    )
                j += 4
            while j < dsub:
                x = vectors[i, base + j]
                for c in range(ksub):
                    acc[c] += x * scaled_t[s, j, c]
                j += 1
            best = 0
            for c in range(1, ksub):
                if acc[c] < acc[best]:
                    best = c
            codes[i, s] = best
    return codes


@njit(nogil=True, cache=True)
def decode(codes, codebooks):
    """Vectors float32 [n, dim] rebuilt from their codes (each sub-vector its centroid)."""
    n = codes.shape[0]
    m, _, dsub = codebooks.shape
    out = np.empty((n, m * dsub), dtype=np.float32)
    for i in range(n):
        for s in range(m):
            out[i, s * dsub : (s + 1) * dsub] = codebooks[s, codes[i, s]]
    return out


@njit(nogil=True, cache=True)
def distance_table(query, codebooks, metric):
    """float32 [m, ksub]: the query's distance to every centroid of every sub-space (squared L2, or
    negative inner product); a code's estimate is the sum over sub-spaces."""
    m, ksub, dsub = codebooks.shape
    table = np.empty((m, ksub), dtype=np.float32)
    for s in range(m):
        sub = query[s * dsub : (s + 1) * dsub]
        for c in range(ksub):
            if metric == L2:
                table[s, c] = _sq_dist(sub, codebooks[s, c])
            else:
                acc = np.float32(0.0)
                for j in range(dsub):
                    acc += sub[j] * codebooks[s, c, j]
                table[s, c] = -acc
    return table


@njit(nogil=True, cache=True, parallel=True)
def distance_tables(queries, codebooks, metric):
    """``distance_table`` of each query: float32 [q, m, ksub]."""
    m, ksub, _ = codebooks.shape
    out = np.empty((queries.shape[0], m, ksub), dtype=np.float32)
    for i in prange(queries.shape[0]):
        out[i] = distance_table(queries[i], codebooks, metric)
    return out


@njit(nogil=True, cache=True)
def adc_topk(codes, table, offsets, keys, k):
    """The ``k`` rows of ``offsets`` with the smallest estimated distance (ties by the smaller key):
    offsets int64 [k] and estimates float32 [k], padded -1 / +inf."""
    hd, hk, ho = heap_arrays(min(k, offsets.shape[0]))
    size = 0
    m = codes.shape[1]
    for j in range(offsets.shape[0]):
        row = offsets[j]
        d = np.float32(0.0)
        for s in range(m):
            d += table[s, codes[row, s]]
        size = offer_if_kept(hd, hk, ho, size, d, keys[row], row)
    return drained(hd, hk, ho, size, k)


@njit(nogil=True, cache=True, parallel=True)
def adc_topk_batch(codes, queries, codebooks, metric, offsets, keys, k):
    """``adc_topk`` for each query (one per thread), its table built on that thread: [q, k] results."""
    nq = queries.shape[0]
    out_offsets = np.empty((nq, k), dtype=np.int64)
    out_distances = np.empty((nq, k), dtype=np.float32)
    for i in prange(nq):
        table = distance_table(queries[i], codebooks, metric)
        o, d = adc_topk(codes, table, offsets, keys, k)
        out_offsets[i] = o
        out_distances[i] = d
    return out_offsets, out_distances
