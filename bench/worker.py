"""One algorithm on one dataset, in its own process: fit, then the workloads the runner names.

Started by ``bench.runner`` with a JSON job on the command line. After fitting it writes a ``ready``
line (with its workloads' names) to the progress file, then reads workload names from stdin, one a
line, and runs each one's query arguments x modes, until stdin closes. The runner keeps every
algorithm's worker alive and hands them the same workload in turn, so a slow phase of the shared
machine lands on every algorithm of a workload rather than on whichever ran during it. Before each
configuration the worker writes a ``start`` line to the progress file, after it one result line to
the results file, and after a workload a ``workload_done`` line, so the runner can tell which
configuration crashed or hung, record it as failed and start again past it.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback

import numpy as np

from bench import annfile, workloads
from bench.algorithms import LibraryMissing, make_algorithm
from bench.metrics import mean_recall, violations

EXIT_LIBRARY_MISSING = 3
WARMUP_QUERIES = 3
#: Timed passes over the queries in single mode; the fastest counts (ann-benchmarks' run_count). On a
#: shared machine one stall (another process, a page fault) in a 100-query pass cut a cell's mean by
#: 6x while its median did not move. At least this many passes run.
SINGLE_PASSES = 2
#: ... and more, up to MAX_SINGLE_PASSES, until the passes add up to MIN_TIMED_S: 100 fast queries take
#: a few milliseconds, which one preemption doubles (the same exact-scan plans read 10,000 to 20,000
#: queries a second at neighbouring ef in one run when two such passes counted).
MAX_SINGLE_PASSES = 20
MIN_TIMED_S = 0.25
#: Batch mode times this many calls of the whole batch and keeps the fastest, as single mode does.
BATCH_PASSES = 2
SATURATED_RECALL = 0.999


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def config_key(workload: str, args: dict, mode: str) -> str:
    return f"{workload}|{json.dumps(args, sort_keys=True)}|{mode}"


def _limit_threads(threads: int):
    """Cap BLAS/OpenMP pools (numpy, faiss) for the mode; returns the threadpoolctl context."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def run_single(alg, dataset, workload, masks, k: int, budget_s: float) -> dict:
    queries = dataset.test[: len(workload.predicates)]
    found = np.full((len(queries), k), -1, dtype=np.int64)
    plans: dict[str, int] = {}

    def one(i: int) -> np.ndarray:
        p = workload.predicates[i]
        return alg.query(queries[i], k) if p is None else alg.filtered_query(queries[i], k, p, masks[i])

    for i in range(min(WARMUP_QUERIES, len(queries))):
        one(i)
    latencies: list[float] = []
    passes, timed = 0, 0.0
    while passes < SINGLE_PASSES or (timed < MIN_TIMED_S and passes < MAX_SINGLE_PASSES):
        first_pass = passes == 0
        times: list[float] = []
        elapsed = 0.0
        for i in range(len(queries) if first_pass else len(latencies)):
            started = time.perf_counter()
            ids = one(i)
            times.append(time.perf_counter() - started)
            elapsed += times[-1]
            found[i] = -1
            found[i, : min(k, len(ids))] = np.asarray(ids)[:k]  # recall: the last pass's answers
            plan = alg.last_plan()
            if plan is not None and first_pass:
                plans[plan] = plans.get(plan, 0) + 1
            if first_pass and elapsed > budget_s:  # the first pass sets how many queries fit the budget
                break
        if first_pass or elapsed < sum(latencies):
            latencies = times
        passes += 1
        timed += elapsed
    n = len(latencies)
    lat_ms = np.array(latencies) * 1000
    return {
        "n_queries": n,
        "recall": mean_recall(dataset.train, queries[:n], dataset.metric, found[:n], workload.distances[:n], k),
        "violations": violations(found[:n], masks[:n]),
        "qps": n / float(np.sum(latencies)),
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "passes": passes,
        "plans": plans,
    }


def run_batch(alg, dataset, workload, masks, k: int, n: int) -> dict:
    queries = dataset.test[:n]
    predicates = workload.predicates[:n]
    filtered = predicates[0] is not None
    warm = slice(0, min(2, n))  # untimed: the first call may load or compile code
    if filtered:
        alg.filtered_batch_query(queries[warm], k, predicates[warm], masks[warm])
    else:
        alg.batch_query(queries[warm], k)
    elapsed = float("inf")
    for _ in range(BATCH_PASSES):  # the faster call: one stall in a single timed call moved cells 2x
        started = time.perf_counter()
        if filtered:
            found = alg.filtered_batch_query(queries, k, predicates, masks[:n])
        else:
            found = alg.batch_query(queries, k)
        elapsed = min(elapsed, time.perf_counter() - started)
    found = np.asarray(found, dtype=np.int64)
    plan = alg.last_plan()
    return {
        "n_queries": n,
        "recall": mean_recall(dataset.train, queries, dataset.metric, found, workload.distances[:n], k),
        "violations": violations(found, masks[:n]),
        "qps": n / elapsed,
        "plans": {plan: n} if plan else {},
    }


def run_workload(alg, job: dict, dataset, workload, base: dict, skip: set[str], progress, results) -> None:
    """Every query argument x mode of ``workload``, a result line each (past the keys in ``skip``)."""
    masks = workload.masks(dataset)
    alg.prepare_filters(workload.predicates)
    for args in alg.query_argument_grid(job["preset"]):
        alg.set_query_arguments(**args)
        single_qps, saturated = None, False
        for mode in job["modes"]:
            key = config_key(workload.name, args, mode)
            if key in skip:
                continue
            progress.write(json.dumps({"start": key}) + "\n")
            record = {**base, "workload": workload.name, "kind": workload.kind,
                      "fraction": workload.fraction, "exponent": workload.exponent,
                      "query_args": args, "mode": mode, "key": key}  # fmt: skip
            try:
                threads = 1 if mode == "single" else 2
                alg.set_threads(threads)
                with _limit_threads(threads):
                    if mode == "single":
                        out = run_single(alg, dataset, workload, masks, job["k"], job["budget_s"])
                        single_qps = out["qps"]
                        # larger settings only cost time once recall is (almost) perfect
                        saturated = out["recall"] >= SATURATED_RECALL
                    else:
                        n = len(workload.predicates)
                        if single_qps is not None:  # keep a slow batch within about twice the budget
                            n = min(n, max(16, math.ceil(single_qps * 2 * job["budget_s"])))
                        out = run_batch(alg, dataset, workload, masks, job["k"], n)
                record.update(out, status="ok")
            except Exception as exc:  # one configuration failing must not end the run
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
                traceback.print_exc(file=sys.stderr)
            results.write(json.dumps(record) + "\n")
            progress.write(json.dumps({"done": key}) + "\n")
        if saturated:
            break


def main(job: dict) -> int:
    progress = open(job["progress"], "a", buffering=1)  # noqa: SIM115 - held for the whole run
    results = open(job["results"], "a", buffering=1)  # noqa: SIM115
    skip = set(job.get("skip", []))
    dataset = annfile.load(job["dataset"], job["n_queries"], job["max_train"], job["seed"])
    loads = workloads.build(dataset, job["exponents"], job["n_queries"], job["categorical"], job["conjunction"])
    chosen = [w for w in loads if w.name in job["workloads"]] if job.get("workloads") else loads
    if not chosen:
        print(f"no workload named {job['workloads']}; this dataset has {[w.name for w in loads]}", file=sys.stderr)
        return 2
    try:
        alg = make_algorithm(job["algorithm"], **job.get("build_args", {}))
    except LibraryMissing as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_LIBRARY_MISSING
    base = {
        "dataset": dataset.name, "n_train": len(dataset.train), "dim": int(dataset.train.shape[1]),
        "algorithm": job["algorithm"], "k": job["k"], "run": job["run"],
    }  # fmt: skip
    rss_before = rss_bytes()
    started = time.perf_counter()
    alg.set_threads(2)
    alg.fit(dataset)
    build_s = time.perf_counter() - started
    index_rss = rss_bytes() - rss_before if alg.index_in_process else None
    base.update(build_s=build_s, build_args=alg.build_args, index_rss_bytes=index_rss,
                index_bytes=alg.index_bytes(), index_parts=alg.index_parts())  # fmt: skip
    progress.write(json.dumps({"ready": [w.name for w in chosen]}) + "\n")
    by_name = {w.name: w for w in chosen}
    try:
        # the runner's next workload, a line at a time; it closes stdin when the dataset is done
        while line := sys.stdin.readline():
            name = line.strip()
            if name:
                run_workload(alg, job, dataset, by_name[name], base, skip, progress, results)
                progress.write(json.dumps({"workload_done": name}) + "\n")
    finally:
        alg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
