"""What the local Messages server does: its rate limits, latency and injected faults.

Kept apart from the HTTP plumbing so the server, its handler and the CLI share one definition of a
fault name (``429``, ``529``, ``500``, ``malformed``) and its spellings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAULTS = ("429", "529", "500", "malformed")


@dataclass
class ServerBehavior:
    rpm: int | None = None  # accepted requests per sliding window; None = unlimited
    max_concurrent: int | None = None  # in-flight limit; None = unlimited
    latency: float = 0.0  # seconds each accepted request takes
    fail_sequence: list[str] = field(default_factory=list)  # e.g. ["429", "529", "500", "malformed"]
    fault_rates: dict[str, float] = field(default_factory=dict)  # {"429": 0.1, "malformed": 0.05}
    seed: int = 0
    retry_after: int = 1  # retry-after of injected 429s
    window_seconds: float = 60.0
    score_range: tuple[float, float] = (0.7, 1.0)
    require_api_key: bool = True
    text: str | None = None  # fixed answer text instead of the generated judgment
    # The limits the anthropic-ratelimit-* headers announce (the real API sends them on every
    # answer). Requests: ``rpm`` when set (then enforced), else this; tokens are announced and
    # counted over the window, not enforced.
    announced_rpm: int = 4000
    input_tpm: int = 2_000_000
    output_tpm: int = 400_000

    def __post_init__(self) -> None:
        self.fail_sequence = [normalise_fault(f) for f in self.fail_sequence]
        self.fault_rates = {normalise_fault(k): float(v) for k, v in self.fault_rates.items()}
        self.score_range = (float(self.score_range[0]), float(self.score_range[1]))


def normalise_fault(value: object) -> str:
    text = str(value).strip().lower()
    if text in ("ok", "200", "success", "normal"):
        return "ok"
    if text in ("rate_limit", "rate_limit_error"):
        return "429"
    if text in ("overloaded", "overloaded_error"):
        return "529"
    if text in ("api_error", "error"):
        return "500"
    if text in FAULTS:
        return text
    raise ValueError(f"unknown fault {value!r}; expected one of {FAULTS + ('ok',)}")


# --------------------------------------------------------------------------- judgment text
