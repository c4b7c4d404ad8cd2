"""Quantised search against float search and FAISS, in one run.

    python -m bench.quantization [--part bq --part pq --part filters --part million] [--rows 100000]

- ``bq``: binary-quantised collections (jeopardy 1536-d; git-commits and movies 384-d) against the same
  rows in a float collection: recall@10 and single-query QPS per oversampling / ef, the smallest
  oversampling reaching 0.95, the QPS ratio at recall >= 0.95, and resident search memory.
- ``pq``: vecstore's product quantiser against FAISS ``IndexPQ`` at the same bytes per vector and the
  same training sample: recall@10 without rescoring, training and encoding time, flat ADC scan QPS on
  one thread, and recall@10 with rescoring.
- ``filters``: binary and PQ collections on jeopardy (air date, round) and git-commits (commit time,
  repository) under windows of 2^-12 .. 2^0 of the rows and each category: recall@10 with rescoring
  and the strategy the planner took, at the collection's ef and at ef 128.
- ``tree``: jeopardy windows through the window tree, its bucket graphs walked over float rows or over
  binary codes (rescored): recall@10, single-query QPS and plan per ef.
- ``million``: 1M x 384 synthetic clustered rows with PQ (m=48) in a child process: load, codes,
  quantised search, and its peak RSS against the bytes of the vectors it maps.

Results go to ``bench/results/quantization.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vecstore
from bench.datasets import load_embedding_dataset, load_jeopardy

RESULTS_DIR = Path(__file__).resolve().parent / "results"
N_QUERIES = 200
K = 10
OVERSAMPLINGS = [1, 2, 3, 4, 5, 8, 10, 15, 20]
#: walk breadths for the codes' graph: the collection's ef (64), and narrower ones (ef is raised to the
#: candidate count where that is larger)
CODE_EFS = [None, 20, 32, 48]
FLOAT_EFS = [10, 16, 24, 32, 48, 64, 96, 128]
HNSW = {"m": 16, "ef_construction": 100, "window_tree_beta": 0}


def _dataset(name: str, rows: int) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """(rows, held-out queries, attributes per row), a seeded split. Attributes: ``t`` (git commit time,
    jeopardy air date) and ``cat`` (git repository, jeopardy round); None for movies."""
    if name == "jeopardy":
        vectors, table = load_jeopardy()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        times = table.column("air_date").cast("int64").to_numpy()
        cats = table.column("round").to_numpy(zero_copy_only=False)
    else:
        data = load_embedding_dataset(name, limit=rows + N_QUERIES)
        vectors = np.ascontiguousarray(data.vectors, dtype=np.float32)
        times = data.attributes.column("commit_time").to_numpy() if name == "git-commits" else None
        cats = data.attributes.column("repo").to_numpy(zero_copy_only=False) if name == "git-commits" else None
    order = np.random.default_rng(7).permutation(vectors.shape[0])
    queries, train = order[:N_QUERIES], np.sort(order[N_QUERIES:])
    if times is None:
        return vectors[train], vectors[queries], None
    attrs = {"t": np.asarray(times)[train].astype(np.int64), "cat": np.asarray(cats, dtype=object)[train]}
    return vectors[train], vectors[queries], attrs


def _truth(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.argsort(-(queries @ unit.T), axis=1)[:, :K]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / K for a, b in zip(found, truth, strict=True)]))


def _single(col, queries: np.ndarray, **kwargs) -> tuple[np.ndarray, float, str]:
    """Ids of one search per query (after a warm-up), queries per second, the strategies taken."""
    for q in queries[:3]:
        col.search(q, k=K, **kwargs)
    found = np.empty((queries.shape[0], K), dtype=np.int64)
    strategies = set()
    started = time.perf_counter()
    for i, q in enumerate(queries):
        result = col.search(q, k=K, **kwargs)
        found[i] = result.ids[0]
        strategies.add(result.strategy)
    return found, queries.shape[0] / (time.perf_counter() - started), ",".join(sorted(strategies))


def _collection(db, name: str, vectors: np.ndarray, quantization: dict | None, attrs: dict | None = None):
    attributes = {"t": "int64", "cat": "string"} if attrs is not None else {}
    col = db.create_collection(name, dim=vectors.shape[1], metric="cosine", attributes=attributes,
                               window="t" if attrs is not None else None, hnsw=HNSW, quantization=quantization,
                               seal_rows=10**7, max_segment_rows=1)  # fmt: skip
    for start in range(0, vectors.shape[0], 20_000):
        part = vectors[start : start + 20_000]
        values = None if attrs is None else {key: list(v[start : start + part.shape[0]]) for key, v in attrs.items()}
        col.upsert(np.arange(start, start + part.shape[0]), part, values)
    started = time.perf_counter()
    col.seal()
    assert col.wait_for_indexes(), col.describe()["segments"]
    return col, time.perf_counter() - started


@contextlib.contextmanager
def _float_graph_priced_out():
    """Make the planner walk graphs over codes (a float distance priced 1000x), to measure the codes'
    recall where it rightly prefers the float graph (384-d: a code distance costs as much)."""
    from vecstore.engine import planner

    original = planner.float_distance_scale
    planner.float_distance_scale = lambda dim: 1000.0
    try:
        yield
    finally:
        planner.float_distance_scale = original


@contextlib.contextmanager
def _code_scans_priced_out():
    """Make the planner skip flat code scans and plain scans (priced 1000x), so windows go through the
    window tree's bucket graphs, as they would on a segment too large to scan."""
    from vecstore.engine import planner

    originals = planner.QUANTIZED_CALL_NS, planner.EXACT_NS_PER_ROW_DIM
    planner.QUANTIZED_CALL_NS, planner.EXACT_NS_PER_ROW_DIM = 1e9, originals[1] * 1000
    try:
        yield
    finally:
        planner.QUANTIZED_CALL_NS, planner.EXACT_NS_PER_ROW_DIM = originals


def _best(rows: list[dict], floor: float = 0.95) -> dict | None:
    good = [r for r in rows if r["recall"] >= floor]
    return max(good, key=lambda r: r["qps"]) if good else None


def part_bq(rows: int) -> dict:
    out = {}
    for name in ("jeopardy", "git-commits", "movies"):
        vectors, queries, _ = _dataset(name, rows)
        truth = _truth(vectors, queries)
        with tempfile.TemporaryDirectory() as folder, vecstore.connect(folder) as db:
            plain, float_build = _collection(db, "float", vectors, None)
            bq, bq_build = _collection(db, "bq", vectors, {"kind": "binary"})
            float_rows, bq_rows = [], []
            for ef in FLOAT_EFS:
                found, qps, plan = _single(plain, queries, ef=ef)
                float_rows.append({"ef": ef, "recall": _recall(found, truth), "qps": qps, "plan": plan})
            for over in OVERSAMPLINGS:
                for ef in CODE_EFS:  # the codes' own speed/recall knob, as ef is the float graph's
                    found, qps, plan = _single(bq, queries, oversampling=over, ef=ef)
                    bq_rows.append({"oversampling": over, "ef": ef, "recall": _recall(found, truth), "qps": qps,
                                    "plan": plan})  # fmt: skip
            with _float_graph_priced_out():  # the codes' own recall, where the planner prefers floats
                forced = []
                for over in OVERSAMPLINGS:
                    found, qps, plan = _single(bq, queries, oversampling=over)
                    forced.append({"oversampling": over, "recall": _recall(found, truth), "qps": qps, "plan": plan})
            memory, segment = bq.describe()["memory"], bq.describe()["segments"][0]
        best_float, best_bq = _best(float_rows), _best(bq_rows)
        smallest = next((r["oversampling"] for r in forced if r["recall"] >= 0.95), None)
        out[name] = {
            "rows": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
            "float": float_rows, "binary": bq_rows, "binary_codes_forced": forced,
            "float_build_s": float_build, "binary_build_s": bq_build,
            "smallest_oversampling_for_0.95": smallest,
            "qps_ratio_at_0.95": None if not (best_float and best_bq) else best_bq["qps"] / best_float["qps"],
            "code_bytes": memory["code_bytes"], "graph_link_bytes": segment["graph_bytes"],
            "float_vector_bytes": int(vectors.nbytes),
        }  # fmt: skip
        print(name, json.dumps({k: v for k, v in out[name].items() if not isinstance(v, list)}), flush=True)
    return out


def part_pq(rows: int) -> dict:
    import faiss

    from vecstore.core.exact import COSINE
    from vecstore.index.quantization import PQ_TRAIN_ROWS, ProductQuantizer, rescore

    out = {}
    for name, m in (("git-commits", 48), ("jeopardy", 96)):
        vectors, queries, _ = _dataset(name, rows)
        unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        unit_queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        truth = _truth(vectors, queries)
        n, dim = unit.shape
        keys = np.arange(n, dtype=np.int64)
        offsets = np.arange(n, dtype=np.int64)
        faiss.omp_set_num_threads(2)  # building on both cores, as ours does
        started = time.perf_counter()
        ours = ProductQuantizer.train(unit, "cosine", m, seed=0)
        ours_s = time.perf_counter() - started
        sample = (
            unit
            if n <= PQ_TRAIN_ROWS
            else unit[np.sort(np.random.default_rng(0).choice(n, PQ_TRAIN_ROWS, replace=False))]
        )
        index = faiss.IndexPQ(dim, m, 8, faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.niter = 20  # as ours
        started = time.perf_counter()
        index.train(sample)
        faiss_train_s = time.perf_counter() - started
        started = time.perf_counter()
        index.add(unit)
        faiss_add_s = time.perf_counter() - started
        from vecstore.core import pq as kernels

        started = time.perf_counter()
        kernels.encode(unit, ours.codebooks)
        ours_encode_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)  # searching one query at a time on one thread, as ours does
        found = np.concatenate([ours.estimates(q[None], offsets, keys, K)[0] for q in unit_queries[:3]])
        started = time.perf_counter()
        found = np.concatenate([ours.estimates(q[None], offsets, keys, K)[0] for q in unit_queries])
        ours_qps = N_QUERIES / (time.perf_counter() - started)
        index.search(unit_queries[:3], K)
        started = time.perf_counter()
        faiss_found = np.concatenate([index.search(q[None], K)[1] for q in unit_queries])
        faiss_qps = N_QUERIES / (time.perf_counter() - started)
        rescored = {}
        for over in (2, 5, 10, 20):
            candidates = np.concatenate([ours.candidates(q[None], offsets, keys, K * over) for q in unit_queries])
            hits, _ = rescore(unit, np.ones(n, np.float32), unit_queries, candidates, keys, K, COSINE)
            rescored[over] = _recall(hits, truth)
        out[name] = {
            "rows": n, "dim": dim, "pq_m": m, "bytes_per_vector": m, "train_rows": int(sample.shape[0]),
            "recall_no_rescoring": _recall(found, truth), "faiss_recall": _recall(faiss_found, truth),
            "train_and_encode_s": ours_s, "encode_s": ours_encode_s,
            "faiss_train_s": faiss_train_s, "faiss_encode_s": faiss_add_s,
            "adc_scan_qps": ours_qps, "faiss_scan_qps": faiss_qps, "recall_rescored": rescored,
        }  # fmt: skip
        print(name, json.dumps(out[name]), flush=True)
    return out


def _filtered_recall(col, queries: np.ndarray, filters: list, ef: int | None) -> tuple[float, list[str]]:
    """Mean recall@10 of ``col``'s plan against its exact search, one filter per query."""
    recalls, strategies = [], set()
    for q, spec in zip(queries, filters, strict=False):
        got = col.search(q, k=K, filter=spec, ef=ef)
        want = col.search(q, k=K, filter=spec, exact=True).ids[0]
        want = want[want >= 0]
        recalls.append(len(set(got.ids[0][got.ids[0] >= 0]) & set(want)) / max(1, want.shape[0]))
        strategies.add(got.strategy)
    return float(np.mean(recalls)), sorted(strategies)


#: the collection's ef (64), then one a user would raise it to where a float graph walk falls short
FILTER_EFS = (None, 128)
FILTER_CODES = (("binary", {"kind": "binary", "oversampling": 20}), ("pq", {"kind": "pq", "oversampling": 10}))


def _filter_row(col, queries: np.ndarray, label: str, filters: list) -> dict:
    row: dict = {"filter": label}
    for ef in FILTER_EFS:
        recall, plans = _filtered_recall(col, queries, filters, ef)
        row[f"ef {ef or 'default'}"] = {"recall": recall, "plans": plans}
    return row


def part_filters(rows: int) -> dict:
    out: dict = {}
    for dataset in ("jeopardy", "git-commits"):
        vectors, queries, attrs = _dataset(dataset, rows)
        assert attrs is not None
        times, cats = attrs["t"], attrs["cat"]
        rng = np.random.default_rng(11)
        ranks = np.argsort(times, kind="stable")
        names, counts = np.unique(cats, return_counts=True)
        with tempfile.TemporaryDirectory() as folder, vecstore.connect(folder) as db:
            for kind, spec in FILTER_CODES:
                col, _ = _collection(db, kind, vectors, spec, attrs)
                table = out.setdefault(dataset, {}).setdefault(kind, [])
                for exponent in range(12, -1, -1):
                    length = max(1, round(vectors.shape[0] * 2.0**-exponent))
                    starts = rng.integers(0, vectors.shape[0] - length + 1, size=queries.shape[0] // 2)
                    windows = [vecstore.field("t").between(int(times[ranks[s]]), int(times[ranks[s + length - 1]]))
                               for s in starts]  # fmt: skip
                    table.append(_filter_row(col, queries, f"window 2^-{exponent}", windows))
                    print(dataset, kind, table[-1], flush=True)
                for name, count in sorted(zip(names, counts, strict=True), key=lambda p: -p[1]):
                    label = f"{'repo' if dataset == 'git-commits' else 'round'} = {name} ({count / len(cats):.1%})"
                    table.append(_filter_row(col, queries[:50], label, [vecstore.field("cat") == name] * 50))
                    print(dataset, kind, table[-1], flush=True)
    return out


#: a window tree on jeopardy's 9.8k rows: buckets of 2,450 and 612 rows
TREE_HNSW = {**HNSW, "window_tree_beta": 4, "window_tree_leaf_rows": 600}


def _timed_filtered(col, queries: np.ndarray, filters: list, truth: list[np.ndarray], **kwargs) -> dict:
    """Recall@10 against ``truth`` and single-query QPS of one search per (query, filter), after a warm-up."""
    for q, spec in zip(queries[:3], filters[:3], strict=True):
        col.search(q, k=K, filter=spec, **kwargs)
    found, strategies = [], set()
    started = time.perf_counter()
    for q, spec in zip(queries, filters, strict=True):
        result = col.search(q, k=K, filter=spec, **kwargs)
        found.append(result.ids[0])
        strategies.add(result.strategy)
    qps = len(filters) / (time.perf_counter() - started)
    recall = float(np.mean([len(set(f[f >= 0]) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)]))
    return {"recall": recall, "qps": qps, "plans": sorted(strategies)}


def part_tree(rows: int) -> dict:
    """Windows on jeopardy's air date through the window tree: bucket graphs walked over float rows
    (float collection) or over binary codes, candidates rescored (binary collection)."""
    vectors, queries, attrs = _dataset("jeopardy", rows)
    assert attrs is not None
    times = attrs["t"]
    ranks = np.argsort(times, kind="stable")
    rng = np.random.default_rng(13)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out: dict = {}
    with tempfile.TemporaryDirectory() as folder, vecstore.connect(folder) as db:
        cols = {}
        for name, quantization in (("float", None), ("binary", {"kind": "binary", "oversampling": 3})):
            col = db.create_collection(name, dim=vectors.shape[1], metric="cosine", attributes={"t": "int64"},
                                       window="t", hnsw=TREE_HNSW, quantization=quantization)  # fmt: skip
            col.upsert(np.arange(vectors.shape[0]), vectors, {"t": list(times)})
            col.seal()
            assert col.wait_for_indexes(timeout=600), col.describe()["segments"]
            cols[name] = col
        for exponent in (3, 2, 1):
            length = round(vectors.shape[0] * 2.0**-exponent)
            starts = rng.integers(0, vectors.shape[0] - length + 1, size=queries.shape[0])
            bounds = [(int(times[ranks[s]]), int(times[ranks[s + length - 1]])) for s in starts]
            filters = [vecstore.field("t").between(lo, hi) for lo, hi in bounds]
            truth = []
            for q, (lo, hi) in zip(queries, bounds, strict=True):
                inside = np.flatnonzero((times >= lo) & (times <= hi))
                truth.append(inside[np.argsort(-(unit[inside] @ q))[:K]])
            row: dict = {"filter": f"window 2^-{exponent}"}
            for name, col in cols.items():
                for ef in (16, 32, 64):
                    row[f"{name} ef {ef}"] = _timed_filtered(col, queries, filters, truth, ef=ef)
            with _code_scans_priced_out():  # 9.8k rows: flat scans win; walk the tree as on a larger segment
                for name, col in cols.items():
                    for ef in (16, 32, 64):
                        row[f"{name} scans priced out, ef {ef}"] = _timed_filtered(col, queries, filters, truth, ef=ef)
            out.setdefault("rows", []).append(row)
            print("tree", json.dumps(row), flush=True)
    return out


def _synthetic_batches(rows: int, dim: int, batch: int):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    for start in range(0, rows, batch):
        size = min(batch, rows - start)
        labels = rng.integers(0, 1000, size)
        yield start, (centres[labels] + 0.5 * rng.standard_normal((size, dim))).astype(np.float32)


def million_child(folder: str, rows: int) -> None:
    """Load ``rows`` x 384 rows into a PQ collection, wait for the codes, search; print a JSON line."""
    dim = 384
    db = vecstore.connect(folder)
    col = db.create_collection("m", dim=dim, metric="l2", hnsw={"m": 16, "ef_construction": 100},
                               quantization={"kind": "pq", "pq_m": 48, "oversampling": 10},
                               seal_rows=100_000, max_segment_rows=1)  # fmt: skip
    started = time.perf_counter()
    for start, part in _synthetic_batches(rows, dim, 20_000):
        col.upsert(np.arange(start, start + part.shape[0]), part)
    col.seal()
    load_s = time.perf_counter() - started
    while any(s["codes"] != "ready (pq)" for s in col.describe()["segments"]):
        time.sleep(1)
    codes_s = time.perf_counter() - started - load_s
    queries = next(_synthetic_batches(100, dim, 100))[1]
    found, qps, plan = _single(col, queries)
    exact = col.search(queries[:20], k=K, exact=True).ids
    memory = col.describe()["memory"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "rows": rows, "load_s": load_s, "codes_s": codes_s, "qps": qps, "plan": plan,
        "recall_first_20": _recall(found[:20], exact), "code_bytes": memory["code_bytes"],
        "vector_bytes": memory["vector_bytes"], "peak_rss_bytes": usage.ru_maxrss * 1024,
    }), flush=True)  # fmt: skip
    db.close()


def part_million(rows: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        child = subprocess.run([sys.executable, "-m", "bench.quantization", "--million-child", folder, "--rows",
                                str(rows)], capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["peak_rss_beyond_vectors_bytes"] = result["peak_rss_bytes"] - result["vector_bytes"]
    print("million", json.dumps(result), flush=True)
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(results: dict) -> str:
    """The results as tables (one per part present)."""
    lines = ["# Quantisation bench", ""]
    if "bq" in results:
        lines += ["## Binary codes against the float graph (single query, one thread, recall@10)", "",
                  "| dataset | rows x dim | smallest oversampling for 0.95 (codes) | best QPS >= 0.95: codes / float | "
                  "codes + links / float32 vectors |", "|---|---|---|---|---|"]  # fmt: skip
        for name, r in results["bq"].items():
            ratio = r["qps_ratio_at_0.95"]
            memory = (r["code_bytes"] + r["graph_link_bytes"]) / r["float_vector_bytes"]
            ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
            lines.append(f"| {name} | {r['rows']:,} x {r['dim']} | {r['smallest_oversampling_for_0.95']} | "
                         f"{ratio_text} | {memory:.3f} (1/{1 / memory:.1f}) |")  # fmt: skip
        lines.append("")
        for name, r in results["bq"].items():
            lines += [f"### {name}", "", "| setting | recall@10 | QPS | plan |", "|---|---|---|---|"]
            for row in r["float"]:
                lines.append(f"| float, ef {row['ef']} | {row['recall']:.3f} | {row['qps']:,.0f} | {row['plan']} |")
            for key, label in (("binary", "codes collection"), ("binary_codes_forced", "codes walked (forced)")):
                for row in r.get(key, []):
                    walk = "" if row.get("ef") is None else f", ef {row['ef']}"
                    lines.append(f"| {label}, oversampling {row['oversampling']}{walk} | {row['recall']:.3f} | "
                                 f"{row['qps']:,.0f} | {row['plan']} |")  # fmt: skip
            lines.append("")
    if "pq" in results:
        lines += ["## PQ against FAISS IndexPQ (same bytes per vector, same training sample)", "",
                  "| dataset | m (bytes) | recall@10 ours / FAISS | encode s ours / FAISS | train s ours / FAISS | "
                  "ADC scan QPS ours / FAISS | recall@10 rescored (oversampling: recall) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, r in results["pq"].items():
            rescored = ", ".join(f"{k}: {v:.3f}" for k, v in r["recall_rescored"].items())
            lines.append(
                f"| {name} | {r['pq_m']} | {r['recall_no_rescoring']:.3f} / {r['faiss_recall']:.3f} | "
                f"{r['encode_s']:.2f} / {r['faiss_encode_s']:.2f} | {r['train_and_encode_s'] - r['encode_s']:.1f} / "
                f"{r['faiss_train_s']:.1f} | {r['adc_scan_qps']:,.0f} / {r['faiss_scan_qps']:,.0f} | {rescored} |"
            )
        lines.append("")
    if "filters" in results:
        lines += ["## Under filters, rescored (recall@10 against exact filtered search; plan taken)", ""]
        head = " | ".join(f"{kind} {ef} | plan" for kind, _ in FILTER_CODES for ef in ("ef 64", "ef 128"))
        for dataset, kinds in results["filters"].items():
            lines += [f"### {dataset} (binary oversampling 20, PQ oversampling 10)", "", f"| filter | {head} |",
                      "|---|" + "---|---|" * 2 * len(FILTER_CODES)]  # fmt: skip
            for rows in zip(*(kinds[kind] for kind, _ in FILTER_CODES), strict=True):
                cells = [f"{r[key]['recall']:.3f} | {', '.join(r[key]['plans'])}" for r in rows
                         for key in (f"ef {ef or 'default'}" for ef in FILTER_EFS)]  # fmt: skip
                lines.append(f"| {rows[0]['filter']} | " + " | ".join(cells) + " |")
            lines.append("")
    if "tree" in results:
        rows = results["tree"]["rows"]
        keys = [key for key in rows[0] if key != "filter"]
        lines += ["## Window tree on jeopardy: bucket graphs walked over float rows or binary codes", "",
                  "Air-date windows, beta 4, leaf 600 rows; binary at oversampling 3, candidates rescored. "
                  "recall@10 / single-query QPS / plans. On 9.8k rows flat scans win; 'scans priced out' prices "
                  "scanned rows 1000x (also the rescoring of the segment-graph walk over codes, not the tree's), "
                  "so the window tree's strategies run, over codes in the binary collection.", "",
                  "| filter | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]  # fmt: skip
        for row in rows:
            cells = [
                f"{row[key]['recall']:.3f} / {row[key]['qps']:,.0f} / {', '.join(row[key]['plans'])}" for key in keys
            ]
            lines.append(f"| {row['filter']} | " + " | ".join(cells) + " |")
        lines.append("")
    if "million" in results:
        r = results["million"]
        lines += ["## 1M x 384 synthetic, PQ m=48", "",
                  f"- load {r['load_s']:.0f} s, codes {r['codes_s']:.0f} s, {r['qps']:,.0f} QPS ({r['plan']}), "
                  f"recall@10 {_pct(r['recall_first_20'])} on 20 queries",
                  f"- peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB; vectors {r['vector_bytes'] / 2**30:.2f} GiB; "
                  f"beyond them {r['peak_rss_beyond_vectors_bytes'] / 2**30:.2f} GiB; "
                  f"codes {r['code_bytes'] / 2**20:.0f} MiB", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=["bq", "pq", "filters", "tree", "million"])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of git-commits / movies (million: rows)")
    parser.add_argument("--million-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.million_child:
        million_child(args.million_child, args.rows)
        return
    parts = args.part or ["bq", "pq", "filters", "tree", "million"]
    results = {}
    for part in parts:
        rows = 1_000_000 if part == "million" and args.rows == 100_000 else args.rows
        run = {"bq": part_bq, "pq": part_pq, "filters": part_filters, "tree": part_tree, "million": part_million}
        results[part] = run[part](rows)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "quantization.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    merged = {**previous, **results}
    path.write_text(json.dumps(merged, indent=1, default=str))
    path.with_suffix(".md").write_text(markdown(merged))
    print(f"results: {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
