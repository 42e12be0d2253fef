"""Prefect global concurrency limits per provider: agent slots and the judge request rate.

Every repair against one provider (one API base URL) shares two global concurrency limits on
the Prefect server, so two repairs, or several workers of one repair, never exceed the
provider's budget together:

``scylla-agents:<provider>``
    A concurrency limit of ``max_agents`` slots; every agent process holds one slot, under a
    60 s lease (the server's minimum) that a background thread renews every 20 s.
``scylla-judge-rate:<provider>``
    A rate limit (``slot_decay_per_second = rpm / window``, ``limit = rpm``): every judge request
    spends one slot; Prefect's token bucket of that size never refuses a stream of requests that
    the in-process sliding window (``operations/budget.py``) already admitted, so across flow runs it
    caps the total and within one it costs nothing but the call.

The limits are created (or resized: upsert, last writer wins) on demand with the sizes from the
flow parameters, once per process, and then acquired strictly: a missing limit is an error,
never Prefect's silent "skipping acquisition".

This module is the entry point (create, hold, spend, give back); the parts live beside it:
``provider`` (names, sizes, timings), ``acquire`` (the polling acquisition loop),
``agent_pool`` (slot reuse between agents), ``judge_credit`` (batched judge accounting) and
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
from tasks.limits.judge_credit import JudgeCredit
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
    "judge_token",
    "limits_enabled",
    "provider_key",
    "reclaim_orphaned_slots",
    "release_all",
    "slot_counts",
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
                prefect.upsert_global_concurrency_limit_by_name(
                    limits.judge_rate_name, limits.judge_rpm, slot_decay_per_second=limits.decay_per_second
                )
            if reclaim:
                reclaim_orphaned_slots(prefect, limits.agents_name)
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
_CREDITS: dict[ProviderLimits, JudgeCredit] = {}
_REGISTRY_LOCK = threading.Lock()


def _pool(limits: ProviderLimits) -> AgentSlotPool:
    with _REGISTRY_LOCK:
        return _POOLS.setdefault(limits, AgentSlotPool(limits))


def _credit(limits: ProviderLimits) -> JudgeCredit:
    with _REGISTRY_LOCK:
        return _CREDITS.setdefault(limits, JudgeCredit(limits))


@contextlib.contextmanager
def agent_slot(limits: ProviderLimits, timeout: float = ACQUIRE_TIMEOUT) -> Iterator[None]:
    """Hold one slot of the provider's agent limit (leased, renewed, recorded for leak recovery)."""
    if not limits_enabled():
        yield
        return
    ensure_limits(limits)
    with _pool(limits).slot(timeout):
        yield


def judge_token(limits: ProviderLimits, timeout: float = ACQUIRE_TIMEOUT) -> None:
    """Spend one request of the provider's judge rate limit (no-op without ``judge_rpm``)."""
    if not limits_enabled() or not limits.judge_rpm:
        return
    ensure_limits(limits)
    _credit(limits).take(timeout)


def release_all() -> None:
    """Give back every idle agent slot and record every judge request (flow end, exit)."""
    with _REGISTRY_LOCK:
        pools, credits = list(_POOLS.values()), list(_CREDITS.values())
    for credit in credits:
        credit.settle()
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
        atexit.register(release_all)


def slot_counts(name: str) -> tuple[int, int]:
    """(active_slots, limit) of a limit; for tests and the benchmark."""
    with client() as prefect:
        limit = prefect.read_global_concurrency_limit_by_name(name)
    return limit.active_slots, limit.limit
