"""Rerun flow: find the broken runs of one experiment, re-run them, rebuild its results.

    rerun-agents EXPERIMENT_DIR [--status failed] [--tier T0] [--max-concurrent 4] ...
    prefect deployment run 'rerun-agents/rerun-agents' --param experiment_dir=/path/to/exp

Failed, partial and missing runs get a fresh agent and judges (the old attempt is archived under
``.failed/``); ``results`` runs are regenerated from their logs, with only their missing judges
re-run; completed runs are never touched. Resume after a crash by running the same command again.
The steps longer than a line live in :mod:`flows._rerun`.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from experiment.attempt import current_repair_id
from experiment.cost import estimate_repair_cost
from experiment.guardrails import RerunGate
from experiment.locks import RepairLock
from experiment.preflight import check_can_repair
from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from flows._rerun import repair_settings, repair_with_progress, resume_or_finish
from flows.scan import scan_experiment
from operations.summarize import dry_run_summary, repair_summary
from operations.summary import RepairSummary
from tasks.artifacts import publish_markdown
from tasks.checkpoint import settle_from_scan
from tasks.limits import ensure_limits, release_all
from tasks.regenerate import rebuild_aggregates_task
from tasks.steps import provider_limits

WORKERS = int(os.environ.get("SCYLLA_REPAIR_WORKERS", "32"))
"""Runs in flight at once (threads); agents and judges are further limited by the budget."""


@flow(
    name="rerun-agents",
    flow_run_name="repair {experiment_dir}",
    task_runner=ThreadPoolTaskRunner(max_workers=WORKERS),  # type: ignore[arg-type]  # Prefect's generic
    log_prints=True,
)
def rerun_agents(
    experiment_dir: str,
    statuses: list[RunStatus] | None = None,
    tiers: list[str] | None = None,
    subtests: list[str] | None = None,
    runs: list[int] | None = None,
    tiers_dir: str | None = None,
    skip_regenerate: bool = False,
    dry_run: bool = False,
    max_concurrent: int = 4,
    judge_rpm: int | None = None,
    max_in_flight: int | None = None,
    max_cost: float | None = None,
    circuit_breaker: int | None = None,
    agent_command: list[str] | None = None,
    claude_binary: str = "claude",
    judge_base_url: str | None = None,
) -> RepairSummary:
    """Repair one experiment; every CLI option of ``rerun-agents`` is a parameter."""
    report = scan_experiment(experiment_dir, tiers, subtests, runs, statuses, tiers_dir)
    estimate = estimate_repair_cost(report)
    print(estimate.line())
    if dry_run:
        return dry_run_summary(report, estimate.total_usd)
    context = load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)
    todo = report.to_rerun() + report.to_regenerate()
    check_can_repair(context, report)
    with RepairLock(context.layout).hold(description="rerun-agents"):
        repair_id, resumed = current_repair_id(context.layout.prefect_dir)
        settings = repair_settings(
            context,
            repair_id,
            tiers_dir=tiers_dir,
            agent_command=agent_command,
            claude_binary=claude_binary,
            judge_base_url=judge_base_url,
            max_concurrent=max_concurrent,
            judge_rpm=judge_rpm,
            max_in_flight=max_in_flight,
            max_cost=max_cost,
        )
        ensure_limits(provider_limits(settings))  # Prefect global limits, shared per provider
        gate = RerunGate(max_cost, circuit_breaker, estimate.per_run)
        results = repair_with_progress(settings, todo, gate, experiment_dir)
        release_all()  # give the Prefect slots back now, while the API is certainly up
        rebuilt = not skip_regenerate and bool(todo)
        if rebuilt:
            rebuild_aggregates_task(str(context.root))
        summary = repair_summary(
            report,
            results,
            aggregates_rebuilt=rebuilt,
            estimated_cost_usd=estimate.total_usd,
            stopped=gate.halted,
            resumed_repair_id=repair_id if resumed else None,
        )
        resume_or_finish(summary, context.layout.prefect_dir, repair_id)
    filters = ScanFilters(tuple(tiers or ()), tuple(subtests or ()), tuple(runs or ()))
    summary.after = scan_in_process(context, filters)
    settle_from_scan(experiment_dir, summary.after, whole_experiment=not (tiers or subtests or runs))
    publish_markdown("repair-summary", experiment_dir, summary.markdown(), f"Repair of {experiment_dir}")
    return summary
