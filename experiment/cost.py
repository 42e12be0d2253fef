"""What a repair will cost, estimated from the experiment's own completed runs.

A rerun pays for one fresh agent run. The best guess of that price is what the same work cost
before: the mean agent cost (``run_result.json`` ``cost_usd``, else ``agent/result.json``) of the
completed runs of the same tier and subtest; a subtest with no completed run falls back to the
tier's mean, and a tier with none to the experiment's. ``results`` runs only regenerate files,
so they cost no agent money. Judges are not included: the figure is agent money only, which is
what ``--max-cost`` and the nightly budget cap count too (the same ``cost_usd`` field).

Costs are read lazily, only for the subtests and tiers that have runs to rerun, so a dry run of a
10,000-run experiment with a handful of failures reads a handful of subtests.

Prefect-free: the dry run, the flows and the nightly repair share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from experiment.layout import ExperimentLayout
from experiment.scan import RunEntry, ScanReport
from experiment.status import RunStatus

NOT_INCLUDED = "judges not included"


def completed_run_cost(layout: ExperimentLayout, entry: RunEntry) -> float | None:
    """The agent cost of one completed run, or None when no file records it."""
    if entry.agent_cost_usd is not None and entry.agent_cost_usd >= 0:
        return entry.agent_cost_usd  # read during classification already
    paths = layout.run_paths(entry.key)
    for path in (paths.run_result, paths.agent_result):
        try:
            value = json.loads(Path(path).read_text(encoding="utf-8")).get("cost_usd")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    return None


@dataclass
class CostEstimate:
    """The estimated agent cost of rerunning some runs of one experiment."""

    reruns: int = 0
    """Runs that would get a fresh agent (failed, partial, missing)."""
    total_usd: float | None = None
    """Sum of the per-run estimates; None when no completed run records a cost."""
    per_run: dict[str, float] = field(default_factory=dict)
    """Estimated agent cost of each run to rerun, by run label."""
    sample_size: int = 0
    """Completed runs whose cost was read."""
    basis: dict[str, int] = field(default_factory=dict)
    """How many reruns were priced by ``subtest``, ``tier`` or ``experiment`` mean."""

    @property
    def known(self) -> bool:
        return self.total_usd is not None

    def for_run(self, label: str) -> float:
        """The run's estimate; 0 when unknown (the actual spend still caps the repair)."""
        return self.per_run.get(label, 0.0)

    def line(self) -> str:
        """The one line the dry run prints."""
        if not self.reruns:
            return f"Estimated cost of this repair: $0.00 (no agent reruns; {NOT_INCLUDED})"
        if self.total_usd is None:
            return (
                f"Estimated cost of this repair: unknown ({self.reruns} reruns; no completed run "
                f"records a cost to learn from; {NOT_INCLUDED})"
            )
        mean = self.total_usd / self.reruns
        return (
            f"Estimated cost of this repair: ${self.total_usd:.2f} ({self.reruns} reruns x "
            f"${mean:.4f} mean of {self.sample_size} completed runs; {NOT_INCLUDED})"
        )


class _CostSample:
    """Completed-run costs, read on first use and grouped by subtest, tier and experiment."""

    def __init__(self, layout: ExperimentLayout, completed: Iterable[RunEntry]) -> None:
        self.layout = layout
        self.by_subtest: dict[tuple[str, str], list[RunEntry]] = {}
        for entry in completed:
            self.by_subtest.setdefault((entry.tier, entry.subtest), []).append(entry)
        self._costs: dict[str, float | None] = {}

    def _cost(self, entry: RunEntry) -> float | None:
        if entry.run not in self._costs:
            self._costs[entry.run] = completed_run_cost(self.layout, entry)
        return self._costs[entry.run]

    def mean(self, entries: Iterable[RunEntry]) -> float | None:
        costs = [c for c in map(self._cost, entries) if c is not None]
        return sum(costs) / len(costs) if costs else None

    def subtest_mean(self, tier: str, subtest: str) -> float | None:
        return self.mean(self.by_subtest.get((tier, subtest), ()))

    def tier_mean(self, tier: str) -> float | None:
        return self.mean(e for (t, _), group in self.by_subtest.items() if t == tier for e in group)

    def experiment_mean(self) -> float | None:
        return self.mean(e for group in self.by_subtest.values() for e in group)

    @property
    def read(self) -> int:
        return sum(1 for c in self._costs.values() if c is not None)


def _mean_for(sample: _CostSample, tier: str, subtest: str) -> tuple[float | None, str]:
    """The subtest's mean, else the tier's, else the experiment's, with which one it was."""
    mean = sample.subtest_mean(tier, subtest)
    if mean is not None:
        return mean, "subtest"
    mean = sample.tier_mean(tier)
    if mean is not None:
        return mean, "tier"
    mean = sample.experiment_mean()
    return (mean, "experiment") if mean is not None else (None, "none")


def estimate_repair_cost(report: ScanReport, layout: ExperimentLayout | None = None) -> CostEstimate:
    """Estimate the agent cost of repairing ``report.to_rerun()`` (see the module docstring)."""
    layout = layout or ExperimentLayout(Path(report.experiment))
    reruns = report.to_rerun()
    estimate = CostEstimate(reruns=len(reruns))
    if not reruns:
        estimate.total_usd = 0.0
        return estimate
    sample = _CostSample(layout, (e for e in report.entries if e.status is RunStatus.COMPLETED))
    means: dict[tuple[str, str], tuple[float | None, str]] = {}
    for entry in reruns:
        group = (entry.tier, entry.subtest)
        if group not in means:
            means[group] = _mean_for(sample, entry.tier, entry.subtest)
        value, basis = means[group]
        if value is not None:
            estimate.per_run[entry.run] = value
            estimate.basis[basis] = estimate.basis.get(basis, 0) + 1
    estimate.sample_size = sample.read
    # The experiment-wide fallback prices every run as soon as one completed run has a cost.
    estimate.total_usd = sum(estimate.per_run.values()) if estimate.per_run else None
    return estimate
