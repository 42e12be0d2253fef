"""One run's whole repair as a Prefect task: the steps in order, the outcome in one record.

``repair_run`` calls the step tasks of ``tasks/steps.py`` inline (nested task runs, each with
its own retries, cache and state in the UI), so a mapped ``repair_run`` occupies exactly one
worker thread per run in flight and a judge failure never re-runs its agent.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE

from experiment.errors import ExperimentError
from experiment.failures import AttemptFailed, FailureClass
from experiment.layout import RunKey
from experiment.status import RunStatus
from operations.agent.process import stopping
from operations.budget import BudgetExhausted, QuotaPaused
from operations.outcome import RunRepair
from operations.settings import RepairSettings, budget_for, context_for
from operations.unstarted import preparing, put_back_unstarted
from tasks.artifacts import run_finished
from tasks.steps import agent_step, archive_step, finalize_step, judge_step, workspace_step

logger = logging.getLogger(__name__)


def _judge_missing_slots(settings: RepairSettings, label: str) -> int:
    """Run the judge slots that have no valid judgment, then finalize; returns valid slot count."""
    config = context_for(settings).config
    judge = judge_step.with_options(result_storage=settings.results_dir)
    plan = finalize_step(settings, label)
    for slot in plan.missing_judge_slots:
        judge(settings, label, slot, config.judge_models[slot - 1])
    final = finalize_step(settings, label) if plan.missing_judge_slots else plan
    if final.missing_judge_slots and len(final.missing_judge_slots) == len(config.judge_models):
        raise _JudgesFailed(final.message or "no judge produced a valid judgment")
    return len(config.judge_models) - len(final.missing_judge_slots)


def _put_back_if_unstarted(settings: RepairSettings, label: str, archived_to: str | None) -> None:
    context = context_for(settings)
    base_repo = context.layout.find_base_repo(context.config.task_repo)
    put_back_unstarted(context.layout, RunKey.parse(label), base_repo, archived_to)


def _preparing(settings: RepairSettings, label: str, archived_to: str | None) -> AbstractContextManager[None]:
    context = context_for(settings)
    base_repo = context.layout.find_base_repo(context.config.task_repo)
    return preparing(context.layout, RunKey.parse(label), base_repo, archived_to)


class _JudgesFailed(Exception):
    pass


@task(name="repair-run", task_run_name="repair {label}", cache_policy=NO_CACHE)
def repair_run(settings: RepairSettings, label: str, status: RunStatus) -> RunRepair:
    """Repair one run: re-run agent + judges (failed/partial/missing) or regenerate (results)."""
    record = _repair(settings, label, status)
    run_finished(settings.repair_id, label, record.outcome, record.cost_usd)  # progress bars: now
    return record


def _repair(settings: RepairSettings, label: str, status: RunStatus) -> RunRepair:
    action: Literal["rerun", "regenerate"] = "rerun" if status.needs_agent else "regenerate"
    record = RunRepair(run=label, action=action, outcome="failed")
    budget = budget_for(settings)
    try:
        if status.needs_agent:
            budget.check_can_start()
            # Ctrl+C / SIGTERM (issue 12): take the agent slot *before* archiving, and archive
            # only if no stop was asked for meanwhile, so a run that had not started stays
            # exactly as it was. The agent step's own agent_slot() nests (no second slot).
            with budget.agent_slot():
                if stopping():
                    record.outcome, record.reason = "deferred", "not started: the repair was interrupted"
                    return record
                record.archived_to = archive_step(settings, label)
                try:
                    with _preparing(settings, label, record.archived_to):
                        workspace_step(settings, label)
                        outcome = agent_step.with_options(result_storage=settings.results_dir)(
                            settings, label
                        )
                except BaseException:  # a stop between archive and agent start (AgentInterrupted, or
                    if stopping():  # the API gone with the interrupted server): put the run back
                        _put_back_if_unstarted(settings, label, record.archived_to)
                    raise
            record.cost_usd = outcome.cost_usd
            failure = outcome.failure  # None exactly when the agent succeeded
            if failure is not None:
                record.failure_class = outcome.failure_kind
                record.reason = f"agent failed ({failure.one_line()})"
                return record
        record.judges_valid = _judge_missing_slots(settings, label)
        record.outcome = "succeeded" if status.needs_agent else "regenerated"
    except QuotaPaused as exc:
        record.outcome, record.resume_at = "deferred", exc.resume_at
        record.failure_class, record.reason = FailureClass.QUOTA_WINDOW, str(exc)
    except BudgetExhausted as exc:
        record.outcome, record.reason = "deferred", str(exc)
    except AttemptFailed as exc:
        record.failure_class, record.reason = (
            exc.failure.kind,
            f"gave up after retries ({exc.failure.one_line()})",
        )
    except _JudgesFailed as exc:
        record.failure_class, record.reason = FailureClass.JUDGE_INVALID, f"judges failed ({exc})"
    except ExperimentError as exc:
        record.failure_class, record.reason = FailureClass.INFRASTRUCTURE, str(exc)
    if record.outcome == "failed":
        logger.warning("repair of %s failed: %s", label, record.reason)
    return record
