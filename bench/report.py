"""Turns a results file into the markdown report and the PNG plots.

- ``report.md``: a summary (per dataset x workload: vecstore's best single-query QPS at recall@10 >=
  0.95, the best peer's, and their ratio), then per dataset x workload the best QPS at recall >= 0.90 /
  0.95 / 0.99 for every algorithm, what vecstore's index parts took to build and hold (graph, window
  tree, payload indexes, codes), and the runs that failed.
- ``pareto-<dataset>-<workload>.png``: recall@10 against single-query QPS, one frontier per algorithm.
- ``window-<dataset>.png``: best single-query QPS at recall >= 0.95 against the window fraction.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

THRESHOLDS = (0.90, 0.95, 0.99)
HEADLINE_RECALL = 0.95
OURS = ("vecstore", "vecstore-sq8", "vecstore-grpc", "vecstore-hnsw-index")


def load_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def best_qps(records: list[dict], threshold: float) -> float | None:
    """The highest QPS among runs reaching ``threshold`` recall (None when none does)."""
    qps = [r["qps"] for r in records if r["recall"] >= threshold - 1e-9]
    return max(qps) if qps else None


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(recall, qps) points no other point beats on both, by increasing recall."""
    front: list[tuple[float, float]] = []
    for recall, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or qps > front[-1][1]:
            front.append((recall, qps))
    return sorted(front)


def _group(records: list[dict]) -> dict:
    """dataset -> workload -> algorithm -> mode -> [records] for the runs that finished."""
    tree: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    for r in records:
        if r.get("status") == "ok":
            tree[r["dataset"]][r["workload"]][r["algorithm"]][r["mode"]].append(r)
    return tree


def _fmt(qps: float | None) -> str:
    if qps is None:
        return "-"
    return f"{qps:,.0f}" if qps >= 10 else f"{qps:.1f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _ratio(ours: float | None, peer: float | None) -> str:
    if ours is None:
        return "not reached"
    if peer is None:
        return "no peer reached it"
    return f"{ours / peer:.2f}x"


def _workload_order(workloads: dict) -> list[str]:
    def key(name: str) -> tuple:
        first = next(iter(next(iter(workloads[name].values())).values()))[0]
        order = {"unfiltered": 0, "window": 1, "range": 2, "categorical": 3, "conjunction": 4}[first["kind"]]
        return (order, -(first.get("exponent") or 0), name)

    return sorted(workloads, key=key)


def _fraction(workload: dict) -> float:
    return next(iter(next(iter(workload.values())).values()))[0]["fraction"]


def summary_rows(tree: dict, mode: str = "single") -> list[dict]:
    rows = []
    for dataset in sorted(tree):
        for name in _workload_order(tree[dataset]):
            by_alg = tree[dataset][name]
            ours = best_qps(by_alg.get("vecstore", {}).get(mode, []), HEADLINE_RECALL)
            peers = {alg: best_qps(modes.get(mode, []), HEADLINE_RECALL) for alg, modes in by_alg.items()
                     if alg not in OURS}  # fmt: skip
            reached = {a: q for a, q in peers.items() if q is not None}
            best_peer = max(reached, key=reached.get) if reached else None
            sq8 = best_qps(by_alg.get("vecstore-sq8", {}).get(mode, []), HEADLINE_RECALL)
            rows.append({
                "dataset": dataset, "workload": name, "fraction": _fraction(by_alg), "ours": ours,
                "best_peer": best_peer, "peer_qps": reached.get(best_peer) if best_peer else None,
                "sq8": sq8, "has_sq8": "vecstore-sq8" in by_alg,
            })  # fmt: skip
    return rows


def summary_table(tree: dict, mode: str = "single") -> str:
    rows = summary_rows(tree, mode)
    sq8 = any(row["has_sq8"] for row in rows)  # the sq8 columns when the run had vecstore-sq8
    lines = [
        "| dataset | workload | rows allowed | vecstore QPS | best peer | peer QPS | vecstore / best peer |"
        + (" vecstore-sq8 QPS | sq8 / best peer |" if sq8 else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if sq8 else ""),
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['workload']} | {row['fraction']:.3%} | {_fmt(row['ours'])} | "
            f"{row['best_peer'] or '-'} | {_fmt(row['peer_qps'])} | {_ratio(row['ours'], row['peer_qps'])} |"
            + (f" {_fmt(row['sq8'])} | {_ratio(row['sq8'], row['peer_qps'])} |" if sq8 else "")
        )
    return "\n".join(lines)


def detail_table(by_alg: dict) -> str:
    head = " | ".join(f"single @{t:.2f}" for t in THRESHOLDS)
    lines = [f"| algorithm | {head} | batch @0.95 | max recall | build s | index MiB (RSS) | plans |",
             "|---|" + "---|" * (len(THRESHOLDS) + 5)]  # fmt: skip
    best: dict[str, list] = {}
    for alg in sorted(by_alg, key=lambda a: (a not in OURS, a)):
        modes = by_alg[alg]
        singles = modes.get("single", [])
        cells = [best_qps(singles, t) for t in THRESHOLDS]
        batch = best_qps(modes.get("batch", []), HEADLINE_RECALL)
        best[alg] = [*cells, batch]
        every = singles + modes.get("batch", [])
        max_recall = max(r["recall"] for r in every)
        first = every[0]
        plans = defaultdict(int)
        for r in every:
            for plan, count in (r.get("plans") or {}).items():
                plans[plan] += count
        plan_text = ", ".join(sorted(plans)) or "-"
        lines.append(
            f"| {alg} | " + " | ".join(_fmt(c) for c in cells) + f" | {_fmt(batch)} | {max_recall:.3f} | "
            f"{first.get('build_s', 0):.1f} | {_mib(first.get('index_rss_bytes'))} | {plan_text} |"
        )
    if "vecstore" in best:
        peers = [v for a, v in best.items() if a not in OURS]
        ratios = []
        for i, ours in enumerate(best["vecstore"]):
            column = [p[i] for p in peers if p[i] is not None]
            ratios.append(_ratio(ours, max(column) if column else None))
        lines.append("| **vecstore / best peer** | " + " | ".join(ratios) + " | | | | |")
    return "\n".join(lines)


def index_parts_table(records: list[dict]) -> str | None:
    """Per dataset and vecstore configuration: the bytes of each index part and the seconds its
    background build took (``describe()``), the window tree beside the plain graph."""
    seen: dict[tuple[str, str], dict] = {}
    for r in records:
        if r.get("status") == "ok" and r.get("index_parts"):
            seen.setdefault((r["dataset"], r["algorithm"]), r["index_parts"])
    if not seen:
        return None
    lines = ["| dataset | algorithm | vectors MiB | graph MiB | graph build s | window tree MiB | tree build s | "
             "tree / graph memory | payload indexes MiB | codes MiB | codes build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (dataset, alg), parts in sorted(seen.items()):
        seconds = parts.get("build_seconds", {})
        graph, tree = parts.get("graph_bytes", 0), parts.get("window_tree_bytes", 0)
        share = f"{tree / graph:.2f}x" if graph and tree else "-"
        lines.append(
            f"| {dataset} | {alg} | {_mib(parts.get('vector_bytes'))} | {_mib(graph)} | "
            f"{seconds.get('graph', 0):.1f} | {_mib(tree)} | {seconds.get('tree', 0):.1f} | {share} | "
            f"{_mib(parts.get('payload_bytes'))} | {_mib(parts.get('code_bytes'))} | {seconds.get('codes', 0):.1f} |"
        )
    return "\n".join(lines)


def failures(records: list[dict]) -> list[str]:
    out = []
    for r in records:
        if r.get("status") != "ok":
            where = r.get("key") or "build"
            out.append(f"- {r['dataset']} / {r['algorithm']}: {r['status']} ({where}): {r.get('error', '')}")
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_report(results_path: Path, out_dir: Path) -> Path:
    """Write report.md and the plots next to each other in ``out_dir``; returns the report path."""
    records = load_results(results_path)
    tree = _group(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "# Bench report",
        "",
        f"Source: `{results_path.name}`. QPS: one query per call on one thread (single; the fastest of two "
        "or more timed passes, repeated up to a quarter second and spread over four rounds that rotate "
        "through the algorithms) or all queries in one call on both cores (batch). Recall@10 by distance "
        "threshold against exact filtered ground truth. Peers receive each "
        "filter as a precomputed row mask (not timed); vecstore and LanceDB evaluate the filter themselves "
        "inside the timed call.",
        "",
        f"## Summary: best single-query QPS at recall@10 >= {HEADLINE_RECALL}",
        "",
        summary_table(tree, "single"),
        "",
        f"## Summary: best batch QPS at recall@10 >= {HEADLINE_RECALL}",
        "",
        summary_table(tree, "batch"),
        "",
    ]
    for dataset in sorted(tree):
        parts += [f"## {dataset}", ""]
        for name in _workload_order(tree[dataset]):
            by_alg = tree[dataset][name]
            parts += [f"### {dataset} / {name} ({_fraction(by_alg):.3%} of rows)", "", detail_table(by_alg), ""]
            plot_pareto(by_alg, f"{dataset} / {name}", out_dir / f"pareto-{_slug(dataset)}-{_slug(name)}.png")
        plot_window_fractions(tree[dataset], dataset, out_dir / f"window-{_slug(dataset)}.png")
    index_parts = index_parts_table(records)
    if index_parts:
        parts += ["## vecstore's index parts", "",
                  "Bytes from `describe()`; build seconds are the background work per part (graphs, window "
                  "trees, codes), all on one thread beside the load. Merges, if any, are not listed.", "",
                  index_parts, ""]  # fmt: skip
    fails = failures(records)
    parts += ["## Failed, timed out or missing", ""] + (fails or ["None."]) + [""]
    path = out_dir / "report.md"
    path.write_text("\n".join(parts))
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pareto(by_alg: dict, title: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for alg in sorted(by_alg):
        points = [(r["recall"], r["qps"]) for r in by_alg[alg].get("single", [])]
        if points:
            front = pareto(points)
            ax.plot([p[0] for p in front], [p[1] for p in front], marker="o", ms=3,
                    lw=2.2 if alg in OURS else 1.2, label=alg)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (one thread, one query per call)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_window_fractions(workloads: dict, dataset: str, path: Path) -> None:
    windows = {name: w for name, w in workloads.items() if _kind(w) in ("window", "unfiltered")}
    if len(windows) < 2:
        return
    plt = _pyplot()
    algorithms = sorted({alg for w in windows.values() for alg in w})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for alg in algorithms:
        xs, ys = [], []
        for w in sorted(windows.values(), key=_fraction):
            qps = best_qps(w.get(alg, {}).get("single", []), HEADLINE_RECALL)
            if qps is not None:
                xs.append(_fraction(w))
                ys.append(qps)
        if xs:
            ax.plot(xs, ys, marker="o", ms=3, lw=2.2 if alg in OURS else 1.2, label=alg)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("fraction of rows in the window (1 = unfiltered)")
    ax.set_ylabel(f"QPS at recall@10 >= {HEADLINE_RECALL} (one thread)")
    ax.set_title(f"{dataset}: window filters")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _kind(workload: dict) -> str:
    return next(iter(next(iter(workload.values())).values()))[0]["kind"]
