"""The answers of the local Messages server: request validation, judgments and error bodies.

Standard library only. The judgment is deterministic from a hash of the request, so a rerun of
the same judge prompt gets the same score.
"""

from __future__ import annotations

import hashlib
import json

MALFORMED_TEXT = "I cannot evaluate this."
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    429: "Number of requests has exceeded your rate limit. Please try again later.",
    500: "Internal server error",
    529: "Overloaded",
}


def _grade(score: float) -> str:
    for threshold, grade in ((0.9, "A"), (0.8, "B"), (0.7, "C"), (0.6, "D")):
        if score >= threshold:
            return grade
    return "F"


def request_digest(body: dict) -> str:
    canonical = json.dumps(
        {"model": body.get("model"), "system": body.get("system"), "messages": body.get("messages")},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def judgment_for(body: dict, score_range: tuple[float, float]) -> dict:
    digest = request_digest(body)
    frac = int(digest[:12], 16) / float(16**12)
    lo, hi = score_range
    score = round(lo + frac * (hi - lo), 3)
    items = {}
    achieved_total = 0.0
    for i, name in enumerate(("F1", "F2", "F3"), start=1):
        # F1 always passes; the others carry the score.
        achieved = 1.0 if i == 1 else round(min(1.0, max(0.0, score)), 2)
        achieved_total += achieved
        items[name] = {"achieved": achieved, "max": 1.0, "reason": f"Requirement {name} assessed."}
    quality = round(min(1.0, max(0.0, score)) * 2.0, 2)
    return {
        "score": score,
        "passed": score >= 0.6,
        "grade": _grade(score),
        "reasoning": "The agent produced hello.py which prints the expected greeting.",
        "categories": {
            "functional": {
                "achieved": round(achieved_total, 2),
                "max": 3.0,
                "score": round(achieved_total / 3.0, 3),
                "items": items,
            },
            "code_quality": {
                "achieved": quality,
                "max": 2.0,
                "score": round(quality / 2.0, 3),
                "items": {"Q1": {"achieved": quality, "max": 2.0, "reason": "Readable and idiomatic."}},
            },
        },
    }


def judgment_text(body: dict, score_range: tuple[float, float]) -> str:
    judgment = judgment_for(body, score_range)
    return (
        "I evaluated the agent's work against the rubric.\n\n```json\n"
        + json.dumps(judgment, indent=2)
        + "\n```\n"
    )


def prompt_chars(body: dict) -> int:
    total = 0
    system = body.get("system")
    if isinstance(system, str):
        total += len(system)
    elif isinstance(system, list):
        total += sum(len(str(b.get("text", ""))) for b in system if isinstance(b, dict))
    for msg in body.get("messages", []):
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(b.get("text", ""))) for b in content if isinstance(b, dict))
    return total


def validate_request(body: object) -> str | None:
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = msg.get("content")
        if not isinstance(content, (str, list)):
            return f"messages.{i}.content: Input should be a string or a list of content blocks"
    return None


# --------------------------------------------------------------------------- state
