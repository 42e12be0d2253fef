"""Nightly repair: fix whatever broke during the day, in every experiment under a root.

    prefect deployment run 'nightly-repair/nightly-repair' --param experiments_root='"/data/fullruns"'
    python -m flows.nightly_repair /data/fullruns          # once, in-process

The ``nightly-repair`` deployment runs this at 03:00 (``prefect.yaml``). Each experiment that
needs work is repaired by the ``rerun-agents`` flow as its own subflow, one experiment after the
other, so there is never more than one repair per experiment (the experiment's repair lock also
refuses a manual repair running at the same time: that experiment is skipped tonight). Guardrails:

* ``statuses``: what to repair; by default failed, partial and results runs. Missing runs are
  left alone because an experiment still being run by ProjectScylla has runs that are merely
  not started yet; ``min_idle_minutes`` skips experiments whose checkpoint changed recently.
* ``max_cost``: the night's budget in USD (agent money, judges not included). Each subflow gets
  what is left as its ``max_cost``; inside it, no new rerun starts once the money spent plus the
  estimated cost of the reruns in flight reaches the cap (``experiment/guardrails.py``).
* ``circuit_breaker``: an experiment stops starting reruns after this many in a row failed for
  the same non-transient reason.

A markdown artifact ``nightly-<root>`` summarises the night: one row per experiment, linked to
its subflow run, with why it was only partly repaired. The night's flow run ends **Failed**,
naming the experiments, when a rerun failed or an experiment could not be repaired (what the CLI
would exit 1 for); deferred runs (quota window, cost cap) are not failures. A subflow deferred by a
quota window schedules its own resume on the ``rerun-agents`` deployment (``tasks/retry.py``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed

from experiment.cost import estimate_repair_cost
from experiment.errors import ExperimentError, RepairBlocked
from experiment.nightly import (
    ENV_ROOT,
    ExperimentNight,
    NightlyReport,
    find_experiments,
    idle_minutes,
    resolve_root,
)
from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from flows.rerun_agents import rerun_agents, summary_of
from operations.summary import RepairSummary
from tasks.artifacts import publish_markdown

DEFAULT_STATUSES = [RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.RESULTS]


def _run_name() -> str:
    from prefect.runtime import flow_run

    root = flow_run.parameters.get("experiments_root") or os.environ.get(ENV_ROOT) or f"${ENV_ROOT} (unset)"
    return f"nightly repair of {root} {time.strftime('%Y-%m-%d')}"


@flow(name="nightly-repair", flow_run_name=_run_name, log_prints=True)
def nightly_repair(
    experiments_root: str | None = None,
    statuses: list[RunStatus] | None = None,
    max_cost: float | None = None,
    circuit_breaker: int | None = 3,
    min_idle_minutes: float = 60.0,
    max_concurrent: int = 4,
    judge_rpm: int | None = None,
    tiers_dir: str | None = None,
    agent_command: list[str] | None = None,
    claude_binary: str = "claude",
    judge_base_url: str | None = None,
    judge_system_prompt: str | None = None,
) -> NightlyReport:
    """Repair every experiment under ``experiments_root`` (default ``$SCYLLA_EXPERIMENTS_ROOT``)."""
    logger = get_run_logger()
    root = resolve_root(experiments_root)
    statuses = statuses or DEFAULT_STATUSES
    night = NightlyReport(root=str(root), started=time.strftime("%Y-%m-%d %H:%M %Z"), max_cost_usd=max_cost)
    experiments = find_experiments(root)
    logger.info("Found %d experiment(s) under %s", len(experiments), root)
    for experiment in experiments:
        row = ExperimentNight(experiment=str(experiment), verdict="skipped")
        night.experiments.append(row)
        remaining = None if max_cost is None else max_cost - night.cost_usd
        if remaining is not None and remaining <= 0:
            row.note = f"budget spent (${night.cost_usd:.2f} of ${max_cost:.2f})"
            continue
        if idle_minutes(experiment) < min_idle_minutes:
            row.note = f"changed less than {min_idle_minutes:g} min ago (still running?)"
            continue
        try:
            before = scan_in_process(
                load_context(experiment, Path(tiers_dir) if tiers_dir else None),
                ScanFilters(statuses=tuple(statuses)),
            )
        except ExperimentError as exc:
            row.verdict, row.note = "error", str(exc)
            logger.warning("%s: %s", experiment.name, exc)
            continue
        row.to_repair = len(before.to_rerun()) + len(before.to_regenerate())
        row.estimated_cost_usd = estimate_repair_cost(before).total_usd
        if not row.to_repair:
            row.verdict = "nothing to do"
            continue
        logger.info("%s: %d run(s) to repair", experiment.name, row.to_repair)
        state = rerun_agents(
            experiment_dir=str(experiment),
            statuses=statuses,
            tiers_dir=tiers_dir,
            max_concurrent=max_concurrent,
            judge_rpm=judge_rpm,
            max_cost=remaining,
            circuit_breaker=circuit_breaker,
            agent_command=agent_command,
            claude_binary=claude_binary,
            judge_base_url=judge_base_url,
            judge_system_prompt=judge_system_prompt,
            return_state=True,
        )
        record(row, state)
        log = logger.warning if row.verdict in ("error", "partly repaired") else logger.info
        log("%s: %s %s", experiment.name, row.verdict, row.note)
    publish_markdown("nightly", root, night.markdown(), f"Nightly repair of {root}")
    print(
        f"Nightly repair of {root}: {len(experiments)} experiment(s), ${night.cost_usd:.4f} agent money spent"
    )
    failing = [Path(e.experiment).name for e in night.experiments if e.failed or e.verdict == "error"]
    if failing:  # the UI's failed-runs count then means what it says
        return Failed(  # type: ignore[return-value]  # Prefect keeps the state, the data is the report
            message=f"reruns failed or repair impossible in {len(failing)} experiment(s): {', '.join(failing)}",
            data=night,
        )
    return night


def _flow_run_url(state: State[Any]) -> str | None:
    """The UI page of the subflow run that ended in ``state`` (None without a UI URL)."""
    from prefect.settings import PREFECT_UI_URL

    base, run_id = PREFECT_UI_URL.value(), state.state_details.flow_run_id
    return f"{base.rstrip('/')}/runs/flow-run/{run_id}" if base and run_id else None


def record(row: ExperimentNight, state: State[RepairSummary]) -> None:
    """Fill the night's row from the subflow's final state (Failed when a rerun failed)."""
    row.flow_run_url = _flow_run_url(state)
    try:
        summary = summary_of(state)
    except Exception as error:  # the subflow crashed before summarising: the row says why
        busy = isinstance(error, RepairBlocked) and "already running" in str(error)
        row.verdict = "skipped" if busy else "error"
        row.note = str(error) or state.message or state.name or ""
        return
    row.succeeded, row.failed = summary.succeeded, summary.failed
    row.regenerated, row.deferred = summary.regenerated, summary.deferred
    row.cost_usd = summary.cost_usd
    row.verdict = "repaired" if not (summary.failed or summary.deferred) else "partly repaired"
    row.note = "; ".join(part for part in (summary.stopped, _why_partly(summary)) if part)


def _why_partly(summary: RepairSummary) -> str:
    """One line on the runs left broken: how many failed or were deferred, and the reasons."""
    parts = []
    for outcome in ("failed", "deferred"):
        runs = [r for r in summary.runs if r.outcome == outcome]
        if runs:
            classes = sorted({str(r.failure_class or r.reason.split(":")[0]) for r in runs})
            parts.append(f"{len(runs)} {outcome} ({', '.join(classes)})")
    if summary.resume_scheduled:
        parts.append(f"resume scheduled as flow run {summary.resume_scheduled}")
    elif summary.resume_at:
        parts.append(f"resumes after {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(summary.resume_at))}")
    return "; ".join(parts)


if __name__ == "__main__":
    nightly_repair(sys.argv[1], min_idle_minutes=0)
