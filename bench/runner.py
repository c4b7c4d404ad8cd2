"""Runs the presets: prepares datasets and ground truth, then every algorithm on a dataset, interleaved.

Every algorithm runs in a process of its own (``bench.worker``), so index memory is that process's RSS
growth, a crash in a peer's C++ code cannot end the run, and one configuration that hangs is killed
after ``config_timeout_s``. A configuration that crashed or timed out is recorded with status
``failed`` / ``timeout`` and the worker is started again past it.

The workers of a dataset stay alive together and take its workloads one at a time, each workload in
rounds that go to every worker in turn (``run_dataset``): ratios are read between algorithms, and on
a shared machine a spell in which everything runs at half speed would otherwise fall on whichever
algorithm ran then. A configuration's QPS is its fastest pass over all rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench import annfile, workloads
from bench.algorithms import ALGORITHMS, GRAPH_ALGORITHMS, is_known, unknown_algorithm_message
from bench.worker import EXIT_LIBRARY_MISSING

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    max_train: int | None
    n_queries: int
    window_exponents: list[int]  # windows on the window column, and ranges on other numeric columns
    workloads: tuple[str, ...] | None = None  # this dataset's workloads to run (None: the preset's choice)


@dataclass(frozen=True)
class Preset:
    name: str
    datasets: list[DatasetPlan]
    algorithms: list[str]
    grid: str  # which query-argument sweep the adapters use
    budget_s: float  # time spent on one single-query configuration before it stops early
    config_timeout_s: float
    m: int = 16
    ef_construction: int = 200
    modes: tuple[str, ...] = ("single", "batch")
    seed: int = 42
    k: int = 10
    workloads: tuple[str, ...] | None = None  # limit to these workload names (None: every workload)
    rounds: int = 4  # each workload's configurations are timed in this many rounds, interleaved


ALL_ALGORITHMS = list(ALGORITHMS)
QUICK_EXPONENTS = [14, 10, 6, 2]
RANGE_EXPONENTS = [14, 10, 6, 4, 2, 0]
#: the whole-dataset presets leave out the gRPC client and the bare index (the quick preset has them)
WHOLE_DATASET_ALGORITHMS = [a for a in ALL_ALGORITHMS if a not in ("vecstore-grpc", "vecstore-hnsw-index")]
EVERY_WINDOW = ("unfiltered", *(f"window 2^-{e}" for e in range(16, -1, -1)))
MOVIE_RANGES = tuple(f"{column} 2^-{e}" for column in ("rating", "votes") for e in RANGE_EXPONENTS)
PRESETS = {
    "quick": Preset(
        "quick",
        [
            DatasetPlan("fashion-mnist", 20_000, 100, QUICK_EXPONENTS),
            DatasetPlan("git-commits", 20_000, 100, QUICK_EXPONENTS),
            DatasetPlan("movies", 20_000, 100, QUICK_EXPONENTS),
            DatasetPlan("adversarial", 20_000, 100, [14, 10, 6]),
        ],
        ALL_ALGORITHMS,
        grid="quick",
        budget_s=1.0,
        config_timeout_s=120,
        ef_construction=100,
    ),
    # every window fraction on one whole real dataset, with the quick sweep: the window-fraction curve at
    # full size in about 20 minutes, where the full preset takes hours
    "windows": Preset(
        "windows",
        [DatasetPlan("movies", None, 100, list(range(16, -1, -1)))],
        WHOLE_DATASET_ALGORITHMS,
        grid="quick",
        budget_s=1.0,
        config_timeout_s=300,
        workloads=EVERY_WINDOW,
    ),
    # every window fraction on the label windows: fashion-mnist whole (60,000 rows, a seeded random
    # label) and the adversarial set at 100,000 rows (its windows stop at a cluster's share, 2^-5)
    "windows-labels": Preset(
        "windows-labels",
        [
            DatasetPlan("fashion-mnist", None, 100, list(range(16, -1, -1))),
            DatasetPlan("adversarial", 100_000, 100, list(range(16, 4, -1))),
        ],
        WHOLE_DATASET_ALGORITHMS,
        grid="quick",
        budget_s=1.0,
        config_timeout_s=300,
        workloads=EVERY_WINDOW,
    ),
    # the other real attributes: ranges on movie rating and votes at full size (no window tree
    # serves them: the payload index's sorted values do), and jeopardy (1536-d air-date windows,
    # categories, their conjunction); about 28 minutes
    "attributes": Preset(
        "attributes",
        [
            DatasetPlan("movies", None, 100, RANGE_EXPONENTS, ("unfiltered", *MOVIE_RANGES)),
            DatasetPlan("jeopardy", None, 100, [13, 10, 6, 2]),
        ],
        WHOLE_DATASET_ALGORITHMS,
        grid="quick",
        budget_s=1.0,
        config_timeout_s=300,
    ),
    "full": Preset(
        "full",
        [
            DatasetPlan("fashion-mnist", None, 1000, list(range(16, -1, -1))),
            DatasetPlan("git-commits", None, 1000, list(range(16, -1, -1))),
            DatasetPlan("movies", None, 1000, list(range(16, -1, -1))),
            DatasetPlan("jeopardy", None, 1000, list(range(13, -1, -1))),
            DatasetPlan("clustered", 100_000, 1000, list(range(16, -1, -1))),
            DatasetPlan("adversarial", 100_000, 1000, list(range(16, 4, -1))),
        ],
        ALL_ALGORITHMS,
        grid="full",
        budget_s=10.0,
        config_timeout_s=900,
    ),
}


class BenchError(Exception):
    """A bad request to the bench (unknown name, missing data): one line saying what to do."""


def select(preset: Preset, datasets: list[str] | None, algorithms: list[str] | None) -> Preset:
    """The preset narrowed to the named datasets and algorithms (names checked)."""
    for name in datasets or []:
        if name not in annfile.SOURCES:
            raise BenchError(annfile.unknown_dataset_message(name))
    for name in algorithms or []:
        if not is_known(name):
            raise BenchError(unknown_algorithm_message(name))
    plans = preset.datasets
    if datasets:
        known = {p.name: p for p in plans}
        default = DatasetPlan("", preset.datasets[0].max_train, preset.datasets[0].n_queries, QUICK_EXPONENTS)
        plans = [known.get(n, DatasetPlan(n, default.max_train, default.n_queries, default.window_exponents))
                 for n in datasets]  # fmt: skip
    return Preset(**{**preset.__dict__, "datasets": plans, "algorithms": algorithms or preset.algorithms})


def prepare(plan: DatasetPlan, seed: int) -> None:
    """Convert the dataset and compute every workload's ground truth (cached after the first run)."""
    dataset = annfile.load(plan.name, plan.n_queries, plan.max_train, seed)
    workloads.build(dataset, plan.window_exponents, plan.n_queries)


#: How often one algorithm's worker is started on one dataset (again past a crash or hang) at most.
MAX_STARTS = 20
#: The runner's poll of a worker's progress file: a stat a tick, cheap beside the worker's work.
POLL_S = 0.05


class _Worker:
    """One algorithm's worker process on one dataset, alive across the dataset's workloads.

    It is started again, past the configuration, when a configuration crashes it or hangs; the
    configuration is recorded as ``failed`` / ``timeout``.
    """

    def __init__(self, preset: Preset, plan: DatasetPlan, algorithm: str, out_dir: Path, run_id: str, log) -> None:
        self.preset, self.plan, self.algorithm, self.run_id, self.log = preset, plan, algorithm, run_id, log
        self.results = out_dir / "results.jsonl"
        self.progress = out_dir / "progress" / f"{plan.name}--{algorithm}.jsonl"
        self.stderr_path = out_dir / "progress" / f"{plan.name}--{algorithm}.stderr"
        self.progress.parent.mkdir(parents=True, exist_ok=True)
        self.progress.unlink(missing_ok=True)
        self.proc: subprocess.Popen | None = None
        self.events: list[dict] = []  # every progress line of every start, in order
        self._counts: Counter[str] = Counter()  # of those lines, by event (polled every tick)
        self._read_to = 0
        self.skip: set[str] = set()  # configurations that crashed or hung: never run again
        self.next_round: dict[str, int] = defaultdict(int)  # a workload's next round in this process
        self.given_up: set[str] = set()  # workloads that failed outside any configuration
        self.starts = 0
        self.workloads: list[str] = []

    @property
    def alive(self) -> bool:
        return self.proc is not None

    def start(self) -> bool:
        """Start the worker and wait until it has fitted; False, recorded, when it cannot run."""
        if self.starts >= MAX_STARTS:
            self._record(status="failed", error=f"started {MAX_STARTS} times; giving up on this dataset")
            return False
        self.starts += 1
        plan, preset = self.plan, self.preset
        build_args = {"m": preset.m, "ef_construction": preset.ef_construction}
        job = {
            "dataset": plan.name, "n_queries": plan.n_queries, "max_train": plan.max_train, "seed": preset.seed,
            "exponents": plan.window_exponents, "categorical": True, "conjunction": True,
            "workloads": list(plan.workloads or preset.workloads or ()) or None,
            "algorithm": self.algorithm, "build_args": build_args if self.algorithm in GRAPH_ALGORITHMS else {},
            "preset": preset.grid, "modes": list(preset.modes), "budget_s": preset.budget_s, "k": preset.k,
            "run": self.run_id, "skip": sorted(self.skip), "progress": str(self.progress),
            "results": str(self.results),
        }  # fmt: skip
        readies = self._count("ready")
        with open(self.stderr_path, "a") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.worker", json.dumps(job)], cwd=PROJECT_ROOT, stdin=subprocess.PIPE,
                stderr=stderr, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            )  # fmt: skip
        # the build writes no progress of its own, so it gets several configurations' time
        status = self._wait("ready", readies, preset.config_timeout_s * 5)
        if status == "ok":
            self.workloads = [e["ready"] for e in self.events if "ready" in e][-1]
            return True
        self._stop()
        tail = _last_line(self.stderr_path)
        if status == "missing":
            self._record(status="missing", error=tail)
            self.log(f"{self.algorithm}: {tail}")
        else:
            self._record(status=status, error=f"during build: {tail}")
            self.log(f"{self.algorithm} on {plan.name}: build {status}: {tail}")
        return False

    def run_round(self, workload: str, round_: int, rounds: int) -> None:
        """Run round ``round_`` of ``workload``, after any earlier round a restarted worker lost, recording
        and stepping past a configuration that crashes or hangs (the worker starts the workload over)."""
        while self.proc is not None and workload not in self.given_up and self.next_round[workload] <= round_:
            command = {"workload": workload, "round": self.next_round[workload], "rounds": rounds}
            finished = self._count("round_done")
            try:
                self.proc.stdin.write(json.dumps(command) + "\n")  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass  # it died between rounds: _wait sees the exit
            status = self._wait("round_done", finished, self.preset.config_timeout_s)
            if status == "ok":
                self.next_round[workload] += 1
                continue
            self._stop()
            tail = _last_line(self.stderr_path)
            self.next_round.clear()  # a new process holds no workload's earlier rounds
            since_ready = self.events[max(i for i, e in enumerate(self.events) if "ready" in e) + 1 :]
            if not since_ready or "start" not in since_ready[-1]:  # outside any configuration: give it up
                self.given_up.add(workload)
                self._record(status=status, workload=workload, error=f"outside a configuration: {tail}")
                self.log(f"{self.algorithm} on {self.plan.name}: {workload} {status} outside a configuration")
                self.start()
                return
            key = since_ready[-1]["start"]
            name, args, mode = key.split("|")
            self._record(status=status, key=key, workload=name, query_args=json.loads(args), mode=mode, error=tail)
            self.log(f"{self.algorithm} on {self.plan.name}: {key} {status}; going on past it")
            self.skip.add(key)
            if not self.start():
                return

    def close(self) -> None:
        """End the worker: it closes its index when its stdin closes."""
        if self.proc is None:
            return
        self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=self.preset.config_timeout_s)
        except subprocess.TimeoutExpired:
            self.log(f"{self.algorithm} on {self.plan.name}: did not exit after its last workload; killed")
        self._stop()

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def _count(self, event: str) -> int:
        return self._counts[event]

    def _read_events(self) -> bool:
        """Take in the progress file's new lines; True when there were any."""
        if not self.progress.exists() or self.progress.stat().st_size == self._read_to:
            return False
        with open(self.progress, "rb") as f:
            f.seek(self._read_to)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self._read_to += len(complete)
        events = [json.loads(line) for line in complete.splitlines() if line.strip()]
        self.events.extend(events)
        self._counts.update(name for event in events for name in event)
        return bool(complete)

    def _wait(self, event: str, seen: int, timeout_s: float) -> str:
        """Poll until the progress file holds more than ``seen`` ``event`` lines ("ok"), the worker exits,
        or its progress stalls for ``timeout_s`` (it is then killed)."""
        last_change = time.monotonic()
        while True:
            if self._read_events():
                last_change = time.monotonic()
            if self._count(event) > seen:
                return "ok"
            code = self.proc.poll()  # type: ignore[union-attr]
            if code is not None:
                self._read_events()
                if self._count(event) > seen:
                    return "ok"
                return "missing" if code == EXIT_LIBRARY_MISSING else "failed"
            if time.monotonic() - last_change > timeout_s:
                self._stop()
                return "timeout"
            time.sleep(POLL_S)

    def _record(self, **fields) -> None:
        _record(self.results, {"dataset": self.plan.name, "algorithm": self.algorithm, "run": self.run_id, **fields})


def run_dataset(preset: Preset, plan: DatasetPlan, out_dir: Path, run_id: str, log) -> None:
    """Every algorithm on one dataset, interleaved: each algorithm's worker fits once and stays alive,
    and each round of a workload goes to every worker in turn (the order rotated a round), so a spell
    in which the shared machine runs slow lands on all of a workload's algorithms, not on one."""
    from tqdm import tqdm

    workers = []
    for algorithm in tqdm(preset.algorithms, desc=f"{plan.name}: build", unit="algorithm", leave=False):
        worker = _Worker(preset, plan, algorithm, out_dir, run_id, log)
        if worker.start():
            workers.append(worker)
    try:
        names = workers[0].workloads if workers else []
        turn = 0
        for name in tqdm(names, desc=f"{plan.name}: workloads", unit="workload", leave=False):
            for round_ in range(preset.rounds):
                shift = turn % len(workers)
                for worker in workers[shift:] + workers[:shift]:
                    if worker.alive:
                        worker.run_round(name, round_, preset.rounds)
                turn += 1
    finally:
        for worker in workers:
            worker.close()


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.exists() else []
    return lines[-1][:300] if lines else "no error output"


def _record(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run(preset: Preset, out_dir: Path, log=print) -> Path:
    """Run every dataset x algorithm of ``preset`` into ``out_dir/results.jsonl``; returns that path."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.jsonl").unlink(missing_ok=True)
    run_id = time.strftime("%Y%m%dT%H%M%S")
    for plan in tqdm(preset.datasets, desc="datasets (convert + ground truth)", unit="dataset"):
        prepare(plan, preset.seed)
    for plan in preset.datasets:
        run_dataset(preset, plan, out_dir, run_id, lambda msg: tqdm.write(msg))
    (out_dir / "preset.json").write_text(json.dumps({"preset": preset.name, "run": run_id}, indent=1))
    return out_dir / "results.jsonl"
