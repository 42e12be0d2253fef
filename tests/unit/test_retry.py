"""The retry policy: transient classes only, per-class ceilings, retry-after honoured."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from experiment.failures import AttemptFailed, Failure, FailureClass
from tasks import retry
from tasks.limits import ProviderLimits, provider_key
from tasks.retry import (
    MAX_HONOURED_WAIT,
    RETRY_AFTER_MARGIN,
    extra_sleep,
    retry_transient,
    should_retry,
)


def failed(kind: FailureClass, retry_after: float | None = None) -> AttemptFailed:
    return AttemptFailed(Failure(kind, "message", retry_after))


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        (FailureClass.RATE_LIMITED, True),
        (FailureClass.TIMEOUT, True),
        (FailureClass.INFRASTRUCTURE, True),
        (FailureClass.QUOTA_WINDOW, False),
        (FailureClass.AGENT_FAILED, False),
        (FailureClass.JUDGE_INVALID, False),
    ],
)
def test_only_transient_classes_are_retried(kind, retried):
    assert should_retry(failed(kind), run_count=1)[0] is retried


def test_other_exceptions_are_not_retried():
    assert should_retry(ValueError("bug"), 1) == (False, 0.0)
    assert should_retry(None, 1) == (False, 0.0)


def test_a_timeout_is_retried_once():
    assert should_retry(failed(FailureClass.TIMEOUT), run_count=1)[0]
    assert not should_retry(failed(FailureClass.TIMEOUT), run_count=2)[0]


def test_rate_limits_are_retried_up_to_the_task_ceiling():
    assert should_retry(failed(FailureClass.RATE_LIMITED), run_count=retry.RETRIES)[0]
    assert not should_retry(failed(FailureClass.RATE_LIMITED), run_count=retry.RETRIES + 1)[0]


def test_retry_after_is_honoured_with_a_margin():
    assert should_retry(failed(FailureClass.RATE_LIMITED, 7.0), 1) == (True, 7.0 + RETRY_AFTER_MARGIN)
    assert should_retry(failed(FailureClass.RATE_LIMITED), 1) == (True, 0.0)


def test_a_wait_of_hours_is_a_quota_window_not_a_retry():
    assert not should_retry(failed(FailureClass.RATE_LIMITED, MAX_HONOURED_WAIT + 1), 1)[0]


def test_extra_sleep_covers_the_shortest_jittered_delay():
    # Prefect's delay of 2 s with jitter 0.5 may be as short as 1 s: sleep 6.5 - 1 more.
    assert extra_sleep(6.5, 2.0, 0.5) == pytest.approx(5.5)
    assert extra_sleep(1.0, 4.0, 0.5) == 0.0
    assert extra_sleep(0.0, 2.0) == 0.0


def _state(exc):
    return SimpleNamespace(result=lambda raise_on_failure=False: exc)


def test_retry_condition_sleeps_for_retry_after_and_counts(monkeypatch):
    slept = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    retry.RETRY_COUNTS.clear()
    task = SimpleNamespace(retry_delay_seconds=[2.0, 4.0], retries=2, retry_jitter_factor=0.5)
    run = SimpleNamespace(run_count=1, name="judge T0/00/run_01 #1")
    assert retry_transient(task, run, _state(failed(FailureClass.RATE_LIMITED, 10.0)))
    assert slept == [pytest.approx(10.0 + RETRY_AFTER_MARGIN - 1.0)]
    assert retry.RETRY_COUNTS["rate_limited"] == 1
    assert not retry_transient(task, run, _state(failed(FailureClass.AGENT_FAILED)))
    assert retry.RETRY_COUNTS["agent_failed"] == 0


def test_schedule_resume_is_a_no_op_outside_a_deployment():
    assert retry.schedule_resume(1e10) is None


def test_provider_names_are_stable_and_name_safe():
    a = provider_key("http://127.0.0.1:8123")
    assert a == provider_key("http://127.0.0.1:8123/")
    assert a != provider_key("http://127.0.0.1:8124")
    assert provider_key("https://api.anthropic.com").startswith("api.anthropic.com-443-")
    limits = ProviderLimits.for_repair("http://127.0.0.1:8123", 4, 120)
    for name in (limits.agents_name, limits.judge_rate_name):
        assert not set(name) & set("/%&><")
    assert limits.decay_per_second == pytest.approx(120 / limits.window_seconds)
