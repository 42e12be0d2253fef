"""The leases this process holds: renewed in the background, recorded on disk, recovered when leaked.

A process killed while it holds a slot leaves ``active_slots`` raised. On a real server the
repossessor frees it when the lease expires (60-75 s). Ephemeral servers run no repossessor and
keep leases in memory, so the slot would leak for good. Each holder therefore writes a small
record under ``$PREFECT_HOME/scylla-limit-holders/``; :func:`reclaim_orphaned_slots` (run at
flow start) looks for records whose process is dead and frees their slots: through the lease when
the server still knows it, else (ephemeral mode only, where the lease died with its server) by
decrementing the count.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tasks.limits.provider import LEASE_SECONDS, RENEW_EVERY, background_thread, client

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

logger = logging.getLogger(__name__)


def _holders_dir(name: str) -> Path:
    """Where the holder records of limit ``name`` live."""
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()) / "scylla-limit-holders" / re.sub(r"[^A-Za-z0-9.-]+", "_", name)


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
        directory = _holders_dir(name)
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
                self._thread = background_thread(self._renew_forever, "scylla-lease-renewal")
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
                with client() as prefect:
                    for lease_id in leases:
                        with contextlib.suppress(httpx.HTTPStatusError):
                            prefect.renew_concurrency_lease(uuid.UUID(lease_id), LEASE_SECONDS)
            except Exception as exc:  # noqa: BLE001 - retried on the next beat
                logger.warning("lease renewal failed: %s", exc)


HOLDERS = _Holders()


def release_lease(name: str, lease_id: str, record: Path) -> None:
    """Give back one leased slot of ``name`` and drop its holder record."""
    HOLDERS.remove(record, lease_id)
    try:
        with client() as prefect:
            prefect.release_concurrency_slots_with_lease(uuid.UUID(lease_id))
    except Exception as exc:  # noqa: BLE001 - the lease expires on its own; never fail the run
        logger.warning("could not release %s lease %s: %s", name, lease_id, exc)


def _ephemeral() -> bool:
    """True when this process runs Prefect's temporary server (no PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    return not PREFECT_API_URL.value()


def reclaim_orphaned_slots(prefect: SyncPrefectClient, name: str) -> int:
    """Free the slots of ``name`` held by dead processes on this host; returns how many."""
    directory = _holders_dir(name)
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
            prefect.renew_concurrency_lease(lease, LEASE_SECONDS)
            known = True
        except httpx.HTTPStatusError:
            known = False
        if known:
            prefect.release_concurrency_slots_with_lease(lease)
            freed += 1
        elif _ephemeral():
            # The lease lived in the memory of the dead process's temporary server.
            prefect.release_concurrency_slots(
                [name], int(info.get("slots", 1)), occupancy_seconds=max(1.0, time.time() - info["since"])
            )
            freed += 1
        # else: a real server's repossessor already freed (or will free) it with the lease.
        record.unlink(missing_ok=True)
        logger.warning("freed a slot of %s held by dead process %s (lease %s)", name, info["pid"], lease)
    return freed
