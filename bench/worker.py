"""One algorithm on one dataset, in its own process: fit, then the workloads the runner names, in rounds.

Started by ``bench.runner`` with a JSON job on the command line. After fitting it writes a ``ready``
line (with its workloads' names) to the progress file, then reads commands from stdin, one JSON line
each: ``{"workload": name, "round": r, "rounds": R}``. Round 0 of a workload runs its query arguments
x modes once each, up to the argument where recall saturates; every later round times the same
configurations again, and after round R - 1 each configuration's result line goes to the results
file, its QPS the fastest timed pass of all rounds. The runner hands every algorithm the same round
in turn, so one configuration's passes are spread over the whole workload, and a slow spell of the
shared machine lands on every algorithm rather than on whichever ran during it.

Before each configuration's round the worker writes a ``start`` line to the progress file, after it
a ``done`` line, and after each round a ``round_done`` line, so the runner can tell which
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
#: queries a second at neighbouring ef in one run when two such passes counted). Split evenly over the
#: rounds of a workload.
MAX_SINGLE_PASSES = 20
MIN_TIMED_S = 0.25
#: Batch mode times this many calls of the whole batch and keeps the fastest, as single mode does; with
#: several rounds, one in the first round and one in the last.
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


class SingleTiming:
    """One single-query configuration's passes over all its rounds: the fastest pass counts."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.n: int | None = None  # queries a pass: as many as the first pass fit in the budget
        self.latencies: list[float] = []  # the fastest pass's
        self.passes = 0
        self.timed = 0.0
        self.found: np.ndarray | None = None
        self.plans: dict[str, int] = {}

    def run_round(self, alg, dataset, workload, masks, budget_s: float, round_: int, rounds: int) -> None:
        """Time passes until rounds 0 .. ``round_`` of ``rounds`` hold their share of the passes: as many
        as ``SINGLE_PASSES``, then more until ``MIN_TIMED_S`` is timed, at most ``MAX_SINGLE_PASSES``.
        A slow configuration's few passes fall in a few of the rounds; a fast one's in every round."""
        share = (round_ + 1) / rounds
        least, most, seconds = (
            math.ceil(SINGLE_PASSES * share),
            math.ceil(MAX_SINGLE_PASSES * share),
            MIN_TIMED_S * share,
        )
        if not (self.passes < least or (self.timed < seconds and self.passes < most)):
            return
        queries = dataset.test[: len(workload.predicates)]
        k = self.k
        if self.found is None:
            self.found = np.full((len(queries), k), -1, dtype=np.int64)
        found = self.found

        def one(i: int) -> np.ndarray:
            p = workload.predicates[i]
            return alg.query(queries[i], k) if p is None else alg.filtered_query(queries[i], k, p, masks[i])

        for i in range(min(WARMUP_QUERIES, len(queries))):  # the caches are another process's after a switch
            one(i)
        while self.passes < least or (self.timed < seconds and self.passes < most):
            first_pass = self.n is None
            times: list[float] = []
            elapsed = 0.0
            for i in range(len(queries) if first_pass else self.n):  # type: ignore[arg-type]
                started = time.perf_counter()
                ids = one(i)
                times.append(time.perf_counter() - started)
                elapsed += times[-1]
                found[i] = -1
                found[i, : min(k, len(ids))] = np.asarray(ids)[:k]  # recall: the last pass's answers
                plan = alg.last_plan()
                if plan is not None and first_pass:
                    self.plans[plan] = self.plans.get(plan, 0) + 1
                if first_pass and elapsed > budget_s:  # the first pass sets how many queries fit the budget
                    break
            if first_pass:
                self.n = len(times)
            if not self.latencies or elapsed < sum(self.latencies):
                self.latencies = times
            self.passes += 1
            self.timed += elapsed

    def recall(self, dataset, workload) -> float:
        n = self.n or 0
        queries = dataset.test[:n]
        return mean_recall(dataset.train, queries, dataset.metric, self.found[:n], workload.distances[:n], self.k)

    def result(self, dataset, workload, masks) -> dict:
        n = self.n or 0
        lat_ms = np.array(self.latencies) * 1000
        return {
            "n_queries": n,
            "recall": self.recall(dataset, workload),
            "violations": violations(self.found[:n], masks[:n]),
            "qps": n / float(np.sum(self.latencies)),
            "p50_ms": float(np.percentile(lat_ms, 50)),
            "p99_ms": float(np.percentile(lat_ms, 99)),
            "passes": self.passes,
            "plans": self.plans,
        }


class BatchTiming:
    """One batch configuration's calls over all its rounds: the fastest call counts."""

    def __init__(self, k: int, n: int) -> None:
        self.k, self.n = k, n
        self.elapsed = float("inf")
        self.calls = 0
        self.found: np.ndarray | None = None
        self.plan: str | None = None

    def run_round(self, alg, dataset, workload, masks, calls: int) -> None:
        """An untimed warm call (the first may load or compile code), then ``calls`` timed calls."""
        queries, predicates = dataset.test[: self.n], workload.predicates[: self.n]
        filtered = predicates[0] is not None

        def call(q, p) -> np.ndarray:
            return alg.filtered_batch_query(q, self.k, p, masks[: len(q)]) if filtered else alg.batch_query(q, self.k)

        call(queries[:2], predicates[:2])
        for _ in range(calls):
            started = time.perf_counter()
            found = call(queries, predicates)
            self.elapsed = min(self.elapsed, time.perf_counter() - started)
            self.calls += 1
        self.found = np.asarray(found, dtype=np.int64)
        self.plan = alg.last_plan()

    def result(self, dataset, workload, masks) -> dict:
        queries = dataset.test[: self.n]
        distances = workload.distances[: self.n]
        return {
            "n_queries": self.n,
            "recall": mean_recall(dataset.train, queries, dataset.metric, self.found, distances, self.k),
            "violations": violations(self.found, masks[: self.n]),
            "qps": self.n / self.elapsed,
            "passes": self.calls,
            "plans": {self.plan: self.n} if self.plan else {},
        }


class WorkloadSweep:
    """Every query argument x mode of one workload, timed over the rounds the runner asks for."""

    def __init__(self, alg, job: dict, dataset, workload, skip: set[str]) -> None:
        self.alg, self.job, self.dataset, self.workload, self.skip = alg, job, dataset, workload, skip
        self.masks = workload.masks(dataset)
        alg.prepare_filters(workload.predicates)
        self.grid: list[dict] | None = None  # fixed by round 0: the arguments up to saturated recall
        self.timings: dict[str, SingleTiming | BatchTiming] = {}
        self.errors: dict[str, str] = {}
        self.records: list[tuple[str, dict, str]] = []  # (key, args, mode) in the order measured

    def run_round(self, round_: int, rounds: int, progress) -> None:
        alg, job, workload = self.alg, self.job, self.workload
        # the batch calls spread over the rounds: the first and the last when there are two
        due = [round(i * (rounds - 1) / max(1, BATCH_PASSES - 1)) for i in range(BATCH_PASSES)]
        first_round = self.grid is None
        grid = alg.query_argument_grid(job["preset"]) if first_round else self.grid
        measured = []
        for args in grid:
            alg.set_query_arguments(**args)
            saturated = False
            for mode in job["modes"]:
                key = config_key(workload.name, args, mode)
                if key in self.skip or key in self.errors or (mode != "single" and round_ not in due):
                    continue
                if first_round:
                    self.records.append((key, args, mode))
                progress.write(json.dumps({"start": key}) + "\n")
                try:
                    threads = 1 if mode == "single" else 2
                    alg.set_threads(threads)
                    with _limit_threads(threads):
                        if mode == "single":
                            timing = self.timings.setdefault(key, SingleTiming(job["k"]))
                            timing.run_round(alg, self.dataset, workload, self.masks, job["budget_s"], round_, rounds)
                            # larger settings only cost time once recall is (almost) perfect
                            saturated = first_round and timing.recall(self.dataset, workload) >= SATURATED_RECALL
                        else:
                            timing = self.timings.get(key) or BatchTiming(job["k"], self._batch_size(args))
                            self.timings[key] = timing
                            timing.run_round(alg, self.dataset, workload, self.masks, due.count(round_))
                except Exception as exc:  # one configuration failing must not end the run
                    self.errors[key] = f"{type(exc).__name__}: {exc}"[:500]
                    traceback.print_exc(file=sys.stderr)
                progress.write(json.dumps({"done": key}) + "\n")
            measured.append(args)
            if saturated:
                break
        if first_round:
            self.grid = measured

    def _batch_size(self, args: dict) -> int:
        """Every query, or fewer when single mode was slow: a slow batch stays within about twice the budget."""
        n = len(self.workload.predicates)
        single = self.timings.get(config_key(self.workload.name, args, "single"))
        if isinstance(single, SingleTiming) and single.latencies:
            qps = len(single.latencies) / sum(single.latencies)
            n = min(n, max(16, math.ceil(qps * 2 * self.job["budget_s"])))
        return n

    def write(self, base: dict, results) -> None:
        workload = self.workload
        for key, args, mode in self.records:
            record = {**base, "workload": workload.name, "kind": workload.kind, "fraction": workload.fraction,
                      "exponent": workload.exponent, "query_args": args, "mode": mode, "key": key}  # fmt: skip
            if key in self.errors:
                record.update(status="failed", error=self.errors[key])
            elif key in self.timings:
                record.update(self.timings[key].result(self.dataset, workload, self.masks), status="ok")
            else:
                continue
            results.write(json.dumps(record) + "\n")


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
    sweep: WorkloadSweep | None = None
    try:
        # the runner's commands, a line at a time; it closes stdin when the dataset is done
        while line := sys.stdin.readline():
            if not line.strip():
                continue
            command = json.loads(line)
            name, round_, rounds = command["workload"], command["round"], command["rounds"]
            if round_ == 0:
                sweep = WorkloadSweep(alg, job, dataset, by_name[name], skip)
            sweep.run_round(round_, rounds, progress)  # type: ignore[union-attr]
            if round_ == rounds - 1:
                sweep.write(base, results)  # type: ignore[union-attr]
            progress.write(json.dumps({"round_done": [name, round_]}) + "\n")
    finally:
        alg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
