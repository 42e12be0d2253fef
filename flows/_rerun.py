"""The steps of the ``rerun-agents`` flow that need more than one line, kept out of its body.

:mod:`flows.rerun_agents` reads as the pipeline (scan, preflight, lock, mapped repairs,
aggregates, checkpoint, summary); how the settings are built, how the runs are fed to the
workers past the guardrails, and how a quota window ends the repair live here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

from prefect import unmapped
from prefect.futures import PrefectFuture, as_completed

from experiment.attempt import finish_repair
from experiment.guardrails import RerunGate
from experiment.scan import ExperimentContext, RunEntry
from operations.agent import AgentSettings
from operations.outcome import RunRepair
from operations.settings import RepairSettings
from operations.summarize import latest_resume_at, note_resume
from operations.summary import RepairSummary
from tasks.artifacts import ProgressArtifact
from tasks.repair import record_of, repair_run
from tasks.retry import schedule_resume


def repair_settings(
    context: ExperimentContext,
    repair_id: str,
    *,
    tiers_dir: str | None,
    agent_command: list[str] | None,
    claude_binary: str,
    judge_base_url: str | None,
    judge_system_prompt: str | None,
    max_concurrent: int,
    judge_rpm: int | None,
    max_in_flight: int | None,
    max_cost: float | None,
) -> RepairSettings:
    """The settings every task of this repair gets, from the flow's parameters (no secrets)."""
    return RepairSettings(
        experiment_dir=str(context.root),
        repair_id=repair_id,
        tiers_dir=tiers_dir,
        agent=AgentSettings.from_config(context.config, command=agent_command, claude_binary=claude_binary),
        judge_base_url=judge_base_url,
        judge_system_prompt=judge_system_prompt,
        max_agents=max_concurrent,
        judge_rpm=judge_rpm,
        max_in_flight=max_in_flight or max(8, 2 * max_concurrent),
        max_cost_usd=max_cost,
    )


def repair_with_progress(
    settings: RepairSettings, todo: list[RunEntry], gate: RerunGate, experiment_dir: str
) -> list[RunRepair]:
    """Repair ``todo`` (see :func:`repair_runs`), advancing the progress bars as each run finishes."""
    progress = ProgressArtifact(experiment_dir, len(todo), f"{len(todo)} runs to repair")
    results = []
    with progress.receiving(settings.repair_id):  # each task reports its run as it ends
        for record in repair_runs(settings, todo, gate):
            results.append(record)
            progress.advance(record.run, record.outcome, cost=record.cost_usd)  # no-op if counted
    order = {entry.run: index for index, entry in enumerate(todo)}
    return sorted(results, key=lambda r: order.get(r.run, len(order)))  # as finished -> as listed


def repair_runs(settings: RepairSettings, todo: list[RunEntry], gate: RerunGate) -> Iterator[RunRepair]:
    """Repair ``todo`` and yield each run's record as soon as it finishes (completion order).

    Without a cost cap or circuit breaker every run is mapped at once. With one, the agent
    reruns are fed through the gate, no more at a time than there are agent slots, so a tripped
    guard leaves every run not yet started untouched (recorded as ``deferred``).
    """
    if not gate.active:
        futures = repair_run.map(unmapped(settings), [e.run for e in todo], [e.status for e in todo])
        yield from (record_of(f) for f in as_completed(list(futures)))
        return
    regenerate = [e for e in todo if not e.status.needs_agent]
    waiting: dict[PrefectFuture[RunRepair], RunEntry | None] = dict.fromkeys(
        repair_run.map(unmapped(settings), [e.run for e in regenerate], [e.status for e in regenerate])
    )  # regenerations (None) and gated agent reruns (their entry), whichever finishes first
    pending = deque(e for e in todo if e.status.needs_agent)
    while pending or waiting:
        agents = sum(1 for entry in waiting.values() if entry is not None)
        while pending and agents < settings.max_agents and gate.may_start():
            entry = pending.popleft()
            gate.started(entry.run)
            waiting[repair_run.submit(settings, entry.run, entry.status)] = entry
            agents += 1
        if not waiting:
            break
        future = next(as_completed(list(waiting)))
        finished, record = waiting.pop(future), record_of(future)
        if finished is not None:
            gate.finished(finished.run, record.outcome, record.cost_usd, record.failure_class, record.reason)
        yield record
    if pending:
        gate.halted = gate.stopped
        for entry in pending:
            yield RunRepair(
                run=entry.run, action="rerun", outcome="deferred", reason=f"not started: {gate.halted}"
            )


def resume_or_finish(summary: RepairSummary, prefect_dir: Path, repair_id: str) -> None:
    """End the repair: after a quota window, schedule (or tell the user about) its resume;
    otherwise mark it finished, so the next repair gets a new id."""
    resume_at = latest_resume_at(summary.runs)
    if resume_at is None:
        finish_repair(prefect_dir, repair_id)
        return
    note_resume(summary, resume_at, schedule_resume(resume_at))
