"""``python -m simulation.generator DEST ...``: generate an experiment and print a one-line summary."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from simulation.generator.generate import generate_experiment
from simulation.generator.plan import STATUSES

DESCRIPTION = "Seeded synthetic ProjectScylla experiments for tests, benchmarks and the demo."


def _parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        try:
            mix[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad mix entry {part!r}; use status=fraction") from None
    return mix


def main(argv: list[str] | None = None) -> int:
    """``python -m simulation.generator DEST ...``: generate and print a one-line summary."""
    parser = argparse.ArgumentParser(prog="python -m simulation.generator", description=DESCRIPTION)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--tiers", nargs="+", default=["T0", "T1"])
    parser.add_argument("--subtests", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--mix", type=_parse_mix, default=None, help="e.g. completed=0.8,failed=0.1,results=0.1"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiers-dir", type=Path, default=None)
    parser.add_argument("--layout", choices=["flat", "phased"], default="flat")
    parser.add_argument("--no-base-repo", action="store_true")
    parser.add_argument("--no-aggregates", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        gen = generate_experiment(
            args.dest,
            tiers=args.tiers,
            subtests_per_tier=args.subtests,
            runs_per_subtest=args.runs,
            mix=args.mix,
            seed=args.seed,
            tiers_dir=args.tiers_dir,
            with_base_repo=not args.no_base_repo,
            with_aggregates=not args.no_aggregates,
            layout=args.layout,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = gen.counts()
    detail = ", ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES)
    print(f"Generated {len(gen.truth)} runs in {gen.path} ({detail}) in {time.perf_counter() - start:.1f}s")
    return 0
