"""Model-based test: random sequences of writes, reads, seals, compactions and reopens against a dict.

Vectors are small integers, so every distance is exact in float32 and results must equal the
model's brute force exactly (ids and distances), ties broken by the smaller id.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import vecstore
from tests.oracles import exact_search, filter_mask
from vecstore.filters import field_types, to_filter

DIM = 3
ATTRS = {"year": "int64", "cat": "string", "tags": "list<string>", "flag": "bool"}
TYPES = field_types(ATTRS)
FILTERS = [
    None,
    "year >= 2000",
    "year between 1995 and 2002 and cat = 'a'",
    "cat in ('a', 'b') or flag",
    "not flag",
    "tags contains 'x'",
    "tags contains all ('x', 'y') or year is null",
    "cat is null or year < 1996",
    "id in (1, 3, 5, 7, 11)",
    "year > 3000",
]

ids_st = st.integers(0, 24)
vector_st = st.lists(st.integers(-3, 3), min_size=DIM, max_size=DIM)
row_st = st.fixed_dictionaries(
    {
        "vector": vector_st,
        "year": st.one_of(st.none(), st.integers(1990, 2005)),
        "cat": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
        "tags": st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True)),
        "flag": st.one_of(st.none(), st.booleans()),
    }
)


class CollectionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="vecstore-sm-"))
        self.db = vecstore.connect(self.dir / "db")
        self.col = self.db.create_collection(
            "c", dim=DIM, metric="l2", attributes=ATTRS, window="year", seal_rows=6, compact_dead_fraction=0.5
        )
        self.model: dict[int, dict] = {}

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- writes ---------------------------------------------------------------------------
    @rule(batch=st.dictionaries(ids_st, row_st, min_size=1, max_size=8))
    def upsert(self, batch):
        ids = np.array(list(batch), dtype=np.int64)
        rows = list(batch.values())
        attributes = {name: [r[name] for r in rows] for name in ATTRS}
        assert self.col.upsert(ids, np.array([r["vector"] for r in rows]), attributes) == len(rows)
        for external_id, row in batch.items():
            self.model[external_id] = row

    @rule(ids=st.lists(ids_st, max_size=6))
    def delete(self, ids):
        expected = len(set(ids) & set(self.model))
        assert self.col.delete(ids) == expected
        for external_id in ids:
            self.model.pop(external_id, None)

    @rule()
    def seal(self):
        self.col.seal()

    @rule()
    def compact(self):
        self.col.compact()

    @rule()
    def reopen(self):
        self.db.close()
        self.db = vecstore.connect(self.dir / "db")
        self.col = self.db.collection("c")

    # -- reads ----------------------------------------------------------------------------
    def _model_arrays(self):
        ids = np.array(sorted(self.model), dtype=np.int64)
        vectors = np.array([self.model[i]["vector"] for i in ids], dtype=np.float32).reshape(-1, DIM)
        rows = [{"id": int(i), **{k: self.model[i][k] for k in ATTRS}} for i in ids]
        return ids, vectors, rows

    @rule(ids=st.lists(ids_st, max_size=6))
    def get(self, ids):
        table = self.col.get(ids)
        expected = [i for i in ids if i in self.model]
        assert table.column("id").to_pylist() == expected
        for row in table.to_pylist():
            want = self.model[row["id"]]
            assert row["vector"] == [float(v) for v in want["vector"]]
            assert {k: row[k] for k in ATTRS} == {k: want[k] for k in ATTRS}

    @rule(text=st.sampled_from(FILTERS))
    def count(self, text):
        _, _, rows = self._model_arrays()
        assert self.col.count(text) == int(filter_mask(to_filter(text, ATTRS), rows, TYPES).sum())

    @rule(
        queries=st.lists(vector_st, min_size=1, max_size=3),
        k=st.integers(1, 12),
        text=st.sampled_from(FILTERS),
    )
    def search(self, queries, k, text):
        ids, vectors, rows = self._model_arrays()
        mask = filter_mask(to_filter(text, ATTRS), rows, TYPES)
        q = np.array(queries, dtype=np.float32)
        want_ids, want_d = exact_search("l2", q, vectors[mask], ids[mask], k)
        res = self.col.search(q, k=k, filter=text, select=["year"])
        np.testing.assert_array_equal(res.ids, want_ids)
        np.testing.assert_array_equal(res.distances, want_d.astype(np.float32))
        years = res.to_arrow().column("year").to_pylist()
        assert years == [self.model[i]["year"] for i in res.ids.ravel() if i >= 0]

    @invariant()
    def counts_agree(self):
        assert self.col.count() == len(self.model)


CollectionMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestCollectionMachine = CollectionMachine.TestCase
