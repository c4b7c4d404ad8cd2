"""Runs the presets: prepares datasets and ground truth, then each algorithm in its own worker process.

Every algorithm runs in a fresh process (``bench.worker``), so index memory is that process's RSS
growth, a crash in a peer's C++ code cannot end the run, and one configuration that hangs is killed
after ``config_timeout_s``. A configuration that crashed or timed out is recorded with status
``failed`` / ``timeout`` and the worker is started again past it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    # categories, their conjunction); about 22 minutes
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


def _read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_algorithm(preset: Preset, plan: DatasetPlan, algorithm: str, out_dir: Path, run_id: str, log) -> None:
    """One algorithm on one dataset, restarting its worker past any configuration that crashes or hangs."""
    results = out_dir / "results.jsonl"
    progress = out_dir / "progress" / f"{plan.name}--{algorithm}.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    progress.unlink(missing_ok=True)
    build_args = {"m": preset.m, "ef_construction": preset.ef_construction} if algorithm in GRAPH_ALGORITHMS else {}
    skip: list[str] = []
    for _attempt in range(20):
        job = {
            "dataset": plan.name, "n_queries": plan.n_queries, "max_train": plan.max_train, "seed": preset.seed,
            "exponents": plan.window_exponents, "categorical": True, "conjunction": True,
            "workloads": list(plan.workloads or preset.workloads or ()) or None,
            "algorithm": algorithm, "build_args": build_args, "preset": preset.grid, "modes": list(preset.modes),
            "budget_s": preset.budget_s, "k": preset.k, "run": run_id, "skip": skip,
            "progress": str(progress), "results": str(results),
        }  # fmt: skip
        stderr_path = out_dir / "progress" / f"{plan.name}--{algorithm}.stderr"
        with open(stderr_path, "a") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.worker", json.dumps(job)], cwd=PROJECT_ROOT, stderr=stderr,
                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            )  # fmt: skip
            status = _watch(proc, progress, preset.config_timeout_s)
        if status == "ok":
            return
        tail = _last_line(stderr_path)
        if status == "missing":
            _record(results, {"dataset": plan.name, "algorithm": algorithm, "run": run_id, "status": "missing",
                              "error": tail})  # fmt: skip
            log(f"{algorithm}: {tail}")
            return
        events = _read_lines(progress)
        started = [e["start"] for e in events if "start" in e]
        done = {e["done"] for e in events if "done" in e}
        stuck = [key for key in started if key not in done]
        if not stuck:  # died while fitting: nothing more to run
            _record(results, {"dataset": plan.name, "algorithm": algorithm, "run": run_id, "status": status,
                              "error": f"during build: {tail}"})  # fmt: skip
            log(f"{algorithm} on {plan.name}: build {status}: {tail}")
            return
        key = stuck[-1]
        workload, args, mode = key.split("|")
        _record(results, {"dataset": plan.name, "algorithm": algorithm, "run": run_id, "status": status,
                          "key": key, "workload": workload, "query_args": json.loads(args), "mode": mode,
                          "error": tail})  # fmt: skip
        log(f"{algorithm} on {plan.name}: {key} {status}; going on past it")
        skip = sorted(set(skip) | done | {key})


def _watch(proc: subprocess.Popen, progress: Path, config_timeout_s: float) -> str:
    """Wait for the worker, killing it when one configuration runs past the timeout."""
    last_change, last_size = time.monotonic(), -1
    while True:
        code = proc.poll()
        if code is not None:
            return {0: "ok", EXIT_LIBRARY_MISSING: "missing"}.get(code, "failed")
        size = progress.stat().st_size if progress.exists() else 0
        if size != last_size:
            last_change, last_size = time.monotonic(), size
        # the build has no progress line of its own, so it gets several configurations' time
        limit = config_timeout_s * (1 if size else 5)
        if time.monotonic() - last_change > limit:
            proc.kill()
            proc.wait()
            return "timeout"
        time.sleep(0.2)


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
    pairs = [(plan, algorithm) for plan in preset.datasets for algorithm in preset.algorithms]
    bar = tqdm(pairs, desc="runs", unit="run")
    for plan, algorithm in bar:
        bar.set_postfix_str(f"{plan.name} / {algorithm}")
        run_algorithm(preset, plan, algorithm, out_dir, run_id, lambda msg: tqdm.write(msg))
    (out_dir / "preset.json").write_text(json.dumps({"preset": preset.name, "run": run_id}, indent=1))
    return out_dir / "results.jsonl"
