"""What a provider's Prefect limits are: their names, sizes, timings, and the client that uses them.

One provider is one API base URL; every repair against it shares the limits named here. The
other modules of :mod:`tasks.limits` only take, hold and give back slots of these limits.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from experiment.errors import ExperimentError
from operations.budget import default_window_seconds

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

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
        return self.judge_rpm / self.window_seconds if self.judge_rpm else None


def client() -> SyncPrefectClient:
    """A synchronous Prefect client (imported late: importing this package must stay cheap)."""
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def background_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A started daemon thread running ``target`` under its creator's Prefect settings.

    Why: Prefect's settings (which API to talk to) live in a context variable. A plain thread
    sees only the process environment (the thread gets the settings and nothing else of the
    creator's context): under a settings context (Prefect's test harness, a
    ``temporary_settings`` block) its first client call started a temporary server of its own,
    which nothing stopped (found as a server outliving pytest)."""
    from prefect.context import SettingsContext

    settings = SettingsContext.get()  # only the settings: a copied client context would be closed

    def run() -> None:  # with its flow, and get_client() would hand that closed client back
        if settings is None:
            target()
            return
        with SettingsContext(profile=settings.profile, settings=settings.settings):
            target()

    thread = threading.Thread(target=contextvars.Context().run, args=(run,), name=name, daemon=True)
    thread.start()
    return thread
