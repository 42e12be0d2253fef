"""The server's shared counters and its admission decision (concurrency, then the rpm window).

One lock guards everything; the handler asks :meth:`ServerState.admit` once per request and
reports back with :meth:`ServerState.count` and :meth:`ServerState.release`.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from simulation.messages_behavior import FAULTS, ServerBehavior


class ServerState:
    """Counters, the rpm window and the fault sequence position, all under ``lock``."""

    def __init__(self, behavior: ServerBehavior) -> None:
        self.lock = threading.Lock()
        self.behavior = behavior
        self.rng = random.Random(behavior.seed)
        self.reset()

    def reset(self) -> None:
        """Clear the counters, the rpm window and the ``fail_sequence`` position."""
        self.started_at = time.time()
        self.requests = 0
        self.accepted = 0
        self.by_status: dict[str, int] = {}
        self.by_model: dict[str, int] = {}
        self.in_flight = 0
        self.peak_concurrency = 0
        self.max_concurrent_violations = 0
        self.rpm_violations_rejected = 0
        self.window: deque[float] = deque()  # monotonic times of accepted requests
        self.tokens: deque[tuple[float, int, int]] = deque()  # (monotonic, input, output) answered
        self.accepted_times: list[float] = []  # wall-clock times of accepted requests
        self.seq_index = 0
        self.rng = random.Random(self.behavior.seed)
        self.systems: list[str] = []  # distinct system prompts received, in order (for fidelity tests)

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /stats`` answer (call with ``lock`` held)."""
        per_minute: dict[int, int] = {}
        for t in self.accepted_times:
            minute = int((t - self.started_at) // 60)
            per_minute[minute] = per_minute.get(minute, 0) + 1
        n_minutes = (max(per_minute) + 1) if per_minute else 0
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "by_status": dict(self.by_status),
            "by_model": dict(self.by_model),
            "in_flight": self.in_flight,
            "peak_concurrency": self.peak_concurrency,
            "max_concurrent_violations": self.max_concurrent_violations,
            "rpm_violations_rejected": self.rpm_violations_rejected,
            "per_minute": [per_minute.get(m, 0) for m in range(n_minutes)],
            "accepted_times": list(self.accepted_times),
            "systems": list(self.systems),
            "started_at": self.started_at,
            "behavior": dataclasses.asdict(self.behavior),
        }

    def admit(self, behavior: ServerBehavior) -> tuple[tuple[str, int] | None, str]:
        """``(reject, fault)`` for one valid request under ``behavior``.

        ``reject`` is ``(kind, retry_after)`` (kind ``concurrency`` or ``rpm``) when the request is
        turned away; otherwise it is counted as accepted and in flight (call :meth:`release` when
        done) and ``fault`` is the next ``fail_sequence`` entry, else a seeded draw from
        ``fault_rates``, else ``ok``.
        """
        fault = "ok"
        with self.lock:
            now = time.monotonic()
            reject: tuple[str, int] | None = None
            if behavior.max_concurrent is not None and self.in_flight >= behavior.max_concurrent:
                self.max_concurrent_violations += 1
                reject = ("concurrency", 1)
            elif behavior.rpm is not None:
                while self.window and self.window[0] <= now - behavior.window_seconds:
                    self.window.popleft()
                if len(self.window) >= behavior.rpm:
                    self.rpm_violations_rejected += 1
                    wait = self.window[0] + behavior.window_seconds - now
                    reject = ("rpm", max(1, math.ceil(wait)))
            if reject is None:
                self.window.append(now)
                self.accepted += 1
                self.accepted_times.append(time.time())
                self.in_flight += 1
                self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
                if self.seq_index < len(behavior.fail_sequence):
                    fault = behavior.fail_sequence[self.seq_index]
                    self.seq_index += 1
                else:
                    fault = "ok"
                    roll = self.rng.random()
                    acc = 0.0
                    for name in FAULTS:
                        acc += behavior.fault_rates.get(name, 0.0)
                        if roll < acc:
                            fault = name
                            break
        return reject, fault

    def count(self, status: int, model: str | None = None) -> None:
        """Count an answer by status and (for valid requests) by model."""
        with self.lock:
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1
            if model:
                self.by_model[model] = self.by_model.get(model, 0) + 1

    def count_tokens(self, input_tokens: int, output_tokens: int) -> None:
        """Tokens of an answer, for the ``-tokens-remaining`` headers."""
        with self.lock:
            self.tokens.append((time.monotonic(), input_tokens, output_tokens))

    def ratelimit_headers(self, behavior: ServerBehavior) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers, like the real API's, for the current window.

        ``-limit``: the budget per window; ``-remaining``: what is left of it now; ``-reset``
        (RFC 3339, UTC): when it is fully replenished (here: when the newest request counted
        leaves the sliding window; the real API's token bucket answers the same question).
        """
        with self.lock:
            now = time.monotonic()
            wall = time.time()
            horizon = now - behavior.window_seconds
            while self.window and self.window[0] <= horizon:
                self.window.popleft()
            while self.tokens and self.tokens[0][0] <= horizon:
                self.tokens.popleft()
            in_window = len(self.window)
            used_in = sum(t[1] for t in self.tokens)
            used_out = sum(t[2] for t in self.tokens)
            newest_request = self.window[-1] if self.window else now - behavior.window_seconds
            newest_tokens = self.tokens[-1][0] if self.tokens else now - behavior.window_seconds
        requests = behavior.rpm if behavior.rpm is not None else behavior.announced_rpm

        def reset(newest: float) -> str:
            at = wall + max(0.0, newest + behavior.window_seconds - now)
            return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

        values = {
            "requests": (requests, max(0, requests - in_window), reset(newest_request)),
            "tokens": (
                behavior.input_tpm + behavior.output_tpm,
                max(0, behavior.input_tpm + behavior.output_tpm - used_in - used_out),
                reset(newest_tokens),
            ),
            "input-tokens": (behavior.input_tpm, max(0, behavior.input_tpm - used_in), reset(newest_tokens)),
            "output-tokens": (
                behavior.output_tpm,
                max(0, behavior.output_tpm - used_out),
                reset(newest_tokens),
            ),
        }
        headers = {}
        for kind, (limit, remaining, at) in values.items():
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{kind}-reset"] = at
        return headers

    def release(self) -> None:
        """An accepted request has been answered."""
        with self.lock:
            self.in_flight -= 1
