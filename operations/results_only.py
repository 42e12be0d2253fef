"""A repair that needs no agent and no judge, done in-process without Prefect.

Why: when the scan finds no run needing an agent and regenerating the ``results`` runs leaves
no judge slot to fill, the ``rerun-agents`` flow would only regenerate files, which
``regenerate-results`` does in-process in a second; starting Prefect and a flow run for it cost
~20 s (issue 13). This module runs the same steps as the flow, in the same order, with the same
functions: the repair lock, the repair id, each run's regeneration and checkpoint entry (the
flow's finalize step), the aggregates, the finished-repair record, the final scan and the
checkpoint settling. It gives up (returns None, having changed only what the flow's first
finalize would have changed) as soon as a run needs judges or ends in anything but
regenerated/unchanged: the flow then does the rest, with its retries and budget.
"""

from __future__ import annotations

from experiment.attempt import current_repair_id, finish_repair
from experiment.backups import backup_stamp
from experiment.layout import RunKey
from experiment.locks import RepairLock, update_checkpoint
from experiment.regenerate import RunRegeneration, apply_to_checkpoint, rebuild_aggregates, regenerate_run
from experiment.scan import ExperimentContext, ScanFilters, ScanReport, scan_in_process
from operations.outcome import RunRepair
from operations.settle import settle_from_scan
from operations.summarize import repair_summary
from operations.summary import RepairSummary


def _finalize(context: ExperimentContext, key: RunKey, stamp: str) -> RunRegeneration:
    """One run's regeneration and checkpoint entry: the flow's ``finalize`` step, without Prefect."""
    regeneration = regenerate_run(context.root, key, judge_models=context.config.judge_models, stamp=stamp)
    outcome = regeneration.checkpoint_outcome
    if outcome is not None:
        update_checkpoint(
            context.layout, context.config, lambda checkpoint: apply_to_checkpoint(checkpoint, key, outcome)
        )
    return regeneration


def repair_results_only(
    context: ExperimentContext,
    filters: ScanFilters,
    report: ScanReport,
    *,
    skip_regenerate: bool,
    estimated_cost_usd: float | None,
    notes: list[str] | None = None,
) -> RepairSummary | None:
    """The repair of ``report`` when it needs no agent and no judge; None when it does (use the flow)."""
    if report.to_rerun():
        return None
    todo = report.to_regenerate()
    judges = len(context.config.judge_models)
    with RepairLock(context.layout).hold(description="rerun-agents (results only)"):
        repair_id, resumed = current_repair_id(context.layout.prefect_dir)
        stamp = backup_stamp()
        results = []
        for entry in todo:
            done = _finalize(context, RunKey.parse(entry.run), stamp)
            if done.outcome not in ("regenerated", "unchanged") or done.missing_judge_slots:
                return None  # judges (or a closer look) needed: the flow takes over from here
            results.append(
                RunRepair(run=entry.run, action="regenerate", outcome="regenerated", judges_valid=judges)
            )
        rebuilt = not skip_regenerate and bool(todo)
        if rebuilt:
            rebuild_aggregates(context.root)
        summary = repair_summary(
            report,
            results,
            aggregates_rebuilt=rebuilt,
            estimated_cost_usd=estimated_cost_usd,
            stopped=None,
            resumed_repair_id=repair_id if resumed else None,
            notes=notes,
        )
        finish_repair(context.layout.prefect_dir, repair_id)
    summary.after = scan_in_process(context, ScanFilters(filters.tiers, filters.subtests, filters.runs))
    whole = not (filters.tiers or filters.subtests or filters.runs)
    settle_from_scan(str(context.root), summary.after, whole_experiment=whole)
    return summary
