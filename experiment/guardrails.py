"""When a repair stops starting new reruns: the cost cap and the circuit breaker.

The rerun flow asks a :class:`RerunGate` before it starts each agent rerun and tells it every
outcome. Runs that were never started are left exactly as they were (nothing archived, no
worktree), so the next repair picks them up. Two guards:

* **Cost cap** (``--max-cost``, the nightly budget): no new rerun starts once the money spent
  *plus the estimated cost of the reruns still in flight* reaches the cap. Counting the runs in
  flight at their estimate (mean cost of the experiment's completed runs, ``experiment/cost.py``)
  is what keeps the overshoot small: without it, every run started before the first agent
  reports its cost would pass the check.
* **Circuit breaker** (``circuit_breaker=K``): after K reruns in a row fail for the same
  non-transient reason (a genuine agent failure, judges that never give a valid answer), the
  rest would almost certainly fail the same way and cost money for nothing. Transient failures
  (rate limits, timeouts, infrastructure) were already retried by Prefect and say nothing about
  the next run: they neither count nor reset the streak. A success, or a different reason,
  resets it.

Prefect-free and thread-agnostic: the flow calls it from its own loop only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from experiment.failures import FailureClass

_VOLATILE = re.compile(r"(/[^\s:;,()]+)|\b[0-9a-f]{8,}\b|\d+(\.\d+)?")


def failure_signature(failure_class: str | None, reason: str) -> str:
    """The part of a failure that is the same on every run it hits (paths, ids, numbers masked)."""
    return f"{failure_class or 'unknown'}: {_VOLATILE.sub('#', reason.lower()).strip()}"


def is_transient(failure_class: str | None) -> bool:
    try:
        return FailureClass(failure_class).transient if failure_class else False
    except ValueError:
        return False


@dataclass
class CircuitBreaker:
    """Trips after ``threshold`` consecutive reruns failed with the same non-transient signature."""

    threshold: int | None = None
    streak: int = 0
    signature: str | None = None
    tripped: str | None = None
    """Why it tripped (one line), or None."""

    def record(self, outcome: str, failure_class: str | None, reason: str) -> None:
        if self.threshold is None or self.tripped:
            return
        if outcome == "succeeded":
            self.streak, self.signature = 0, None
            return
        if outcome != "failed" or is_transient(failure_class):
            return
        signature = failure_signature(failure_class, reason)
        self.streak = self.streak + 1 if signature == self.signature else 1
        self.signature = signature
        if self.streak >= self.threshold:
            self.tripped = f"circuit breaker: {self.streak} reruns in a row failed the same way ({reason})"


@dataclass
class RerunGate:
    """Decides whether the next rerun may start; see the module docstring."""

    max_cost_usd: float | None = None
    circuit_breaker: int | None = None
    estimates: dict[str, float] = field(default_factory=dict)
    """Estimated agent cost per run label (missing: 0)."""
    spent_usd: float = 0.0
    in_flight: dict[str, float] = field(default_factory=dict)
    halted: str | None = None
    """Set by the flow when runs were left unstarted: why (one line)."""
    breaker: CircuitBreaker = field(init=False)

    def __post_init__(self) -> None:
        self.breaker = CircuitBreaker(self.circuit_breaker)

    @property
    def active(self) -> bool:
        """False when neither guard is set: every run may start at once."""
        return self.max_cost_usd is not None or self.circuit_breaker is not None

    @property
    def projected_usd(self) -> float:
        return self.spent_usd + sum(self.in_flight.values())

    @property
    def stopped(self) -> str | None:
        """Why no new rerun may start now, or None."""
        if self.breaker.tripped:
            return self.breaker.tripped
        if self.max_cost_usd is not None and self.projected_usd >= self.max_cost_usd:
            return (
                f"cost cap reached: ${self.spent_usd:.2f} spent + ${sum(self.in_flight.values()):.2f} "
                f"estimated in flight of ${self.max_cost_usd:.2f}"
            )
        return None

    def may_start(self) -> bool:
        return self.stopped is None

    def started(self, label: str) -> None:
        self.in_flight[label] = self.estimates.get(label, 0.0)

    def finished(
        self, label: str, outcome: str, cost_usd: float, failure_class: str | None, reason: str
    ) -> None:
        self.in_flight.pop(label, None)
        self.spent_usd += max(0.0, cost_usd)
        self.breaker.record(outcome, failure_class, reason)
