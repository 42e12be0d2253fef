"""The judge's answer -> a :class:`~experiment.models.Judgment`, strictly (spec §3.5).

A judge may wrap its JSON in prose or a fenced block; we accept a bare object, a fenced one, or the
first balanced ``{...}`` holding a ``score``. Anything else is a :class:`JudgeParseError`, which the
slot turns into one retry with a JSON-only reminder and then an invalid judgment - never a guessed
score (spec §8.2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from experiment.models import Judgment, grade_for_score

__all__ = ["JudgeParseError", "parse_judgment"]


class JudgeParseError(ValueError):
    """The judge's answer holds no usable judgment."""


_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)


def _balanced_objects(text: str) -> Iterator[str]:
    """Every ``{...}`` substring with balanced braces (strings and escapes respected), in order."""
    for start, char in enumerate(text):
        if char != "{":
            continue
        depth, in_string, escaped = 0, False, False
        for index in range(start, len(text)):
            c = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    yield text[start : index + 1]
                    break


def _loads_object(candidate: str) -> dict | None:
    try:
        value = json.loads(candidate)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _find_object(text: str) -> dict:
    stripped = text.strip()
    if not stripped:
        raise JudgeParseError("Judge returned empty response")
    found = _loads_object(stripped)
    if found is not None:
        return found
    for match in _FENCE.finditer(text):
        content = match.group(1).strip()
        if content.startswith("{"):
            found = _loads_object(content)
            if found is not None:
                return found
    first: dict | None = None
    for candidate in _balanced_objects(text):
        found = _loads_object(candidate)
        if found is None:
            continue
        if "score" in found:
            return found
        first = first or found
    if first is not None:
        return first
    raise JudgeParseError("Judge response does not contain valid JSON")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "pass", "passed")
    if isinstance(value, int | float):
        return bool(value)
    return False


def parse_judgment(text: str) -> Judgment:
    """The judgment in a judge's answer (spec §3.5): a bare object, else the first fenced block
    that holds one, else brace matching. ``score`` is required and clamped to [0, 1]; ``grade``
    is recomputed from it; ``passed`` is the judge's own boolean; ``criteria_scores`` comes from
    ``categories`` (or a legacy ``criteria_scores``). Raises JudgeParseError (a ValueError)."""
    data = _find_object(text)
    if "score" not in data:
        raise JudgeParseError("Judge response missing required 'score' field")
    try:
        score = float(data["score"])
    except (TypeError, ValueError):
        raise JudgeParseError(f"Judge score is not a number: {data['score']!r}") from None
    if score != score:  # NaN
        raise JudgeParseError("Judge score is NaN")
    score = min(1.0, max(0.0, score))
    criteria = data.get("categories")
    if not isinstance(criteria, dict):
        criteria = data.get("criteria_scores") if isinstance(data.get("criteria_scores"), dict) else None
    return Judgment(
        score=score,
        passed=_as_bool(data.get("passed")),
        grade=grade_for_score(score),
        reasoning=str(data.get("reasoning") or ""),
        is_valid=True,
        criteria_scores=criteria,
    )
