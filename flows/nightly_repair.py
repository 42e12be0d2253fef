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

A markdown artifact ``nightly-<root>`` summarises the night: one row per experiment.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State

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
from flows.rerun_agents import rerun_agents
from operations.summary import RepairSummary
from tasks.artifacts import publish_markdown

DEFAULT_STATUSES = [RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.RESULTS]


def _run_name() -> str:
    from prefect.runtime import flow_run

    root = flow_run.parameters.get("experiments_root") or f"${ENV_ROOT}"
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
    return night


def record(row: ExperimentNight, state: State[RepairSummary]) -> None:
    """Fill the night's row from the subflow's final state."""
    if not state.is_completed():
        error = state.result(raise_on_failure=False)
        busy = isinstance(error, RepairBlocked) and "already running" in str(error)
        row.verdict = "skipped" if busy else "error"
        row.note = str(error) if isinstance(error, Exception) else (state.message or state.name or "")
        return
    summary: RepairSummary = state.result()
    row.succeeded, row.failed = summary.succeeded, summary.failed
    row.regenerated, row.deferred = summary.regenerated, summary.deferred
    row.cost_usd = summary.cost_usd
    row.verdict = "repaired" if not (summary.failed or summary.deferred) else "partly repaired"
    row.note = summary.stopped or ""


if __name__ == "__main__":
    nightly_repair(sys.argv[1], min_idle_minutes=0)
