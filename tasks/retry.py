"""The retry policy of agent and judge tasks: only transient failures, honouring the provider.

Prefect's ``retry_condition_fn`` decides per failed attempt. A failure is retried only when
:mod:`experiment.failures` calls it transient (rate limit, overload, timeout, infrastructure);
a genuine agent failure or an invalid judge is recorded, never retried. When the provider said
how long to wait (``retry-after``), the condition sleeps for the part of that wait that Prefect's
own exponential delay does not already cover, plus a small margin. A quota window ("resets
4pm") is not retried here at all: waiting hours would burn retries, so the repair defers those
runs and says when to resume (see ``flows/rerun_agents.py``).
"""

from __future__ import annotations

import logging
import time

from prefect.tasks import exponential_backoff

from experiment.failures import AttemptFailed, FailureClass

logger = logging.getLogger(__name__)

RETRIES = 5
BACKOFF = exponential_backoff(backoff_factor=2)  # 2, 4, 8, 16, 32 s
JITTER = 0.5
RETRY_AFTER_MARGIN = 0.5
MAX_HONOURED_WAIT = 15 * 60.0
"""Waits longer than this are treated as a quota window (deferred), not slept through."""


def _planned_delay(task, run_count: int) -> float:
    delays = task.retry_delay_seconds
    if callable(delays):
        delays = delays(task.retries)
    if isinstance(delays, (int, float)):
        return float(delays)
    if not delays:
        return 0.0
    return float(delays[min(run_count - 1, len(delays) - 1)])


def should_retry(failure_exc: BaseException | None) -> tuple[bool, float]:
    """(retry?, extra seconds to sleep first) for an attempt's exception. Pure, for tests."""
    if not isinstance(failure_exc, AttemptFailed):
        return False, 0.0
    failure = failure_exc.failure
    if not failure.transient or failure.kind is FailureClass.QUOTA_WINDOW:
        return False, 0.0
    wait = failure.retry_after_seconds or 0.0
    if wait > MAX_HONOURED_WAIT:
        return False, 0.0
    return True, wait + (RETRY_AFTER_MARGIN if wait else 0.0)


def retry_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures, after ``retry-after`` if given."""
    exc = state.result(raise_on_failure=False)
    retry, wait = should_retry(exc)
    if retry and wait:
        extra = wait - _planned_delay(task, task_run.run_count)
        if extra > 0:
            logger.info("provider asked to wait %.1f s before retrying %s", wait, task_run.name)
            time.sleep(extra)
    return retry
