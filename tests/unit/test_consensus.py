"""Judgment validity and the consensus of the valid judges (spec §3.5, §10 test_rerun_judges)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiment.consensus import (
    SlotJudgment,
    consensus,
    invalid_slots,
    is_valid_judgment,
    load_judgment,
    load_slots,
)
from experiment.models import Judgment


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def slot(n: int, score: float | None, passed: bool = True, reasoning: str = "", **extra) -> SlotJudgment:
    return SlotJudgment(n, Judgment(score=score, passed=passed, reasoning=reasoning or f"judge {n}", **extra))


@pytest.mark.parametrize(
    ("content", "valid"),
    [
        ({"score": 0.9, "passed": True, "is_valid": True}, True),
        ({"score": 0.9, "passed": True, "is_valid": False}, False),
        ({"score": 0.9, "passed": True}, True),  # absent is_valid: backward compatible
        ({"passed": True, "is_valid": True}, False),  # no score
        ({"score": None, "passed": True}, False),
        ({"score": 0.7, "passed": True, "grade": "C", "fallback": True}, False),  # legacy fallback
        ("{not json", False),
        ("[1, 2]", False),
        ({"score": "high"}, False),
    ],
)
def test_validity_rules(tmp_path: Path, content, valid: bool):
    path = write(tmp_path / "judgment.json", content)
    assert is_valid_judgment(path) is valid


def test_missing_file_is_invalid(tmp_path: Path):
    assert is_valid_judgment(tmp_path / "nope.json") is False
    assert load_judgment(tmp_path / "nope.json") is None


def test_mean_of_valid_only_and_not_all_valid():
    result = consensus([slot(1, 0.9), SlotJudgment(2, Judgment(score=0.1, is_valid=False))])
    assert result is not None
    assert result.score == pytest.approx(0.9)
    assert result.is_valid is False
    assert (result.valid_judges, result.total_judges) == (1, 2)
    assert result.grade == "A"


def test_no_valid_judge_means_no_consensus():
    assert consensus([]) is None
    assert consensus([SlotJudgment(1, None), SlotJudgment(2, Judgment(score=0.8, is_valid=False))]) is None


def test_strict_majority():
    two_of_four = [slot(1, 0.8, True), slot(2, 0.8, True), slot(3, 0.8, False), slot(4, 0.8, False)]
    assert consensus(two_of_four).passed is False
    three_of_four = [*two_of_four[:3], slot(4, 0.8, True)]
    assert consensus(three_of_four).passed is True
    assert consensus([slot(1, 0.5, True)]).passed is True


def test_closest_to_mean_gives_reasoning_and_criteria_first_slot_on_tie():
    judges = [
        slot(1, 0.96, reasoning="first", criteria_scores={"a": 1}),
        slot(2, 0.96, reasoning="second", criteria_scores={"b": 2}),
        slot(3, 1.0, reasoning="third"),
    ]
    result = consensus(judges)
    assert result.score == 0.9733333333333333  # the sample's value, bit for bit
    assert result.reasoning == "first"
    assert result.criteria_scores == {"a": 1}
    assert result.is_valid is True
    assert (result.valid_judges, result.total_judges) == (3, 3)


def test_grade_from_mean_not_from_judges():
    result = consensus([slot(1, 1.0, grade="F"), slot(2, 1.0, grade="F")])
    assert result.grade == "S"


def test_total_judges_counts_configured_slots():
    result = consensus([slot(1, 0.5)], total_judges=3)
    assert (result.valid_judges, result.total_judges, result.is_valid) == (1, 3, False)


def test_load_slots_and_invalid_slots(tmp_path: Path):
    write(tmp_path / "judge_01" / "judgment.json", {"score": 0.9, "passed": True})
    write(tmp_path / "judge_02" / "judgment.json", {"score": 0.0, "passed": False, "is_valid": False})
    slots = load_slots(tmp_path, 3)
    assert [s.slot for s in slots] == [1, 2, 3]
    assert invalid_slots(slots) == [2, 3]
    assert [s.slot for s in load_slots(tmp_path, 1, extra_slots=[2])] == [1, 2]
