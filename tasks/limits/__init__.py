"""Prefect global concurrency limits per provider: agent slots and the judge request rate.

Every repair against one provider (one API base URL) shares two global concurrency limits on
the Prefect server, so two repairs, or several workers of one repair, never exceed the
provider's budget together:

``scylla-agents:<provider>``
    A concurrency limit of ``max_agents`` slots; every agent process holds one slot, under a
    60 s lease (the server's minimum) that a background thread renews every 20 s.
``scylla-judge-rate:<provider>``
    A concurrency limit of ``judge_rpm`` slots used as a sliding window: every judge request
    holds one slot from before it is sent until one rate window after it ended, so no window
    ever sees more than ``judge_rpm`` requests from all flow runs and workers together
    (``judge_window``; slots are taken in batches, one Prefect call per burst).

The limits are created (or resized: upsert, last writer wins) on demand with the sizes from the
flow parameters, once per process, and then acquired strictly: a missing limit is an error,
never Prefect's silent "skipping acquisition".

This module is the entry point (create, hold, spend, give back); the parts live beside it:
``provider`` (names, sizes, timings), ``acquire`` (the polling acquisition loop),
``agent_pool`` (slot reuse between agents), ``judge_window`` (the shared judge window) and
``holders`` (lease renewal and leaked-slot recovery).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections.abc import Iterator

from tasks.limits.acquire import STATS, AcquireStats, increment
from tasks.limits.agent_pool import AgentSlotPool
from tasks.limits.holders import reclaim_orphaned_slots
from tasks.limits.judge_window import JudgeWindow
from tasks.limits.provider import (
    ACQUIRE_TIMEOUT,
    DEFAULT_PROVIDER,
    LEASE_SECONDS,
    LINGER,
    POLL_CAP,
    RENEW_EVERY,
    SERVER_ERROR_RETRIES,
    LimitError,
    ProviderLimits,
    client,
    limits_enabled,
    provider_key,
)

__all__ = [
    "ACQUIRE_TIMEOUT",
    "DEFAULT_PROVIDER",
    "LEASE_SECONDS",
    "LINGER",
    "POLL_CAP",
    "RENEW_EVERY",
    "SERVER_ERROR_RETRIES",
    "STATS",
    "AcquireStats",
    "LimitError",
    "ProviderLimits",
    "agent_slot",
    "ensure_limits",
    "forget_ensured",
    "increment",
    "judge_request",
    "limits_enabled",
    "provider_key",
    "reclaim_orphaned_slots",
    "release_all",
    "slot_counts",
    "warm_agent_slots",
]

logger = logging.getLogger(__name__)

_ENSURED: set[ProviderLimits] = set()
_ENSURED_LOCK = threading.Lock()


def ensure_limits(limits: ProviderLimits, *, reclaim: bool = True) -> ProviderLimits:
    """Create or resize the provider's limits (once per process) and free leaked slots."""
    if not limits_enabled():
        return limits
    with _ENSURED_LOCK:
        if limits in _ENSURED:
            return limits
        with client() as prefect:
            prefect.upsert_global_concurrency_limit_by_name(limits.agents_name, limits.max_agents)
            if limits.judge_rpm:
                # Slots are held for a window after each request, never decayed (see JudgeWindow).
                prefect.upsert_global_concurrency_limit_by_name(
                    limits.judge_rate_name, limits.judge_rpm, slot_decay_per_second=0.0
                )
            if reclaim:
                reclaim_orphaned_slots(prefect, limits.agents_name)
                if limits.judge_rpm:
                    reclaim_orphaned_slots(prefect, limits.judge_rate_name)
        _register_exit_release()
        _ENSURED.add(limits)
        logger.info(
            "Prefect limits ready: %s=%d%s",
            limits.agents_name,
            limits.max_agents,
            f", {limits.judge_rate_name}={limits.judge_rpm}/{limits.window_seconds:g}s"
            if limits.judge_rpm
            else "",
        )
        return limits


def forget_ensured() -> None:
    """Forget which limits this process created (tests that start a fresh server)."""
    with _ENSURED_LOCK:
        _ENSURED.clear()


_POOLS: dict[ProviderLimits, AgentSlotPool] = {}
_WINDOWS: dict[ProviderLimits, JudgeWindow] = {}
_REGISTRY_LOCK = threading.Lock()


def _pool(limits: ProviderLimits) -> AgentSlotPool:
    with _REGISTRY_LOCK:
        return _POOLS.setdefault(limits, AgentSlotPool(limits))


def _window(limits: ProviderLimits) -> JudgeWindow:
    with _REGISTRY_LOCK:
        return _WINDOWS.setdefault(limits, JudgeWindow(limits))


@contextlib.contextmanager
def agent_slot(limits: ProviderLimits, timeout: float = ACQUIRE_TIMEOUT) -> Iterator[None]:
    """Hold one slot of the provider's agent limit (leased, renewed, recorded for leak recovery)."""
    if not limits_enabled():
        yield
        return
    ensure_limits(limits)
    with _pool(limits).slot(timeout):
        yield


@contextlib.contextmanager
def judge_request(limits: ProviderLimits, timeout: float = ACQUIRE_TIMEOUT) -> Iterator[None]:
    """Hold one slot of the provider's judge window around one request (no-op without ``judge_rpm``)."""
    if not limits_enabled() or not limits.judge_rpm:
        yield
        return
    ensure_limits(limits)
    with _window(limits).request(timeout):
        yield


def warm_agent_slots(limits: ProviderLimits, agents_needed: int) -> int:
    """Take the first agents' Prefect slots at flow start (see :meth:`AgentSlotPool.prefill`)."""
    if not limits_enabled() or agents_needed <= 0:
        return 0
    ensure_limits(limits)
    return _pool(limits).prefill(min(agents_needed, limits.max_agents))


def release_all() -> None:
    """Give back every idle agent slot and every judge slot whose window is over (flow end, exit)."""
    with _REGISTRY_LOCK:
        pools, windows = list(_POOLS.values()), list(_WINDOWS.values())
    for window in windows:
        window.release_expired()
    for pool in pools:
        pool.release_idle()


_EXIT_HOOK = threading.Event()


def _register_exit_release() -> None:
    """Register :func:`release_all` at exit once the Prefect client has been used.

    atexit runs handlers last-in first-out, and Prefect registers the stop of its temporary
    server when that server starts. Registering ours after that start makes ours run first,
    while the server is still up; registered at import, it ran after the stop, started a new
    temporary server to release slots, and that server was orphaned.
    """
    if not _EXIT_HOOK.is_set():
        _EXIT_HOOK.set()
        atexit.register(_release_at_exit)


def _release_at_exit() -> None:
    """:func:`release_all`, unless no server is configured any more: then a Prefect client
    would start a temporary server just for this, and nothing would stop it (the slots of a
    temporary server's database are reclaimed at the next flow start, ``reclaim_orphaned_slots``)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        release_all()


def slot_counts(name: str) -> tuple[int, int]:
    """(active_slots, limit) of a limit; for tests and the benchmark."""
    with client() as prefect:
        limit = prefect.read_global_concurrency_limit_by_name(name)
    return limit.active_slots, limit.limit
