"""Judges paced from the provider's ``anthropic-ratelimit-*`` headers (issue 13, goal 5)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx

from experiment.failures import AttemptFailed
from operations.budget import ProviderBudget, report_rate_limits
from operations.judge.client import JudgeSettings, call_judge
from operations.ratelimit_headers import RateLimitHeaders, parse_rfc3339
from simulation.messages_server import MessagesServer, ServerBehavior

# As the real API sent them (a recorded answer of api.anthropic.com, 2025-08-21).
REAL = {
    "anthropic-ratelimit-input-tokens-limit": "80000",
    "anthropic-ratelimit-input-tokens-remaining": "80000",
    "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-output-tokens-limit": "16000",
    "anthropic-ratelimit-output-tokens-remaining": "16000",
    "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:41:00Z",
    "anthropic-ratelimit-requests-limit": "1000",
    "anthropic-ratelimit-requests-remaining": "999",
    "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-tokens-limit": "96000",
    "anthropic-ratelimit-tokens-remaining": "96000",
    "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:59Z",
}


def headers(limit: int, remaining: int, **extra: str) -> dict[str, str]:
    return {
        "anthropic-ratelimit-requests-limit": str(limit),
        "anthropic-ratelimit-requests-remaining": str(remaining),
        **extra,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_parses_the_real_api_headers():
    parsed = RateLimitHeaders.parse(httpx.Headers(REAL))
    assert parsed is not None
    assert (parsed.requests.limit, parsed.requests.remaining) == (1000, 999)
    assert parsed.requests.reset_at == datetime(2025, 8, 21, 12, 40, 59, tzinfo=UTC).timestamp()
    assert parsed.output_tokens.limit == 16000 and not parsed.output_tokens.exhausted
    assert RateLimitHeaders.parse({"content-type": "application/json"}) is None
    assert parse_rfc3339("2025-08-21T12:40:59.250Z") == parsed.requests.reset_at + 0.25
    assert parse_rfc3339("not a time") is None and parse_rfc3339("2025-08-21T12:40:59") is None


def test_the_announced_limit_becomes_the_window_budget():
    clock = Clock()
    budget = ProviderBudget(max_in_flight=10, window_seconds=60, window_margin=0, clock=clock)
    assert budget.effective_rpm is None
    with budget.judge_request():
        report_rate_limits(headers(3, 2))
    assert budget.effective_rpm == 3 and budget.stats.learned_rpm == 3
    for _ in range(2):
        with budget.judge_request():
            pass
    assert not budget._rpm_token_free_locked()  # 3 of 3 spent in this window
    clock.now += 60.01
    assert budget._rpm_token_free_locked()


def test_an_explicit_judge_rpm_wins_over_the_headers():
    budget = ProviderBudget(judge_rpm=2, max_in_flight=10, clock=Clock())
    with budget.judge_request():
        report_rate_limits(headers(50, 49))
    assert budget.effective_rpm == 2


def test_requests_counted_elsewhere_are_spent_here_too():
    budget = ProviderBudget(max_in_flight=10, window_seconds=60, clock=Clock())
    with budget.judge_request():
        report_rate_limits(headers(10, 4))  # the provider counted 6, we made 1
    assert budget.stats.outside_requests == 5
    assert len(budget._recent) == 6


def test_an_exhausted_token_window_closes_the_gate_until_its_reset():
    clock = Clock()
    wall = 5_000_000.0
    budget = ProviderBudget(max_in_flight=10, clock=clock, wall_clock=lambda: wall)
    reset = datetime.fromtimestamp(wall + 7, UTC).isoformat().replace("+00:00", "Z")
    with budget.judge_request():
        report_rate_limits(
            headers(
                100,
                90,
                **{
                    "anthropic-ratelimit-output-tokens-remaining": "0",
                    "anthropic-ratelimit-output-tokens-reset": reset,
                },
            )
        )
    assert not budget._gate_open_locked()
    clock.now += 7.01
    assert budget._gate_open_locked()


def test_headers_outside_a_judge_request_are_ignored():
    report_rate_limits(headers(1, 0))  # no budget active in this thread: nothing to do, no error


def test_local_server_paced_from_headers_needs_no_429_after_the_first_answers():
    """4 threads, 14 judge calls, a provider allowing 5 per 2 s and saying so in its headers:
    (almost) no request is refused, and the budget is used in full (5 per window)."""
    window = 2.0
    budget = ProviderBudget(max_in_flight=4, window_seconds=window)  # the default 0.25 s margin
    settings = JudgeSettings(api_key="test-key-not-a-secret")
    with MessagesServer(ServerBehavior(rpm=5, window_seconds=window)) as server:
        settings = settings.model_copy(update={"base_url": server.url})
        todo = list(range(14))
        lock = threading.Lock()

        def worker() -> None:
            with httpx.Client() as client:
                while True:
                    with lock:
                        if not todo:
                            return
                        todo.pop()
                    while True:  # as the judge step does: a 429 cools down, then the call is retried
                        try:
                            with budget.judge_request():
                                call_judge(settings, "claude-test", "system", "prompt", client)
                            break
                        except AttemptFailed as exc:
                            budget.record_rate_limited(exc.failure.retry_after_seconds)

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
        stats = server.stats()
    # At most one refusal: a request that reaches the server more than the margin after we
    # admitted it (2 busy cores) can arrive a hair early; its 429 then resyncs the count.
    assert stats["rpm_violations_rejected"] <= 1
    assert stats["by_status"]["200"] == 14
    assert budget.stats.learned_rpm == 5
    assert elapsed >= 2 * window  # 5 + 5 + 4: two full windows, then the rest
