"""Rerun-judges flow: judge again exactly the judge slots that have no valid judgment; no agent.

    rerun-judges EXPERIMENT_DIR [--tier T0] [--subtest 00] [--runs 1,2] [--status completed] ...
    prefect deployment run 'rerun-judges/rerun-judges' --param experiment_dir='"/path/to/exp"'

Every run whose agent finished (``completed`` or ``results``) is looked at slot by slot
(:mod:`experiment.judge_slots`): a missing or invalid ``judge_NN`` is judged again, including in
runs where *every* judgment is invalid (the scan calls those ``completed``, and ``rerun-agents``
leaves completed runs alone). Each such run goes through the same path ``rerun-agents`` takes for
a ``results`` run (``tasks/repair.py`` ``repair_run``: finalize, the ``judge`` task per slot without
a valid judgment, finalize), so a slot is judged exactly as the repair judges it, with the run's
saved ``judge_prompt.md``; then the aggregates are rebuilt. Runs whose agent did not finish are
counted and left to ``rerun-agents``. Resume after a crash by running the same command again.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, unmapped
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from experiment.attempt import current_repair_id, finish_repair
from experiment.judge_slots import parse_judge_statuses, rescan, scan_judge_slots
from experiment.locks import RepairLock
from experiment.preflight import check_can_judge
from experiment.scan import load_context
from experiment.status import RunStatus
from flows.scan import scan_experiment
from operations.agent import AgentSettings
from operations.rejudge import RejudgeSummary
from operations.settings import RepairSettings
from tasks.artifacts import ProgressArtifact, publish_markdown
from tasks.checkpoint import settle_checkpoint_task
from tasks.limits import ensure_limits, release_all
from tasks.regenerate import rebuild_aggregates_task
from tasks.repair import record_of, repair_run
from tasks.steps import provider_limits

WORKERS = 16
"""Runs in flight at once (threads); judge requests are further limited by the provider budget."""


@flow(
    name="rerun-judges",
    flow_run_name="judges {experiment_dir}",
    task_runner=ThreadPoolTaskRunner(max_workers=WORKERS),  # type: ignore[arg-type]  # Prefect's generic
    log_prints=True,
)
def rerun_judges(
    experiment_dir: str,
    statuses: list[RunStatus] | None = None,
    tiers: list[str] | None = None,
    subtests: list[str] | None = None,
    runs: list[int] | None = None,
    tiers_dir: str | None = None,
    skip_regenerate: bool = False,
    dry_run: bool = False,
    judge_rpm: int | None = None,
    max_in_flight: int | None = None,
    judge_base_url: str | None = None,
) -> RejudgeSummary:
    """Re-judge the missing and invalid judge slots of the runs in scope (filters as the CLI's)."""
    wanted = list(parse_judge_statuses(statuses or ()))  # completed and results unless narrowed
    report = scan_experiment(experiment_dir, tiers, subtests, runs, wanted, tiers_dir)
    context = load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)
    before = scan_judge_slots(report, context.layout, context.config.judge_models)
    todo = before.to_judge()
    print(f"{before.slots_to_judge} judge slot(s) to re-judge in {len(todo)} run(s); no agent is run")
    summary = RejudgeSummary(experiment=str(context.root), dry_run=dry_run, before=before)
    if dry_run or not todo:
        return summary
    check_can_judge(context)
    with RepairLock(context.layout).hold(description="rerun-judges"):
        repair_id, resumed = current_repair_id(context.layout.prefect_dir)
        settings = RepairSettings(
            experiment_dir=str(context.root),
            repair_id=repair_id,
            tiers_dir=tiers_dir,
            agent=AgentSettings.from_config(context.config),  # required by the settings; never run
            judge_base_url=judge_base_url,
            judge_rpm=judge_rpm,
            max_in_flight=max_in_flight or 8,
        )
        ensure_limits(provider_limits(settings))
        progress = ProgressArtifact(experiment_dir, len(todo), f"{len(todo)} runs to re-judge")
        # RESULTS: the judges-only path of repair_run (finalize, judge each invalid slot, finalize).
        futures = repair_run.map(unmapped(settings), [r.run for r in todo], unmapped(RunStatus.RESULTS))
        with progress.receiving(settings.repair_id):  # each task reports its run as it ends
            for future in as_completed(list(futures)):
                record = record_of(future)  # a failed run's task ends Failed; it carries the record
                summary.runs.append(record)
                progress.advance(record.run, record.outcome)
        release_all()
        if not skip_regenerate:
            rebuild_aggregates_task(str(context.root))
            summary.aggregates_rebuilt = True
        if resumed:
            summary.notes.append(f"Resumed the unfinished repair {repair_id}.")
        deferred = [r.resume_at for r in summary.runs if r.resume_at]
        if deferred:
            summary.resume_at = max(deferred)
            when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(summary.resume_at))
            summary.notes.append(f"Quota window: run the same command again after {when}.")
        else:
            finish_repair(context.layout.prefect_dir, repair_id)
    summary.after = rescan(before, context.layout)
    completed = [r.run for r in summary.after.runs if r.status is RunStatus.COMPLETED]
    settle_checkpoint_task(experiment_dir, False, completed)
    publish_markdown("rerun-judges", experiment_dir, summary.markdown(), f"Judges of {experiment_dir}")
    return summary
