"""Agent slots handed from one agent of this process to the next instead of given back at once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tasks.limits.acquire import increment_lease
from tasks.limits.holders import HOLDERS, release_lease
from tasks.limits.provider import LINGER, LimitError, ProviderLimits, background_thread

PREFILL_TIMEOUT = 1.0
"""How long :meth:`AgentSlotPool.prefill` tries for one slot before leaving it to the agents."""


class AgentSlotPool:
    """The Prefect agent slots this process holds, handed from one agent to the next.

    An acquisition made inside a task costs 0.1-5 s on a SQLite server, so a slot is not given
    back when an agent ends: the next agent of this process reuses it at once. A slot idle for
    :data:`LINGER` seconds is released, so another flow run (or worker) gets it; so are all of
    them at exit. The in-process budget already limits this process to ``max_agents``.
    """

    def __init__(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._idle: list[tuple[str, Path, float]] = []  # (lease id, holder record, idle since)
        self._reaper: threading.Thread | None = None

    @contextlib.contextmanager
    def slot(self, timeout: float) -> Iterator[None]:
        with self._lock:
            held = self._idle.pop() if self._idle else None
        if held is None:
            lease_id = increment_lease(self.limits.agents_name, timeout)
            held = (lease_id, HOLDERS.add(self.limits.agents_name, lease_id), 0.0)
        try:
            yield
        finally:
            self._give_back(held)

    def prefill(self, count: int, timeout: float = PREFILL_TIMEOUT) -> int:
        """Take up to ``count`` slots now, before the first agents ask; returns how many.

        Why: the repair's first second sends the server a burst of task-run events, and a lease
        asked for during it waited up to 2 s here (8 ms on an idle server). Taken at flow start,
        the slots wait idle for the first agents; what none takes within :data:`LINGER` is freed
        by the reaper as usual. A full limit (other repairs hold it) is not waited for here."""
        taken = 0
        while taken < count:
            with self._lock:
                if len(self._idle) >= count:
                    break
            try:
                lease_id = increment_lease(self.limits.agents_name, timeout)
            except LimitError:
                break
            record = HOLDERS.add(self.limits.agents_name, lease_id)
            self._give_back((lease_id, record, 0.0))
            taken += 1
        return taken

    def _give_back(self, held: tuple[str, Path, float]) -> None:
        with self._lock:
            self._idle.append((held[0], held[1], time.monotonic()))
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = background_thread(self._reap, "scylla-slot-reaper")

    def _reap(self) -> None:
        while True:
            time.sleep(LINGER / 4)
            with self._lock:
                now = time.monotonic()
                stale = [h for h in self._idle if now - h[2] >= LINGER]
                self._idle = [h for h in self._idle if now - h[2] < LINGER]
                if not self._idle and not stale:
                    self._reaper = None
                    return
            for lease_id, record, _ in stale:
                release_lease(self.limits.agents_name, lease_id, record)

    def release_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for lease_id, record, _ in idle:
            release_lease(self.limits.agents_name, lease_id, record)
