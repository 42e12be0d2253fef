"""Models of a tier's files (result, best subtest, report) and of ``tier_comparison.json``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from experiment.models.agent import TokenStats
from experiment.models.base import FiniteFloat, ScyllaModel, json_dict
from experiment.models.subtest import SubtestResult


class TierResult(ScyllaModel):
    """``T<n>/result.json``; ``cost_of_pass`` is finite or null (Infinity is read as null)."""

    tier_id: str
    """Tier id."""
    subtest_results: dict[str, SubtestResult] = Field(default_factory=dict)
    """Subtest id -> result."""
    best_subtest: str | None = None
    """Winning subtest id."""
    best_subtest_score: float = 0.0
    """Median score of the winner."""
    inherited_from: Any = None
    """T5/T6 inheritance info, or null."""
    tiebreaker_needed: bool = False
    """Top two were within 0.05."""
    total_cost: float = 0.0
    """Sum of subtest costs."""
    total_duration: float = 0.0
    """Tier wall time in seconds."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Summed tokens."""
    cost_of_pass: FiniteFloat = None
    """mean_cost / pass_rate of the best subtest; ProjectScylla's bare ``Infinity`` becomes null."""


class Vote(ScyllaModel):
    """One vote of ``best_subtest.json``."""

    subtest_id: str
    """Subtest voted for."""
    score: float = 0.0
    """Its median score."""
    confidence: float = 0.0
    """Its consistency."""
    reasoning: str = ""
    """"Pass rate: x%, Mean score: ..." or "Only sub-test in tier"."""


class BestSubtest(ScyllaModel):
    """``T<n>/best_subtest.json``: the JudgeSelection."""

    winning_subtest: str | None = None
    """Winning subtest id."""
    winning_score: float = 0.0
    """Winner's median score."""
    votes: list[Vote] = Field(default_factory=list)
    """One vote per subtest."""
    margin: float = 0.0
    """Score margin over the runner-up (1.0 when alone)."""
    tiebreaker_needed: bool = False
    """Top two were within 0.05."""
    tiebreaker_result: Vote | None = None
    """The tie-breaker's vote for the winner (ProjectScylla's ``JudgeVote``), or null."""


class TierReportSummary(ScyllaModel):
    """``summary`` of a tier ``report.json``."""

    total_subtests: int = 0
    """Number of subtests."""
    best_subtest: str | None = None
    """Winning subtest id."""
    best_score: float = 0.0
    """Winner's score."""
    total_cost: float = 0.0
    """Tier cost."""
    total_duration: float = 0.0
    """Tier duration."""
    tiebreaker_needed: bool = False
    """Top two were within 0.05."""


class TierReportBest(ScyllaModel):
    """``best`` of a tier ``report.json``."""

    subtest: str | None = None
    """Winning subtest id."""
    score: float = 0.0
    """Winner's score."""
    report: str = ""
    """Relative path of its report."""


class TierReportChild(ScyllaModel):
    """One subtest in a tier ``report.json``."""

    id: str
    """Subtest id."""
    score: float = 0.0
    """Its median score."""
    pass_rate: float = 0.0
    """Its pass rate."""
    cost: float = 0.0
    """Its total cost."""
    selected: bool = False
    """It won the tier."""
    report: str = ""
    """Relative path of its report (``./00/report.json``)."""


class TierReport(ScyllaModel):
    """``T<n>/report.json``."""

    tier: str
    """Tier id."""
    summary: TierReportSummary = Field(default_factory=TierReportSummary)
    """Tier statistics."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Summed tokens."""
    best: TierReportBest = Field(default_factory=TierReportBest)
    """The winner."""
    children: list[TierReportChild] = Field(default_factory=list)
    """One entry per subtest."""
    generated_at: str | None = None
    """When the report was written."""


class TierComparisonEntry(ScyllaModel):
    """One tier of ``tier_comparison.json``."""

    best_subtest: str | None = None
    """Tier winner."""
    best_score: float = 0.0
    """Winner's score."""
    total_cost: float = 0.0
    """Tier cost."""
    tiebreaker_needed: bool = False
    """Top two were within 0.05."""


class TierComparison(RootModel[dict[str, TierComparisonEntry]]):
    """``tier_comparison.json``: tier id -> entry (a RootModel; it has no other keys)."""

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON-ready dict, as ``ScyllaModel.to_json_dict``."""
        return json_dict(self)
