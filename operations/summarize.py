"""Assemble a repair's :class:`~operations.summary.RepairSummary` and the notes it shows the user.

The flow only says what happened (the scan, the run records, whether the aggregates were
rebuilt, why the gate stopped, whether this repair resumed an unfinished one); the wording of
every note lives here, next to the summary it belongs to, so the CLI, the UI artifact and the
nightly table all read the same sentences.
"""

from __future__ import annotations

import time

from experiment.scan import ScanReport
from operations.outcome import RunRepair
from operations.summary import RepairSummary


def dry_run_summary(
    report: ScanReport, estimated_cost_usd: float | None, notes: list[str] | None = None
) -> RepairSummary:
    """The summary of a dry run: the classification and the estimate, nothing changed."""
    return RepairSummary(
        experiment=report.experiment,
        dry_run=True,
        before=report,
        estimated_cost_usd=estimated_cost_usd,
        notes=list(notes or ()),
    )


def repair_summary(
    report: ScanReport,
    runs: list[RunRepair],
    *,
    aggregates_rebuilt: bool,
    estimated_cost_usd: float | None,
    stopped: str | None,
    resumed_repair_id: str | None,
    notes: list[str] | None = None,
) -> RepairSummary:
    """The summary of a repair that ran: its run records, and a note for a stop or a resume."""
    summary = RepairSummary(
        experiment=report.experiment,
        before=report,
        runs=runs,
        aggregates_rebuilt=aggregates_rebuilt,
        estimated_cost_usd=estimated_cost_usd,
        stopped=stopped,
        notes=list(notes or ()),
    )
    if stopped:
        summary.notes.append(f"Stopped starting new reruns: {stopped}.")
    if resumed_repair_id:
        summary.notes.append(f"Resumed the unfinished repair {resumed_repair_id}.")
    return summary


def latest_resume_at(runs: list[RunRepair]) -> float | None:
    """When every run deferred by a quota window can resume (epoch s); None if none was deferred."""
    deferred = [r.resume_at for r in runs if r.resume_at]
    return max(deferred) if deferred else None


def note_resume(summary: RepairSummary, resume_at: float, scheduled: str | None) -> None:
    """Record when the repair resumes: automatically (``scheduled`` flow run id) or by the user."""
    summary.resume_at = resume_at
    summary.resume_scheduled = scheduled
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(resume_at))
    summary.notes.append(
        f"Quota window: resumes automatically at {when} (flow run {scheduled})."
        if scheduled
        else f"Quota window: run the same command again after {when}."
    )
