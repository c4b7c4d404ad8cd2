"""HNSW (Malkov & Yashunin) over flat arrays: graph construction and (masked) search in Numba.

Graph layout (all flat numpy arrays, so a persisted graph is memory-mapped as is):
- ``links0`` int32 [n, 2m], ``counts0`` int32 [n]: layer-0 neighbours of every node.
- ``levels`` int32 [n]: the top layer of each node; ``upper_offset`` int64 [n]: the first row of the
  node's upper-layer lists in ``links_up`` int32 [rows, m] / ``counts_up`` int32 [rows] (row of node v
  at layer l >= 1 is ``upper_offset[v] + l - 1``; nodes on layer 0 only own no rows).
- ``entry`` / ``max_level``: the entry point, a node on the top layer.

Distances, smaller is closer: ``L2`` squared Euclidean, ``IP`` negative inner product. Cosine is IP
on vectors the caller normalised (1 - cos is then 1 + (-dot)).

Two heaps of fixed capacity live in preallocated arrays: a min-heap of candidates to expand and a
max-heap of the best ``ef`` results. ``visited`` is an epoch-tagged uint32 array: a node is visited
when its tag equals the current epoch, so clearing costs nothing per search.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from vecstore.core.binary import planes_score
from vecstore.core.exact import query_sq
from vecstore.core.prefetch import prefetch_row
from vecstore.core.scalar import code_distance, code_distance4

L2, IP = 0, 1


def distance(vectors, a, query, metric):
    """Distance from row ``a`` of ``vectors`` to ``query``, compiled per row type by the overload below:
    float rows by ``metric``; uint64 rows (binary codes) by the estimate of an encoded query uint64
    [QUERY_BITS, words] (``binary.planes_score``, negated); uint8 rows
    (PQ codes) by the sum of a query's distance table float32 [m, 256]; int8 rows (scalar codes) by
    ``scalar.code_distance`` from a prepared query float32 [2, dim]. Only callable from Numba."""
    raise TypeError("hnsw.distance runs inside Numba kernels only")


@overload(distance, jit_options={"fastmath": True, "nogil": True})
def _distance_for(vectors, a, query, metric):
    # its own fastmath (a callee inlined at Numba IR level would take the caller's flags and lose
    # the vectorised reduction: 4-5x slower per distance)
    if vectors.dtype == types.uint8:

        def table_estimate(vectors, a, query, metric):
            row = vectors[a]
            acc = np.float32(0.0)
            for s in range(query.shape[0]):
                acc += query[s, row[s]]
            return acc

        return table_estimate

    if vectors.dtype == types.int8:

        def scalar_estimate(vectors, a, query, metric):
            return code_distance(vectors[a], query, metric)

        return scalar_estimate

    if vectors.dtype == types.uint64:

        def four_bit_estimate(vectors, a, query, metric):
            return np.float32(-planes_score(vectors[a], query))

        return four_bit_estimate

    def real(vectors, a, query, metric):
        row = vectors[a]
        acc = np.float32(0.0)
        if metric == L2:
            for j in range(query.shape[0]):
                diff = row[j] - query[j]
                acc += diff * diff
            return acc
        for j in range(query.shape[0]):
            acc += row[j] * query[j]
        return -acc

    return real


def distance4(vectors, a, b, c, d, query, metric):
    """``distance`` from rows ``a``, ``b``, ``c`` and ``d`` at once, as a tuple of four. One loop reads
    the four rows side by side: their cache misses overlap, where one row at a time each is waited
    for (random 384-d to 1536-d rows: 30-40% less time a distance). Only callable from Numba."""
    raise TypeError("hnsw.distance4 runs inside Numba kernels only")


@overload(distance4, jit_options={"fastmath": True, "nogil": True})
def _distance4_for(vectors, a, b, c, d, query, metric):
    if vectors.dtype == types.int8:

        def scalar_estimates(vectors, a, b, c, d, query, metric):
            return code_distance4(vectors[a], vectors[b], vectors[c], vectors[d], query, metric)

        return scalar_estimates

    if vectors.dtype in (types.uint8, types.uint64):  # table lookups and popcounts: no wide loads to overlap

        def one_by_one(vectors, a, b, c, d, query, metric):
            return (distance(vectors, a, query, metric), distance(vectors, b, query, metric),
                    distance(vectors, c, query, metric), distance(vectors, d, query, metric))  # fmt: skip

        return one_by_one

    def real4(vectors, a, b, c, d, query, metric):
        ra, rb, rc, rd = vectors[a], vectors[b], vectors[c], vectors[d]
        sa = sb = sc = sd = np.float32(0.0)
        if metric == L2:
            for j in range(query.shape[0]):
                q = query[j]
                da, db, dc, dd = ra[j] - q, rb[j] - q, rc[j] - q, rd[j] - q
                sa += da * da
                sb += db * db
                sc += dc * dc
                sd += dd * dd
            return sa, sb, sc, sd
        for j in range(query.shape[0]):
            q = query[j]
            sa += ra[j] * q
            sb += rb[j] * q
            sc += rc[j] * q
            sd += rd[j] * q
        return -sa, -sb, -sc, -sd

    return real4


@njit(inline="always")
def score_rows(vectors, query, metric, rows, count, out):
    """``out[i]`` = the distance of ``rows[i]`` for i < ``count``, four rows a loop (``distance4``)."""
    i = 0
    while i + 4 <= count:
        out[i], out[i + 1], out[i + 2], out[i + 3] = distance4(vectors, rows[i], rows[i + 1], rows[i + 2],
                                                               rows[i + 3], query, metric)  # fmt: skip
        i += 4
    while i < count:
        out[i] = distance(vectors, rows[i], query, metric)
        i += 1


# --- heaps over (distance, node) pairs ---------------------------------------------------------


@njit(inline="always")
def _before(a, b, sign):
    """Heap order: ``sign`` 1 puts the smaller distance first (min-heap), -1 the larger (max-heap)."""
    return a < b if sign > 0 else a > b


@njit(inline="always")
def _swap(hd, hn, i, j):
    hd[i], hd[j] = hd[j], hd[i]
    hn[i], hn[j] = hn[j], hn[i]


@njit(inline="always")
def _push(hd, hn, size, d, node, sign):
    """Push into a heap of ``size`` items; ``sign`` 1 keeps the smallest distance on top, -1 the largest."""
    pos = size
    hd[pos] = d
    hn[pos] = node
    while pos > 0:
        parent = (pos - 1) >> 1
        if _before(hd[pos], hd[parent], sign):
            _swap(hd, hn, pos, parent)
            pos = parent
        else:
            break
    return size + 1


@njit(inline="always")
def _pop(hd, hn, size, sign):
    """Remove the top; returns the new size (the caller read the top before)."""
    size -= 1
    hd[0] = hd[size]
    hn[0] = hn[size]
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and _before(hd[left + 1], hd[left], sign):
            child = left + 1
        if _before(hd[child], hd[pos], sign):
            _swap(hd, hn, pos, child)
            pos = child
        else:
            break
    return size


# --- graph traversal ---------------------------------------------------------------------------


@njit(inline="always")
def _neighbours(node, layer, links0, counts0, links_up, counts_up, upper_offset):
    if layer == 0:
        return links0[node], counts0[node]
    row = upper_offset[node] + layer - 1
    return links_up[row], counts_up[row]


@njit(inline="always")
def _set_count(node, layer, count, counts0, counts_up, upper_offset):
    if layer == 0:
        counts0[node] = count
    else:
        counts_up[upper_offset[node] + layer - 1] = count


@njit(inline="always")
def _set_list(node, layer, chosen, kept, links0, counts0, links_up, counts_up, upper_offset):
    """Make ``chosen[:kept]`` the node's list at ``layer``."""
    links, _ = _neighbours(node, layer, links0, counts0, links_up, counts_up, upper_offset)
    for i in range(kept):
        links[i] = chosen[i]
    _set_count(node, layer, kept, counts0, counts_up, upper_offset)


@njit(nogil=True, cache=True)
def greedy_descent(vectors, query, metric, entry, max_level, stop_level, links0, counts0, links_up, counts_up,
                   upper_offset):  # fmt: skip
    """From the entry point, walk each layer above ``stop_level`` to its closest node; returns it."""
    cur = entry
    cur_d = distance(vectors, cur, query, metric)
    for layer in range(max_level, stop_level, -1):
        changed = True
        while changed:
            changed = False
            links, count = _neighbours(cur, layer, links0, counts0, links_up, counts_up, upper_offset)
            for i in range(count):
                cand = links[i]
                d = distance(vectors, cand, query, metric)
                if d < cur_d:
                    cur_d = d
                    cur = cand
                    changed = True
    return cur


@njit(inline="always")
def _seed(vectors, query, metric, entry, ef, keep, visited, epoch, cand_d, cand_n, res_d, res_n):
    """Start a layer search at ``entry``: visited and queued, and a result when ``keep``. Returns the
    candidate and result counts and the bound: the worst kept result once ef are kept; until then every
    reached node is worth expanding."""
    d0 = distance(vectors, entry, query, metric)
    visited[entry] = epoch
    n_cand = _push(cand_d, cand_n, 0, d0, entry, 1)
    n_res = 0
    if keep:
        n_res = _push(res_d, res_n, 0, d0, entry, -1)
    bound = res_d[0] if n_res >= ef else np.float32(np.inf)
    return n_cand, n_res, bound


@njit(inline="always")
def _keep(res_d, res_n, n_res, d, node, ef, bound):
    """Add a result to the max-heap of at most ef; returns its size and the new bound."""
    n_res = _push(res_d, res_n, n_res, d, node, -1)
    if n_res > ef:
        n_res = _pop(res_d, res_n, n_res, -1)
    if n_res >= ef:
        bound = res_d[0]
    return n_res, bound


@njit(nogil=True, cache=True)
def search_layer(vectors, query, metric, entry, ef, layer, links0, counts0, links_up, counts_up, upper_offset,
                 visited, epoch, mask, use_mask, cand_d, cand_n, res_d, res_n):  # fmt: skip
    """Best-first search of one layer from ``entry``; fills the result max-heap, returns its size.

    With ``use_mask``, every node is still traversed (so the graph stays connected) but only nodes
    whose ``mask`` is set enter the results; the search stops when the closest unexpanded candidate is
    farther than the worst of ``ef`` results.
    """
    n_cand, n_res, bound = _seed(vectors, query, metric, entry, ef, not use_mask or mask[entry], visited, epoch,
                                 cand_d, cand_n, res_d, res_n)  # fmt: skip
    fresh = np.empty(links0.shape[1], dtype=np.int32)  # an expansion's unvisited neighbours
    fresh_d = np.empty(links0.shape[1], dtype=np.float32)
    while n_cand > 0:
        if cand_d[0] > bound:
            break
        c = cand_n[0]
        n_cand = _pop(cand_d, cand_n, n_cand, 1)
        links, count = _neighbours(c, layer, links0, counts0, links_up, counts_up, upper_offset)
        for i in range(count):  # start every neighbour's loads before the first distance
            prefetch_row(visited, links[i])
            prefetch_row(vectors, links[i])
        n_fresh = 0
        for i in range(count):
            nb = links[i]
            if visited[nb] != epoch:
                visited[nb] = epoch
                fresh[n_fresh] = nb
                n_fresh += 1
        # all distances first, four rows a loop; then offered in link order, as one at a time would be
        score_rows(vectors, query, metric, fresh, n_fresh, fresh_d)
        for i in range(n_fresh):
            nb, d = fresh[i], fresh_d[i]
            if d < bound:
                n_cand = _push(cand_d, cand_n, n_cand, d, nb, 1)
                if layer == 0:
                    prefetch_row(links0, nb)  # its list is read if it comes up for expansion
                if not use_mask or mask[nb]:
                    n_res, bound = _keep(res_d, res_n, n_res, d, nb, ef, bound)
    return n_res


@njit(nogil=True, cache=True)
def link_counts(links0, counts0, rows, member):
    """(layer-0 links of ``rows``, how many of them lead to rows where ``member`` is set): the planner
    asks this per query of how a filter's rows cluster, where numpy's gathers cost tens of us."""
    links = 0
    inside = 0
    for r in range(rows.shape[0]):
        node = rows[r]
        count = counts0[node]
        links += count
        for i in range(count):
            if member[links0[node, i]]:
                inside += 1
    return links, inside


@njit(nogil=True, cache=True)
def _drain_ascending(res_d, res_n, n_res, out_n, out_d):
    """Pop the result max-heap into ascending order."""
    while n_res > 0:
        out_n[n_res - 1] = res_n[0]
        out_d[n_res - 1] = res_d[0]
        n_res = _pop(res_d, res_n, n_res, -1)


@njit(inline="always")
def _offer(nb, d, ef, bound, cand_d, cand_n, n_cand, res_d, res_n, n_res):
    """Keep an allowed, unvisited node at distance ``d`` as a candidate and result if it beats the bound."""
    if d < bound:
        n_cand = _push(cand_d, cand_n, n_cand, d, nb, 1)
        n_res, bound = _keep(res_d, res_n, n_res, d, nb, ef, bound)
    return bound, n_cand, n_res


@njit(nogil=True, cache=True)
def search_layer_two_hop(vectors, query, metric, entry, ef, links0, counts0, visited, epoch, mask, cand_d, cand_n,
                         res_d, res_n):  # fmt: skip
    """Layer-0 search over the allowed rows only, through two-hop edges (after ACORN, Patel et al. 2024).

    A neighbour the mask rejects is neither scored nor queued; its own neighbours are looked at
    instead, so the allowed rows stay connected when most of the graph is filtered out, and distances
    are computed for allowed rows alone. The entry may be rejected: it only seeds the search.

    Each expansion first gathers the allowed rows it reaches, then scores them four at a time
    (``score_rows``) and offers them in that order: the rejected neighbours' lists and the reached rows
    are requested before they are read, where one at a time each was a cache miss the walk waited for.
    """
    n_cand, n_res, bound = _seed(vectors, query, metric, entry, ef, mask[entry], visited, epoch, cand_d, cand_n,
                                 res_d, res_n)  # fmt: skip
    width = links0.shape[1]
    reached = np.empty(width * (width + 1), dtype=np.int32)
    reached_d = np.empty(width * (width + 1), dtype=np.float32)
    while n_cand > 0:
        if cand_d[0] > bound:
            break
        c = cand_n[0]
        n_cand = _pop(cand_d, cand_n, n_cand, 1)
        links = links0[c]
        count = counts0[c]
        for i in range(count):
            prefetch_row(mask, links[i])
            prefetch_row(visited, links[i])
        for i in range(count):  # a rejected neighbour's list is read below
            nb = links[i]
            if visited[nb] != epoch and not mask[nb]:
                prefetch_row(links0, nb)
        n_reached = 0
        for i in range(count):
            nb = links[i]
            if visited[nb] == epoch:
                continue
            visited[nb] = epoch
            if mask[nb]:
                reached[n_reached] = nb
                n_reached += 1
                prefetch_row(vectors, nb)
                continue
            hop = links0[nb]  # a rejected neighbour: look one step further
            for j in range(counts0[nb]):
                nb2 = hop[j]
                # the mask first: a byte a row stays in the L1 cache where visited tags (four bytes) do
                # not, and most rows are rejected
                if not mask[nb2] or visited[nb2] == epoch:
                    continue
                visited[nb2] = epoch
                reached[n_reached] = nb2
                n_reached += 1
                prefetch_row(vectors, nb2)
        score_rows(vectors, query, metric, reached, n_reached, reached_d)
        for r in range(n_reached):
            bound, n_cand, n_res = _offer(reached[r], reached_d[r], ef, bound, cand_d, cand_n, n_cand, res_d, res_n,
                                          n_res)  # fmt: skip
    if n_res < ef:
        n_res = _complete_scan(vectors, query, metric, ef, visited, epoch, mask, res_d, res_n, n_res)
    return n_res


@njit(inline="always")
def _complete_scan(vectors, query, metric, ef, visited, epoch, mask, res_d, res_n, n_res):
    """Score every allowed row a two-hop walk did not reach. Called when the walk ran out of rows before it
    kept ef: until then nothing is pruned, so it kept every allowed row it could reach, and the rest are
    cut off from them by rejected rows further than two hops (a filter whose rows sit in several islands
    of the graph). Scoring those too makes the answer exact where the walk alone would return the nearest
    island's rows as the nearest rows."""
    bound = np.float32(np.inf)
    for row in range(mask.shape[0]):
        if mask[row] and visited[row] != epoch:
            d = distance(vectors, row, query, metric)
            n_res, bound = _keep(res_d, res_n, n_res, d, row, ef, bound)
    return n_res


# --- construction ------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _select_heuristic(vectors, metric, cand_n, cand_d, n, max_links, out):
    """The paper's neighbour heuristic over candidates sorted by distance: keep a candidate only if it
    is closer to the base than to every neighbour already kept. Returns how many were kept."""
    kept = 0
    for i in range(n):
        if kept >= max_links:
            break
        c = cand_n[i]
        good = True
        for j in range(kept):
            if distance(vectors, c, vectors[out[j]], metric) < cand_d[i]:
                good = False
                break
        if good:
            out[kept] = c
            kept += 1
    return kept


@njit(nogil=True, cache=True)
def _link_back(vectors, metric, node, new, layer, max_links, links0, counts0, links_up, counts_up, upper_offset,
               scratch_n, scratch_d, order_buf):  # fmt: skip
    """Add ``new`` to ``node``'s list at ``layer``; when full, re-select the list with the heuristic."""
    links, count = _neighbours(node, layer, links0, counts0, links_up, counts_up, upper_offset)
    if count < max_links:
        links[count] = new
        _set_count(node, layer, count + 1, counts0, counts_up, upper_offset)
        return
    base = vectors[node]
    for i in range(count):
        scratch_n[i] = links[i]
        scratch_d[i] = distance(vectors, links[i], base, metric)
    scratch_n[count] = new
    scratch_d[count] = distance(vectors, new, base, metric)
    order = np.argsort(scratch_d[: count + 1])
    for i in range(count + 1):
        order_buf[i] = scratch_n[order[i]]
    sorted_d = scratch_d[: count + 1][order]
    kept = _select_heuristic(vectors, metric, order_buf, sorted_d, count + 1, max_links, links)
    _set_count(node, layer, kept, counts0, counts_up, upper_offset)


@njit(nogil=True, cache=True)
def connect(vectors, metric, m, node, layer, found_n, found_d, n_found, links0, counts0, links_up, counts_up,
            upper_offset, chosen, scratch_n, scratch_d, order_buf):  # fmt: skip
    """Link ``node`` at ``layer`` to the heuristic's pick of its candidates (sorted ascending), and back."""
    max_links = 2 * m if layer == 0 else m
    kept = _select_heuristic(vectors, metric, found_n, found_d, n_found, m, chosen)
    _set_list(node, layer, chosen, kept, links0, counts0, links_up, counts_up, upper_offset)
    for i in range(kept):
        _link_back(vectors, metric, chosen[i], node, layer, max_links, links0, counts0, links_up, counts_up,
                   upper_offset, scratch_n, scratch_d, order_buf)  # fmt: skip


@njit(nogil=True, cache=True)
def search_levels(vectors, metric, node, entry, max_level, ef_construction, levels, links0, counts0, links_up,
                  counts_up, upper_offset, visited, epoch_box, cand_d, cand_n, res_d, res_n, out_n, out_d,
                  out_count):  # fmt: skip
    """Candidates for inserting stored row ``node``: descend from the entry point, then search each of the
    node's layers the graph has, top down, into ``out_n/out_d [layer, ef]`` sorted ascending, with
    ``out_count [layer]``. ``epoch_box`` int64 [1] is the visited tag, advanced per layer.

    Linking at one layer never changes another layer's lists, so searching every layer first and
    linking afterwards builds the same graph as interleaving the two.
    """
    level = levels[node]
    query = vectors[node]
    cur = entry
    if max_level > level:
        cur = greedy_descent(vectors, query, metric, entry, max_level, level, links0, counts0, links_up, counts_up,
                             upper_offset)  # fmt: skip
    no_mask = np.zeros(1, np.bool_)
    for layer in range(min(level, max_level), -1, -1):
        epoch_box[0] += 1
        n_res = search_layer(vectors, query, metric, cur, ef_construction, layer, links0, counts0, links_up,
                             counts_up, upper_offset, visited, np.uint32(epoch_box[0]), no_mask, False, cand_d,
                             cand_n, res_d, res_n)  # fmt: skip
        _drain_ascending(res_d, res_n, n_res, out_n[layer], out_d[layer])
        out_count[layer] = n_res
        cur = out_n[layer, 0]


@njit(nogil=True, cache=True)
def insert_range(vectors, metric, m, ef_construction, levels, upper_offset, links0, counts0, links_up, counts_up,
                 state, order, start, stop, visited):  # fmt: skip
    """Insert nodes ``order[start:stop]`` one by one. ``state`` int64 [3]: entry, max_level, epoch."""
    top = 0
    for i in range(start, stop):
        top = max(top, levels[order[i]])
    # a node enters the candidate heap at most once per search (visited), so n slots always suffice
    cand_d = np.empty(vectors.shape[0] + 1, np.float32)
    cand_n = np.empty(vectors.shape[0] + 1, np.int32)
    res_d = np.empty(ef_construction + 1, np.float32)
    res_n = np.empty(ef_construction + 1, np.int32)
    found_n = np.empty((top + 1, ef_construction), np.int32)
    found_d = np.empty((top + 1, ef_construction), np.float32)
    found_count = np.zeros(top + 1, np.int64)
    chosen = np.empty(2 * m, np.int32)
    scratch_n = np.empty(2 * m + 1, np.int32)
    scratch_d = np.empty(2 * m + 1, np.float32)
    order_buf = np.empty(2 * m + 1, np.int32)
    for i in range(start, stop):
        node = order[i]
        level = levels[node]
        entry = state[0]
        max_level = state[1]
        if entry < 0:  # the first node
            state[0] = node
            state[1] = level
            continue
        search_levels(vectors, metric, node, entry, max_level, ef_construction, levels, links0, counts0, links_up,
                      counts_up, upper_offset, visited, state[2:3], cand_d, cand_n, res_d, res_n, found_n, found_d,
                      found_count)  # fmt: skip
        for layer in range(min(level, max_level), -1, -1):
            connect(vectors, metric, m, node, layer, found_n[layer], found_d[layer], found_count[layer], links0,
                    counts0, links_up, counts_up, upper_offset, chosen, scratch_n, scratch_d, order_buf)  # fmt: skip
        if level > max_level:
            state[0] = node
            state[1] = level


# --- queries -----------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def search_one(vectors, query, metric, k, ef, entry, max_level, links0, counts0, links_up, counts_up, upper_offset,
               visited, epoch, mask, use_mask, cand_d, cand_n, res_d, res_n, out_n, out_d):  # fmt: skip
    """The k nearest (allowed) nodes to ``query`` into ``out_n`` / ``out_d`` (padded -1 / +inf).

    ``use_mask``: 0 no mask; 1 the mask is checked on results, every node traversed; 2 the search
    walks the allowed rows through two-hop edges (``search_layer_two_hop``).
    """
    for i in range(k):
        out_n[i] = -1
        out_d[i] = np.inf
    if entry < 0:
        return
    cur = greedy_descent(vectors, query, metric, entry, max_level, 0, links0, counts0, links_up, counts_up,
                         upper_offset)  # fmt: skip
    ef = max(ef, k)
    if use_mask == 2:
        n_res = search_layer_two_hop(vectors, query, metric, cur, ef, links0, counts0, visited, epoch, mask, cand_d,
                                     cand_n, res_d, res_n)  # fmt: skip
    else:
        n_res = search_layer(vectors, query, metric, cur, ef, 0, links0, counts0, links_up, counts_up, upper_offset,
                             visited, epoch, mask, use_mask == 1, cand_d, cand_n, res_d, res_n)  # fmt: skip
    while n_res > k:
        n_res = _pop(res_d, res_n, n_res, -1)
    while n_res > 0:
        out_n[n_res - 1] = res_n[0]
        out_d[n_res - 1] = res_d[0]
        n_res = _pop(res_d, res_n, n_res, -1)


@njit(nogil=True, cache=True, parallel=True)
def search_batch(vectors, queries, metric, k, ef, entry, max_level, links0, counts0, links_up, counts_up,
                 upper_offset, masks, use_mask, n_chunks):  # fmt: skip
    """Every query of ``queries`` [q, dim]; ``masks`` [q or 1, n] (row 0 for all when it has one row).

    Queries are split into ``n_chunks`` runs, each with its own visited array and heaps.
    """
    nq = queries.shape[0]
    n = vectors.shape[0]
    out_n = np.full((nq, k), -1, np.int64)
    out_d = np.full((nq, k), np.inf, np.float32)
    ef = max(ef, k)
    per = (nq + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        visited = np.zeros(n, np.uint32)
        cand_d = np.empty(n + 1, np.float32)
        cand_n = np.empty(n + 1, np.int32)
        res_d = np.empty(ef + 1, np.float32)
        res_n = np.empty(ef + 1, np.int32)
        one_n = np.empty(k, np.int32)
        one_d = np.empty(k, np.float32)
        epoch = np.uint32(0)
        for qi in range(chunk * per, min(nq, (chunk + 1) * per)):
            epoch += np.uint32(1)
            mask = masks[qi] if masks.shape[0] > 1 else masks[0]
            search_one(vectors, queries[qi], metric, k, ef, entry, max_level, links0, counts0, links_up, counts_up,
                       upper_offset, visited, epoch, mask, use_mask, cand_d, cand_n, res_d, res_n, one_n,
                       one_d)  # fmt: skip
            for i in range(k):
                out_n[qi, i] = one_n[i]
                out_d[qi, i] = one_d[i]
    return out_n, out_d


@njit(nogil=True, cache=True)
def next_epoch(visited, epoch_box):
    """The visited tag for the next search with this scratch; on wrap-around the array is cleared once."""
    epoch = epoch_box[0] + np.uint32(1)
    if epoch == 0:
        visited[:] = 0
        epoch = np.uint32(1)
    epoch_box[0] = epoch
    return epoch


@njit(nogil=True, cache=True)
def search_codes_single(codes, query_code, metric, k, ef, entry, max_level, links0, counts0, links_up, counts_up,
                        upper_offset, mask, use_mask, visited, epoch_box, cand_d, cand_n, res_d, res_n):  # fmt: skip
    """``search_single`` walking the graph by the codes' distance (``distance``: binary codes uint64
    [n, words] and an encoded query [QUERY_BITS, words], PQ codes uint8 [n, m] and a query table
    [m, 256], or scalar codes int8 [n, dim] and a query [2, dim] for ``metric``): the k nearest offsets
    [1, k] and their code distances [1, k], for rescoring."""
    epoch = next_epoch(visited, epoch_box)
    one_n = np.empty(k, np.int32)
    one_d = np.empty(k, np.float32)
    search_one(codes, query_code, metric, k, max(ef, k), entry, max_level, links0, counts0, links_up, counts_up,
               upper_offset, visited, epoch, mask, use_mask, cand_d, cand_n, res_d, res_n, one_n, one_d)  # fmt: skip
    out_n = np.empty((1, k), np.int64)
    out_d = np.empty((1, k), np.float32)
    for i in range(k):
        out_n[0, i] = one_n[i]
        out_d[0, i] = one_d[i]
    return out_n, out_d


@njit(inline="always")
def _prepared_query(query, cosine):
    q = query.astype(np.float32)
    if cosine:
        norm = np.float32(np.sqrt(np.sum(q * q)))
        if norm > 0:
            q = q / norm
    return q


@njit(inline="always")
def _walk_single(vectors, query, metric, cosine, k, ef, entry, max_level, links0, counts0, links_up, counts_up,
                 upper_offset, mask, use_mask, visited, epoch_box, cand_d, cand_n, res_d, res_n):  # fmt: skip
    """One query's walk with the caller's scratch: the k nearest offsets (int32) and raw distances."""
    epoch = next_epoch(visited, epoch_box)
    q = _prepared_query(query, cosine)
    one_n = np.empty(k, np.int32)
    one_d = np.empty(k, np.float32)
    search_one(vectors, q, metric, k, max(ef, k), entry, max_level, links0, counts0, links_up, counts_up,
               upper_offset, visited, epoch, mask, use_mask, cand_d, cand_n, res_d, res_n, one_n, one_d)  # fmt: skip
    return one_n, one_d


@njit(nogil=True, cache=True)
def search_single(vectors, query, metric, cosine, k, ef, entry, max_level, links0, counts0, links_up, counts_up,
                  upper_offset, mask, use_mask, visited, epoch_box, cand_d, cand_n, res_d, res_n):  # fmt: skip
    """One query with the caller's scratch (reused across calls: no allocation, no zeroing).

    ``epoch_box`` uint32 [1] holds the visited tag of the previous search; on wrap-around the visited
    array is cleared once. With ``cosine`` the query is normalised here and distances come back as
    1 - cosine. Returns int64 offsets [1, k] and float32 distances [1, k].
    """
    one_n, one_d = _walk_single(vectors, query, metric, cosine, k, ef, entry, max_level, links0, counts0, links_up,
                                counts_up, upper_offset, mask, use_mask, visited, epoch_box, cand_d, cand_n, res_d,
                                res_n)  # fmt: skip
    out_n = np.empty((1, k), np.int64)
    out_d = np.empty((1, k), np.float32)
    for i in range(k):
        out_n[0, i] = one_n[i]
        out_d[0, i] = one_d[i] + np.float32(1.0) if cosine and one_n[i] >= 0 else one_d[i]
    return out_n, out_d


@njit(nogil=True, cache=True)
def search_single_keyed(vectors, keys, rows, base, query, metric, cosine, k, ef, entry, max_level, links0, counts0,
                        links_up, counts_up, upper_offset, mask, use_mask, visited, epoch_box, cand_d, cand_n, res_d,
                        res_n):  # fmt: skip
    """``search_single`` that also checks the query and names the hits: returns the query's squared norm
    (float64; not finite for a query holding NaN or inf, and then nothing is searched), offsets
    [1, k], ``keys`` of the hits [1, k] and distances [1, k], padded -1 / -1 / +inf. A graph over some
    of a segment's rows returns segment offsets and takes the segment's ``keys``: node i is row
    ``rows[i]`` (int64; a term or range graph), or with ``rows`` empty, row i + ``base`` (a window-tree
    bucket; 0 for the segment graph)."""
    sq = query_sq(query)
    out_n = np.full((1, k), -1, np.int64)
    out_keys = np.full((1, k), -1, np.int64)
    out_d = np.full((1, k), np.inf, np.float32)
    if not np.isfinite(sq):
        return sq, out_n, out_keys, out_d
    one_n, one_d = _walk_single(vectors, query, metric, cosine, k, ef, entry, max_level, links0, counts0, links_up,
                                counts_up, upper_offset, mask, use_mask, visited, epoch_box, cand_d, cand_n, res_d,
                                res_n)  # fmt: skip
    for i in range(k):
        node = one_n[i]
        if node >= 0:
            row = rows[node] if rows.shape[0] else node + base
            out_n[0, i] = row
            out_keys[0, i] = keys[row]
            out_d[0, i] = one_d[i] + np.float32(1.0) if cosine else one_d[i]
    return sq, out_n, out_keys, out_d
