"""Failure taxonomy: what went wrong with an agent or judge call, and whether waiting helps.

One place decides whether a failure is transient (worth a retry: rate limits, overload,
timeouts, infrastructure) or genuine (recorded, never retried). Classification, the agent
task, the judge task and the retry policy all ask this module, so a message such as
``You've hit your limit · resets 4pm (America/Los_Angeles)`` means the same thing everywhere.

Only structured signals are trusted: Claude Code's JSON ``is_error``/``result``/``error`` fields,
an HTTP status, or stderr. Plain response text is never scanned, so a judge that merely
*mentions* rate limits is not mistaken for one (spec §6).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from experiment.fast_json import loads


class FailureClass(StrEnum):
    """Why an agent or judge attempt failed."""

    RATE_LIMITED = "rate_limited"
    """429, "rate limit", overloaded, 529: retry after a short wait."""
    QUOTA_WINDOW = "quota_window"
    """"You've hit your limit · resets 4pm (TZ)", weekly limits: wait for the reset."""
    TIMEOUT = "timeout"
    """The agent or judge exceeded its time budget."""
    INFRASTRUCTURE = "infrastructure"
    """Worktree, disk, process spawn, connection errors: ours, not the model's."""
    AGENT_FAILED = "agent_failed"
    """A genuine non-zero exit or ``is_error`` result: recorded, not retried."""
    JUDGE_INVALID = "judge_invalid"
    """A judge answered but no valid judgment could be parsed."""

    @property
    def transient(self) -> bool:
        """True when retrying the same call later can succeed."""
        return self in _TRANSIENT


_TRANSIENT = {
    FailureClass.RATE_LIMITED,
    FailureClass.QUOTA_WINDOW,
    FailureClass.TIMEOUT,
    FailureClass.INFRASTRUCTURE,
}

_QUOTA_MARKERS = ("hit your limit", "weekly usage limit", "upgrade to continue", "usage limit")
_RATE_MARKERS = ("rate limit", "rate_limit", "ratelimit", "overloaded", "429", "529", "too many requests")
_RESETS = re.compile(
    r"resets\s+(?:(?P<date>[A-Z][a-z]{2}\s+\d{1,2},?)\s+)?(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>am|pm)"
    r"(?:\s*\((?P<tz>[A-Za-z_/+\-0-9]+)\))?",
    re.IGNORECASE,
)
DEFAULT_RESET_TZ = "America/Los_Angeles"


@dataclass(frozen=True)
class Failure:
    """A classified failure with its message and, when the provider said so, when to retry."""

    kind: FailureClass
    message: str
    retry_after_seconds: float | None = None

    @property
    def transient(self) -> bool:
        return self.kind.transient

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        return f"{self.kind.value}: {text[:160]}"


def seconds_until_reset(message: str, now: datetime | None = None) -> float | None:
    """Seconds until a ``resets 4pm (America/Los_Angeles)`` style moment, or None if absent.

    The next occurrence of that wall-clock time in that zone; an unknown zone falls back to UTC.
    """
    match = _RESETS.search(message)
    if not match:
        return None
    tz_name = match.group("tz") or DEFAULT_RESET_TZ
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    hour = int(match.group("hour")) % 12 + (12 if match.group("ampm").lower() == "pm" else 0)
    minute = int(match.group("minute") or 0)
    current = (now or datetime.now(tz=zone)).astimezone(zone)
    target = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= current:
        target += timedelta(days=1)
    return (target - current).total_seconds()


def parse_retry_after(value: str | None) -> float | None:
    """An HTTP ``retry-after`` header in seconds (the HTTP-date form is not used by these APIs)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def classify_message(message: str) -> Failure | None:
    """Classify an error message as a rate limit or quota window; None if it is neither."""
    lowered = message.lower()
    if any(marker in lowered for marker in _QUOTA_MARKERS) or _RESETS.search(message):
        return Failure(FailureClass.QUOTA_WINDOW, message, seconds_until_reset(message))
    if any(marker in lowered for marker in _RATE_MARKERS):
        return Failure(FailureClass.RATE_LIMITED, message)
    return None


def parse_claude_output(stdout: str) -> dict[str, Any] | None:
    """The result object of ``claude --print --output-format json`` (or the last stream-json
    ``result`` event); None when stdout holds no JSON object."""
    text = stdout.strip()
    if not text:
        return None
    try:
        value = loads(text)
        return value if isinstance(value, dict) else None
    except json.JSONDecodeError:
        pass
    result = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") == "result":
            result = event
    return result


def classify_agent_outcome(
    output: dict[str, Any] | None, exit_code: int | None, stderr: str = "", timed_out: bool = False
) -> Failure | None:
    """Decide whether a finished agent invocation failed, and how. None means success."""
    if timed_out:
        return Failure(FailureClass.TIMEOUT, "Agent timed out")
    if output is not None and output.get("is_error"):
        message = str(output.get("result") or output.get("error") or "is_error without a message")
        status = output.get("api_error_status")
        if status in (429, 529):
            return Failure(FailureClass.RATE_LIMITED, message)
        return classify_message(message) or Failure(FailureClass.AGENT_FAILED, message)
    if exit_code not in (0, None):
        tail = last_meaningful_line(stderr)
        if exit_code == -1 and not tail:
            return Failure(FailureClass.INFRASTRUCTURE, "Agent process crashed or could not start (exit -1)")
        limited = classify_message(tail) if tail else None
        return limited or Failure(
            FailureClass.AGENT_FAILED, f"exit {exit_code}" + (f": {tail}" if tail else "")
        )
    if output is None and exit_code == 0:
        return Failure(FailureClass.AGENT_FAILED, "Agent exited 0 but printed no JSON result")
    return None


def last_meaningful_line(stderr: str) -> str:
    """The last stderr line that is not bash xtrace noise (``+ cd ...``)."""
    for line in reversed(stderr.splitlines()):
        stripped = line.strip()
        if stripped and not stripped.startswith("+ "):
            return stripped
    return ""


class AttemptFailed(Exception):
    """Raised by an agent or judge attempt that failed; carries the classified failure so the
    retry policy can decide (only transient classes are retried) and honour ``retry_after``."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.one_line())
