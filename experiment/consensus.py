"""Judge consensus: which judgments count, and what the valid ones agree on.

A run has one judge slot per entry of ``config.judge_models`` (``judge/judge_NN``, 1-based). A
slot counts only when its ``judgment.json`` is a *valid* judgment (spec §10, test_rerun_judges):

* a missing file, invalid JSON, or an object that does not validate as a judgment: invalid;
* no ``score``: invalid;
* ``is_valid: false``: invalid; ``is_valid: true`` or absent: valid (backward compatible);
* a legacy fallback (``fallback: true``, the blanket 0.7/C score of spec §8.2): invalid.

The consensus of the valid judges (spec §3.5) is their mean score, a *strict* majority of their
``passed`` flags, the grade of the mean, and the reasoning and criteria of the valid judge whose
score is closest to the mean (the first slot on a tie). It records how many of the N slots were
valid. Invalid judgments are never averaged in, and when no judge is valid there is no consensus
at all (``None``): never a fallback score, so a run whose judges did not run is reported as
needing judges instead of being given a fake result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from experiment.fast_json import loads
from experiment.models import JudgeConsensus, Judgment, grade_for_score

JUDGMENT_FILE = "judgment.json"


@dataclass(frozen=True)
class SlotJudgment:
    """One judge slot: its 1-based number and its judgment (None when the file is missing or
    unreadable)."""

    slot: int
    judgment: Judgment | None

    @property
    def valid(self) -> bool:
        return self.judgment is not None and self.judgment.valid


def load_judgment(path: Path) -> Judgment | None:
    """The judgment in ``path``, or None when it is missing, not JSON, or not a judgment object."""
    try:
        data = loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return Judgment.model_validate(data)
    except ValidationError:
        return None


def is_valid_judgment(path: Path) -> bool:
    """True when ``path`` holds a judgment that may enter the consensus (rules in the docstring)."""
    judgment = load_judgment(path)
    return judgment is not None and judgment.valid


def load_slots(judge_dir: Path, total_judges: int, extra_slots: Sequence[int] = ()) -> list[SlotJudgment]:
    """The judgments of slots 1..``total_judges`` (plus any ``extra_slots`` found on disk)."""
    slots = sorted(set(range(1, total_judges + 1)) | set(extra_slots))
    return [SlotJudgment(n, load_judgment(Path(judge_dir) / f"judge_{n:02d}" / JUDGMENT_FILE)) for n in slots]


def consensus(slots: Sequence[SlotJudgment], total_judges: int | None = None) -> JudgeConsensus | None:
    """The consensus of the valid judgments of ``slots``, or None when none is valid.

    ``total_judges`` defaults to ``len(slots)``; ``is_valid`` is true only if every one of the
    ``total_judges`` slots is valid.
    """
    total = len(slots) if total_judges is None else total_judges
    # (judgment, score) of the valid slots in slot order; ``valid`` implies both are present.
    valid = [
        (s.judgment, float(s.judgment.score))
        for s in sorted(slots, key=lambda s: s.slot)
        if s.valid and s.judgment is not None and s.judgment.score is not None
    ]
    if not valid:
        return None
    mean = sum(score for _, score in valid) / len(valid)
    votes = sum(1 for judgment, _ in valid if judgment.passed is True)
    # min() keeps the first of equal distances, i.e. the first slot in slot order.
    closest, _ = min(valid, key=lambda pair: abs(pair[1] - mean))
    return JudgeConsensus(
        score=mean,
        passed=votes * 2 > len(valid),
        grade=grade_for_score(mean),
        reasoning=closest.reasoning,
        is_valid=len(valid) == total,
        criteria_scores=closest.criteria_scores,
        valid_judges=len(valid),
        total_judges=total,
    )


def invalid_slots(slots: Sequence[SlotJudgment]) -> list[int]:
    """1-based slots with no valid judgment: exactly the judges a rerun has to run."""
    return [s.slot for s in slots if not s.valid]
