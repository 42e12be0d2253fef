"""The judge's transport: one Anthropic Messages API call over httpx, its errors classified.

The original judged through the ``claude`` CLI; we call the Anthropic Messages API directly with
httpx (``POST {base_url}/v1/messages``), so rate limits arrive as HTTP statuses instead of being
guessed from CLI text, and ``retry-after`` is honoured exactly. The mapping (spec §6):

=====================================  ==========================================================
429                                    AttemptFailed(RATE_LIMITED, retry_after = the header)
529 (overloaded)                       AttemptFailed(RATE_LIMITED)
500/502/503/504, connection errors     AttemptFailed(INFRASTRUCTURE) - transient
httpx timeout                          AttemptFailed(TIMEOUT)
401 / 403                              JudgeAuthError (a RepairBlocked: every call would fail)
404                                    JudgeConfigError (a RepairBlocked: unknown model/endpoint)
400 and other 4xx                      non-transient JUDGE_INVALID for this slot (e.g. a prompt
                                       too long): recorded as an invalid judgment, not retried
=====================================  ==========================================================

The API key lives in a SecretStr: it is sent in ``x-api-key`` and appears in no repr, log or file.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed, Failure, FailureClass, parse_retry_after
from operations.budget import report_rate_limits

__all__ = ["JudgeAuthError", "JudgeCall", "JudgeConfigError", "JudgeSettings", "call_judge"]


def _default_base_url() -> str:
    return os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"


class JudgeSettings(BaseModel):
    """How to reach the judge API. Build it with :meth:`from_env` inside the process that calls:
    the key is a SecretStr and serialises as ``**********``, so it does not survive being passed
    through a JSON boundary (a deployment parameter, a persisted task input) - by design."""

    base_url: str = Field(default_factory=_default_base_url)
    """API root (``ANTHROPIC_BASE_URL``, default https://api.anthropic.com); ``/v1/messages`` is added."""
    api_key: SecretStr
    """``ANTHROPIC_API_KEY``; sent as ``x-api-key`` only."""
    timeout_seconds: float = Field(default=300.0, gt=0)
    """Timeout of one HTTP request."""
    max_tokens: int = Field(default=4096, ge=1)
    """``max_tokens`` of the judge answer."""
    temperature: float = Field(default=1.0, ge=0.0, le=1.0)
    """``temperature`` of the judge request: 1.0, the API's default, which is what ProjectScylla's
    judges (the ``claude`` CLI, which sets none) ran with."""
    anthropic_version: str = "2023-06-01"
    """``anthropic-version`` header."""

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret or any(c.isspace() for c in secret):
            raise ValueError("the API key must be non-empty and contain no whitespace")
        return value

    @classmethod
    def from_env(cls, **overrides: Any) -> JudgeSettings:
        """Settings from ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``; no key is a one-line error."""
        key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
        if not key and "api_key" not in overrides:
            raise RepairBlocked(
                "ANTHROPIC_API_KEY is not set",
                None,
                "export ANTHROPIC_API_KEY=... (judges call the Anthropic Messages API; "
                "ANTHROPIC_BASE_URL selects a compatible server)",
            )
        values: dict[str, Any] = {"api_key": key}
        values.update(overrides)
        return cls(**values)

    def request_parameters(self, model: str) -> dict[str, object]:
        """The sampling parameters of a request to ``model``, as recorded with each judge slot."""
        return {"model": model, "max_tokens": self.max_tokens, "temperature": self.temperature}

    @property
    def messages_url(self) -> str:
        return self.base_url.rstrip("/") + "/v1/messages"


class JudgeAuthError(RepairBlocked):
    """The API rejected the key (401/403): every judge call would fail the same way."""


class JudgeConfigError(RepairBlocked):
    """The API does not know the model or the endpoint (404): a configuration problem."""


class JudgeCall(BaseModel):
    """One successful Messages API exchange."""

    text: str
    """The concatenated text blocks of the answer."""
    model: str
    """The model that answered."""
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    duration_seconds: float = 0.0


_SHARED: tuple[int, httpx.Client] | None = None
_SHARED_LOCK = threading.Lock()


def shared_client() -> httpx.Client:
    """This process's judge connection pool, made on first use.

    Why shared: a new ``httpx.Client`` builds a TLS context (the CA bundle is parsed anew),
    50-70 ms of CPU per judge call here; one client also keeps connections alive between calls.
    httpx clients are thread-safe; a forked child (a Dask or process worker) makes its own."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED[0] != os.getpid():
            _SHARED = (os.getpid(), httpx.Client(limits=httpx.Limits(max_keepalive_connections=32)))
        return _SHARED[1]


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    text = message or response.text[:300] or response.reason_phrase
    return f"HTTP {response.status_code}: {' '.join(str(text).split())}"


def call_judge(
    settings: JudgeSettings, model: str, system: str, prompt: str, client: httpx.Client | None = None
) -> JudgeCall:
    """One ``POST /v1/messages``; errors are raised classified (see the module table)."""
    body = {
        **settings.request_parameters(model),
        "system": system,
        "messages": [{"role": "user", "content": prompt}],
    }
    headers = {
        "x-api-key": settings.api_key.get_secret_value(),
        "anthropic-version": settings.anthropic_version,
        "content-type": "application/json",
    }
    url = settings.messages_url
    start = time.monotonic()
    try:
        response = (client or shared_client()).post(
            url, json=body, headers=headers, timeout=settings.timeout_seconds
        )
    except httpx.TimeoutException as exc:
        raise AttemptFailed(
            Failure(
                FailureClass.TIMEOUT,
                f"Judge request timed out after {settings.timeout_seconds:g}s ({exc.__class__.__name__})",
            )
        ) from None
    except httpx.LocalProtocolError:
        # Never show the exception text: h11 quotes the offending header value (the key).
        raise JudgeConfigError(
            "The judge request could not be sent (an invalid header value)",
            url,
            "check that ANTHROPIC_API_KEY holds only the key, without spaces or newlines",
        ) from None
    except httpx.TransportError as exc:
        raise AttemptFailed(
            Failure(
                FailureClass.INFRASTRUCTURE,
                f"Cannot reach the judge API at {url}: {exc.__class__.__name__}: {exc}",
            )
        ) from None
    duration = time.monotonic() - start
    report_rate_limits(response.headers)  # the budget paces the judges from them
    status = response.status_code
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise AttemptFailed(Failure(FailureClass.RATE_LIMITED, _error_message(response), retry_after))
    if status == 529:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise AttemptFailed(
            Failure(FailureClass.RATE_LIMITED, f"overloaded: {_error_message(response)}", retry_after)
        )
    if status >= 500:
        raise AttemptFailed(Failure(FailureClass.INFRASTRUCTURE, _error_message(response)))
    if status in (401, 403):
        raise JudgeAuthError(
            f"The judge API rejected ANTHROPIC_API_KEY ({_error_message(response)})",
            url,
            "check that ANTHROPIC_API_KEY is a valid key for this endpoint",
        )
    if status == 404:
        raise JudgeConfigError(
            f"Judge model or endpoint not found ({_error_message(response)})",
            url,
            f"check judge_models ({model}) in config/experiment.json and ANTHROPIC_BASE_URL",
        )
    if status >= 400:
        raise AttemptFailed(
            Failure(FailureClass.JUDGE_INVALID, f"Judge request rejected: {_error_message(response)}")
        )
    try:
        data = response.json()
        blocks = data.get("content") or []
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        usage = data.get("usage") or {}
    except (ValueError, AttributeError):
        raise AttemptFailed(
            Failure(FailureClass.INFRASTRUCTURE, f"Judge API returned an unreadable body (HTTP {status})")
        ) from None
    return JudgeCall(
        text=text,
        model=str(data.get("model") or model),
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        stop_reason=data.get("stop_reason"),
        duration_seconds=round(duration, 6),
    )
