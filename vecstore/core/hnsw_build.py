"""Parallel HNSW construction: insert in batches, searching a batch's candidates on every core.

Per batch of nodes: (1) in parallel, each node searches the graph as it stood when the batch began
(read-only), from the entry point down through its layers, keeping ``ef_construction`` candidates
per layer; (2) the batch is linked, each node's candidates extended by the batch-mates before it (the
search could not see them), with the usual heuristic and back-links. Linking is parallel too, and
builds exactly the graph that linking the nodes one by one in order builds (see ``batch_link``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vecstore.core.hnsw import _link_back, _select_heuristic, _set_list, distance, search_levels


@njit(nogil=True, cache=True, parallel=True)
def batch_candidates(vectors, metric, ef_construction, levels, upper_offset, links0, counts0, links_up, counts_up,
                     entry, max_level, order, start, stop, visited, epochs, out_n, out_d, out_count):  # fmt: skip
    """Candidates of nodes ``order[start:stop]`` per layer into ``out_n/out_d [B, top + 1, ef]``, counts in
    ``out_count [B, top + 1]``. ``visited [threads, n]`` and ``epochs [threads]`` are per-thread scratch."""
    n_threads = visited.shape[0]
    size = stop - start
    per = (size + n_threads - 1) // n_threads
    for t in prange(n_threads):
        n = vectors.shape[0]
        cand_d = np.empty(n + 1, np.float32)
        cand_n = np.empty(n + 1, np.int32)
        res_d = np.empty(ef_construction + 1, np.float32)
        res_n = np.empty(ef_construction + 1, np.int32)
        for b in range(t * per, min(size, (t + 1) * per)):
            search_levels(vectors, metric, order[start + b], entry, max_level, ef_construction, levels, links0, counts0,
                          links_up, counts_up, upper_offset, visited[t], epochs[t : t + 1], cand_d, cand_n, res_d,
                          res_n, out_n[b], out_d[b], out_count[b])  # fmt: skip


@njit(nogil=True, cache=True, parallel=True)
def batch_link(vectors, metric, m, levels, upper_offset, links0, counts0, links_up, counts_up, state, order, start,
               stop, batch_max_level, out_n, out_d, out_count, n_threads):  # fmt: skip
    """Link nodes ``order[start:stop]`` from their searched candidates plus earlier batch-mates, on
    ``n_threads`` threads, building exactly the graph that linking them one by one in order builds.

    Why the two phases give the same graph: a node's own list depends only on its candidates (vectors,
    not lists), and a node only ever links back into nodes before it in the batch or in the graph. So
    (1) every node's own list is chosen in parallel, then (2) the back-links are grouped by the list
    they change and applied in node order, one thread per group: no list is touched by two threads.
    """
    size = stop - start
    layers = out_n.shape[1]
    ef = out_n.shape[2]
    chosen = np.empty((size, layers, m), np.int32)
    kept = np.zeros((size, layers), np.int64)
    per = (size + n_threads - 1) // n_threads
    for t in prange(n_threads):
        buf_n = np.empty(ef + size, np.int32)
        buf_d = np.empty(ef + size, np.float32)
        sorted_n = np.empty(ef + size, np.int32)
        for b in range(t * per, min(size, (t + 1) * per)):
            node = order[start + b]
            query = vectors[node]
            for layer in range(levels[node], -1, -1):
                count = out_count[b, layer] if layer <= batch_max_level else 0
                for i in range(count):
                    buf_n[i] = out_n[b, layer, i]
                    buf_d[i] = out_d[b, layer, i]
                for b2 in range(b):
                    mate = order[start + b2]
                    if levels[mate] >= layer:
                        buf_n[count] = mate
                        buf_d[count] = distance(vectors, mate, query, metric)
                        count += 1
                if count == 0:
                    continue
                nearest_first = np.argsort(buf_d[:count])
                for i in range(count):
                    sorted_n[i] = buf_n[nearest_first[i]]
                sorted_d = buf_d[:count][nearest_first]
                n_kept = _select_heuristic(vectors, metric, sorted_n, sorted_d, count, m, chosen[b, layer])
                kept[b, layer] = n_kept
                _set_list(node, layer, chosen[b, layer], n_kept, links0, counts0, links_up, counts_up, upper_offset)
    # phase 2: back-links, keyed by (layer, target list, new node) so each list's additions run in order
    n = vectors.shape[0]
    total = 0
    for b in range(size):
        for layer in range(layers):
            total += kept[b, layer]
    keys = np.empty(total, np.int64)
    p = 0
    for b in range(size):
        for layer in range(layers):
            for i in range(kept[b, layer]):
                keys[p] = (np.int64(layer) * n + chosen[b, layer, i]) * size + b
                p += 1
    keys.sort()
    group_start = np.empty(total + 1, np.int64)
    n_groups = 0
    for i in range(total):
        if i == 0 or keys[i] // size != keys[i - 1] // size:
            group_start[n_groups] = i
            n_groups += 1
    group_start[n_groups] = total
    per_group = (n_groups + n_threads - 1) // n_threads
    for t in prange(n_threads):
        scratch_n = np.empty(2 * m + 1, np.int32)
        scratch_d = np.empty(2 * m + 1, np.float32)
        order_buf = np.empty(2 * m + 1, np.int32)
        for g in range(t * per_group, min(n_groups, (t + 1) * per_group)):
            for i in range(group_start[g], group_start[g + 1]):
                key = keys[i]
                b = key % size
                target_key = key // size
                layer = target_key // n
                target = target_key % n
                max_links = 2 * m if layer == 0 else m
                _link_back(vectors, metric, target, order[start + b], layer, max_links, links0, counts0, links_up,
                           counts_up, upper_offset, scratch_n, scratch_d, order_buf)  # fmt: skip
    for b in range(size):
        node = order[start + b]
        if levels[node] > state[1]:
            state[0] = node
            state[1] = levels[node]
