"""The Anthropic API's ``anthropic-ratelimit-*`` answer headers, parsed.

The real API sends, on every answer (successes and 429s alike), for each of ``requests``,
``tokens``, ``input-tokens`` and ``output-tokens``: ``anthropic-ratelimit-<kind>-limit`` (the
budget per minute), ``-remaining`` (what is left of it now) and ``-reset`` (RFC 3339: when it is
fully replenished). :class:`operations.budget.ProviderBudget` paces the judges from them when
``--judge-rpm`` is not given. Missing or unreadable values parse as None: a compatible server
that sends none leaves the budget as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

KINDS = ("requests", "tokens", "input-tokens", "output-tokens")


def parse_rfc3339(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time (``2025-08-21T12:40:59Z``, fractions allowed); else None."""
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RateWindow:
    """One limit of the provider as an answer reports it."""

    limit: int | None
    """The budget per window (requests or tokens per minute)."""
    remaining: int | None
    """What is left of it when the provider answered."""
    reset_at: float | None
    """Epoch seconds at which it is fully replenished."""

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


@dataclass(frozen=True)
class RateLimitHeaders:
    """All four windows of one answer."""

    requests: RateWindow
    tokens: RateWindow
    input_tokens: RateWindow
    output_tokens: RateWindow

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateLimitHeaders | None:
        """The windows of ``headers`` (case-insensitive mapping, e.g. httpx's); None when the
        answer carries no ``anthropic-ratelimit-*`` header at all."""
        windows = {}
        found = False
        for kind in KINDS:
            prefix = f"anthropic-ratelimit-{kind}-"
            limit = headers.get(prefix + "limit")
            remaining = headers.get(prefix + "remaining")
            reset = headers.get(prefix + "reset")
            found = found or any(v is not None for v in (limit, remaining, reset))
            windows[kind.replace("-", "_")] = RateWindow(_int(limit), _int(remaining), parse_rfc3339(reset))
        return cls(**windows) if found else None

    @property
    def token_windows(self) -> tuple[RateWindow, ...]:
        return (self.tokens, self.input_tokens, self.output_tokens)
