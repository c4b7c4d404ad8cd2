"""Parallel HNSW construction: insert in batches, searching a batch's candidates on every core.

Per batch of nodes: (1) in parallel, each node searches the graph as it stood when the batch began
(read-only), from the entry point down through its layers, keeping ``ef_construction`` candidates
per layer; (2) one thread then links the batch in order, adding to each node's candidates the
batch-mates linked before it (the search could not see them), and runs the usual heuristic and
back-links. Searching is most of the work of an insertion, so it is what runs in parallel; linking
stays sequential, so the graph is the same kind of graph sequential insertion builds.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vecstore.core.hnsw import connect, distance, search_levels


@njit(nogil=True, cache=True, parallel=True)
def batch_candidates(vectors, metric, ef_construction, levels, upper_offset, links0, counts0, links_up, counts_up,
                     entry, max_level, start, stop, visited, epochs, out_n, out_d, out_count):  # fmt: skip
    """Candidates of nodes ``start..stop`` per layer into ``out_n/out_d [B, top + 1, ef]``, counts in
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
            search_levels(vectors, metric, start + b, entry, max_level, ef_construction, levels, links0, counts0,
                          links_up, counts_up, upper_offset, visited[t], epochs[t : t + 1], cand_d, cand_n, res_d,
                          res_n, out_n[b], out_d[b], out_count[b])  # fmt: skip


@njit(nogil=True, cache=True)
def batch_link(vectors, metric, m, levels, upper_offset, links0, counts0, links_up, counts_up, state, start, stop,
               batch_max_level, out_n, out_d, out_count):  # fmt: skip
    """Link nodes ``start..stop`` in order from their searched candidates plus earlier batch-mates."""
    size = stop - start
    ef = out_n.shape[2]
    buf_n = np.empty(ef + size, np.int32)
    buf_d = np.empty(ef + size, np.float32)
    sorted_n = np.empty(ef + size, np.int32)
    chosen = np.empty(2 * m, np.int32)
    scratch_n = np.empty(2 * m + 1, np.int32)
    scratch_d = np.empty(2 * m + 1, np.float32)
    order_buf = np.empty(2 * m + 1, np.int32)
    for b in range(size):
        node = start + b
        level = levels[node]
        query = vectors[node]
        for layer in range(level, -1, -1):
            count = out_count[b, layer] if layer <= batch_max_level else 0
            for i in range(count):
                buf_n[i] = out_n[b, layer, i]
                buf_d[i] = out_d[b, layer, i]
            for b2 in range(b):
                mate = start + b2
                if levels[mate] >= layer:
                    buf_n[count] = mate
                    buf_d[count] = distance(vectors, mate, query, metric)
                    count += 1
            if count == 0:
                continue
            order = np.argsort(buf_d[:count])
            for i in range(count):
                sorted_n[i] = buf_n[order[i]]
            sorted_d = buf_d[:count][order]
            connect(vectors, metric, m, node, layer, sorted_n, sorted_d, count, links0, counts0, links_up, counts_up,
                    upper_offset, chosen, scratch_n, scratch_d, order_buf)  # fmt: skip
        if level > state[1]:
            state[0] = node
            state[1] = level
