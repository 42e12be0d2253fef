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
from pathlib import Path

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from experiment.attempt import current_repair_id, finish_repair
from experiment.locks import RepairLock
from experiment.preflight import check_can_repair
from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from flows.scan import scan_experiment
from tasks.agent import AgentSettings
from tasks.artifacts import ProgressArtifact, publish_markdown
from tasks.checkpoint import settle_checkpoint_task
from tasks.regenerate import rebuild_aggregates_task
from tasks.repair import repair_run
from tasks.settings import RepairSettings
from tasks.summary import RepairSummary

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
    max_cost: float | None = None,
    agent_command: list[str] | None = None,
    claude_binary: str = "claude",
    judge_base_url: str | None = None,
) -> RepairSummary:
    """Repair one experiment; every CLI option of ``rerun-agents`` is a parameter."""
    report = scan_experiment(experiment_dir, tiers, subtests, runs, statuses, tiers_dir)
    if dry_run:
        return RepairSummary(experiment=report.experiment, dry_run=True, before=report)
    context = load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)
    todo = report.to_rerun() + report.to_regenerate()
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
            max_agents=max_concurrent,
            judge_rpm=judge_rpm,
            max_in_flight=max(8, 2 * max_concurrent),
            max_cost_usd=max_cost,
        )
        progress = ProgressArtifact(experiment_dir, len(todo), f"{len(todo)} runs to repair")
        futures = repair_run.map(unmapped(settings), [e.run for e in todo], [e.status for e in todo])
        results = []
        for future in futures:
            results.append(future.result())
            progress.advance(failed=results[-1].outcome == "failed", cost=results[-1].cost_usd)
        rebuilt = False
        if not skip_regenerate and todo:
            rebuild_aggregates_task(str(context.root))
            rebuilt = True
        summary = RepairSummary(
            experiment=report.experiment, before=report, runs=results, aggregates_rebuilt=rebuilt
        )
        if resumed:
            summary.notes.append(f"Resumed the unfinished repair {repair_id}.")
        deferred = [r.resume_at for r in results if r.resume_at]
        if deferred:
            summary.resume_at = max(deferred)
            summary.notes.append(
                "Quota window: run the same command again after "
                + time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(summary.resume_at))
            )
        else:
            finish_repair(context.layout.prefect_dir, repair_id)
    summary.after = scan_in_process(
        context, ScanFilters(tuple(tiers or ()), tuple(subtests or ()), tuple(runs or ()))
    )
    whole_experiment = not (tiers or subtests or runs)
    nothing_left = summary.after.counts["completed"] == summary.after.total_expected
    settle_checkpoint_task(experiment_dir, whole_experiment and nothing_left)
    publish_markdown("repair-summary", experiment_dir, summary.markdown(), f"Repair of {experiment_dir}")
    return summary
