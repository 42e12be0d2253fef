"""Benchmark: the whole `rerun-agents --dry-run` CLI on generated experiments.

Usage: ``uv run python bench/bench_dry_run.py [--sizes 1050 10500] [--keep DIR]``

For each size it generates an experiment (T0..T6, 15 subtests per tier, N/105 runs per
subtest, a realistic status mix), then measures, each in a fresh process:

* the whole CLI dry run (``rerun-agents EXP --dry-run``): wall time and peak RSS;
* the same classification in plain Python without the CLI and Prefect (``scan_in_process``).

Wall and CPU time (user + sys, forked workers included) are the medians of 5 runs after one
warm-up, with bytecode cached as in a normal install; peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN)`` of a dedicated child. Results go to stdout as a Markdown
table. To measure another checkout side by side, run the script with ``PYTHONPATH=<checkout>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIX = {"completed": 0.85, "results": 0.05, "failed": 0.04, "partial": 0.03, "missing": 0.03}
PLAIN = "import sys; from experiment.scan import *; r = scan_in_process(load_context(sys.argv[1]), ScanFilters()); print(r.counts)"


def child_env() -> dict[str, str]:
    """The environment of the measured commands: bytecode cached as in a normal install (a
    container's ``PYTHONDONTWRITEBYTECODE=1`` would make every run compile every module)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "scylla-bench-pycache"))
    return env


def measure(argv: list[str], repeats: int = 5) -> tuple[float, float, float]:
    """Median wall seconds, median CPU seconds (user + sys, forked workers included) and peak
    RSS (MB) of a command run in fresh child processes (after one untimed warm-up run)."""
    walls, cpus = [], []
    peak = 0.0
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss)"
    )
    for i in range(repeats + 1):
        out = subprocess.run(
            [sys.executable, "-c", code, *argv],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        if i == 0:
            continue  # warm-up: page cache and bytecode cache
        wall, cpu, rss_kb = out.stdout.split()
        walls.append(float(wall))
        cpus.append(float(cpu))
        peak = max(peak, int(rss_kb) / 1024)
    return statistics.median(walls), statistics.median(cpus), peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1050, 10500])
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from simulation.generator import generate_experiment

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-dry-run-"))
    cli = str(Path(sys.executable).parent / "rerun-agents")
    print(
        "| runs | CLI dry run wall | CLI CPU | CLI peak RSS | plain Python wall | plain CPU | plain peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
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
        cli_wall, cli_cpu, cli_rss = measure([cli, str(exp), "--dry-run"])
        plain_wall, plain_cpu, plain_rss = measure([sys.executable, "-c", PLAIN, str(exp)])
        print(
            f"| {size:,} | {cli_wall:.2f} s | {cli_cpu:.2f} s | {cli_rss:.0f} MB | "
            f"{plain_wall:.2f} s | {plain_cpu:.2f} s | {plain_rss:.0f} MB |"
        )


if __name__ == "__main__":
    main()
