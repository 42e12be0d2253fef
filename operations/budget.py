"""One provider budget per repair: parallel agents, judge requests per window, adaptive
concurrency, quota-window pauses and the cost cap, shared by every task of a flow run.

Why in-process: a Prefect concurrency slot taken inside a task costs 0.1-5 s on a SQLite
server (measured in ``bench/bench_rate_limit.py``), and waiters on Prefect's own helpers only
recheck after a server-set delay (up to 30 s, Prefect issue #23183), so Prefect's limits alone
cannot keep a provider's request budget full. This object decides, within one flow run, who may
call the provider *now*, waking a waiter the moment a slot or a request of the window frees;
Prefect's global concurrency limits (``tasks/limits/``) coordinate across flow runs and
workers on top of it.

Agent and judge calls go to the same provider, so they share the adaptive concurrency and the
quota pause: a 429 on a judge slows the agents too.

Pacing from the provider's answers: every judge answer's ``anthropic-ratelimit-*`` headers
(:mod:`operations.ratelimit_headers`) reach the budget of the judge request they answer (through
a context variable set by :meth:`ProviderBudget.judge_request`, so the transport needs no handle
on the budget). Without ``--judge-rpm``, the requests limit they announce becomes the window's
budget, so the judges use the whole provider budget without waiting for 429s; with or without
it, a ``remaining`` lower than our own count (other clients of the same key, the agents) is
counted as used, and an exhausted token window closes the gate until its reset.

Adaptive concurrency is AIMD, like TCP: the first 429/529 of a burst halves the number of
concurrent provider calls and cools everyone down for the provider's ``retry-after``; every
``limit`` successes in a row add one back, up to ``max_in_flight``. A repair therefore settles
just under the provider's real limit and climbs back when the provider recovers.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from operations.ratelimit_headers import RateLimitHeaders


def default_window_seconds() -> float:
    """60 s, the providers' rate window; ``SCYLLA_RATE_WINDOW_SECONDS`` overrides (tests)."""
    try:
        value = float(os.environ.get("SCYLLA_RATE_WINDOW_SECONDS", "60"))
    except ValueError:
        return 60.0
    return value if value > 0 else 60.0


@dataclass
class BudgetStats:
    """What the summary and the benchmark report about the budget."""

    rate_limited: int = 0
    """429/529 answers seen (agents and judges)."""
    successes: int = 0
    """Provider calls that succeeded."""
    min_concurrency: int = 0
    """Lowest adaptive concurrency reached."""
    peak_in_flight: int = 0
    """Most provider calls in flight at once."""
    waited_seconds: float = 0.0
    """Total time tasks waited at the gates."""
    spent_usd: float = 0.0
    """Agent cost so far."""
    quota_hits: int = 0
    """Quota-window answers ("You've hit your limit · resets ...")."""
    learned_rpm: int | None = None
    """The requests limit the provider's headers announced (None: no header seen)."""
    outside_requests: int = 0
    """Requests the provider counted that this budget had not (other clients of the key)."""


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
    """Judge requests per window (sliding, ``window_seconds``); None: the provider's announced
    ``anthropic-ratelimit-requests-limit`` once an answer has carried it, else no rate limit."""
    max_in_flight: int = 8
    """Upper bound of concurrent provider calls (agents + judges); adapts down on 429s."""
    max_cost_usd: float | None = None
    """No new rerun starts once the money spent reaches this (``--max-cost``)."""
    window_seconds: float = field(default_factory=default_window_seconds)
    """The provider's rate window (60 s for "requests per minute")."""
    window_margin: float = 0.25
    """Seconds added to the window: we record a request when it is admitted, the provider when
    it arrives, so without a margin a request could arrive just before the oldest one expires."""
    quota_confirmations: int = 2
    """Quota answers in a row (no success between) that close the window for every run. One
    alone only defers its own run: it may concern one model or account route."""
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
        self._quota_streak = 0
        self._learned_rpm: int | None = None
        self._slot_held = threading.local()  # per thread: a nested agent_slot() takes no second slot
        self._attempts = threading.BoundedSemaphore(max(1, self.max_agents))
        self.stats.min_concurrency = self._limit

    # -- state the tasks ask about ------------------------------------------------------------

    @property
    def concurrency_limit(self) -> int:
        """The current adaptive limit of concurrent provider calls."""
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def effective_rpm(self) -> int | None:
        """The window's request budget in force: ``judge_rpm``, else the provider's announced one."""
        return self.judge_rpm or self._learned_rpm

    @property
    def paused_until(self) -> float | None:
        """Wall-clock end of the quota pause, if one is in force."""
        with self._lock:
            if self._paused_until is not None and self.wall_clock() < self._paused_until:
                return self._paused_until
            return None

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

    def quota_hit(self, resume_at: float, reason: str) -> QuotaPaused:
        """Record a quota-window answer; close the window for everyone once it is confirmed
        (``quota_confirmations`` in a row). Returns the exception the caller raises."""
        with self._lock:
            self.stats.quota_hits += 1
            self._quota_streak += 1
            confirmed = self._quota_streak >= self.quota_confirmations
        if confirmed:
            self.pause_until(resume_at, reason)
        return QuotaPaused(resume_at, reason)

    def _raise_if_paused(self) -> None:
        if self._paused_until is not None and self.wall_clock() < self._paused_until:
            raise QuotaPaused(self._paused_until, self._pause_reason)

    # -- feedback -------------------------------------------------------------------------------

    def record_success(self) -> None:
        """Additive increase: one more concurrent call after ``limit`` successes in a row."""
        with self._lock:
            self.stats.successes += 1
            self._quota_streak = 0
            self._successes_since_change += 1
            if self._limit < self.max_in_flight and self._successes_since_change >= self._limit:
                self._limit += 1
                self._successes_since_change = 0
                self._lock.notify_all()

    def record_rate_limited(self, retry_after: float | None = None) -> None:
        """Multiplicative decrease after a 429/529, and a cool-down for everyone (the provider's
        ``retry-after``, else 1 s). One halving per burst: 429s that arrive during the cool-down
        were sent before it and say nothing new."""
        with self._lock:
            self.stats.rate_limited += 1
            self._successes_since_change = 0
            now = self.clock()
            if now >= self._cooldown_until:
                self._limit = max(1, self._limit // 2)
                self.stats.min_concurrency = min(self.stats.min_concurrency, self._limit)
            self._cooldown_until = max(self._cooldown_until, now + (retry_after if retry_after else 1.0))

    def observe(self, headers: RateLimitHeaders) -> None:
        """Take in one answer's rate-limit headers (see the module docstring)."""
        with self._lock:
            requests = headers.requests
            if requests.limit:
                self._learned_rpm = requests.limit
                self.stats.learned_rpm = requests.limit
            now = self.clock()
            if requests.limit is not None and requests.remaining is not None:
                self._prune_locked(now)
                outside = (requests.limit - requests.remaining) - len(self._recent)
                if outside > 0:  # counted by the provider, not by us: spend them now
                    self._recent.extend([now] * outside)
                    self.stats.outside_requests += outside
            wall = self.wall_clock()
            for window in headers.token_windows:
                if window.exhausted and window.reset_at is not None and window.reset_at > wall:
                    self._cooldown_until = max(self._cooldown_until, now + window.reset_at - wall)
            self._lock.notify_all()

    # -- gates ----------------------------------------------------------------------------------

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Hold one of ``max_agents`` places for a run from before its archive to its agent's end.

        Why: without it every run of a repair archived its old attempt and built its worktree at
        once while only ``max_agents`` agents could run, so a Ctrl+C found dozens of runs prepared
        but not started (each to be put back before the process could end), and a crash left
        them all to be prepared again. Not :meth:`agent_slot`: that one also counts a provider
        call and waits for rate-limit cool-downs, which must not hold up an archive."""
        with self._attempts:
            yield

    @contextmanager
    def agent_slot(self) -> Iterator[None]:
        """Hold one of ``max_agents`` agent slots and one provider call slot.

        Reentrant within a thread: a run's repair holds its slot from before its archive to its
        agent's end (so a Ctrl+C never finds a run archived but not started), and the agent step
        inside it takes no second slot."""
        if getattr(self._slot_held, "depth", 0):
            self._slot_held.depth += 1
            try:
                yield
            finally:
                self._slot_held.depth -= 1
            return
        with self._lock:
            started = self.clock()
            while True:
                self._raise_if_paused()
                if self._agents_running < self.max_agents and self._gate_open_locked():
                    break
                self._lock.wait(self._wait_hint_locked())
            self._agents_running += 1
            self._enter_locked(started)
        self._slot_held.depth = 1
        try:
            yield
        finally:
            self._slot_held.depth = 0
            with self._lock:
                self._agents_running -= 1
                self._in_flight -= 1
                self._lock.notify_all()

    @contextmanager
    def judge_request(self) -> Iterator[None]:
        """Hold a provider call slot, and spend one request of the window's budget."""
        with self._lock:
            started = self.clock()
            while True:
                self._raise_if_paused()
                if self._gate_open_locked() and self._rpm_token_free_locked():
                    break
                self._lock.wait(self._wait_hint_locked())
            self._recent.append(self.clock())  # always: a limit learned later counts it
            self._enter_locked(started)
        token = _ACTIVE_BUDGET.set(self)
        try:
            yield
        finally:
            _ACTIVE_BUDGET.reset(token)
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _enter_locked(self, started: float) -> None:
        self._in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self._in_flight)
        self.stats.waited_seconds += self.clock() - started

    def _gate_open_locked(self) -> bool:
        return self._in_flight < self._limit and self.clock() >= self._cooldown_until

    def _prune_locked(self, now: float) -> None:
        horizon = now - self.window_seconds - self.window_margin
        while self._recent and self._recent[0] <= horizon:
            self._recent.popleft()

    def _rpm_token_free_locked(self) -> bool:
        self._prune_locked(self.clock())
        rpm = self.effective_rpm
        return not rpm or len(self._recent) < rpm

    def _wait_hint_locked(self) -> float:
        """How long a waiter may sleep before something can have changed (releases notify)."""
        now = self.clock()
        hints = [0.5]
        if self._cooldown_until > now:
            hints.append(self._cooldown_until - now)
        rpm = self.effective_rpm
        if rpm and len(self._recent) >= rpm and self._recent:
            hints.append(self._recent[0] + self.window_seconds + self.window_margin - now)
        return max(0.01, min(hints))


_ACTIVE_BUDGET: ContextVar[ProviderBudget | None] = ContextVar("scylla_active_budget", default=None)
"""The budget whose :meth:`ProviderBudget.judge_request` the current thread is inside."""


def report_rate_limits(headers: Mapping[str, str]) -> None:
    """Hand one provider answer's ``anthropic-ratelimit-*`` headers to the budget of the judge
    request being made in this thread, if any (the transport calls this on every answer)."""
    budget = _ACTIVE_BUDGET.get()
    if budget is None:
        return
    parsed = RateLimitHeaders.parse(headers)
    if parsed is not None:
        budget.observe(parsed)
