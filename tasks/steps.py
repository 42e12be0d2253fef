"""The Prefect tasks of one run's repair: archive, workspace, agent, judge slot, finalize.

Each wraps a plain function (``operations/archive.py``, ``operations/workspace.py``, ``operations/agent/``,
``operations/judge/``, ``experiment/regenerate.py``) with what Prefect adds:

* retries for transient failures only (``tasks/retry.py``), honouring ``retry-after``;
* the provider budget (``operations/budget.py``) around every agent and judge call;
* persisted results with cache keys made of the run, the attempt id recorded in the run dir and
  the repair id (``experiment/attempt.py``), stored inside the experiment under
  ``.prefect/results``: a repair resumed after a crash reuses every step that finished, and a
  later, deliberate repair never sees them. ``tasks/repair.py`` calls each step in its own
  transaction (:func:`own_transaction`), so a result is written the moment its step finishes;
* states that say what happened: a quota window ends the agent or judge step in a Completed
  state named ``Deferred`` (not a red Failed: nothing is broken, the run resumes later), and that
  answer is never persisted, so the resumed repair asks again.

Agent and judges are separate tasks, so a judge failure never re-runs an agent. An agent that
finished before the repair died (its output streamed into ``agent/``, see
:func:`operations.agent.finished_agent`) is recorded from those files, never run again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import TaskRunContext
from prefect.states import Completed
from prefect.transactions import Transaction, get_transaction
from pydantic import BaseModel, Field

from experiment.attempt import attempt_id, attempt_repair_id, pause_for_tests, start_attempt
from experiment.failures import AttemptFailed, Failure, FailureClass
from experiment.layout import RunKey
from experiment.locks import update_checkpoint
from experiment.regenerate import RunRegeneration, apply_to_checkpoint, regenerate_run
from operations.agent import (
    AgentOutcome,
    FinishedAgent,
    finished_agent,
    recover_agent,
    run_agent,
    settings_for_run,
)
from operations.archive import archive_run
from operations.budget import QuotaPaused
from operations.judge import (
    JudgeSettings,
    JudgeSlotOutcome,
    ensure_judge_prompt,
    run_judge_slot,
    system_prompt_for,
)
from operations.settings import RepairSettings, base_repo_for, budget_for, context_for
from operations.unstarted import changing
from operations.workspace import prepare_workspace
from tasks.limits import ProviderLimits, agent_slot, judge_request
from tasks.retry import BASE_DELAY, JITTER, RETRIES, retry_transient

logger = logging.getLogger(__name__)


def _run_dir(settings: RepairSettings, label: str) -> Path:
    return context_for(settings).layout.run_dir(RunKey.parse(label))


def _step_key(step: str, settings: RepairSettings, label: str, *extra: object) -> str:
    """``<step>-<run>-<hash(experiment, repair, attempt, extra)>``: also the result file name."""
    ident = "|".join(
        [settings.experiment_dir, settings.repair_id, attempt_id(_run_dir(settings, label)), *map(str, extra)]
    )
    digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
    return f"{step}-{label.replace('/', '-')}-{digest}"


def agent_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return _step_key("agent", parameters["settings"], parameters["label"])


def judge_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return _step_key(
        "judge", parameters["settings"], parameters["label"], parameters["slot"], parameters["model"]
    )


@contextmanager
def own_transaction() -> Iterator[None]:
    """Run the step tasks called inside this block in transactions of their own.

    Prefect nests a task's transaction in its caller's: the step's result is written only when
    the calling task (``repair``) commits, and one failed attempt (a 429 retried) rolls back the
    caller's transaction and with it every sibling that had finished (state ``RolledBack``).
    Without a parent transaction each step commits, and writes its result, when it finishes,
    and a failed attempt rolls back only itself."""
    token = Transaction.__var__.set(cast(Transaction, None))  # no "active" transaction: no parent
    try:
        yield
    finally:
        Transaction.__var__.reset(token)


class Deferral(BaseModel):
    """A step that met a closed quota window: the run resumes after ``resume_at``."""

    resume_at: float = Field(description="Epoch seconds when the quota window reopens.")
    reason: str = Field(description="The provider's message, one line.")

    def exception(self) -> QuotaPaused:
        return QuotaPaused(self.resume_at, self.reason)


def quota_resume_at(failure: Failure) -> float:
    """When a quota-window failure may be retried (its ``retry-after``, else in an hour)."""
    return time.time() + (failure.retry_after_seconds or 3600.0)


def _deferred(paused: QuotaPaused) -> Deferral:
    """The step's end after a quota window: a Completed state named ``Deferred``, not persisted
    (the resumed repair must ask the provider again, not be served this answer from the cache)."""
    transaction = get_transaction()
    if transaction is not None:
        transaction.write_on_commit = False
    state: State[Deferral] = Completed(
        name="Deferred",
        message=f"quota window: resumes after {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(paused.resume_at))}",
        data=Deferral(resume_at=paused.resume_at, reason=paused.reason),
    )
    return cast(Deferral, state)  # Prefect resolves a returned state to its data for the caller


def _finished_agent(settings: RepairSettings, label: str) -> FinishedAgent | None:
    """This repair's agent of the run, if it ended with an outcome worth keeping (success or a
    genuine failure); None when there is none or it must run again (crash, transient failure)."""
    run_dir = _run_dir(settings, label)
    if attempt_repair_id(run_dir) != settings.repair_id:
        return None
    finished = finished_agent(run_dir)
    return finished if finished is not None and finished.final else None


def _agent_result_persisted(settings: RepairSettings, label: str) -> bool:
    """True when this repair already ran this attempt's agent to an outcome.

    Either Prefect persisted the agent step's result, or the agent's own files show it ended
    (the repair died before persisting it). A resumed repair then keeps the attempt as it is
    (no archive, no new workspace, so the same attempt id and cache key): an agent that
    finished, even with a genuine failure, is never paid for twice within one repair. A
    transient failure or a killed agent persisted nothing final, so the run starts over."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore

    if _finished_agent(settings, label) is not None:
        return True
    run_dir = _run_dir(settings, label)
    if attempt_repair_id(run_dir) != settings.repair_id or not (run_dir / "agent" / "result.json").exists():
        return False
    store = ResultStore(result_storage=LocalFileSystem(basepath=str(settings.results_dir)))
    return store.exists(_step_key("agent", settings, label))


@task(name="archive", task_run_name="archive {label}", cache_policy=NO_CACHE)
def archive_step(settings: RepairSettings, label: str) -> str | None:
    """Move the old attempt (if any) whole into ``.failed/``; never overwrite, never delete."""
    if _agent_result_persisted(settings, label):
        return None
    context = context_for(settings)
    key = RunKey.parse(label)
    with changing(context.layout.run_dir(key)) as preparation:  # never halfway for a Ctrl+C put-back
        archived = archive_run(context.layout, key, base_repo_for(settings))
        if preparation is not None:
            preparation.archived(archived)
    return str(archived) if archived else None


@task(
    name="workspace",
    task_run_name="workspace {label}",
    cache_policy=NO_CACHE,
    retries=RETRIES,  # infrastructure (worktree, disk) is transient: MAX_RETRIES caps it
    retry_delay_seconds=BASE_DELAY,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_transient,
)
def workspace_step(settings: RepairSettings, label: str) -> str:
    """Create the run dir and its git worktree at task_commit with the subtest's resources."""
    if _agent_result_persisted(settings, label):
        return str(_run_dir(settings, label) / "workspace")
    context = context_for(settings)
    key = RunKey.parse(label)
    with changing(context.layout.run_dir(key)):  # never halfway for a Ctrl+C put-back
        info = prepare_workspace(context, key, base_repo=base_repo_for(settings))
        start_attempt(info.run_dir, settings.repair_id)
    return str(info.workspace)


def provider_limits(settings: RepairSettings) -> ProviderLimits:
    """The Prefect limits of this repair's provider (agents and judges share one provider)."""
    return ProviderLimits.for_repair(settings.judge_base_url, settings.max_agents, settings.judge_rpm)


@task(
    name="agent",
    task_run_name="agent {label}",
    retries=RETRIES,
    retry_delay_seconds=BASE_DELAY,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_transient,
    cache_key_fn=agent_cache_key,
    persist_result=True,
)
def agent_step(settings: RepairSettings, label: str) -> AgentOutcome:  # or a Deferral (quota window)
    """Run the agent once (Prefect retries transient failures on a fresh workspace)."""
    from prefect.runtime import task_run

    run_dir = _run_dir(settings, label)
    budget = budget_for(settings)
    # The flags its siblings ran with (or the subtest definition's), with this run's model and prompt.
    agent, flags = settings_for_run(settings.agent, context_for(settings), RunKey.parse(label))
    finished = _finished_agent(settings, label)
    if finished is not None:  # it ended before the repair died: record it, never pay twice
        outcome = recover_agent(run_dir, run_dir / "workspace", agent, finished)
        budget.add_cost(outcome.cost_usd)
        return outcome
    if task_run.run_count > 1 or (run_dir / "agent" / "command_log.json").exists():
        # A previous attempt ran in this dir (a retry, or a resume after a crash) and did not
        # finish for good: archive it and start over on a fresh worktree.
        archive_step.fn(settings, label)
        workspace_step.fn(settings, label)
    workspace = run_dir / "workspace"
    logger.info(flags.line(label))
    with budget.agent_slot(), agent_slot(provider_limits(settings)):
        outcome = run_agent(run_dir, workspace, agent)
    budget.add_cost(outcome.cost_usd)
    failure = outcome.failure
    if failure is None:
        budget.record_success()
        return outcome
    if failure.kind is FailureClass.QUOTA_WINDOW:
        return cast(AgentOutcome, _deferred(budget.quota_hit(quota_resume_at(failure), failure.message)))
    if failure.kind is FailureClass.RATE_LIMITED:
        budget.record_rate_limited(failure.retry_after_seconds)
    if failure.transient:
        raise AttemptFailed(failure)
    return outcome


@task(
    name="judge",
    task_run_name="judge {label} #{slot}",
    retries=RETRIES,
    retry_delay_seconds=BASE_DELAY,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_transient,
    cache_key_fn=judge_cache_key,
    persist_result=True,
)
def judge_step(
    settings: RepairSettings, label: str, slot: int, model: str
) -> JudgeSlotOutcome:  # or a Deferral (quota window)
    """Judge the run in one slot; the outcome (valid or not) is persisted in ``judge_NN/``."""
    pause_for_tests("judge", label)  # crash-test hook (no-op unless SCYLLA_REPAIR_TEST_PAUSE_AT)
    context = context_for(settings)
    run_dir = _run_dir(settings, label)
    overrides: dict[str, float | str] = {"timeout_seconds": settings.judge_timeout_seconds}
    if settings.judge_base_url:
        overrides["base_url"] = settings.judge_base_url
    judge_settings = JudgeSettings.from_env(**overrides)
    system = system_prompt_for(context, settings.judge_system_prompt, settings.tiers_dir)
    prompt = ensure_judge_prompt(context, run_dir, run_dir / "workspace")
    budget = budget_for(settings)
    # The Prefect slot first (shared by every flow run and worker: held until a window after the
    # request); the in-process gate then decides the exact moment.
    try:
        with judge_request(provider_limits(settings)), budget.judge_request():
            outcome = run_judge_slot(run_dir, slot, model, prompt, judge_settings, system=system)
    except AttemptFailed as exc:
        if exc.failure.kind is FailureClass.QUOTA_WINDOW:
            deferral = _deferred(budget.quota_hit(quota_resume_at(exc.failure), exc.failure.message))
            return cast(JudgeSlotOutcome, deferral)
        if exc.failure.kind is FailureClass.RATE_LIMITED:
            budget.record_rate_limited(exc.failure.retry_after_seconds)
        raise
    budget.record_success()
    return outcome


@task(name="finalize", task_run_name="finalize {label}", cache_policy=NO_CACHE)
def finalize_step(settings: RepairSettings, label: str) -> RunRegeneration:
    """Consensus, run_result.json, reports and the checkpoint entry, via the regenerate code."""
    context = context_for(settings)
    key = RunKey.parse(label)
    regeneration = regenerate_run(context.root, key, judge_models=context.config.judge_models)
    outcome = regeneration.checkpoint_outcome
    if outcome is not None:
        if outcome != "agent_complete":
            pause_for_tests("finalize", label)  # crash-test hook: results written, checkpoint not yet
        update_checkpoint(
            context.layout, context.config, lambda checkpoint: apply_to_checkpoint(checkpoint, key, outcome)
        )
    return regeneration
