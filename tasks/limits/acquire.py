"""Take slots of a Prefect limit, asking again at most :data:`POLL_CAP` seconds after a refusal.

Why not ``prefect.concurrency.sync.concurrency``/``rate_limit``: both sleep the server's
``Retry-After`` after a refusal (up to 30 s, and released slots do not wake waiters, Prefect
issue #23183), and ``concurrency`` does not expose the lease id we need for leak recovery.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

import httpx

from tasks.limits.provider import LEASE_SECONDS, POLL_CAP, SERVER_ERROR_RETRIES, LimitError, client


@dataclass
class AcquireStats:
    """Per-process counters of Prefect acquisitions (for the benchmark and the README)."""

    acquisitions: int = 0
    refusals: int = 0
    seconds: float = 0.0
    """Total wall time spent in acquisition calls, including waits."""


STATS = AcquireStats()
_STATS_LOCK = threading.Lock()


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", POLL_CAP))
    except ValueError:
        return POLL_CAP


def increment(
    names: list[str],
    mode: Literal["concurrency", "rate_limit"],
    *,
    lease: bool,
    timeout: float,
    slots: int = 1,
) -> str | None:
    """Take ``slots`` slots of ``names``; the lease id for ``lease=True``. Polls at most POLL_CAP apart."""
    started = time.monotonic()
    errors = 0
    with client() as prefect:
        while True:
            try:
                if lease:
                    response = prefect.increment_concurrency_slots_with_lease(
                        names, slots, mode, lease_duration=LEASE_SECONDS
                    )
                else:
                    response = prefect.increment_concurrency_slots(names, slots, mode)
            except (httpx.HTTPStatusError, httpx.TransportError) as exc:
                status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
                if not isinstance(exc, httpx.HTTPStatusError) or status != 423:
                    # SQLite "database is locked" (500), a restarting server: retry a few times.
                    errors += 1
                    if errors > SERVER_ERROR_RETRIES or (status is not None and status < 500):
                        raise LimitError(f"Prefect refused a slot of {names}", fix=str(exc)) from exc
                    time.sleep(min(5.0, 0.5 * 2**errors))
                    continue
                with _STATS_LOCK:
                    STATS.refusals += 1
                if time.monotonic() - started > timeout:
                    raise LimitError(
                        f"no slot of {names} within {timeout:.0f} s",
                        fix="a leaked slot? `prefect gcl update NAME --active-slots 0`",
                    ) from exc
                time.sleep(min(POLL_CAP, max(0.05, _retry_after(exc.response))))
                continue
            body = response.json()
            granted = body.get("limits", []) if lease else body
            if len(granted) < len(names):
                raise LimitError(
                    f"Prefect concurrency limit(s) {names} do not exist",
                    fix="the repair creates them at flow start (tasks.limits.ensure_limits)",
                )
            with _STATS_LOCK:
                STATS.acquisitions += 1
                STATS.seconds += time.monotonic() - started
            return str(body["lease_id"]) if lease else None


def increment_lease(name: str, timeout: float) -> str:
    """Take one leased slot of ``name``; its lease id."""
    lease_id = increment([name], "concurrency", lease=True, timeout=timeout)
    assert lease_id is not None  # increment returns the lease id whenever lease=True
    return lease_id
