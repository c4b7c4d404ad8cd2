"""The server against the embedded engine, in one run on loopback.

    python -m bench.grpc_bench [--rows 100000] [--soak-seconds 60]

Measures: bulk load of real 384-d vectors with attributes (git-commits) through the client vs
embedded; batch search of 1,000 queries through gRPC vs in-process; single-query p50 latency
overhead; and a soak: 8 concurrent clients searching with filters while one upserts, then every
acknowledged write is checked. The server runs as a separate process (``vecstore serve``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import vecstore
from bench.datasets import GIT_COMMITS_ATTRIBUTES, load_embedding_dataset

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BATCH_ROWS = 10_000


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--data", str(data), "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stdout.readline()
    if "serving on" not in line:
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, line.split("serving on ")[1].split()[0]


def load(col, data, rows: int) -> float:
    started = time.perf_counter()
    for start in range(0, rows, BATCH_ROWS):
        part = data.attributes.slice(start, min(BATCH_ROWS, rows - start))
        col.upsert(
            part.column("id"),
            data.vectors[start : start + part.num_rows],
            {n: part.column(n) for n in GIT_COMMITS_ATTRIBUTES},
        )
    return rows / (time.perf_counter() - started)


def best_qps(search, queries, repeats: int = 3, **kwargs) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        search(queries, **kwargs)
        times.append(time.perf_counter() - started)
    return queries.shape[0] / min(times)


def latencies_ms(search, queries, **kwargs) -> np.ndarray:
    out = []
    for query in queries:
        started = time.perf_counter()
        search(query, **kwargs)
        out.append((time.perf_counter() - started) * 1000)
    return np.asarray(out)


#: ids per get() when checking the soak's writes: 20k rows of 384 floats is about 30 MB per reply
GET_CHUNK_IDS = 20_000


def soak(address: str, dim: int, seconds: float, filters: list[str], queries: np.ndarray) -> dict:
    """8 searching clients with filters and one upserting client, for ``seconds``."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    acknowledged: list[int] = []

    def searcher(worker: int) -> None:
        rng = np.random.default_rng(worker)
        with vecstore.Client(address) as client:
            col = client.collection("bench")
            mine = []
            while time.monotonic() < stop:
                query = queries[rng.integers(len(queries))]
                started = time.perf_counter()
                try:
                    col.search(query, k=10, filter=filters[rng.integers(len(filters))])
                    mine.append((time.perf_counter() - started) * 1000)
                except vecstore.VecstoreError as exc:
                    with lock:
                        errors.append(f"search: {exc}")
            with lock:
                latencies.extend(mine)

    def upserter() -> None:
        rng = np.random.default_rng(99)
        next_id = 10_000_000
        with vecstore.Client(address) as client:
            col = client.collection("bench")
            while time.monotonic() < stop:
                ids = np.arange(next_id, next_id + 100)
                vectors = rng.standard_normal((100, dim)).astype(np.float32)
                try:
                    col.upsert(ids, vectors, {"repo": ["soak"] * 100})
                    with lock:
                        acknowledged.extend(ids.tolist())
                except vecstore.VecstoreError as exc:
                    with lock:
                        errors.append(f"upsert: {exc}")
                next_id += 100

    threads = [threading.Thread(target=searcher, args=(w,)) for w in range(8)]
    threads.append(threading.Thread(target=upserter))
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    with vecstore.Client(address) as client:
        col = client.collection("bench")
        wanted = np.asarray(acknowledged, dtype=np.int64)
        stored: set[int] = set()
        for start in range(0, wanted.size, GET_CHUNK_IDS):  # one reply must stay under the message limit
            stored.update(col.get(wanted[start : start + GET_CHUNK_IDS]).column("id").to_pylist())
    lat = np.asarray(latencies)
    return {
        "seconds": round(elapsed, 1),
        "searches": int(lat.size),
        "qps": lat.size / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "errors": len(errors),
        "first_errors": errors[:3],
        "acknowledged_rows": len(acknowledged),
        "acknowledged_missing": len(set(acknowledged) - stored),
    }


def run(rows: int, soak_seconds: float) -> dict:
    data = load_embedding_dataset("git-commits", limit=rows)
    rng = np.random.default_rng(0)
    queries = data.vectors[rng.choice(rows, 1000, replace=False)] + rng.normal(0, 0.01, (1000, 384)).astype(np.float32)
    times = np.sort(data.attributes.column("commit_time").to_numpy())
    lo, hi = times[int(rows * 0.45)], times[int(rows * 0.55)]
    window = f"commit_time between '{np.datetime_as_string(lo)}' and '{np.datetime_as_string(hi)}'"
    filters = [window, "repo = 'git'", "repo in ('curl', 'vim') and n_files > 2", "top_dirs contains 'src'"]
    out: dict = {"rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        process, address = start_server(Path(tmp) / "server")
        try:
            with vecstore.connect(Path(tmp) / "embedded") as db, vecstore.Client(address) as client:
                kwargs = {"dim": 384, "metric": "cosine", "attributes": GIT_COMMITS_ATTRIBUTES, "window": "commit_time"}
                local = db.create_collection("bench", **kwargs)
                remote = client.create_collection("bench", **kwargs)
                out["load_rows_per_s"] = {"embedded": load(local, data, rows), "grpc": load(remote, data, rows)}
                local.seal()
                remote.seal()
                # both sides search through the same (seeded, deterministic) graphs, built before timing
                if not (local.wait_for_indexes() and remote.wait_for_indexes()):
                    raise RuntimeError("a graph build failed; see describe()")
                local.search(queries[:10], k=10)
                remote.search(queries[:10], k=10)
                for label, text in (("no filter", None), ("10% window", window)):
                    out[f"batch_qps {label}"] = {
                        "embedded": best_qps(local.search, queries, k=10, filter=text),
                        "grpc": best_qps(remote.search, queries, k=10, filter=text),
                    }
                    same = np.array_equal(
                        local.search(queries, k=10, filter=text).ids, remote.search(queries, k=10, filter=text).ids
                    )
                    out[f"batch_qps {label}"]["identical_results"] = same
                single = queries[:200]
                embedded_ms = latencies_ms(local.search, single, k=10, filter=window)
                remote_ms = latencies_ms(remote.search, single, k=10, filter=window)
                out["single_query_p50_ms"] = {
                    "embedded": float(np.median(embedded_ms)),
                    "grpc": float(np.median(remote_ms)),
                    "overhead": float(np.median(remote_ms) - np.median(embedded_ms)),
                }
            out["soak"] = soak(address, 384, soak_seconds, filters, queries)
        finally:
            process.terminate()
            out["server_exit_code"] = process.wait(timeout=120)
    return out


def markdown(out: dict) -> str:
    load_rates = out["load_rows_per_s"]
    lines = [
        f"rows: {out['rows']:,} git-commits (384-d MiniLM, 8 attributes); server in its own process on loopback",
        "",
        "| measure | embedded | gRPC | ratio / overhead | target |",
        "|---|---|---|---|---|",
        f"| bulk load, rows/s | {load_rates['embedded']:,.0f} | {load_rates['grpc']:,.0f} "
        f"| {load_rates['grpc'] / load_rates['embedded']:.2f}x | >= 0.5x |",
    ]
    for label in ("no filter", "10% window"):
        r = out[f"batch_qps {label}"]
        lines.append(
            f"| batch of 1,000 queries, {label}, QPS | {r['embedded']:,.0f} | {r['grpc']:,.0f} "
            f"| {r['grpc'] / r['embedded']:.2f}x (identical results: {r['identical_results']}) | >= 0.7x |"
        )
    s = out["single_query_p50_ms"]
    lines.append(
        f"| single query p50, 10% window, ms | {s['embedded']:.2f} | {s['grpc']:.2f} "
        f"| +{s['overhead']:.2f} ms | <= 1 ms |"
    )
    soak_result = out["soak"]
    lines += [
        "",
        f"soak ({soak_result['seconds']} s, 8 searching clients with filters + 1 upserting client): "
        f"{soak_result['searches']:,} searches, {soak_result['qps']:,.0f} QPS, p50 {soak_result['p50_ms']:.1f} ms, "
        f"p99 {soak_result['p99_ms']:.1f} ms, {soak_result['errors']} errors; "
        f"{soak_result['acknowledged_rows']:,} acknowledged upserted rows, "
        f"{soak_result['acknowledged_missing']} missing. "
        f"Server exit code after SIGTERM: {out['server_exit_code']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    out = run(args.rows, args.soak_seconds)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "grpc.json").write_text(json.dumps(out, indent=1, default=str))
    table = markdown(out)
    (RESULTS_DIR / "grpc.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
