"""Term graphs: an HNSW graph over the rows of each large term of a string or list<string> column
(and, kept in the same file, the range graphs of numeric columns: ``vecstore.index.range_graphs``).

A filter on a category (``repo = 'git'``, ``genres contains 'Drama'``) keeps rows that a segment's graph
links poorly: when the category is unrelated to the query's neighbourhood, a masked walk of the segment
graph crosses the query's own cluster before it finds an allowed row, and even two-hop edges pay for
every rejected neighbour. A graph built on the term's rows alone is searched like an unfiltered graph
of that size (after the filtered-search winners of big-ann-benchmarks 2023, which give large posting
lists their own small graphs). On 20k git-commits rows at recall@10 0.95-0.98, a repository's own graph
answered in 46-107 us where two-hop search of the segment graph took 100-200 us.

Each term graph holds its rows' searched vectors (a gathered copy: the rows of a term are scattered over
the segment) and the segment offsets of its nodes, ascending. This layer only builds, persists and looks
up the graphs; the engine prices them against the other strategies and runs them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecstore.errors import DataCorruption, InvalidArgument
from vecstore.index.hnsw import HnswGraph, HnswIndex, build_prepared, stored_dim
from vecstore.index.payload import NumericIndex, PayloadIndex, TermIndex
from vecstore.index.quantization import Quantizer
from vecstore.index.range_graphs import FieldRanges, RangeRun

FORMAT_VERSION = 1
#: terms with fewer rows get no graph: a scan of them costs about one search of a small graph (git-commits,
#: 384-d: 1,348 rows of one repository scanned in 45 us, searched in their own graph in 40 us at ef 40,
#: recall@10 0.98; at 784-d a row scans in twice the time). The planner still scans where that is cheaper.
DEFAULT_MIN_ROWS = 1024
#: terms holding more than this share of a segment's rows get no graph: the masked walk of the segment
#: graph then costs about 1.3 unfiltered searches or less, too little to save for a copy of most of the
#: vectors. Below it the copy pays: with a graph for jeopardy's `round = 'Double Jeopardy!'` (52% of
#: the rows, 1536-d) the bench's `round =` queries ran 3,986 -> 5,466 a second, for 32 MB beside the
#: 61 MB of vectors.
MAX_ROW_FRACTION = 0.7


@dataclass(frozen=True)
class TermGraph:
    """The graph over the rows holding ``term`` in ``field``; node i is segment row ``rows[i]``."""

    field: str
    term: str
    rows: np.ndarray  # int64 [n], ascending segment offsets
    index: HnswIndex
    #: how many times more often the term's rows link to rows of the term in the segment graph than rows
    #: drawn at random would (1: unrelated to the vectors; a category with a region of its own, more)
    lift: float = 1.0

    @property
    def num_rows(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the graph, its row offsets and its copy of the rows' vectors."""
        return int(self.index.graph.nbytes + self.rows.nbytes + self.index.vectors.nbytes)


def graph_terms(terms: TermIndex, num_rows: int, min_rows: int) -> list[tuple[str, int, int]]:
    """(term, start, stop) in ``terms.rows`` of each term that gets a graph: at least ``min_rows`` rows
    and at most ``MAX_ROW_FRACTION`` of the segment's."""
    chosen = []
    for t, term in enumerate(terms.terms):
        start, stop = int(terms.starts[t]), int(terms.starts[t + 1])
        if min_rows <= stop - start <= MAX_ROW_FRACTION * num_rows:
            chosen.append((term, start, stop))
    return chosen


#: rows of a term sampled to measure its lift
LIFT_SAMPLE_ROWS = 256


def term_lift(root: HnswGraph, rows: np.ndarray, seed: int = 0) -> float:
    """``TermGraph.lift`` of the term holding ``rows`` (ascending) in the segment graph ``root``."""
    if rows.shape[0] == 0 or root.n == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    sample = rows if rows.shape[0] <= LIFT_SAMPLE_ROWS else rng.choice(rows, LIFT_SAMPLE_ROWS, replace=False)
    member = np.zeros(root.n, dtype=np.bool_)
    member[rows] = True
    return root.link_lift(sample, member, rows.shape[0] / root.n)


def _index_over(rows: np.ndarray, searched: np.ndarray, graph: HnswGraph) -> HnswIndex:
    # cosine rows are unit vectors, whose source only gives the width
    return HnswIndex(graph, searched[:, : stored_dim(searched, graph.metric)], prepared=searched)


class TermGraphs:
    """The term graphs of one segment, by (field, term), and the range graphs of its numeric fields
    (``vecstore.index.range_graphs``), by field."""

    def __init__(self, graphs: Iterable[TermGraph], ranges: Iterable[FieldRanges] = ()) -> None:
        self.graphs = {(g.field, g.term): g for g in graphs}
        self.ranges = {r.field: r for r in ranges}
        self._fields = frozenset(f for f, _ in self.graphs)  # asked once per filter and query by the planner
        sizes = [g.num_rows for g in self.graphs.values()]
        sizes += [run.num_rows for field in self.ranges.values() for run in field.runs]
        #: rows of the smallest term graph or range run (None without any): no graph option through them
        #: walks fewer, which bounds the rows a scan always wins for
        self.smallest_graph_rows: int | None = min(sizes, default=None)
        # per term graph and per range field: (the segment's codes, their copy for its nodes)
        self._node_codes: dict[object, tuple[Quantizer, Quantizer]] = {}

    def get(self, field: str, term: object) -> TermGraph | None:
        return self.graphs.get((field, term)) if isinstance(term, str) else None

    def has_field(self, field: str) -> bool:
        return field in self._fields

    def has_any_field(self, fields: frozenset[str]) -> bool:
        """Whether a term graph exists for a term of any of ``fields``."""
        return not self._fields.isdisjoint(fields)

    def __len__(self) -> int:
        """How many graphs: one per large term, and one per run of each numeric field's value order."""
        return len(self.graphs) + sum(len(r.runs) for r in self.ranges.values())

    @property
    def nbytes(self) -> int:
        """The graphs and their copies of the rows' vectors, and the codes gathered for them so far."""
        graphs = sum(g.nbytes for g in self.graphs.values()) + sum(r.nbytes for r in self.ranges.values())
        gathered = [copy.codes for _, copy in self._node_codes.values() if copy.codes.base is None]  # not slices
        return graphs + sum(int(codes.nbytes) for codes in gathered)

    def node_codes(self, graph: TermGraph | RangeRun, codes: Quantizer) -> Quantizer:
        """``codes`` (the segment's) for ``graph``'s nodes, node i's at row i, to walk it over them: a
        term's rows lie scattered over the segment, so they are gathered on first use (a quarter of the
        term graph's float copy for sq8 codes), and a range run's are a slice of its field's codes
        gathered in value order. Kept while the segment's codes are the same object."""
        if not isinstance(graph, RangeRun):
            return self._gathered(("term", graph.field, graph.term), graph.rows, codes)
        key = ("run", graph.field, graph.start, graph.stop)
        kept = self._node_codes.get(key)
        if kept is None or kept[0] is not codes:
            whole = self._gathered(("range", graph.field), self.ranges[graph.field].order, codes)
            kept = (codes, dataclasses.replace(whole, codes=whole.codes[graph.start : graph.stop]))
            self._node_codes[key] = kept
        return kept[1]

    def _gathered(self, key: object, rows: np.ndarray, codes: Quantizer) -> Quantizer:
        """``codes`` of ``rows``, gathered once per ``key`` and kept while the codes are the same object (a
        racing search gathers the same copy: either may stay)."""
        kept = self._node_codes.get(key)
        if kept is None or kept[0] is not codes:
            kept = (codes, dataclasses.replace(codes, codes=np.ascontiguousarray(codes.codes[rows])))
            self._node_codes[key] = kept
        return kept[1]

    @staticmethod
    def build(
        root: HnswIndex,
        payload: PayloadIndex,
        fields: Iterable[str],
        min_rows: int = DEFAULT_MIN_ROWS,
        seed: int = 0,
        should_stop: Callable[[], bool] | None = None,
    ) -> TermGraphs:
        """A graph (the root's m and ef_construction) for every large term of the string and list fields
        of ``fields``, built on a copy of the root's searched rows of that term; range graphs for the
        numeric ones whose runs hold at least ``min_rows`` rows."""
        g = root.graph
        built = []
        ranges = []
        for number, field in enumerate(sorted(fields)):
            terms = payload.columns.get(field)
            if isinstance(terms, NumericIndex):
                found = FieldRanges.build(root, field, terms, min_rows, seed + 104729 * number, should_stop)
                ranges += [] if found is None else [found]
            if not isinstance(terms, TermIndex):
                continue
            for term, start, stop in graph_terms(terms, g.n, min_rows):
                rows = np.ascontiguousarray(terms.rows[start:stop], dtype=np.int64)
                searched = np.ascontiguousarray(root.vectors[rows])
                graph = build_prepared(searched, g.metric, g.m, g.ef_construction, seed + 7919 * number + start,
                                       should_stop=should_stop)  # fmt: skip
                lift = term_lift(g, rows, seed + start)
                built.append(TermGraph(field, term, rows, _index_over(rows, searched, graph), lift))
        return TermGraphs(built, ranges)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {"version": FORMAT_VERSION, "graphs": [], "ranges": []}
        arrays: dict[str, np.ndarray] = {}
        for j, (_, ranges) in enumerate(sorted(self.ranges.items())):
            range_meta, range_arrays = ranges.to_arrays(f"r{j}.")
            meta["ranges"].append(range_meta)
            arrays.update(range_arrays)
        for j, ((field, term), tg) in enumerate(sorted(self.graphs.items())):
            graph_meta, graph_arrays = tg.index.graph.to_arrays()
            meta["graphs"].append({"field": field, "term": term, "lift": tg.lift, "graph": graph_meta})
            arrays.update({f"{j}.{name}": array for name, array in graph_arrays.items()})
            arrays[f"{j}.rows"] = tg.rows
            arrays[f"{j}.vectors"] = tg.index.vectors
        return meta, arrays

    @staticmethod
    def from_arrays(meta: dict[str, Any], arrays: dict[str, np.ndarray], num_rows: int) -> TermGraphs:
        """The graphs from ``to_arrays``' output for a segment of ``num_rows`` rows; DataCorruption if torn."""
        try:
            if meta["version"] != FORMAT_VERSION:
                raise ValueError(f"format version {meta['version']}, expected {FORMAT_VERSION}")
            graphs = []
            for j, entry in enumerate(meta["graphs"]):
                prefix = f"{j}."
                own = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                graph = HnswGraph.from_arrays(entry["graph"], own)
                rows, searched = own["rows"], own["vectors"]
                if rows.shape[0] != graph.n or searched.shape[0] != graph.n:
                    raise ValueError(f"term {entry['term']!r} has {rows.shape[0]} rows for {graph.n} nodes")
                if graph.n and (rows[0] < 0 or rows[-1] >= num_rows or np.any(np.diff(rows) <= 0)):
                    raise ValueError(f"term {entry['term']!r} names rows outside the segment's {num_rows}")
                index = _index_over(rows, searched, graph)
                lift = float(entry.get("lift", 1.0))
                graphs.append(TermGraph(str(entry["field"]), str(entry["term"]), rows, index, lift))
            # files written before range graphs have none
            ranges = [
                FieldRanges.from_arrays(entry, arrays, f"r{j}.", num_rows)
                for j, entry in enumerate(meta.get("ranges", []))
            ]
            return TermGraphs(graphs, ranges)
        except (KeyError, TypeError, ValueError, InvalidArgument) as exc:
            raise DataCorruption(f"term graphs are damaged: {exc}") from None
