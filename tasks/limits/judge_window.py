"""The judge request rate across every flow run and worker: a sliding window held in Prefect slots."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tasks.limits.acquire import increment
from tasks.limits.holders import HOLDERS, release_lease
from tasks.limits.provider import LINGER, POLL_CAP, LimitError, ProviderLimits, background_thread


@dataclass
class WindowLease:
    """Judge slots taken from Prefect in one lease; given back ``window`` s after their last use."""

    lease_id: str
    record: Path
    slots: int
    taken: int = 0
    """Slots handed to requests so far (each slot serves one request)."""
    active: int = 0
    """Requests holding one of these slots right now."""
    last_used: float = 0.0
    """When the last request using this lease ended (monotonic); 0: not used yet."""
    since: float = field(default_factory=time.monotonic)
    closing: bool = False
    """Its window is over and it is being given back: no new request may use it."""


class JudgeWindow:
    """A sliding window of ``judge_rpm`` requests shared by every process of every worker.

    Each judge request holds one slot of the provider's ``scylla-judge-rate`` concurrency limit
    (size ``judge_rpm``) from before it is sent until one window after it ended. Every request
    sent in any window of that length therefore holds its slot at the window's end: at most
    ``judge_rpm`` of them, whichever processes or machines sent them. (Prefect's own
    ``rate_limit`` is a token bucket, which lets up to twice its size through in one window, and
    recording requests after the fact let each extra flow run overshoot by a window.)

    Slots are taken in batches (one Prefect call for all the requests waiting at that moment,
    so a burst of judges costs one acquisition) and a batch is released in one call; unused
    slots of a batch go back after :data:`LINGER` seconds. A batch never asks for more than the
    window has room for beside this process's own leases: Prefect grants a request whole or not
    at all, so asking for 30 slots while this process held 2 was refused until those 2 came
    back, and the 2 asked next then waited for the 30 (measured: a third of the window used).
    """

    def __init__(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self._cond = threading.Condition()
        self._leases: list[WindowLease] = []
        self._waiting = 0
        self._fetching = False
        self._reaper: threading.Thread | None = None

    @contextlib.contextmanager
    def request(self, timeout: float) -> Iterator[None]:
        """Hold one slot of the window around one judge request."""
        lease = self._take(timeout)
        try:
            yield
        finally:
            with self._cond:
                lease.active -= 1
                lease.last_used = time.monotonic()
                self._start_reaper()

    def _take(self, timeout: float) -> WindowLease:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    free = next(
                        (lease for lease in self._leases if lease.taken < lease.slots and not lease.closing),
                        None,
                    )
                    if free is not None:
                        free.taken += 1
                        free.active += 1
                        return free
                    room = (self.limits.judge_rpm or 1) - sum(lease.slots for lease in self._leases)
                    if not self._fetching and room > 0:
                        self._fetching = True
                        batch = min(self._waiting, room)
                        break
                    if time.monotonic() >= deadline:
                        raise LimitError(f"no judge request budget from {self.limits.judge_rate_name}")
                    self._cond.wait(min(POLL_CAP, max(0.01, deadline - time.monotonic())))
            finally:
                self._waiting -= 1
        # This thread fetches a batch for every request waiting now, itself included.
        try:
            remaining = max(1.0, deadline - time.monotonic())
            name = self.limits.judge_rate_name
            lease_id = str(increment([name], "concurrency", lease=True, timeout=remaining, slots=batch))
            fetched = WindowLease(lease_id, HOLDERS.add(name, lease_id, slots=batch), batch)
        finally:
            with self._cond:
                self._fetching = False
                self._cond.notify_all()
        with self._cond:
            fetched.taken, fetched.active = 1, 1
            self._leases.append(fetched)
            self._cond.notify_all()
            self._start_reaper()
        return fetched

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = background_thread(self._reap, "scylla-judge-window")

    def _expired(self, lease: WindowLease, now: float) -> bool:
        if lease.active:
            return False
        window_over = not lease.last_used or now - lease.last_used >= self.limits.window_seconds
        if lease.taken >= lease.slots:
            return lease.last_used > 0 and window_over
        return window_over and now - max(lease.since, lease.last_used) >= LINGER

    def _reap(self, *, final: bool = False) -> None:
        while True:
            if not final:
                time.sleep(POLL_CAP)
            with self._cond:
                now = time.monotonic()
                due = [lease for lease in self._leases if not lease.closing and self._expired(lease, now)]
                for lease in due:
                    lease.closing = True
            for lease in due:
                release_lease(self.limits.judge_rate_name, lease.lease_id, lease.record)
            with self._cond:  # counted as held until the server has them back: no refused batch
                self._leases = [lease for lease in self._leases if lease not in due]
                done = not self._leases
                if done and not final:
                    self._reaper = None
                if due:
                    self._cond.notify_all()
            if done or final:
                return

    def release_expired(self) -> None:
        """Give back now every lease whose window is over (flow end, exit). The others stay
        held: given back by the reaper if this process lives on, else they expire on the server
        with their lease (20-60 s after the process died, ``LEASE_SECONDS``)."""
        self._reap(final=True)
