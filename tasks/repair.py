"""One run's whole repair as a Prefect task: the steps in order, the outcome in one record.

``repair_run`` calls the step tasks of ``tasks/steps.py`` inline (nested task runs, each with
its own retries, cache and state in the UI), so a mapped ``repair_run`` occupies exactly one
worker thread per run in flight and a judge failure never re-runs its agent. Each step runs in
its own transaction (:func:`tasks.steps.own_transaction`): it persists its result when it
finishes, and a sibling's retried failure never rolls it back.

The task's final state tells the truth in Prefect's own terms, so the UI agrees with the CLI:

* a rerun that failed ends **Failed**, its message the failure class and reason (and an ERROR
  line in the run's log);
* a run deferred by a quota window or the cost cap ends **Completed** named ``Deferred``, its
  message saying why and until when;
* otherwise **Completed**.

Every state carries the :class:`~operations.outcome.RunRepair` record as its data; the flow reads
it with :func:`record_of`.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Literal, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture
from prefect.states import Completed, Failed

from experiment.errors import ExperimentError
from experiment.failures import AttemptFailed, FailureClass
from experiment.layout import RunKey
from experiment.status import RunStatus
from operations.agent.process import stopping
from operations.budget import BudgetExhausted, QuotaPaused
from operations.outcome import RunRepair
from operations.release import release_worktree
from operations.settings import RepairSettings, base_repo_for, budget_for, context_for
from operations.unstarted import Preparation, preparing
from tasks.artifacts import run_finished
from tasks.steps import (
    Deferral,
    agent_step,
    archive_step,
    finalize_step,
    judge_step,
    own_transaction,
    workspace_step,
)


def _judge_missing_slots(settings: RepairSettings, label: str) -> int:
    """Run the judge slots that have no valid judgment, then finalize; returns valid slot count."""
    config = context_for(settings).config
    judge = judge_step.with_options(result_storage=settings.results_dir)
    with own_transaction():
        plan = finalize_step(settings, label)
        for slot in plan.missing_judge_slots:
            answer = _value(judge(settings, label, slot, config.judge_models[slot - 1]))
            if isinstance(answer, Deferral):
                raise answer.exception()
        final = finalize_step(settings, label) if plan.missing_judge_slots else plan
    if final.missing_judge_slots and len(final.missing_judge_slots) == len(config.judge_models):
        raise _JudgesFailed(final.message or "no judge produced a valid judgment")
    return len(config.judge_models) - len(final.missing_judge_slots)


def _value(returned: Any) -> Any:
    """What a step called inline gave back: Prefect hands the caller the very state a task
    returned (a ``Deferred`` one), not its data."""
    return returned.result(raise_on_failure=False) if isinstance(returned, State) else returned


def _release_worktree(settings: RepairSettings, label: str) -> None:
    release_worktree(context_for(settings).layout, RunKey.parse(label), base_repo_for(settings))


def _preparing(settings: RepairSettings, label: str) -> AbstractContextManager[Preparation]:
    return preparing(context_for(settings).layout, RunKey.parse(label), base_repo_for(settings))


class _JudgesFailed(Exception):
    pass


def _rerun(settings: RepairSettings, label: str, record: RunRepair) -> bool:
    """Archive, workspace, agent; False when the agent failed (``record`` says why).

    Ctrl+C / SIGTERM: a run is archived only if no stop was asked for, and a stop between the
    archive and the agent's start puts the run back (``operations.unstarted``), so a run that had
    not started stays exactly as it was.
    """
    budget = budget_for(settings)
    with budget.attempt():  # at most max_agents runs between their archive and their agent's end
        budget.check_can_start()
        if stopping():
            record.outcome, record.reason = "deferred", "not started: the repair was interrupted"
            return False
        # Registered before the archive and until the run is settled: the exit path's put-back
        # (operations.unstarted) must see every run whose files this repair may have touched.
        with own_transaction(), _preparing(settings, label) as preparation:
            try:
                record.archived_to = archive_step(settings, label)
                workspace_step(settings, label)
                outcome = _value(
                    agent_step.with_options(result_storage=settings.results_dir)(settings, label)
                )
            except BaseException:  # a stop between archive and agent start (AgentInterrupted, or
                if stopping():  # the API gone with the interrupted server): put the run back
                    preparation.settle(thorough=True)
                raise
    if isinstance(outcome, Deferral):
        raise outcome.exception()
    record.cost_usd = outcome.cost_usd
    failure = outcome.failure  # None exactly when the agent succeeded
    if failure is not None:
        record.failure_class = outcome.failure_kind
        record.reason = f"agent failed ({failure.one_line()})"
        return False
    return True


def _repair(settings: RepairSettings, label: str, status: RunStatus) -> RunRepair:
    """The repair itself: a record whatever happens (expected failures never raise)."""
    action: Literal["rerun", "regenerate"] = "rerun" if status.needs_agent else "regenerate"
    record = RunRepair(run=label, action=action, outcome="failed")
    try:
        if status.needs_agent and not _rerun(settings, label, record):
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
    return record


def final_state(record: RunRepair) -> State[RunRepair]:
    """The ``repair`` task's state for ``record`` (see the module docstring)."""
    if record.outcome == "failed":
        return Failed(message=f"{record.failure_class or 'failed'}: {record.reason}", data=record)
    if record.outcome == "deferred":
        until = (
            f"; resumes after {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(record.resume_at))}"
            if record.resume_at
            else ""
        )
        return Completed(name="Deferred", message=f"deferred: {record.reason}{until}", data=record)
    return Completed(message=record.outcome, data=record)


@task(name="repair-run", task_run_name="repair {label}", cache_policy=NO_CACHE)
def repair_run(settings: RepairSettings, label: str, status: RunStatus) -> RunRepair:
    """Repair one run: re-run agent + judges (failed/partial/missing) or regenerate (results)."""
    record = _repair(settings, label, status)
    run_finished(settings.repair_id, label, record.outcome, record.cost_usd)  # progress bars: now
    if record.outcome == "succeeded":  # judged and checkpointed: its worktree is no longer needed
        _release_worktree(settings, label)
    logger = get_run_logger()
    if record.outcome == "failed":
        logger.error("repair of %s failed: %s: %s", label, record.failure_class or "failed", record.reason)
    elif record.outcome == "deferred":
        logger.warning("repair of %s deferred: %s", label, record.reason)
    return cast(RunRepair, final_state(record))  # Prefect keeps the state; callers get the record


def record_of(future: PrefectFuture[RunRepair]) -> RunRepair:
    """The record a ``repair_run`` future carries, whatever its final state (Failed included);
    an unexpected crash of the task itself (a bug, not a run's failure) is raised."""
    value: Any = future.result(raise_on_failure=False)
    if isinstance(value, RunRepair):
        return value
    if isinstance(value, BaseException):
        raise value
    raise RuntimeError(f"repair task ended {future.state.name} without a record: {future.state.message}")
