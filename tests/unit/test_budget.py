"""The in-process provider budget: agent slots, the request window, AIMD, quota pauses, cost cap."""

from __future__ import annotations

import threading
import time

import pytest

from operations.budget import BudgetExhausted, ProviderBudget, QuotaPaused, default_window_seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_agent_slots_never_exceed_max_agents():
    budget = ProviderBudget(max_agents=3, max_in_flight=10)
    running, peak, lock = 0, 0, threading.Lock()

    def agent():
        nonlocal running, peak
        with budget.agent_slot():
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)
            with lock:
                running -= 1

    threads = [threading.Thread(target=agent) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
    assert budget.stats.peak_in_flight == 3


def test_agents_and_judges_share_the_in_flight_limit():
    budget = ProviderBudget(max_agents=4, max_in_flight=2)
    with budget.agent_slot(), budget.judge_request():
        assert budget.in_flight == 2
        got = threading.Event()

        def judge():
            with budget.judge_request():
                got.set()

        t = threading.Thread(target=judge)
        t.start()
        assert not got.wait(0.2)  # full: it waits
    assert got.wait(1.0)  # woken by the release, not by a poll
    t.join()


def test_sliding_window_admits_exactly_rpm_per_window():
    clock = FakeClock()
    budget = ProviderBudget(judge_rpm=3, max_in_flight=10, window_seconds=60, window_margin=0.5, clock=clock)
    for _ in range(3):
        with budget.judge_request():
            pass
    assert not budget._rpm_token_free_locked()
    clock.now += 60.0  # the oldest request is exactly one window old: still counted (margin)
    assert not budget._rpm_token_free_locked()
    assert budget._wait_hint_locked() == pytest.approx(0.5)
    clock.now += 0.5
    assert budget._rpm_token_free_locked()


def test_window_waiter_wakes_when_the_oldest_request_expires():
    budget = ProviderBudget(judge_rpm=2, max_in_flight=10, window_seconds=0.3, window_margin=0.0)
    started = time.monotonic()
    for _ in range(3):
        with budget.judge_request():
            pass
    elapsed = time.monotonic() - started
    assert 0.28 <= elapsed < 0.6


def test_aimd_halves_once_per_burst_and_recovers_additively():
    clock = FakeClock()
    budget = ProviderBudget(max_in_flight=8, clock=clock)
    for _ in range(5):  # a burst of 429s within the cool-down: one halving
        budget.record_rate_limited(retry_after=2.0)
    assert budget.concurrency_limit == 4
    assert budget.stats.rate_limited == 5
    clock.now += 2.0  # after the cool-down, a new burst halves again
    budget.record_rate_limited()
    assert budget.concurrency_limit == 2
    assert budget.stats.min_concurrency == 2
    for _ in range(2):
        budget.record_success()
    assert budget.concurrency_limit == 3  # +1 after `limit` successes in a row
    for _ in range(3 + 4 + 5 + 6 + 7):
        budget.record_success()
    assert budget.concurrency_limit == 8  # capped at max_in_flight
    budget.record_success()
    assert budget.concurrency_limit == 8


def test_cool_down_holds_every_caller_for_retry_after():
    clock = FakeClock()
    budget = ProviderBudget(max_in_flight=8, clock=clock)
    budget.record_rate_limited(retry_after=3.0)
    assert not budget._gate_open_locked()
    assert budget._wait_hint_locked() == pytest.approx(0.5)
    clock.now += 3.0
    assert budget._gate_open_locked()


def test_a_single_quota_answer_defers_only_its_run():
    wall = FakeClock()
    budget = ProviderBudget(wall_clock=wall)
    exc = budget.quota_hit(wall.now + 3600, "You've hit your limit · resets 4pm")
    assert isinstance(exc, QuotaPaused) and exc.resume_at == wall.now + 3600
    budget.check_can_start()  # others may still start
    assert budget.paused_until is None


def test_confirmed_quota_window_pauses_everyone_until_the_reset():
    wall = FakeClock()
    budget = ProviderBudget(wall_clock=wall)
    budget.quota_hit(wall.now + 3600, "limit")
    budget.quota_hit(wall.now + 3700, "limit")
    assert budget.paused_until == wall.now + 3700
    with pytest.raises(QuotaPaused):
        budget.check_can_start()
    with pytest.raises(QuotaPaused), budget.agent_slot():
        pass
    wall.now += 3701
    budget.check_can_start()


def test_a_success_between_quota_answers_resets_the_streak():
    wall = FakeClock()
    budget = ProviderBudget(wall_clock=wall)
    budget.quota_hit(wall.now + 60, "limit")
    budget.record_success()
    budget.quota_hit(wall.now + 60, "limit")
    assert budget.paused_until is None
    assert budget.stats.quota_hits == 2


def test_cost_cap_stops_new_reruns():
    budget = ProviderBudget(max_cost_usd=1.0)
    budget.add_cost(0.6)
    budget.check_can_start()
    budget.add_cost(0.5)
    with pytest.raises(BudgetExhausted, match="cost cap reached"):
        budget.check_can_start()


def test_window_seconds_from_the_environment(monkeypatch):
    monkeypatch.setenv("SCYLLA_RATE_WINDOW_SECONDS", "5")
    assert default_window_seconds() == 5.0
    assert ProviderBudget().window_seconds == 5.0
    monkeypatch.setenv("SCYLLA_RATE_WINDOW_SECONDS", "nonsense")
    assert default_window_seconds() == 60.0
