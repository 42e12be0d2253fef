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
    (:class:`_JudgeWindow`; slots are taken in batches, one Prefect call per burst).

The limits are created (or resized: upsert, last writer wins) on demand with the sizes from the
flow parameters, once per process, and then acquired strictly: a missing limit is an error,
never Prefect's silent "skipping acquisition".

Why not ``prefect.concurrency.sync.concurrency``/``rate_limit``: both sleep the server's
``Retry-After`` after a refusal (up to 30 s, and released slots do not wake waiters, Prefect
issue #23183), and ``concurrency`` does not expose the lease id we need for leak recovery. The
acquire loop below asks again after at most :data:`POLL_CAP` seconds instead.

Leaked slots. A process killed while it holds a slot leaves ``active_slots`` raised. On a real
server the repossessor frees it when the lease expires (60-75 s). Ephemeral servers run no
repossessor and keep leases in memory, so the slot would leak for good. Each holder therefore
writes a small record under ``$PREFECT_HOME/scylla-limit-holders/``; :func:`ensure_limits`
(run at flow start) looks for records whose process is dead and frees their slots: through the
lease when the server still knows it, else (ephemeral mode only, where the lease died with its
server) by decrementing the count.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from experiment.errors import ExperimentError
from operations.budget import default_window_seconds

logger = logging.getLogger(__name__)

DEFAULT_PROVIDER = "https://api.anthropic.com"
LEASE_SECONDS = 60.0
"""Lease of an agent slot: the server's minimum, so a dead holder's slot returns soonest."""
RENEW_EVERY = 20.0
"""How often the renewal thread extends the leases held by this process."""
POLL_CAP = 0.5
"""Longest wait before asking again after a refusal (the server may say up to 30 s)."""
SERVER_ERROR_RETRIES = 5
"""Server errors (5xx, connection) tolerated per acquisition before the run fails."""
LINGER = 5.0
"""Seconds an agent slot stays with this process after its agent ended, for the next agent."""
ACQUIRE_TIMEOUT = 6 * 3600.0
"""Give up waiting for a slot after this long (a stuck limit must not hang a repair forever)."""


class LimitError(ExperimentError):
    """A provider limit could not be used (missing, server errors, no slot within the timeout);
    the run's repair fails as ``infrastructure`` and the next repair picks it up."""


def limits_enabled() -> bool:
    """Prefect limits are on unless ``SCYLLA_PREFECT_LIMITS=0`` (in-process budget only)."""
    return os.environ.get("SCYLLA_PREFECT_LIMITS", "1").strip().lower() not in ("0", "false", "no", "off")


def provider_key(base_url: str | None) -> str:
    """A short, stable, name-safe id of a provider: ``<host>-<port>-<hash of the URL>``."""
    url = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_PROVIDER).strip().rstrip("/")
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = re.sub(r"[^a-z0-9.]+", "-", (parts.hostname or "provider").lower())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    digest = hashlib.sha256(f"{parts.scheme}://{parts.netloc}{parts.path}".lower().encode()).hexdigest()
    return f"{host}-{port}-{digest[:8]}"


@dataclass(frozen=True)
class ProviderLimits:
    """The two Prefect limits of one provider and their sizes (from the flow parameters)."""

    provider: str
    """:func:`provider_key` of the API base URL."""
    max_agents: int
    """Agent slots (``--max-concurrent``)."""
    judge_rpm: int | None = None
    """Judge requests per window; None: no rate limit."""
    window_seconds: float = 60.0
    """The provider's rate window."""

    @classmethod
    def for_repair(cls, base_url: str | None, max_agents: int, judge_rpm: int | None) -> ProviderLimits:
        return cls(provider_key(base_url), max(1, max_agents), judge_rpm, default_window_seconds())

    @property
    def agents_name(self) -> str:
        return f"scylla-agents:{self.provider}"

    @property
    def judge_rate_name(self) -> str:
        return f"scylla-judge-rate:{self.provider}"

    @property
    def decay_per_second(self) -> float | None:
        """The judge rate on average (requests per second), for reports."""
        return self.judge_rpm / self.window_seconds if self.judge_rpm else None


# -- creation --------------------------------------------------------------------------------

_ENSURED: set[ProviderLimits] = set()
_ENSURED_LOCK = threading.Lock()


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def ensure_limits(limits: ProviderLimits, *, reclaim: bool = True) -> ProviderLimits:
    """Create or resize the provider's limits (once per process) and free leaked slots."""
    if not limits_enabled():
        return limits
    with _ENSURED_LOCK:
        if limits in _ENSURED:
            return limits
        with _client() as client:
            client.upsert_global_concurrency_limit_by_name(limits.agents_name, limits.max_agents)
            if limits.judge_rpm:
                # Slots are held for a window after each request, never decayed (see _JudgeWindow).
                client.upsert_global_concurrency_limit_by_name(
                    limits.judge_rate_name, limits.judge_rpm, slot_decay_per_second=0.0
                )
            if reclaim:
                reclaim_orphaned_slots(client, limits.agents_name)
                if limits.judge_rpm:
                    reclaim_orphaned_slots(client, limits.judge_rate_name)
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


# -- acquisition -----------------------------------------------------------------------------


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


def _increment(names: list[str], mode: str, *, lease: bool, timeout: float, slots: int = 1) -> str | None:
    """Take ``slots`` slots of ``names``; the lease id for ``lease=True``. Polls at most POLL_CAP apart."""
    started = time.monotonic()
    errors = 0
    with _client() as client:
        while True:
            try:
                if lease:
                    response = client.increment_concurrency_slots_with_lease(
                        names, slots, mode, lease_duration=LEASE_SECONDS
                    )
                else:
                    response = client.increment_concurrency_slots(names, slots, mode)
            except (httpx.HTTPStatusError, httpx.TransportError) as exc:
                status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
                if status != 423:
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


class _AgentSlotPool:
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
            lease_id = _increment([self.limits.agents_name], "concurrency", lease=True, timeout=timeout)
            held = (lease_id, _HOLDERS.add(self.limits.agents_name, lease_id), 0.0)
        try:
            yield
        finally:
            with self._lock:
                self._idle.append((held[0], held[1], time.monotonic()))
                if self._reaper is None or not self._reaper.is_alive():
                    self._reaper = threading.Thread(target=self._reap, name="scylla-slot-reaper", daemon=True)
                    self._reaper.start()

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
                _release_lease(self.limits.agents_name, lease_id, record)

    def release_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for lease_id, record, _ in idle:
            _release_lease(self.limits.agents_name, lease_id, record)


@dataclass
class _WindowLease:
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


class _JudgeWindow:
    """A sliding window of ``judge_rpm`` requests shared by every process of every worker.

    Each judge request holds one slot of the provider's ``scylla-judge-rate`` concurrency limit
    (size ``judge_rpm``) from before it is sent until one window after it ended. Every request
    sent in any window of that length therefore holds its slot at the window's end: at most
    ``judge_rpm`` of them, whichever processes or machines sent them. (Prefect's own
    ``rate_limit`` is a token bucket, which lets up to twice its size through in one window, and
    recording requests after the fact let each extra flow run overshoot by a window.)

    Slots are taken in batches (one Prefect call for all the requests waiting at that moment,
    so a burst of judges costs one acquisition) and a batch is released in one call; unused
    slots of a batch go back after :data:`LINGER` seconds.
    """

    def __init__(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self._cond = threading.Condition()
        self._leases: list[_WindowLease] = []
        self._waiting = 0
        self._fetching = False
        self._reaper: threading.Thread | None = None

    @contextlib.contextmanager
    def request(self, timeout: float) -> Iterator[None]:
        lease = self._take(timeout)
        try:
            yield
        finally:
            with self._cond:
                lease.active -= 1
                lease.last_used = time.monotonic()
                self._start_reaper()

    def _take(self, timeout: float) -> _WindowLease:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    free = next((lease for lease in self._leases if lease.taken < lease.slots), None)
                    if free is not None:
                        free.taken += 1
                        free.active += 1
                        return free
                    if not self._fetching:
                        self._fetching = True
                        batch = min(self._waiting, self.limits.judge_rpm or 1)
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
            lease_id = str(_increment([name], "concurrency", lease=True, timeout=remaining, slots=batch))
            fetched = _WindowLease(lease_id, _HOLDERS.add(name, lease_id, slots=batch), batch)
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
            self._reaper = threading.Thread(target=self._reap, name="scylla-judge-window", daemon=True)
            self._reaper.start()

    def _expired(self, lease: _WindowLease, now: float) -> bool:
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
                due = [lease for lease in self._leases if self._expired(lease, now)]
                self._leases = [lease for lease in self._leases if lease not in due]
                done = not self._leases
                if done and not final:
                    self._reaper = None
            for lease in due:
                _release_lease(self.limits.judge_rate_name, lease.lease_id, lease.record)
            if done or final:
                return

    def release_expired(self) -> None:
        """Give back now every lease whose window is over (flow end, exit). The others stay
        held: given back by the reaper if this process lives on, else they expire on the server
        with their lease (20-60 s after the process died, ``LEASE_SECONDS``)."""
        self._reap(final=True)


_POOLS: dict[ProviderLimits, _AgentSlotPool] = {}
_WINDOWS: dict[ProviderLimits, _JudgeWindow] = {}
_REGISTRY_LOCK = threading.Lock()


def _pool(limits: ProviderLimits) -> _AgentSlotPool:
    with _REGISTRY_LOCK:
        return _POOLS.setdefault(limits, _AgentSlotPool(limits))


def _window(limits: ProviderLimits) -> _JudgeWindow:
    with _REGISTRY_LOCK:
        return _WINDOWS.setdefault(limits, _JudgeWindow(limits))


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


def release_all() -> None:
    """Give back every idle agent slot and every judge slot whose window is over (flow end, exit)."""
    with _REGISTRY_LOCK:
        pools, windows = list(_POOLS.values()), list(_WINDOWS.values())
    for window in windows:
        window.release_expired()
    for pool in pools:
        pool.release_idle()


def _release_lease(name: str, lease_id: str, record: Path) -> None:
    _HOLDERS.remove(record, lease_id)
    try:
        with _client() as client:
            client.release_concurrency_slots_with_lease(uuid.UUID(lease_id))
    except Exception as exc:  # noqa: BLE001 - the lease expires on its own; never fail the run
        logger.warning("could not release %s lease %s: %s", name, lease_id, exc)


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


# -- holders: renewal and leak recovery ------------------------------------------------------


def _holders_dir() -> Path:
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()) / "scylla-limit-holders"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid apart), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or _process_start(pid) in (None, started)


class _Holders:
    """The leases this process holds: renewed in one background thread, recorded on disk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, Path] = {}
        self._thread: threading.Thread | None = None

    def add(self, name: str, lease_id: str, slots: int = 1) -> Path:
        directory = _holders_dir() / re.sub(r"[^A-Za-z0-9.-]+", "_", name)
        directory.mkdir(parents=True, exist_ok=True)
        record = directory / f"{socket.gethostname()}-{os.getpid()}-{lease_id}.json"
        record.write_text(
            json.dumps(
                {
                    "name": name,
                    "lease_id": lease_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "process_start": _process_start(os.getpid()),
                    "since": time.time(),
                    "slots": slots,
                }
            )
        )
        with self._lock:
            self._leases[lease_id] = record
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._renew_forever, name="scylla-lease-renewal", daemon=True
                )
                self._thread.start()
        return record

    def remove(self, record: Path, lease_id: str) -> None:
        with self._lock:
            self._leases.pop(lease_id, None)
        record.unlink(missing_ok=True)

    def _renew_forever(self) -> None:
        while True:
            time.sleep(RENEW_EVERY)
            with self._lock:
                leases = list(self._leases)
            if not leases:
                continue
            try:
                with _client() as client:
                    for lease_id in leases:
                        with contextlib.suppress(httpx.HTTPStatusError):
                            client.renew_concurrency_lease(uuid.UUID(lease_id), LEASE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - retried on the next beat
                logger.warning("lease renewal failed: %s", exc)


_HOLDERS = _Holders()


def _ephemeral() -> bool:
    """True when this process runs Prefect's temporary server (no PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    return not PREFECT_API_URL.value()


def reclaim_orphaned_slots(client, name: str) -> int:
    """Free the slots of ``name`` held by dead processes on this host; returns how many."""
    directory = _holders_dir() / re.sub(r"[^A-Za-z0-9.-]+", "_", name)
    freed = 0
    for record in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if info.get("host") != socket.gethostname() or _alive(int(info["pid"]), info.get("process_start")):
            continue
        lease = uuid.UUID(info["lease_id"])
        try:
            client.renew_concurrency_lease(lease, LEASE_SECONDS)
            known = True
        except httpx.HTTPStatusError:
            known = False
        if known:
            client.release_concurrency_slots_with_lease(lease)
            freed += 1
        elif _ephemeral():
            # The lease lived in the memory of the dead process's temporary server.
            client.release_concurrency_slots(
                [name], int(info.get("slots", 1)), occupancy_seconds=max(1.0, time.time() - info["since"])
            )
            freed += 1
        # else: a real server's repossessor already freed (or will free) it with the lease.
        record.unlink(missing_ok=True)
        logger.warning("freed a slot of %s held by dead process %s (lease %s)", name, info["pid"], lease)
    return freed


def slot_counts(name: str) -> tuple[int, int]:
    """(active_slots, limit) of a limit; for tests and the benchmark."""
    with _client() as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    return limit.active_slots, limit.limit
