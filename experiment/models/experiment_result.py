"""Models of the experiment's root files: ``result.json`` and ``report.json``."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from experiment.models.agent import TokenStats
from experiment.models.base import FiniteFloat, ScyllaModel
from experiment.models.tier import TierResult


class ExperimentResult(ScyllaModel):
    """Root ``result.json``. In memory ``frontier_cop`` is finite or None (nothing passed); in the
    file "nothing passed" is the bare ``Infinity`` ProjectScylla writes, because its model
    requires a float there and rejects null (see :meth:`to_json_dict`)."""

    config: dict[str, Any] = Field(default_factory=dict)
    """The config as the runner saw it (kept verbatim)."""
    tier_results: dict[str, TierResult] = Field(default_factory=dict)
    """Tier id -> tier result."""
    best_overall_tier: str | None = None
    """Frontier tier."""
    best_overall_subtest: str | None = None
    """Best subtest of the frontier tier."""
    frontier_cop: FiniteFloat = None
    """Lowest cost-of-pass; None when no tier passed (read from, and written as, ``Infinity``)."""
    frontier_cop_tier: str | None = None
    """Tier with the lowest cost-of-pass."""
    total_cost: float = 0.0
    """Sum of tier costs."""
    total_duration_seconds: float = 0.0
    """Experiment wall time."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Summed tokens."""
    started_at: str | None = None
    """Experiment start (ISO 8601)."""
    completed_at: str | None = None
    """Experiment end (ISO 8601)."""

    def to_json_dict(self) -> dict[str, Any]:
        """The file's dict: a set ``frontier_cop`` of None is written as ``float("inf")``, which
        :func:`experiment.jsonio.dumps` writes as ProjectScylla does (``Infinity``)."""
        data = super().to_json_dict()
        if "frontier_cop" in data and data["frontier_cop"] is None:
            data["frontier_cop"] = math.inf
        return data


class ExperimentReportSummary(ScyllaModel):
    """``summary`` of the root ``report.json``."""

    total_tiers: int = 0
    """Number of tiers."""
    best_tier: str | None = None
    """Frontier tier."""
    best_subtest: str | None = None
    """Its best subtest."""
    frontier_cop: FiniteFloat = None
    """Lowest cost-of-pass, or null when nothing passed."""
    total_cost: float = 0.0
    """Experiment cost."""
    total_duration: float = 0.0
    """Experiment duration."""
    started_at: str | None = None
    """Start time."""
    completed_at: str | None = None
    """End time."""


class ExperimentReportBest(ScyllaModel):
    """``best`` of the root ``report.json``."""

    tier: str | None = None
    """Frontier tier."""
    subtest: str | None = None
    """Its best subtest."""
    report: str = ""
    """Relative path of the tier report."""


class ExperimentReportChild(ScyllaModel):
    """One tier in the root ``report.json``."""

    tier: str
    """Tier id."""
    best_subtest: str | None = None
    """Tier winner."""
    best_score: float = 0.0
    """Winner's score."""
    cost: float = 0.0
    """Tier cost."""
    report: str = ""
    """Relative path of the tier report."""


class ExperimentReport(ScyllaModel):
    """Root ``report.json``."""

    experiment_id: str = ""
    """Experiment id."""
    summary: ExperimentReportSummary = Field(default_factory=ExperimentReportSummary)
    """Experiment statistics."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Summed tokens."""
    best: ExperimentReportBest = Field(default_factory=ExperimentReportBest)
    """The frontier."""
    children: list[ExperimentReportChild] = Field(default_factory=list)
    """One entry per tier."""
    generated_at: str | None = None
    """When the report was written."""
