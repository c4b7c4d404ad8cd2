"""LanceDB, flat (exact) search with its own SQL prefilter over the attribute columns."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pyarrow as pa

from bench.algorithms.base import Algorithm, pad, require

# Lance logs a deprecation warning on every query that selects columns; keep its errors only
os.environ.setdefault("LANCE_LOG", "error")


class LanceDBFlat(Algorithm):
    name = "lancedb-flat"

    def fit(self, dataset) -> None:
        lancedb = require("lancedb", "lancedb")
        self.folder = tempfile.mkdtemp(prefix="bench-lancedb-")
        self.columns = dataset.columns
        self.distance = {"l2": "l2", "cosine": "cosine", "ip": "dot"}[dataset.metric]
        n, d = dataset.train.shape
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(dataset.train.ravel(), pa.float32()), d)
        table = pa.table({"row": pa.array(np.arange(n)), "vector": vectors,
                          **{name: col.to_arrow() for name, col in dataset.columns.items()}})  # fmt: skip
        self.table = lancedb.connect(self.folder).create_table("bench", table)

    def _search(self, q, k, where: str | None) -> np.ndarray:
        query = self.table.search(q).distance_type(self.distance).bypass_vector_index().limit(k).select(["row"])
        if where is not None:
            query = query.where(where, prefilter=True)
        return pad(query.to_arrow().column("row").to_numpy(), k)

    def query(self, q, k):
        return self._search(q, k, None)

    def prepare_filters(self, predicates) -> None:
        self.where = {id(p): p.to_sql(self.columns) for p in predicates if p is not None}

    def filtered_query(self, q, k, predicate, mask):
        where = getattr(self, "where", {}).get(id(predicate)) or predicate.to_sql(self.columns)
        return self._search(q, k, where)

    def close(self) -> None:
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)
