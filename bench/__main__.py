"""``python -m bench``: run a preset against every peer, then write the report and plots.

python -m bench run [--preset quick|windows|attributes|full] [--dataset NAME ...] [--algorithm NAME ...] [--out DIR]
python -m bench report RESULTS.jsonl [--out DIR]
python -m bench prepare [--preset quick|windows|attributes|full] [--dataset NAME ...]
python -m bench list
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import annfile, runner
from bench.algorithms import ALGORITHMS
from bench.datasets import DatasetMissing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "prepare"):
        sub = commands.add_parser(name)
        sub.add_argument("--preset", default="quick", choices=sorted(runner.PRESETS))
        sub.add_argument("--dataset", action="append", help="limit to these datasets (repeatable)")
        if name == "run":
            sub.add_argument("--algorithm", action="append", help="limit to these algorithms (repeatable)")
            sub.add_argument("--out", type=Path, help="output folder (default bench/results/<preset>)")
            sub.add_argument("--m", type=int, help="graph degree M for every HNSW algorithm (preset's default)")
            sub.add_argument("--ef-construction", type=int, help="ef_construction for every HNSW algorithm")
            sub.add_argument("--workload", action="append", help="limit to these workloads, e.g. unfiltered")
            sub.add_argument("--rows", type=int, help="train rows per dataset (0: all rows; default: the preset's)")
    report = commands.add_parser("report")
    report.add_argument("results", type=Path)
    report.add_argument("--out", type=Path)
    commands.add_parser("list")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            print("datasets:  ", ", ".join(annfile.SOURCES))
            print("algorithms:", ", ".join(ALGORITHMS))
            return 0
        if args.command == "report":
            if not args.results.exists():
                raise runner.BenchError(f"{args.results} not found; run `python -m bench run` first")
            from bench.report import write_report

            print(write_report(args.results, args.out or args.results.parent))
            return 0
        preset = runner.select(runner.PRESETS[args.preset], args.dataset, getattr(args, "algorithm", None))
        for name in ("m", "ef_construction"):
            value = getattr(args, name, None)
            if value is not None:
                if value < 1:
                    raise runner.BenchError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
                preset = runner.Preset(**{**preset.__dict__, name: value})
        if getattr(args, "rows", None) is not None:
            if args.rows < 0:
                raise runner.BenchError(f"--rows must be 0 (all rows) or a positive number, got {args.rows}")
            plans = [runner.DatasetPlan(p.name, args.rows or None, p.n_queries, p.window_exponents, p.workloads)
                     for p in preset.datasets]  # fmt: skip
            preset = runner.Preset(**{**preset.__dict__, "datasets": plans})
        if getattr(args, "workload", None):  # the named workloads on every dataset, over each plan's own
            plans = [runner.DatasetPlan(p.name, p.max_train, p.n_queries, p.window_exponents) for p in preset.datasets]
            preset = runner.Preset(**{**preset.__dict__, "datasets": plans, "workloads": tuple(args.workload)})
        if args.command == "prepare":
            for plan in preset.datasets:
                runner.prepare(plan, preset.seed)
            return 0
        out = args.out or runner.RESULTS_DIR / preset.name
        results = runner.run(preset, out)
        from bench.report import write_report

        print(f"report: {write_report(results, out)}")
        return 0
    except (runner.BenchError, DatasetMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
