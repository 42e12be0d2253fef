"""Which runs an experiment should have: tiers x subtests x run numbers.

The original enumerated subtests from the *current* fixture tree only, so an experiment that ran
against older fixtures showed phantom ``missing`` runs (spec §2.2). We combine two sources:

* what the experiment records: subtest dirs on disk and the checkpoint's entries;
* the tiers dir (``--tiers-dir`` or auto-detected), for subtests that have not started yet.

A tier that the experiment records as finished (its ``T<n>/result.json`` exists, or the
checkpoint says the tier is past running its subtests) is closed: subtests that appear only in
the tiers dir were added after the experiment ran and are not expected. ``max_subtests`` keeps
the first N subtest ids, as the original does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from experiment.fast_json import loads
from experiment.layout import SUBTEST_DIR, ExperimentLayout, RunKey

_FINISHED_TIER_STATES = {"subtests_complete", "best_selected", "reports_generated", "complete"}


@dataclass
class CheckpointView:
    """The read-only parts of ``checkpoint.json`` that enumeration needs (any version)."""

    subtests: dict[str, set[str]] = field(default_factory=dict)
    finished_tiers: set[str] = field(default_factory=set)
    problem: str | None = None

    @classmethod
    def read(cls, path: Path) -> CheckpointView:
        view = cls()
        if not path.is_file():
            return view
        try:
            data = loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            view.problem = f"checkpoint.json unreadable ({exc.__class__.__name__}); using the files on disk"
            return view
        if not isinstance(data, dict):
            view.problem = "checkpoint.json is not a JSON object; using the files on disk"
            return view
        for key in ("completed_runs", "run_states", "subtest_states"):
            for tier, subtests in (data.get(key) or {}).items():
                if isinstance(subtests, dict):
                    view.subtests.setdefault(tier, set()).update(
                        s for s in subtests if SUBTEST_DIR.match(str(s))
                    )
        for tier, state in (data.get("tier_states") or {}).items():
            if state in _FINISHED_TIER_STATES:
                view.finished_tiers.add(tier)
        return view


def expected_subtests(
    layout: ExperimentLayout,
    tiers_to_run: list[str],
    max_subtests: int | None,
    tiers_dir_subtests: dict[str, list[str]] | None,
    checkpoint: CheckpointView,
) -> dict[str, list[str]]:
    """Subtest ids per tier, in tier order (see the module docstring for the rules)."""
    result: dict[str, list[str]] = {}
    for tier in tiers_to_run:
        recorded = set(layout.recorded_subtests(tier)) | checkpoint.subtests.get(tier, set())
        finished = tier in checkpoint.finished_tiers or layout.tier_file(tier, "result.json").is_file()
        candidates = set(recorded)
        if tiers_dir_subtests is not None and not (finished and recorded):
            candidates |= set(tiers_dir_subtests.get(tier, []))
        ordered = sorted(candidates)
        if max_subtests is not None:
            ordered = ordered[:max_subtests]
        result[tier] = ordered
    return result


def expected_runs(subtests: dict[str, list[str]], runs_per_subtest: int) -> list[RunKey]:
    """Every expected run, tier by tier, subtest by subtest, run by run."""
    return [
        RunKey(tier, subtest, number)
        for tier, ids in subtests.items()
        for subtest in ids
        for number in range(1, runs_per_subtest + 1)
    ]
