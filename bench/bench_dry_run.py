"""Benchmark: the whole `rerun-agents --dry-run` CLI on generated experiments.

Usage: ``uv run python bench/bench_dry_run.py [--sizes 1050 10500] [--keep DIR]``

For each size it generates an experiment (T0..T6, 15 subtests per tier, N/105 runs per
subtest, a realistic status mix), then measures, each in a fresh process:

* the whole CLI dry run (``rerun-agents EXP --dry-run``): wall time and peak RSS;
* the same classification in plain Python without the CLI and Prefect (``scan_in_process``).

Wall time is the median of 5 runs; peak RSS comes from ``resource.getrusage(RUSAGE_CHILDREN)``
of a dedicated child. Results go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIX = {"completed": 0.85, "results": 0.05, "failed": 0.04, "partial": 0.03, "missing": 0.03}
PLAIN = "import sys; from experiment.scan import *; r = scan_in_process(load_context(sys.argv[1]), ScanFilters()); print(r.counts)"


def measure(argv: list[str], repeats: int = 5) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MB) of a command run in fresh child processes."""
    walls = []
    peak = 0.0
    for _ in range(repeats):
        code = (
            "import resource, subprocess, sys, time; t = time.perf_counter();"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True, cwd=ROOT
        )
        wall, rss_kb = out.stdout.split()
        walls.append(float(wall))
        peak = max(peak, int(rss_kb) / 1024)
    return statistics.median(walls), peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1050, 10500])
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from simulation.generator import generate_experiment

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-dry-run-"))
    cli = str(Path(sys.executable).parent / "rerun-agents")
    print("| runs | CLI dry run wall | CLI peak RSS | plain Python wall | plain peak RSS |")
    print("|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        exp = base / f"exp-{size}"
        if not exp.exists():
            t = time.perf_counter()
            generate_experiment(
                exp,
                tiers=[f"T{i}" for i in range(7)],
                subtests_per_tier=15,
                runs_per_subtest=size // 105,
                mix=MIX,
                seed=size,
                with_base_repo=False,
            )
            print(f"<!-- generated {size} runs in {time.perf_counter() - t:.1f} s -->", file=sys.stderr)
        cli_wall, cli_rss = measure([cli, str(exp), "--dry-run"])
        plain_wall, plain_rss = measure([sys.executable, "-c", PLAIN, str(exp)])
        print(f"| {size:,} | {cli_wall:.2f} s | {cli_rss:.0f} MB | {plain_wall:.2f} s | {plain_rss:.0f} MB |")


if __name__ == "__main__":
    main()
