"""Rerun flow: find the broken runs of one experiment, re-run them, rebuild its results.

    rerun-agents EXPERIMENT_DIR [--status failed] [--tier T0] [--max-concurrent 4] ...
    prefect deployment run 'rerun-agents/rerun-agents' --param experiment_dir=/path/to/exp

Failed, partial and missing runs get a fresh agent and judges (the old attempt is archived under
``.failed/``); ``results`` runs are regenerated from their logs, with only their missing judges
re-run; completed runs are never touched. Resume after a crash by running the same command again.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from prefect import flow, unmapped
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from experiment.attempt import current_repair_id, finish_repair
from experiment.cost import estimate_repair_cost
from experiment.guardrails import RerunGate
from experiment.locks import RepairLock
from experiment.preflight import check_can_repair
from experiment.scan import RunEntry, ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from flows.scan import scan_experiment
from operations.agent import AgentSettings
from operations.judge.system_prompt import system_prompt_for, tiers_starts
from operations.outcome import RunRepair
from operations.settings import RepairSettings
from operations.summary import RepairSummary
from tasks.artifacts import ProgressArtifact, publish_markdown
from tasks.checkpoint import settle_checkpoint_task
from tasks.limits import ensure_limits, release_all
from tasks.regenerate import rebuild_aggregates_task
from tasks.repair import repair_run
from tasks.retry import schedule_resume
from tasks.steps import provider_limits

WORKERS = int(os.environ.get("SCYLLA_REPAIR_WORKERS", "32"))
"""Runs in flight at once (threads); agents and judges are further limited by the budget."""


@flow(
    name="rerun-agents",
    flow_run_name="repair {experiment_dir}",
    task_runner=ThreadPoolTaskRunner(max_workers=WORKERS),
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
    estimate = estimate_repair_cost(report)
    print(estimate.line())
    context = load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)
    system_prompt = system_prompt_for(context, judge_system_prompt, tiers_dir)  # a wrong file stops here
    todo = report.to_rerun() + report.to_regenerate()
    fallback = todo and not system_prompt.comparable
    judge_notes = [system_prompt.not_comparable_note(tiers_starts(context, tiers_dir))] if fallback else []
    if dry_run:
        return RepairSummary(
            experiment=report.experiment,
            dry_run=True,
            before=report,
            estimated_cost_usd=estimate.total_usd,
            notes=list(judge_notes),
        )
    check_can_repair(context, needs_agents=bool(report.to_rerun()))
    with RepairLock(context.layout).hold(description="rerun-agents"):
        repair_id, resumed = current_repair_id(context.layout.prefect_dir)
        settings = RepairSettings(
            experiment_dir=str(context.root),
            repair_id=repair_id,
            tiers_dir=tiers_dir,
            agent=AgentSettings.from_config(
                context.config, command=agent_command, claude_binary=claude_binary
            ),
            judge_base_url=judge_base_url,
            judge_system_prompt=system_prompt.path if system_prompt.source == "option" else None,
            max_agents=max_concurrent,
            judge_rpm=judge_rpm,
            max_in_flight=max_in_flight or max(8, 2 * max_concurrent),
            max_cost_usd=max_cost,
        )
        ensure_limits(provider_limits(settings))  # Prefect global limits, shared per provider
        progress = ProgressArtifact(experiment_dir, len(todo), f"{len(todo)} runs to repair")
        gate = RerunGate(max_cost, circuit_breaker, estimate.per_run)
        results = []
        for record in repair_runs(settings, todo, gate):
            results.append(record)
            progress.advance(failed=record.outcome == "failed", cost=record.cost_usd)
        release_all()  # give the Prefect slots back now, while the API is certainly up
        rebuilt = False
        if not skip_regenerate and todo:
            rebuild_aggregates_task(str(context.root))
            rebuilt = True
        summary = RepairSummary(
            experiment=report.experiment,
            before=report,
            runs=results,
            aggregates_rebuilt=rebuilt,
            estimated_cost_usd=estimate.total_usd,
            stopped=gate.halted,
            notes=list(judge_notes),
        )
        if gate.halted:
            summary.notes.append(f"Stopped starting new reruns: {gate.halted}.")
        if resumed:
            summary.notes.append(f"Resumed the unfinished repair {repair_id}.")
        deferred = [r.resume_at for r in results if r.resume_at]
        if deferred:
            summary.resume_at = max(deferred)
            summary.resume_scheduled = schedule_resume(summary.resume_at)
            when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(summary.resume_at))
            summary.notes.append(
                f"Quota window: resumes automatically at {when} (flow run {summary.resume_scheduled})."
                if summary.resume_scheduled
                else f"Quota window: run the same command again after {when}."
            )
        else:
            finish_repair(context.layout.prefect_dir, repair_id)
    summary.after = scan_in_process(
        context, ScanFilters(tuple(tiers or ()), tuple(subtests or ()), tuple(runs or ()))
    )
    whole_experiment = not (tiers or subtests or runs)
    nothing_left = summary.after.counts["completed"] == summary.after.total_expected
    completed = [e.run for e in summary.after.entries if e.status is RunStatus.COMPLETED]
    settle_checkpoint_task(experiment_dir, whole_experiment and nothing_left, completed)
    publish_markdown("repair-summary", experiment_dir, summary.markdown(), f"Repair of {experiment_dir}")
    return summary


def repair_runs(settings: RepairSettings, todo: list[RunEntry], gate: RerunGate) -> Iterator[RunRepair]:
    """Repair ``todo`` and yield each run's record as it finishes.

    Without a cost cap or circuit breaker every run is mapped at once. With one, the agent
    reruns are fed through the gate, no more at a time than there are agent slots, so a tripped
    guard leaves every run not yet started untouched (recorded as ``deferred``).
    """
    if not gate.active:
        yield from (
            f.result()
            for f in repair_run.map(unmapped(settings), [e.run for e in todo], [e.status for e in todo])
        )
        return
    regenerate = [e for e in todo if not e.status.needs_agent]
    regenerating = repair_run.map(
        unmapped(settings), [e.run for e in regenerate], [e.status for e in regenerate]
    )
    pending = deque(e for e in todo if e.status.needs_agent)
    in_flight: dict = {}
    while pending or in_flight:
        while pending and len(in_flight) < settings.max_agents and gate.may_start():
            entry = pending.popleft()
            gate.started(entry.run)
            in_flight[repair_run.submit(settings, entry.run, entry.status)] = entry
        if not in_flight:
            break
        future = next(as_completed(list(in_flight)))
        record = future.result()
        gate.finished(
            in_flight.pop(future).run, record.outcome, record.cost_usd, record.failure_class, record.reason
        )
        yield record
    if pending:
        gate.halted = gate.stopped
        for entry in pending:
            yield RunRepair(
                run=entry.run, action="rerun", outcome="deferred", reason=f"not started: {gate.halted}"
            )
    yield from (f.result() for f in regenerating)
