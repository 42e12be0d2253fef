"""Wall-clock fields of the aggregates: kept from the previous files, else approximated from timings.

Wall-clock fields are not functions of the run results. When the previous file exists its
values are kept (it is backed up anyway), and the runs' timing files are not even read
(:func:`tier_clock_known`, :func:`experiment_clock_known`). When it is gone they are approximated from the timing
files, and the rebuild reports which fields are approximations:

* tier ``total_duration`` = the span from the earliest agent start (``agent/timing.json``
  ``measured_at`` − ``agent_duration_seconds``) to the latest judge end (``judge/timing.json``
  ``measured_at``) over the tier's runs. It leaves out the workspace setup before the first
  agent and the report writing after the last judge: 2.5-3.6 % (4-8 s) short on the sample.
* experiment ``started_at`` = the checkpoint's ``started_at`` (3 ms off on the sample), else the
  earliest agent start; ``completed_at`` = the latest judge end (10 ms off);
  ``total_duration_seconds`` = their difference (13 ms off).
* tier ``inherited_from`` (T5/T6) is not recorded anywhere else: kept from the previous file,
  else null.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiment import aggregate
from experiment.layout import ExperimentLayout, RunPaths
from experiment.models import ExperimentResult, TierResult, utc_now_iso
from experiment.regenerate.files import read_dict

Interval = tuple[datetime, datetime]
"""(agent start, judge end) of one run."""


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (naive ones taken as UTC), or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run_interval(run_dir: str) -> Interval | None:
    """(agent start, judge end) of the run in ``run_dir`` from its timing files, or None when
    unknown; by string paths (it runs for every run of an aggregate rebuild)."""
    agent = read_dict(f"{run_dir}/agent/timing.json")
    if not agent:
        return None
    agent_end = parse_time(agent.get("measured_at"))
    if agent_end is None:
        return None
    start = agent_end.timestamp() - float(agent.get("agent_duration_seconds") or 0.0)
    judge = read_dict(f"{run_dir}/judge/timing.json") or {}
    end = parse_time(judge.get("measured_at"))
    if end is None:
        paths = RunPaths(Path(run_dir))
        slot_ends = [
            t
            for slot in paths.judge_slots_on_disk()
            if (t := parse_time((read_dict(paths.judge_slot(slot) / "timing.json") or {}).get("measured_at")))
        ]
        end = max(slot_ends) if slot_ends else agent_end
    return datetime.fromtimestamp(start, UTC), end


def _previous_summary(report_path: Path) -> dict[str, Any]:
    """The ``summary`` object of a previous ``report.json`` (empty when there is none)."""
    summary = (read_dict(report_path) or {}).get("summary")
    return summary if isinstance(summary, dict) else {}


def _reported_tier_duration(layout: ExperimentLayout, tier: str) -> float | None:
    """The ``total_duration`` of the tier's previous ``report.json`` (or of its stale copy)."""
    stale = layout.stale_tier_dir(tier)
    old = _previous_summary(layout.tier_file(tier, "report.json")).get("total_duration")
    if old is None and stale is not None:
        old = _previous_summary(stale / "report.json").get("total_duration")
    return float(old) if isinstance(old, int | float) else None


def tier_clock_known(layout: ExperimentLayout, tier: str, previous: TierResult | None) -> bool:
    """Whether :func:`tier_clock` keeps a previous value (so the runs' timing files are not needed)."""
    return previous is not None or _reported_tier_duration(layout, tier) is not None


def tier_clock(
    layout: ExperimentLayout,
    tier: str,
    previous: TierResult | None,
    intervals: list[Interval],
    approximated: list[str],
) -> tuple[float, Any]:
    """(total_duration, inherited_from) of a rebuilt tier; appends to ``approximated`` what it guessed."""
    if previous is not None:
        return previous.total_duration, previous.inherited_from
    reported = _reported_tier_duration(layout, tier)
    if reported is not None:
        return reported, None
    approximated.append(f"{tier}/result.json total_duration")
    return aggregate.wall_span(intervals), None


def _reported_experiment_clock(layout: ExperimentLayout) -> tuple[str, str | None, float] | None:
    """(started_at, completed_at, total seconds) of the experiment's previous ``report.json``."""
    old = _previous_summary(layout.experiment_file("report.json"))
    if old.get("started_at") and isinstance(old.get("total_duration"), int | float):
        return old["started_at"], old.get("completed_at"), float(old["total_duration"])
    return None


def experiment_clock_known(layout: ExperimentLayout, previous: ExperimentResult | None) -> bool:
    """Whether :func:`experiment_clock` keeps previous values (so no run's timing is needed)."""
    return (
        bool(previous is not None and previous.started_at) or _reported_experiment_clock(layout) is not None
    )


def experiment_clock(
    layout: ExperimentLayout,
    previous: ExperimentResult | None,
    intervals: list[Interval],
    tiers: dict[str, TierResult],
    approximated: list[str],
) -> tuple[str, str | None, float]:
    """(started_at, completed_at, total seconds) of the experiment; appends what it guessed."""
    if previous is not None and previous.started_at:
        return previous.started_at, previous.completed_at, previous.total_duration_seconds
    old = _reported_experiment_clock(layout)
    if old is not None:
        return old
    approximated += [
        "result.json started_at",
        "result.json completed_at",
        "result.json total_duration_seconds",
    ]
    started, completed, seconds = _approximate_experiment_clock(layout, intervals, tiers)
    # ProjectScylla's ExperimentResult.started_at is a string (null is rejected); it defaults to
    # the moment the result is built, which is what an unknown start becomes here (kept after).
    return started or completed or utc_now_iso(), completed, seconds


def _approximate_experiment_clock(
    layout: ExperimentLayout,
    intervals: list[Interval],
    tiers: dict[str, TierResult],
) -> tuple[str | None, str | None, float]:
    """(started_at, completed_at, total seconds) approximated from the checkpoint and timing files."""
    checkpoint = read_dict(layout.checkpoint_path) or {}
    start = parse_time(checkpoint.get("started_at"))
    if start is None and intervals:
        start = min(i[0] for i in intervals)
    end = max((i[1] for i in intervals), default=None)
    if start is None or end is None:
        return (
            start.isoformat() if start else None,
            end.isoformat() if end else None,
            sum(t.total_duration for t in tiers.values()),
        )
    return start.isoformat(), end.isoformat(), max(0.0, (end - start).total_seconds())
