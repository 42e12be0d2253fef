"""Rerun flow: find the broken runs of one experiment, re-run them, rebuild its results.

    rerun-agents EXPERIMENT_DIR [--status failed] [--tier T0] [--max-concurrent 4] ...
    prefect deployment run 'rerun-agents/rerun-agents' --param experiment_dir=/path/to/exp

Failed, partial and missing runs get a fresh agent and judges (the old attempt is archived under
``.failed/``); ``results`` runs are regenerated from their logs, with only their missing judges
re-run; completed runs are never touched. Resume after a crash by running the same command again.
The steps longer than a line live in :mod:`flows._rerun`.

The flow run ends **Failed** with "N of M reruns failed" exactly when the CLI exits 1 (at least
one rerun failed), its data still the :class:`RepairSummary`: call it with ``return_state=True``
and read the summary with :func:`summary_of`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Failed
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
from operations.judge.system_prompt import judge_system_prompt_choice
from operations.summarize import dry_run_summary, repair_summary
from operations.summary import RepairSummary
from operations.unstarted import sweep_discarded
from tasks.artifacts import publish_classification, publish_markdown
from tasks.checkpoint import settle_from_scan
from tasks.limits import ensure_limits, release_all, warm_agent_slots
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
    judge_system_prompt: str | None = None,
) -> RepairSummary:
    """Repair one experiment; every CLI option of ``rerun-agents`` is a parameter.

    ``judge_system_prompt`` is the judges' system prompt file; by default the ProjectScylla
    checkout's ``config/judge/system_prompt.md`` found from the tiers dir, else our fallback, which
    the summary then says makes the re-judged runs not comparable with the others."""
    report = scan_experiment(experiment_dir, tiers, subtests, runs, statuses, tiers_dir)
    publish_classification(report)  # on the repair's own Artifacts tab too, not only the scan's
    estimate = estimate_repair_cost(report)
    print(estimate.line())
    context = load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)
    todo = report.to_rerun() + report.to_regenerate()
    system_prompt, judge_notes = judge_system_prompt_choice(
        context, judge_system_prompt, tiers_dir, bool(todo)
    )
    if dry_run:
        return dry_run_summary(report, estimate.total_usd, notes=judge_notes)
    check_can_repair(context, report)
    with RepairLock(context.layout).hold(description="rerun-agents"):
        sweep_discarded(context.layout)  # fresh dirs a forced exit put aside last time
        repair_id, resumed = current_repair_id(context.layout.prefect_dir)
        settings = repair_settings(
            context,
            repair_id,
            tiers_dir=tiers_dir,
            agent_command=agent_command,
            claude_binary=claude_binary,
            judge_base_url=judge_base_url,
            judge_system_prompt=system_prompt.path if system_prompt.source == "option" else None,
            max_concurrent=max_concurrent,
            judge_rpm=judge_rpm,
            max_in_flight=max_in_flight,
            max_cost=max_cost,
        )
        limits = ensure_limits(provider_limits(settings))  # Prefect global limits, shared per provider
        warm_agent_slots(limits, len(report.to_rerun()))  # before the task burst
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
            notes=judge_notes,
        )
        resume_or_finish(summary, context.layout.prefect_dir, repair_id)
    filters = ScanFilters(tuple(tiers or ()), tuple(subtests or ()), tuple(runs or ()))
    summary.after = scan_in_process(context, filters)
    settle_from_scan(experiment_dir, summary.after, whole_experiment=not (tiers or subtests or runs))
    publish_markdown("repair-summary", experiment_dir, summary.markdown(), f"Repair of {experiment_dir}")
    if summary.failed:  # what the CLI's exit 1 means, in the flow run's own state
        reruns = sum(1 for r in summary.runs if r.action == "rerun")
        return Failed(message=f"{summary.failed} of {reruns} reruns failed", data=summary)  # type: ignore[return-value]
    return summary


def summary_of(state: State[Any]) -> RepairSummary:
    """The summary of a finished ``rerun_agents`` run (``return_state=True``), Failed included;
    a flow that crashed before summarising raises its error."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, RepairSummary):
        return value
    if isinstance(value, BaseException):
        raise value
    raise RuntimeError(f"rerun-agents ended {state.name} without a summary: {state.message}")
