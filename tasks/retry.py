"""The retry policy of agent and judge tasks: only transient failures, honouring the provider.

Prefect's ``retry_condition_fn`` decides per failed attempt. A failure is retried only when
:mod:`experiment.failures` calls it transient (rate limit, overload, timeout, infrastructure);
a genuine agent failure or an invalid judge is recorded, never retried. Each class has its own
ceiling (:data:`MAX_RETRIES`): a timed-out agent is retried once, not five times at full
timeout. Retries are spaced by exponential backoff (:data:`BACKOFF`) or, when the provider said
how long to wait (``retry-after``), by that wait plus :data:`RETRY_AFTER_MARGIN`, whichever is
longer: Prefect's own delay is a fixed, jittered :data:`BASE_DELAY` (a single number, which the
UI can show; a list reads "NaNs" there), and the condition sleeps for whatever part of the wait
that delay may not cover, so the retry never comes early. A quota window ("resets 4pm") is not
retried here at all: waiting hours would burn retries and a worker, so the repair defers those
runs and says (or schedules) when to resume (see ``flows/rerun_agents.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from prefect.tasks import exponential_backoff

from experiment.failures import AttemptFailed, FailureClass

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

logger = logging.getLogger(__name__)

RETRIES = 5
"""Prefect's ceiling for every step task; :data:`MAX_RETRIES` lowers it per class."""
BASE_DELAY = 2.0
"""Prefect's ``retry_delay_seconds`` of every step task (jittered by :data:`JITTER`)."""
BACKOFF = exponential_backoff(backoff_factor=2)  # 2, 4, 8, 16, 32 s: the wait before retry n
JITTER = 0.5
"""Prefect's ``retry_jitter_factor``: each delay lands in [d*(1-J), d*(1+J)]."""
RETRY_AFTER_MARGIN = 0.5
"""Seconds added to a provider's ``retry-after``."""
MAX_HONOURED_WAIT = 15 * 60.0
"""Waits longer than this are treated as a quota window (deferred), not slept through."""
MAX_RETRIES: dict[FailureClass, int] = {
    FailureClass.RATE_LIMITED: RETRIES,
    FailureClass.INFRASTRUCTURE: RETRIES,
    FailureClass.TIMEOUT: 1,
}
"""Retries per transient class (attempts = retries + 1). Classes not listed are never retried."""

RETRY_COUNTS: Counter[str] = Counter()
"""Retries granted in this process, by failure class (the benchmark and tests read it)."""
_COUNTS_LOCK = threading.Lock()


def _planned_delay(task: Task[..., Any], run_count: int) -> float:
    delays = task.retry_delay_seconds
    if callable(delays):
        delays = delays(task.retries)
    if isinstance(delays, (int, float)):
        return float(delays)
    if not delays:
        return 0.0
    return float(delays[min(run_count - 1, len(delays) - 1)])


def should_retry(failure_exc: BaseException | None, run_count: int = 1) -> tuple[bool, float]:
    """(retry?, seconds the provider asked to wait, margin included) after attempt
    ``run_count`` (1-based) failed with ``failure_exc``. Pure, for tests."""
    if not isinstance(failure_exc, AttemptFailed):
        return False, 0.0
    failure = failure_exc.failure
    if not failure.transient or failure.kind is FailureClass.QUOTA_WINDOW:
        return False, 0.0
    if run_count > MAX_RETRIES.get(failure.kind, 0):
        return False, 0.0
    wait = failure.retry_after_seconds or 0.0
    if wait > MAX_HONOURED_WAIT:
        return False, 0.0
    return True, wait + (RETRY_AFTER_MARGIN if wait else 0.0)


def backoff_delay(run_count: int) -> float:
    """The exponential backoff before the retry that follows attempt ``run_count`` (1-based)."""
    delays = BACKOFF(RETRIES)
    return float(delays[min(max(run_count, 1), len(delays)) - 1])


def extra_sleep(wait: float, planned_delay: float, jitter: float = JITTER) -> float:
    """What to sleep on top of Prefect's delay so the retry comes no earlier than ``wait``:
    Prefect's jittered delay can be as short as ``planned_delay * (1 - jitter)``."""
    return max(0.0, wait - planned_delay * max(0.0, 1.0 - jitter))


def retry_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures, after ``retry-after`` if given."""
    exc = state.result(raise_on_failure=False)
    retry, wait = should_retry(exc, task_run.run_count)
    if retry:
        with _COUNTS_LOCK:
            RETRY_COUNTS[cast(AttemptFailed, exc).failure.kind.value] += 1  # should_retry: only those
        target = max(wait, backoff_delay(task_run.run_count))
        extra = extra_sleep(target, _planned_delay(task, task_run.run_count), task.retry_jitter_factor or 0.0)
        if extra > 0:
            logger.info("waiting %.1f s before retrying %s", target, task_run.name)
            time.sleep(extra)
    elif isinstance(exc, AttemptFailed) and exc.failure.transient:
        logger.warning("%s: giving up after %d attempt(s): %s", task_run.name, task_run.run_count, exc)
    return retry


RESUME_MARGIN = 60.0
"""Seconds after the announced reset at which a scheduled resume starts."""


RERUN_DEPLOYMENT = "rerun-agents/rerun-agents"
"""The deployment a repair run as a subflow (of the nightly) resumes on: ``prefect.yaml``'s."""


def schedule_resume(resume_at: float) -> str | None:
    """Resume deferred work after a quota window without anyone watching.

    From a deployment run of this flow, schedule a run of the same deployment with the same
    parameters at ``resume_at`` plus :data:`RESUME_MARGIN`, and return its flow run id; the
    resumed repair keeps this repair's id and skips every finished step. From a subflow of a
    deployment run (the nightly's ``rerun-agents``), the deployment is :data:`RERUN_DEPLOYMENT`
    with the subflow's parameters: ``prefect.runtime.deployment`` would name the parent's
    deployment, whose flow takes other parameters. From the CLI there is nothing to schedule:
    None, and the summary tells the user when to run the same command again.
    """
    from prefect.context import FlowRunContext
    from prefect.runtime import deployment, flow_run

    context = FlowRunContext.get()
    own = context.flow_run.deployment_id if context and context.flow_run else None
    if not own and not deployment.id:
        return None
    from datetime import UTC, datetime

    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        scheduled = cast(
            "FlowRun",
            run_deployment(
                own or RERUN_DEPLOYMENT,
                parameters=dict(flow_run.parameters or {}),
                scheduled_time=datetime.fromtimestamp(resume_at + RESUME_MARGIN, tz=UTC),
                timeout=0,
                as_subflow=False,
                idempotency_key=f"resume-{flow_run.id}",
                tags=["resume-after-quota"],
            ),
        )  # sync call from the flow: the FlowRun itself, never the coroutine the stubs also allow
    except ObjectNotFound:
        logger.warning("quota window: no deployment %s to schedule the resume on", RERUN_DEPLOYMENT)
        return None
    logger.warning("quota window: scheduled flow run %s for %s", scheduled.id, scheduled.expected_start_time)
    return str(scheduled.id)
