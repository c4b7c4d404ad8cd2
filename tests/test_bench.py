"""The bench harness: recall, ground truth, workloads, adapters, runner failure handling, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py", reason="the bench needs h5py (pip install '.[peers]')")

from bench import annfile, metrics, report, runner, worker, workloads
from bench.__main__ import main as bench_main
from bench.algorithms import ALGORITHMS, LibraryMissing, make_algorithm
from bench.groundtruth import distances_to
from bench.predicates import Window

N_TRAIN, N_QUERIES = 2000, 20


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VECSTORE_BENCH_DATA", str(folder))
        yield folder


@pytest.fixture(scope="module")
def tiny(bench_data):
    return annfile.load("clustered", N_QUERIES, N_TRAIN, seed=3)


@pytest.fixture(scope="module")
def tiny_workloads(tiny):
    return {w.name: w for w in workloads.build(tiny, [9, 3], N_QUERIES)}


# --- recall ------------------------------------------------------------------------------------------


def _line(xs):
    """Points on a line: distances from the query at 0 are the coordinates."""
    return np.array([[x] for x in xs], dtype=np.float32)


def test_recall_counts_a_tie_at_the_kth_distance_as_a_hit():
    train = _line([1, 2, 3, 3, 9])
    true_d = np.array([1.0, 2.0, 3.0])  # true top 3: ids 0, 1, 2 (id 3 ties with id 2)
    found = np.array([0, 1, 3])
    assert metrics.query_recall(train, np.zeros(1), "l2", found, true_d, 3) == 1.0
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([0, 1, 4]), true_d, 3) == pytest.approx(2 / 3)


def test_recall_ignores_padding_and_repeated_ids():
    train = _line([1, 2, 3, 4])
    true_d = np.array([1.0, 2.0, 3.0])
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([0, -1, -1]), true_d, 3) == pytest.approx(1 / 3)
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([0, 0, 0]), true_d, 3) == pytest.approx(1 / 3)
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([-1, -1, -1]), true_d, 3) == 0.0


def test_recall_when_fewer_rows_match_than_k():
    train = _line([1, 2, 3, 4])
    true_d = np.array([2.0, np.inf, np.inf])  # one allowed row
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([1, -1, -1]), true_d, 3) == 1.0
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([3, -1, -1]), true_d, 3) == 0.0
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([-1, -1, -1]), np.full(3, np.inf), 3) == 1.0
    # a row outside the filter is not a recall question (metrics.violations counts it)
    assert metrics.query_recall(train, np.zeros(1), "l2", np.array([0, -1, -1]), true_d, 3) == 1.0


def test_violations_count_rows_outside_the_filter():
    mask = np.array([True, False, True])
    assert metrics.violations(np.array([[0, 2, -1], [1, 0, -1]]), [mask, mask]) == 1
    assert metrics.violations(np.array([[0, 1]]), [None]) == 0


# --- datasets and ground truth ----------------------------------------------------------------------


def test_dataset_file_has_the_ann_benchmarks_layout(tiny):
    import h5py

    with h5py.File(tiny.path, "r") as f:
        assert {"train", "test", "neighbors", "distances", "attributes"} <= set(f)
        assert f.attrs["distance"] == "euclidean"
        assert f["train"].shape == (N_TRAIN, 64) and f["test"].shape == (N_QUERIES, 64)
        assert f["neighbors"].shape == (N_QUERIES, 100)


def test_ground_truth_equals_a_numpy_scan(tiny):
    for i, q in enumerate(tiny.test):
        d = distances_to(tiny.train, q, "l2")
        order = np.lexsort((np.arange(len(d)), d))[:100]
        np.testing.assert_array_equal(tiny.neighbors[i], order)
        np.testing.assert_allclose(tiny.distances[i], d[order], rtol=1e-12)


def test_filtered_ground_truth_equals_a_numpy_scan_over_the_allowed_rows(tiny, tiny_workloads):
    for w in tiny_workloads.values():
        for i, mask in enumerate(w.masks(tiny)):
            rows = np.arange(len(tiny.train)) if mask is None else np.flatnonzero(mask)
            d = distances_to(tiny.train[rows], tiny.test[i], "l2")
            expected = np.sort(d)[: workloads.K]
            np.testing.assert_allclose(w.distances[i, : len(expected)], expected, rtol=1e-12)
            got = w.neighbors[i][w.neighbors[i] >= 0]
            assert mask is None or mask[got].all()


def test_window_workloads_keep_their_fraction(tiny, tiny_workloads):
    w = tiny_workloads["window 2^-3"]
    assert w.fraction == pytest.approx(2**-3, rel=0.01)  # random integer labels: no ties to widen it
    assert w.kind == "window" and all(isinstance(p, Window) for p in w.predicates)
    assert tiny_workloads["window 2^-9"].fraction == pytest.approx(round(N_TRAIN / 512) / N_TRAIN)


def test_range_workloads_draw_their_own_intervals_on_their_column(tiny, monkeypatch):
    monkeypatch.setitem(workloads.RANGE_COLUMNS, "clustered", ("label",))
    loads = {w.name: w for w in workloads.build(tiny, [3], N_QUERIES, categorical=False)}
    ranged, window = loads["label 2^-3"], loads["window 2^-3"]
    assert ranged.kind == "range" and ranged.exponent == 3
    assert ranged.fraction == pytest.approx(2**-3, rel=0.01)
    assert all(isinstance(p, Window) and p.column == "label" for p in ranged.predicates)
    assert ranged.predicates != window.predicates  # drawn from their own seed, not the window's
    for i, mask in enumerate(ranged.masks(tiny)):
        found = ranged.neighbors[i][ranged.neighbors[i] >= 0]
        assert len(found) == workloads.K and mask[found].all()


def test_adversarial_windows_lie_in_another_cluster(bench_data):
    data = annfile.load("adversarial", 30, 4000, seed=5)
    loads = {w.name: w for w in workloads.build(data, [8, 6], 30, categorical=False)}
    cluster = data.columns["cluster"].values
    for w in (loads["window 2^-8"], loads["window 2^-6"]):
        for i, mask in enumerate(w.masks(data)):
            own = data.test_columns["cluster"].values[i]
            assert mask.any() and own not in set(cluster[mask])
            # the unfiltered neighbours are all in the query's own cluster: the filter removes every one
            assert not mask[data.neighbors[i, :10]].any()


def test_predicates_select_the_same_rows_in_vecstore(tiny, tiny_workloads, tmp_path):
    import vecstore

    with vecstore.connect(tmp_path / "db") as db:
        col = db.create_collection("t", dim=64, metric="l2", attributes=tiny.schema, window=tiny.window)
        col.upsert(np.arange(N_TRAIN), tiny.train, {n: c.to_arrow() for n, c in tiny.columns.items()})
        col.seal()
        for w in tiny_workloads.values():
            for p in w.predicates[:5]:
                if p is not None:
                    assert col.count(p.to_vecstore(tiny.columns)) == int(p.mask(tiny.columns).sum())


# --- adapters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_adapter_smoke(name, tiny, tiny_workloads):
    try:
        alg = make_algorithm(name)
    except LibraryMissing as exc:
        pytest.skip(str(exc))
    try:
        alg.set_threads(2)
        alg.fit(tiny)
        grid = alg.query_argument_grid("quick")
        alg.set_query_arguments(**grid[-1])
        alg.set_threads(1)
        unfiltered = tiny_workloads["unfiltered"]
        found = np.stack([alg.query(q, 10) for q in tiny.test])
        assert metrics.mean_recall(tiny.train, tiny.test, "l2", found, unfiltered.distances, 10) >= 0.9
        alg.set_threads(2)
        batch = alg.batch_query(tiny.test, 10)
        assert metrics.mean_recall(tiny.train, tiny.test, "l2", batch, unfiltered.distances, 10) >= 0.9
        w = tiny_workloads["window 2^-3"]
        masks = w.masks(tiny)
        alg.prepare_filters(w.predicates)
        found = alg.filtered_batch_query(tiny.test, 10, w.predicates, masks)
        assert metrics.violations(found, masks) == 0
        # post-filtering peers (usearch) and IVF-PQ lose some recall under filters; none may lose most
        assert metrics.mean_recall(tiny.train, tiny.test, "l2", found, w.distances, 10) >= 0.6
    finally:
        alg.close()


# --- runner: failures are recorded and the run goes on ---------------------------------------------


def _tiny_preset(algorithms: list[str], timeout_s: float = 60) -> runner.Preset:
    plan = runner.DatasetPlan("clustered", N_TRAIN, N_QUERIES, [3])
    return runner.Preset("test", [plan], algorithms, grid="quick", budget_s=0.2, config_timeout_s=timeout_s, seed=3)


def test_runner_interleaves_workloads_and_records_a_crash_a_hang_and_a_failed_build(bench_data, tmp_path):
    fakes = ["tests.bench_fakes:CrashOnWindow", "tests.bench_fakes:HangOnBatch", "tests.bench_fakes:FailsToBuild"]
    results = runner.run(_tiny_preset([*fakes, "numpy-exact"], timeout_s=4), tmp_path, log=lambda _: None)
    records = [json.loads(line) for line in results.read_text().splitlines()]
    by_alg: dict[str, list[dict]] = {}
    for r in records:
        by_alg.setdefault(r["algorithm"], []).append(r)

    crash = by_alg[fakes[0]]
    failed = [r["key"] for r in crash if r["status"] == "failed"]
    assert failed == ["window 2^-3|{}|single", "window 2^-3|{}|batch"]  # each recorded once
    assert any(r["status"] == "ok" and r["workload"] == "cluster =" for r in crash)  # went on past it

    hang = by_alg[fakes[1]]
    assert {r["key"] for r in hang if r["status"] == "timeout"} >= {"unfiltered|{}|batch"}
    assert any(r["status"] == "ok" and r["mode"] == "single" and r["workload"] == "cluster =" for r in hang)

    (build,) = by_alg[fakes[2]]
    assert build["status"] == "failed" and "out of memory while building" in build["error"]

    exact = [r for r in by_alg["numpy-exact"] if r["status"] == "ok"]
    assert exact and all(r["recall"] == 1.0 and r["violations"] == 0 for r in exact)

    # interleaved: a workload's records form one block, written after its last round, which went to the
    # built algorithms in the order rotated once a round (crashes and hangs are recorded as they happen)
    built = [fakes[0], fakes[1], "numpy-exact"]
    rounds = runner.Preset.rounds
    in_order = [(r["workload"], r["algorithm"], r["status"]) for r in records if "workload" in r]
    blocks: list[str] = []
    for workload, _, _ in in_order:
        if not blocks or blocks[-1] != workload:
            blocks.append(workload)
    assert len(set(blocks)) == len(blocks) >= 3  # no workload comes back once left
    for i, workload in enumerate(blocks):
        ok = [alg for w, alg, status in in_order if w == workload and status == "ok"]
        shift = ((i + 1) * rounds - 1) % len(built)
        last_round_order = [a for a in built[shift:] + built[:shift] if a in ok]  # the crashing one has none
        assert ok and ok[0] == last_round_order[0]
    singles = [r for r in records if r["status"] == "ok" and r["mode"] == "single"]
    assert all(r["passes"] >= rounds for r in singles)  # a pass a round at least
    batches = [r for r in records if r["status"] == "ok" and r["mode"] == "batch"]
    assert batches and all(r["passes"] == worker.BATCH_PASSES for r in batches)


# --- report -----------------------------------------------------------------------------------------


def _record(alg: str, workload: str, recall: float, qps: float, mode: str = "single", **extra) -> dict:
    return {"dataset": "d", "algorithm": alg, "workload": workload, "kind": extra.pop("kind", "window"),
            "fraction": extra.pop("fraction", 0.01), "exponent": extra.pop("exponent", 7), "mode": mode,
            "recall": recall, "qps": qps, "status": "ok", "build_s": 1.0, "index_rss_bytes": 2**20,
            **extra}  # fmt: skip


class _ScriptedClock:
    """A ``perf_counter`` for the worker: every query of pass i lasts ``query_seconds[i]`` (the last entry
    for every later pass); the worker reads it once before and once after each query."""

    def __init__(self, query_seconds: list[float], queries: int) -> None:
        self.now, self.query_seconds, self.queries, self.reads = 0.0, query_seconds, queries, 0

    def __call__(self) -> float:
        if self.reads % 2:  # the reading after a query
            pass_index = self.reads // 2 // self.queries
            self.now += self.query_seconds[min(pass_index, len(self.query_seconds) - 1)]
        self.reads += 1
        return self.now


@pytest.mark.parametrize(
    ("query_seconds", "passes", "fastest"),
    [
        # fast passes (2 ms) repeat up to the most passes, the fastest counting
        ([1e-4, 2e-4, 5e-5, 1e-4], "max", 5e-5),
        ([5e-3, 4e-3], 3, 4e-3),  # 0.10 + 0.08 + 0.08 s: three passes reach a quarter second
        ([0.02, 0.03], 2, 0.02),  # a pass of 0.4 s still runs twice, as before
    ],
)
def test_single_mode_keeps_the_fastest_of_enough_passes(tiny, tiny_workloads, monkeypatch, query_seconds, passes,
                                                       fastest):  # fmt: skip
    from types import SimpleNamespace

    alg = make_algorithm("numpy-exact")
    alg.fit(tiny)
    workload = tiny_workloads["unfiltered"]
    queries = len(workload.predicates)
    monkeypatch.setattr(worker, "time", SimpleNamespace(perf_counter=_ScriptedClock(query_seconds, queries)))
    timing = worker.SingleTiming(10)  # one round: every pass at once
    timing.run_round(alg, tiny, workload, workload.masks(tiny), budget_s=1.0, round_=0, rounds=1)
    out = timing.result(tiny, workload, workload.masks(tiny))
    assert out["passes"] == (worker.MAX_SINGLE_PASSES if passes == "max" else passes)
    assert out["n_queries"] == queries and out["qps"] == pytest.approx(1 / fastest)
    assert out["recall"] == 1.0


@pytest.mark.parametrize(
    ("pass_seconds", "passes"),
    [
        ([0.01] * 17 + [0.005, 0.01], 20),  # 10 ms passes: 5 a round (20 in all), the fastest in round 3
        ([0.05] * 3 + [0.04, 0.05], 6),  # 50 ms passes: 2, 1, 1 and 2 a round, until a quarter second is timed
        ([0.3, 0.2], 2),  # slow passes: the two that run anyway, in rounds 0 and 2
    ],
)
def test_rounds_spread_the_passes_and_keep_the_fastest_of_all(tiny, tiny_workloads, monkeypatch, pass_seconds,
                                                              passes):  # fmt: skip
    from types import SimpleNamespace

    alg = make_algorithm("numpy-exact")
    alg.fit(tiny)
    workload = tiny_workloads["unfiltered"]
    queries = len(workload.predicates)
    query_seconds = [seconds / queries for seconds in pass_seconds]
    monkeypatch.setattr(worker, "time", SimpleNamespace(perf_counter=_ScriptedClock(query_seconds, queries)))
    timing = worker.SingleTiming(10)
    for round_ in range(4):
        timing.run_round(alg, tiny, workload, workload.masks(tiny), budget_s=1.0, round_=round_, rounds=4)
    out = timing.result(tiny, workload, workload.masks(tiny))
    assert out["passes"] == passes
    assert out["qps"] == pytest.approx(1 / min(query_seconds))


def test_best_qps_and_pareto():
    runs = [{"recall": 0.99, "qps": 100.0}, {"recall": 0.95, "qps": 300.0}, {"recall": 0.80, "qps": 900.0}]
    assert report.best_qps(runs, 0.95) == 300.0
    assert report.best_qps(runs, 0.999) is None
    assert report.pareto([(0.9, 10), (0.8, 5), (0.95, 20), (0.99, 1)]) == [(0.95, 20), (0.99, 1)]


def test_report_from_a_fixed_results_file(tmp_path):
    rows = [
        _record("vecstore", "window 2^-7", 1.0, 500.0),
        _record("vecstore", "window 2^-7", 1.0, 900.0, mode="batch"),
        _record("hnswlib", "window 2^-7", 0.96, 200.0),
        _record("hnswlib", "window 2^-7", 0.999, 100.0),
        _record("faiss-hnsw", "window 2^-7", 0.5, 5000.0),
        _record("vecstore", "unfiltered", 1.0, 50.0, kind="unfiltered", fraction=1.0, exponent=None),
        _record("hnswlib", "unfiltered", 0.99, 400.0, kind="unfiltered", fraction=1.0, exponent=None),
        {"dataset": "d", "algorithm": "usearch", "status": "missing", "error": "usearch is not installed"},
    ]
    seconds = {"graph": 1.25, "tree": 2.5}
    rows[0]["index_parts"] = {"vector_bytes": 2**20, "graph_bytes": 4 * 2**20, "window_tree_bytes": 6 * 2**20,
                              "payload_bytes": 0, "code_bytes": 0, "build_seconds": seconds}  # fmt: skip
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    text = report.write_report(path, tmp_path).read_text()
    # single @0.95: vecstore 500 against hnswlib's 200 (faiss never reaches 0.95)
    assert "| d | window 2^-7 | 1.000% | 500 | hnswlib | 200 | 2.50x |" in text
    assert "| d | unfiltered | 100.000% | 50 | hnswlib | 400 | 0.12x |" in text
    assert "| **vecstore / best peer** | 2.50x | 2.50x | 5.00x | no peer reached it |" in text
    assert "usearch: missing (build): usearch is not installed" in text
    assert "| d | vecstore | 1 | 4 | 1.2 | 6 | 2.5 | 1.50x | 0 | 0 | 0.0 |" in text  # the tree beside the graph
    assert (tmp_path / "pareto-d-window-2-7.png").stat().st_size > 0
    assert (tmp_path / "window-d.png").stat().st_size > 0


# --- bad input --------------------------------------------------------------------------------------


def test_cli_rejects_unknown_names_and_missing_files(capsys, tmp_path, monkeypatch):
    assert bench_main(["run", "--dataset", "nope"]) == 2
    assert "unknown dataset 'nope'; choose from" in capsys.readouterr().err
    assert bench_main(["run", "--algorithm", "nope"]) == 2
    assert "unknown algorithm 'nope'" in capsys.readouterr().err
    assert bench_main(["report", str(tmp_path / "none.jsonl")]) == 2
    assert "run `python -m bench run` first" in capsys.readouterr().err
    monkeypatch.setenv("VECSTORE_SHARED_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("VECSTORE_BENCH_DATA", str(tmp_path / "cache"))
    assert bench_main(["prepare", "--dataset", "movies"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found; set VECSTORE_SHARED_DATA" in err


def test_missing_peer_library_says_how_to_install():
    from bench.algorithms.base import require

    with pytest.raises(LibraryMissing, match=r"no-such-peer is not installed; run `make bench-install`"):
        require("no_such_peer_module", "no-such-peer")
