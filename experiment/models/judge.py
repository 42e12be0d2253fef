"""Models of the judges' files: one judgment, the timings, the consensus and its run summary."""

from __future__ import annotations

from typing import Any

from experiment.models.base import ScyllaModel


class Judgment(ScyllaModel):
    """``judge/judge_NN/judgment.json``: one judge's verdict."""

    score: float | None = None
    """Score in [0, 1]; None means the judgment is unusable."""
    passed: bool | None = None
    """The LLM's own pass verdict (not a threshold)."""
    grade: str | None = None
    """Grade recomputed from the score."""
    reasoning: str = ""
    """The judge's explanation."""
    is_valid: bool = True
    """False when the judge output could not be used; absent means valid (backward compatible)."""
    criteria_scores: dict[str, Any] | None = None
    """Per-category scores (``achieved``/``max`` may be the string "N/A"); kept loose."""
    fallback: bool = False
    """Legacy: the blanket 0.7/C fallback judgment; such judgments are invalid (spec §8.2)."""

    @property
    def valid(self) -> bool:
        """Usable for consensus: ``is_valid`` not false, a score present and not a fallback."""
        return self.is_valid is not False and self.score is not None and not self.fallback


class JudgeTiming(ScyllaModel):
    """``judge/judge_NN/timing.json`` and ``judge/timing.json``."""

    judge_duration_seconds: float = 0.0
    """Wall time of the judge (or of all judges for ``judge/timing.json``)."""
    measured_at: str | None = None
    """When the timing was written (ISO 8601)."""
    failed: bool | None = None
    """Set when the judge failed (duration 0, an ``error.log`` beside it)."""
    error: str | None = None
    """Failure message when ``failed``."""
    rerun: bool | None = None
    """Written by rerun_judges."""
    used_saved_prompt: bool | None = None
    """The saved ``judge_prompt.md`` was reused."""
    rejudge: bool | None = None
    """Written by regenerate ``--rejudge``."""
    fallback: bool | None = None
    """Legacy fallback judge marker."""


class JudgeConsensus(ScyllaModel):
    """``judge/result.json``: the consensus of the valid judges."""

    score: float | None = None
    """Mean score of the valid judges."""
    passed: bool | None = None
    """Strict majority of the valid judges passed."""
    grade: str | None = None
    """Grade of the consensus score."""
    reasoning: str = ""
    """Reasoning of the judge closest to the mean."""
    is_valid: bool | None = None
    """True only if all judges were valid (later ProjectScylla versions)."""
    criteria_scores: dict[str, Any] | None = None
    """Criteria of the closest judge (or null)."""
    valid_judges: int | None = None
    """Number of valid judges that entered the consensus (scylla-repair addition)."""
    total_judges: int | None = None
    """Number of judge slots configured (scylla-repair addition)."""


class JudgeSummary(ScyllaModel):
    """One entry of ``run_result.judges``."""

    model: str = ""
    """Judge model id."""
    score: float | None = None
    """That judge's score."""
    passed: bool | None = None
    """That judge's pass verdict."""
    grade: str | None = None
    """That judge's grade."""
    reasoning: str = ""
    """That judge's reasoning."""
    judge_number: int = 1
    """1-based slot number (``judge_NN``)."""
    is_valid: bool | None = None
    """Validity of the judgment (HEAD only)."""
    criteria_scores: dict[str, Any] | None = None
    """That judge's criteria (HEAD only)."""
