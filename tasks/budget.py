"""One provider budget per repair: parallel agents, judge requests per minute, adaptive
concurrency, quota-window pauses and the cost cap, shared by every task of a flow run.

Why in-process: a Prefect concurrency slot taken inside a task costs 1.7-2.5 s on a SQLite
server and waiters only recheck after a server-set delay (Prefect issue #23183), so Prefect's
limits alone cannot keep a provider's request budget full. This object decides, within one flow
run, who may call the provider *now*; Prefect's global concurrency limits (see
``tasks/limits.py``) coordinate across flow runs and workers on top of it.

Agent and judge calls go to the same provider, so they share the adaptive concurrency and the
quota pause: a 429 on a judge slows the agents too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class BudgetStats:
    """What the summary reports about the budget."""

    rate_limited: int = 0
    successes: int = 0
    min_concurrency: int = 0
    waited_seconds: float = 0.0
    spent_usd: float = 0.0


class QuotaPaused(Exception):
    """The provider's quota window is closed until ``resume_at`` (epoch seconds)."""

    def __init__(self, resume_at: float, reason: str) -> None:
        self.resume_at = resume_at
        self.reason = reason
        super().__init__(
            f"{reason}; resumes at {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(resume_at))}"
        )


class BudgetExhausted(Exception):
    """The repair's cost cap is reached: no new rerun starts."""


@dataclass
class ProviderBudget:
    """Thread-safe limiter shared by the tasks of one flow run."""

    max_agents: int = 4
    """Agents running at once (``--max-concurrent``)."""
    judge_rpm: int | None = None
    """Judge requests per minute (sliding 60 s window); None means no rate limit."""
    max_in_flight: int = 8
    """Upper bound of concurrent provider calls (agents + judges); adapts down on 429s."""
    max_cost_usd: float | None = None
    """No new rerun starts once the money spent reaches this (``--max-cost``)."""
    window_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    stats: BudgetStats = field(default_factory=BudgetStats)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._agents_running = 0
        self._in_flight = 0
        self._limit = max(1, self.max_in_flight)
        self._successes_since_change = 0
        self._recent: deque[float] = deque()
        self._cooldown_until = 0.0
        self._paused_until: float | None = None  # wall clock
        self._pause_reason = ""
        self.stats.min_concurrency = self._limit

    # -- state the tasks ask about ------------------------------------------------------------

    @property
    def concurrency_limit(self) -> int:
        return self._limit

    def check_can_start(self) -> None:
        """Raise if no new rerun may start (quota window closed or cost cap reached)."""
        with self._lock:
            self._raise_if_paused()
            if self.max_cost_usd is not None and self.stats.spent_usd >= self.max_cost_usd:
                raise BudgetExhausted(
                    f"cost cap reached: ${self.stats.spent_usd:.2f} spent of ${self.max_cost_usd:.2f}"
                )

    def add_cost(self, usd: float) -> None:
        with self._lock:
            self.stats.spent_usd += max(0.0, usd)

    def pause_until(self, resume_at: float, reason: str) -> None:
        """Close the quota window for everyone until ``resume_at`` (wall clock, epoch seconds)."""
        with self._lock:
            if self._paused_until is None or resume_at > self._paused_until:
                self._paused_until = resume_at
                self._pause_reason = reason
            self._lock.notify_all()

    def _raise_if_paused(self) -> None:
        if self._paused_until is not None and self.wall_clock() < self._paused_until:
            raise QuotaPaused(self._paused_until, self._pause_reason)

    # -- feedback -------------------------------------------------------------------------------

    def record_success(self) -> None:
        """Additive increase: one more concurrent call after ``limit`` successes in a row."""
        with self._lock:
            self.stats.successes += 1
            self._successes_since_change += 1
            if self._limit < self.max_in_flight and self._successes_since_change >= self._limit:
                self._limit += 1
                self._successes_since_change = 0
                self._lock.notify_all()

    def record_rate_limited(self, retry_after: float | None = None) -> None:
        """Multiplicative decrease after a 429/529, and a short cool-down for everyone."""
        with self._lock:
            self.stats.rate_limited += 1
            self._successes_since_change = 0
            now = self.clock()
            if now >= self._cooldown_until:  # one halving per burst, not per rejected request
                self._limit = max(1, self._limit // 2)
                self.stats.min_concurrency = min(self.stats.min_concurrency, self._limit)
            self._cooldown_until = max(self._cooldown_until, now + (retry_after if retry_after else 1.0))

    # -- gates ----------------------------------------------------------------------------------

    @contextmanager
    def agent_slot(self) -> Iterator[None]:
        """Hold one of ``max_agents`` agent slots and one provider call slot."""
        with self._lock:
            started = self.clock()
            while True:
                self._raise_if_paused()
                if self._agents_running < self.max_agents and self._gate_open_locked():
                    break
                self._lock.wait(self._wait_hint_locked())
            self._agents_running += 1
            self._in_flight += 1
            self.stats.waited_seconds += self.clock() - started
        try:
            yield
        finally:
            with self._lock:
                self._agents_running -= 1
                self._in_flight -= 1
                self._lock.notify_all()

    @contextmanager
    def judge_request(self) -> Iterator[None]:
        """Hold a provider call slot, and spend one request of the per-minute budget."""
        with self._lock:
            started = self.clock()
            while True:
                self._raise_if_paused()
                if self._gate_open_locked() and self._rpm_token_free_locked():
                    break
                self._lock.wait(self._wait_hint_locked())
            if self.judge_rpm:
                self._recent.append(self.clock())
            self._in_flight += 1
            self.stats.waited_seconds += self.clock() - started
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _gate_open_locked(self) -> bool:
        return self._in_flight < self._limit and self.clock() >= self._cooldown_until

    def _rpm_token_free_locked(self) -> bool:
        if not self.judge_rpm:
            return True
        horizon = self.clock() - self.window_seconds
        while self._recent and self._recent[0] <= horizon:
            self._recent.popleft()
        return len(self._recent) < self.judge_rpm

    def _wait_hint_locked(self) -> float:
        """How long a waiter may sleep before something can have changed (releases notify)."""
        now = self.clock()
        hints = [0.5]
        if self._cooldown_until > now:
            hints.append(self._cooldown_until - now)
        if self.judge_rpm and len(self._recent) >= self.judge_rpm and self._recent:
            hints.append(self._recent[0] + self.window_seconds - now)
        return max(0.01, min(hints))
