"""Exact filtered search vs a plain numpy prefilter + matmul baseline, in one run, on real data.

    python -m bench.exact_baseline [--dataset movies] [--queries 200] [--batch 1000]

Loads the dataset into a fresh embedded database (reporting the durable ingest rate), then for
filters keeping about 100%, 10% and 1% of the rows measures queries per second for one query per
call (single thread of control) and for one batch call, for vecstore's exact path and for numpy
(boolean-mask prefilter, matrix product, argpartition). Results are checked to agree.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

import vecstore
from bench.algorithms.exact_numpy import top_by_score
from bench.datasets import SCHEMAS, load_embedding_dataset

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WINDOW = {"movies": "year", "git-commits": "commit_time"}


def numpy_prefilter_search(
    vectors: np.ndarray, queries: np.ndarray, values: np.ndarray, window: tuple | None, k: int
) -> np.ndarray:
    """The baseline: mask the rows in the window, score them by matmul, select with argpartition.

    ``vectors`` are unit-norm, so cosine order is inner-product order. With no window the copy is skipped.
    """
    if window is None:
        rows, candidates = None, vectors
    else:
        rows = np.flatnonzero((values >= window[0]) & (values <= window[1]))
        candidates = vectors[rows]
    order = top_by_score(queries @ candidates.T, k)
    return order if rows is None else rows[order]


def window_filters(values: np.ndarray, column: str) -> list[tuple[str, str | None, tuple | None]]:
    """Windows on the window attribute keeping about 100%, 10% and 1% of the rows."""
    ordered = np.sort(values)
    out: list[tuple[str, str | None, tuple | None]] = [("100%", None, None)]
    for label, fraction in (("10%", 0.10), ("1%", 0.01)):
        start = int(len(ordered) * 0.45)
        lo, hi = ordered[start], ordered[min(len(ordered) - 1, start + int(len(ordered) * fraction))]
        if values.dtype.kind == "M":
            text = f"{column} between '{np.datetime_as_string(lo)}' and '{np.datetime_as_string(hi)}'"
        else:
            text = f"{column} between {lo} and {hi}"
        out.append((label, text, (lo, hi)))
    return out


def one_by_one(search, queries: np.ndarray) -> None:
    for query in queries:
        search(query[None, :])


def best_of(repeats: int, fn) -> float:
    """Shortest wall time of ``repeats`` runs (the least disturbed by other load on a shared machine)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run(dataset: str, n_single: int, n_batch: int, k: int, repeats: int) -> list[dict]:
    data = load_embedding_dataset(dataset)
    vectors = data.vectors
    rng = np.random.default_rng(0)
    queries = vectors[rng.choice(vectors.shape[0], n_batch, replace=False)].copy()
    queries += rng.normal(0, 0.01, queries.shape).astype(np.float32)  # near, not equal to, stored rows
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, vecstore.connect(Path(tmp) / "db") as db:
        attributes = SCHEMAS[dataset]
        col = db.create_collection(
            "bench", dim=vectors.shape[1], metric="cosine", attributes=attributes, window=WINDOW[dataset]
        )
        started = time.perf_counter()
        batch_rows = 10_000
        for start in range(0, vectors.shape[0], batch_rows):
            part = data.attributes.slice(start, batch_rows)
            col.upsert(part.column("id"), vectors[start : start + batch_rows], {n: part.column(n) for n in attributes})
        col.seal()
        ingest_s = time.perf_counter() - started
        segment_files = sum(s.get("file_bytes", 0) for s in col.describe()["segments"])
        rows.append(
            {
                "dataset": dataset,
                "metric": "ingest_rows_per_s",
                "value": vectors.shape[0] / ingest_s,
                "rows": vectors.shape[0],
                "batch_rows": batch_rows,
                "segment_file_bytes": segment_files,
            }
        )
        column = WINDOW[dataset]
        values = data.attributes.column(column).to_numpy()
        col.search(queries[:2], k=k)  # compile / load cached kernels before timing
        for label, text, window in window_filters(values, column):
            ours = partial(col.search, k=k, filter=text)
            theirs = partial(numpy_prefilter_search, vectors, values=values, window=window, k=k)
            allowed = col.count(text)
            got, want = ours(queries).ids, theirs(queries)
            agreement = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, want, strict=True)]))
            single = queries[:n_single]
            rows.append(
                {
                    "dataset": dataset,
                    "selectivity": label,
                    "allowed_rows": allowed,
                    "filter": text,
                    "agreement_at_k": agreement,
                    "vecstore_single_qps": n_single / best_of(repeats, partial(one_by_one, ours, single)),
                    "numpy_single_qps": n_single / best_of(repeats, partial(one_by_one, theirs, single)),
                    "vecstore_batch_qps": n_batch / best_of(repeats, partial(ours, queries)),
                    "numpy_batch_qps": n_batch / best_of(repeats, partial(theirs, queries)),
                }
            )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dataset | selectivity | rows allowed | single-query QPS vecstore / numpy (ratio) "
        "| batch QPS vecstore / numpy (ratio) | top-10 agreement |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "selectivity" not in r:
            continue
        s_ratio = r["vecstore_single_qps"] / r["numpy_single_qps"]
        b_ratio = r["vecstore_batch_qps"] / r["numpy_batch_qps"]
        lines.append(
            f"| {r['dataset']} | {r['selectivity']} | {r['allowed_rows']:,} "
            f"| {r['vecstore_single_qps']:,.0f} / {r['numpy_single_qps']:,.0f} ({s_ratio:.2f}x) "
            f"| {r['vecstore_batch_qps']:,.0f} / {r['numpy_batch_qps']:,.0f} ({b_ratio:.2f}x) "
            f"| {r['agreement_at_k']:.4f} |"
        )
    for r in rows:
        if r.get("metric") == "ingest_rows_per_s":
            lines.append(
                f"\n{r['dataset']}: durable ingest {r['value']:,.0f} rows/s "
                f"({r['rows']:,} rows in batches of {r['batch_rows']:,}, including the final seal); "
                f"segment files {r['segment_file_bytes'] / 2**20:,.0f} MiB"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines.append(f"\npeak RSS of the bench process (dataset, both engines, query matrices): {peak:,.0f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", choices=sorted(SCHEMAS), help="default: movies")
    parser.add_argument("--queries", type=int, default=200, help="single-query calls timed per filter")
    parser.add_argument("--batch", type=int, default=1000, help="queries in the batch call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    rows = []
    for dataset in args.dataset or ["movies"]:
        rows += run(dataset, args.queries, args.batch, args.k, args.repeats)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "exact_baseline.json").write_text(json.dumps(rows, indent=1, default=str))
    table = markdown(rows)
    (RESULTS_DIR / "exact_baseline.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
