"""Which runs exist and which status each one gets: the seeded plan, before any file is written.

Per-status counts are exact (largest remainder over the mix) and their placement is shuffled with
the experiment's rng, so the same seed always breaks the same runs the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

STATUSES = ("completed", "results", "failed", "partial", "missing")
"""The five run statuses, as the classifier names them."""

DEFAULT_MIX = {"completed": 0.7, "results": 0.1, "failed": 0.1, "partial": 0.05, "missing": 0.05}


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan and the status drawn for it."""

    tier: str
    """Tier id, e.g. ``T0``."""
    subtest: str
    """Subtest id, e.g. ``00``."""
    yaml_path: str | None
    """The subtest's fixture yaml relative to the tiers checkout (None: synthetic subtest)."""
    run: int
    """Run number, from 1."""
    status: str
    """One of :data:`STATUSES`."""

    @property
    def key(self) -> str:
        """``"T0/00/run_01"``, the key of ``GeneratedExperiment.truth``."""
        return f"{self.tier}/{self.subtest}/run_{self.run:02d}"


def allocate(mix: dict[str, float], total: int) -> list[str]:
    """Exact per-status counts for ``total`` runs (largest remainder), as a flat list."""
    unknown = set(mix) - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown status in mix: {sorted(unknown)}; statuses are {', '.join(STATUSES)}")
    weight = sum(mix.values())
    if weight <= 0:
        raise ValueError("mix fractions must add up to more than 0")
    shares = {s: mix.get(s, 0.0) / weight * total for s in STATUSES}
    counts = {s: int(shares[s]) for s in STATUSES}
    rest = total - sum(counts.values())
    for s in sorted(STATUSES, key=lambda s: (-(shares[s] - counts[s]), STATUSES.index(s)))[:rest]:
        counts[s] += 1
    return [s for s in STATUSES for _ in range(counts[s])]


def subtest_ids(tier: str, n: int, tiers_dir: Path | None) -> list[tuple[str, str | None]]:
    """(id, fixture yaml path) of the first ``n`` subtests of a tier."""
    if tiers_dir is not None:
        yamls = sorted(
            (Path(tiers_dir) / "tests/claude-code/shared/subtests" / tier.lower()).glob("[0-9][0-9]-*.yaml")
        )
        if yamls:
            return [
                (p.name[:2], f"tests/claude-code/shared/subtests/{tier.lower()}/{p.name}") for p in yamls[:n]
            ]
    start = 0 if tier == "T0" else 1
    return [(f"{i:02d}", None) for i in range(start, start + n)]


def plan_runs(
    tiers: list[str],
    subtests_per_tier: int | dict[str, int],
    runs_per_subtest: int,
    tiers_dir: Path | None,
    mix: dict[str, float],
    rng: random.Random,
) -> list[PlannedRun]:
    """Every run in write order (tier, subtest, run) with its shuffled status; consumes ``rng`` first."""
    slots: list[tuple[str, str, str | None, int]] = []
    for tier in tiers:
        n = subtests_per_tier.get(tier, 0) if isinstance(subtests_per_tier, dict) else subtests_per_tier
        for subtest, yaml_path in subtest_ids(tier, n, tiers_dir):
            for run in range(1, runs_per_subtest + 1):
                slots.append((tier, subtest, yaml_path, run))
    statuses = allocate(mix, len(slots))
    rng.shuffle(statuses)
    return [
        PlannedRun(tier, subtest, yaml_path, run, status)
        for (tier, subtest, yaml_path, run), status in zip(slots, statuses, strict=True)
    ]
