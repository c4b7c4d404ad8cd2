"""Search structures built from arrays (HNSW graphs, window trees, payload indexes, quantizers).

Empty until the first approximate index lands; every segment is searched exactly meanwhile.
"""
