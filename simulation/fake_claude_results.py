"""The JSON objects the fake ``claude`` prints: Claude Code's ``--output-format json`` results.

Standard library only. A success is deterministic from a hash of (model, prompt, cwd), so a rerun
of the same run reports the same tokens and cost; error results carry zero usage.
"""

from __future__ import annotations

import hashlib
import time
import uuid

HELLO_FILE = "hello.py"
RATE_LIMIT_TEXT = "You've hit your limit · resets 4pm (America/Los_Angeles)"
OVERLOADED_TEXT = 'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


def _seed(*parts: str) -> int:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def zero_usage() -> dict:
    """Usage of an answer that spent no tokens (errors, rate limits)."""
    return {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
    }


def result_object(
    *,
    subtype: str,
    is_error: bool,
    started: float,
    num_turns: int,
    text: str,
    cost: float,
    usage: dict,
    model_usage: dict,
    extra: dict | None = None,
) -> dict:
    """The ``--output-format json`` object, keys in Claude Code's order (``extra`` before ``usage``)."""
    elapsed_ms = int((time.monotonic() - started) * 1000)
    obj: dict = {
        "type": "result",
        "subtype": subtype,
        "is_error": is_error,
        "duration_ms": elapsed_ms,
        "duration_api_ms": max(0, elapsed_ms - 5),
        "num_turns": num_turns,
        "result": text,
        "session_id": str(uuid.uuid4()),
        "total_cost_usd": cost,
    }
    if extra:
        obj.update(extra)
    obj["usage"] = usage
    obj["modelUsage"] = model_usage
    obj["permission_denials"] = []
    obj["uuid"] = str(uuid.uuid4())
    return obj


def success_result(model: str, prompt: str, cwd: str, started: float) -> dict:
    """A successful run's result; tokens and cost are deterministic from (model, prompt, cwd)."""
    seed = _seed(model, prompt, cwd)
    input_tokens = 20 + seed % 40
    cache_creation = 20000 + (seed >> 8) % 6000
    cache_read = 100000 + (seed >> 20) % 30000
    output_tokens = 400 + (seed >> 36) % 900
    # Sonnet-like pricing per token.
    cost = round(
        input_tokens * 3e-6 + cache_creation * 3.75e-6 + cache_read * 0.3e-6 + output_tokens * 15e-6,
        7,
    )
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": cache_creation},
    }
    model_usage = {
        model: {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "cacheReadInputTokens": cache_read,
            "cacheCreationInputTokens": cache_creation,
            "webSearchRequests": 0,
            "costUSD": cost,
            "contextWindow": 200000,
            "maxOutputTokens": 64000,
        }
    }
    text = (
        f"I created `{HELLO_FILE}` which prints `Hello, World!`. "
        f"Running `python {HELLO_FILE}` outputs the expected greeting."
    )
    return result_object(
        subtype="success",
        is_error=False,
        started=started,
        num_turns=6,
        text=text,
        cost=cost,
        usage=usage,
        model_usage=model_usage,
    )


def empty_model_usage(model: str) -> dict:
    """``modelUsage`` of an answer that spent no tokens."""
    return {
        model: {
            "inputTokens": 0,
            "outputTokens": 0,
            "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0,
            "webSearchRequests": 0,
            "costUSD": 0,
            "contextWindow": 200000,
            "maxOutputTokens": 64000,
        }
    }
