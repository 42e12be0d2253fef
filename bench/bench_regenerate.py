"""Benchmark: ``regenerate-results`` on 10,500 generated runs (wall time and peak RSS).

Usage: ``uv run python bench/bench_regenerate.py [--runs 10500] [--repeats 3] [--keep DIR]``

Two generated experiments (T0..T6, 15 subtests per tier, runs/105 runs per subtest):

* ``all results``: every run is ``results`` (its agent finished; ``agent/result.json``,
  ``run_result.json`` or both are missing), so every run is regenerated in one pass (agent
  result, consensus, run_result.json, run reports), then every aggregate is rebuilt;
* ``realistic``: 85 % completed, 5 % results, 10 % failed/partial/missing: the results runs are
  regenerated and the aggregates rebuilt over all the completed runs (what the original's
  ``regenerate.py`` does: it took 4.3 s and 79 MB for 10,500 runs and lost the totals).

* ``nothing to change``: the same command again on the realistic result (nothing may be
  written or backed up).

Each measurement runs the whole CLI (``regenerate-results EXP --json``, in-process, no Prefect)
in a fresh child process on a fresh copy of the pristine experiment (the copy is not timed).
Wall time is the median of ``--repeats``; peak RSS is ``getrusage(RUSAGE_CHILDREN).ru_maxrss``
of a dedicated child. Results go to stdout as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    "w = time.perf_counter() - t; sys.stderr.write(p.stdout); r = resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(w, r.ru_utime + r.ru_stime, r.ru_maxrss, p.returncode)"
)


def child_env() -> dict[str, str]:
    """Bytecode cached as in a normal install (a container's ``PYTHONDONTWRITEBYTECODE=1`` would
    make every run compile every module)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "scylla-bench-pycache"))
    return env


def measure(argv: list[str]) -> tuple[float, float, float, dict]:
    """Wall seconds, CPU seconds (user + sys), peak RSS (MB) and the ``--json`` summary."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=child_env(),
    )
    wall, cpu, rss_kb, _code = out.stdout.split()
    return float(wall), float(cpu), int(rss_kb) / 1024, json.loads(out.stderr)


def fresh_copy(pristine: Path, base: Path) -> Path:
    """A new copy of ``pristine`` to regenerate, made of hard links (``cp -al``: seconds instead
    of minutes for 1.8 GB). Safe because every write of both tools is a new file renamed into
    place, never an in-place write through a link. Earlier copies are deleted first and the copy is
    synced before the measurement (none of it timed): the command's own ``os.sync()`` would
    otherwise flush the copy's ~150,000 new directory entries, or wait on a deletion running
    beside it, and time the disk instead of the command."""
    for old in base.glob("work-*"):
        subprocess.run(["rm", "-rf", str(old)], check=True)  # noqa: S603
    work = Path(tempfile.mkdtemp(prefix="work-", dir=base)) / "exp"
    subprocess.run(["cp", "-al", str(pristine), str(work)], check=True)
    os.sync()
    return work


def row(name: str, runs: int, walls: list[float], cpus: list[float], peak: float, summary: dict) -> str:
    aggregates = summary.get("aggregates") or {}
    written = sum(len(r["written"]) for r in summary["runs"]) + len(aggregates.get("written", []))
    return (
        f"| {name} | {runs:,} | {summary['regenerated']:,} | {aggregates.get('runs', 0):,} | "
        f"{written:,} | {statistics.median(walls):.2f} s | {statistics.median(cpus):.2f} s | {peak:.0f} MB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from simulation.generator import generate_experiment

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-regenerate-"))
    cli = str(Path(sys.executable).parent / "regenerate-results")
    print(f"<!-- {platform.platform()}, Python {platform.python_version()}, base {base} -->", file=sys.stderr)
    print("| scenario | runs | regenerated | aggregated | files written | wall (median) | CPU | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, mix in SCENARIOS.items():
        if name not in args.scenarios:
            continue
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
        walls: list[float] = []
        cpus: list[float] = []
        peak = 0.0
        summary: dict = {}
        again: list[tuple[float, float, float, dict]] = []
        for _ in range(args.repeats):
            work = fresh_copy(pristine, base)
            wall, cpu, rss, summary = measure([cli, str(work), "--json"])
            walls.append(wall)
            cpus.append(cpu)
            peak = max(peak, rss)
            if name == "realistic":  # the same command again: nothing to change
                again.append(measure([cli, str(work), "--json"]))
        print(row(name, args.runs, walls, cpus, peak, summary))
        if again:
            walls2, cpus2, peaks2, summaries2 = zip(*again, strict=True)
            print(row("nothing to change", args.runs, list(walls2), list(cpus2), max(peaks2), summaries2[-1]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
