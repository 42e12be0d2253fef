"""Benchmark: ``regenerate-results`` on 10,500 generated runs (wall time and peak RSS).

Usage: ``uv run python bench/bench_regenerate.py [--runs 10500] [--repeats 3] [--keep DIR]``

Two generated experiments (T0..T6, 15 subtests per tier, runs/105 runs per subtest):

* ``all results``: every run is ``results`` (its agent finished; ``agent/result.json``,
  ``run_result.json`` or both are missing), so every run is regenerated in one pass (agent
  result, consensus, run_result.json, run reports), then every aggregate is rebuilt;
* ``realistic``: 85 % completed, 5 % results, 10 % failed/partial/missing: the results runs are
  regenerated and the aggregates rebuilt over all the completed runs (what the original's
  ``regenerate.py`` does: it took 4.3 s and 79 MB for 10,500 runs and lost the totals).

Each measurement runs the whole CLI (``regenerate-results EXP --json``, in-process, no Prefect)
in a fresh child process on a fresh copy of the pristine experiment (the copy is not timed).
Wall time is the median of ``--repeats``; peak RSS is ``getrusage(RUSAGE_CHILDREN).ru_maxrss``
of a dedicated child. Results go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "all results": {"results": 1.0},
    "realistic": {"completed": 0.85, "results": 0.05, "failed": 0.04, "partial": 0.03, "missing": 0.03},
}
CHILD = (
    "import resource, subprocess, sys, time; t = time.perf_counter();"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True);"
    "w = time.perf_counter() - t; sys.stderr.write(p.stdout);"
    "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
)


def measure(argv: list[str]) -> tuple[float, float, dict]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *argv], check=True, capture_output=True, text=True, cwd=ROOT
    )
    wall, rss_kb, _code = out.stdout.split()
    return float(wall), int(rss_kb) / 1024, json.loads(out.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from simulation.generator import generate_experiment

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-regenerate-"))
    cli = str(Path(sys.executable).parent / "regenerate-results")
    print(f"<!-- {platform.platform()}, Python {platform.python_version()}, base {base} -->", file=sys.stderr)
    print("| scenario | runs | regenerated | aggregated | files written | wall (median) | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, mix in SCENARIOS.items():
        pristine = base / f"pristine-{name.replace(' ', '-')}-{args.runs}"
        if not pristine.exists():
            t = time.perf_counter()
            generate_experiment(
                pristine,
                tiers=[f"T{i}" for i in range(7)],
                subtests_per_tier=15,
                runs_per_subtest=args.runs // 105,
                mix=mix,
                seed=args.runs,
                with_base_repo=False,
                with_aggregates=False,
            )
            print(f"<!-- generated {name} in {time.perf_counter() - t:.1f} s -->", file=sys.stderr)
        walls, peak, summary = [], 0.0, {}
        for _ in range(args.repeats):
            work = base / "work"
            shutil.rmtree(work, ignore_errors=True)
            subprocess.run(["cp", "-a", str(pristine), str(work)], check=True)
            wall, rss, summary = measure([cli, str(work), "--json"])
            walls.append(wall)
            peak = max(peak, rss)
        aggregates = summary.get("aggregates") or {}
        written = sum(len(r["written"]) for r in summary["runs"]) + len(aggregates.get("written", []))
        print(
            f"| {name} | {args.runs:,} | {summary['regenerated']:,} | {aggregates.get('runs', 0):,} | "
            f"{written:,} | {statistics.median(walls):.2f} s | {peak:.0f} MB |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
