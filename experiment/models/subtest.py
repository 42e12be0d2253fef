"""Models of a subtest's files: the workspace manifest, its report and its result inside the tier."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from experiment.models.agent import TokenStats
from experiment.models.base import ScyllaModel
from experiment.models.run import RunResult


class ConfigManifest(ScyllaModel):
    """``T<n>/<NN>/config_manifest.json``: how the subtest's workspace was composed."""

    tier_id: str
    """Tier id (``T0`` ... ``T6``)."""
    subtest_id: str
    """Two-digit subtest id."""
    fixture_config_path: str | None = None
    """Subtest yaml, relative to the ProjectScylla checkout."""
    resources: dict[str, Any] = Field(default_factory=dict)
    """Resources (skills, agents, claude_md blocks, tools, mcp servers)."""
    composed_at: str | None = None
    """When the workspace config was composed."""
    claude_md_hash: str | None = None
    """sha256 of the composed CLAUDE.md, or null."""
    inherited_from: Any = None
    """Resources inherited from other tiers' best subtests (T5/T6), or null."""


class SubtestReportSummary(ScyllaModel):
    """``summary`` of a subtest ``report.json``."""

    total_runs: int = 0
    """Runs aggregated."""
    passed: int = 0
    """Runs passed."""
    pass_rate: float = 0.0
    """passed / total_runs."""
    mean_score: float = 0.0
    """Mean consensus score."""
    median_score: float = 0.0
    """Median consensus score."""
    std_dev: float = 0.0
    """Sample standard deviation of the scores."""
    total_cost: float = 0.0
    """Sum of run costs."""
    consistency: float = 0.0
    """max(0, 1 - std/mean)."""
    grade_distribution: dict[str, int] = Field(default_factory=dict)
    """Grade -> count."""
    modal_grade: str | None = None
    """Most frequent grade."""
    min_grade: str | None = None
    """Worst grade (F<D<C<B<A<S)."""
    max_grade: str | None = None
    """Best grade."""


class SubtestReportChild(ScyllaModel):
    """One run in a subtest report."""

    run_number: int
    """1-based run number."""
    score: float | None = None
    """Run score."""
    passed: bool | None = None
    """Run pass verdict."""
    report: str = ""
    """Relative path of the run report (``./run_01/report.json``)."""


class SubtestReport(ScyllaModel):
    """``T<n>/<NN>/report.json``."""

    subtest_id: str
    """Two-digit subtest id."""
    tier_id: str
    """Tier id."""
    summary: SubtestReportSummary = Field(default_factory=SubtestReportSummary)
    """Aggregate statistics."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Summed tokens."""
    children: list[SubtestReportChild] = Field(default_factory=list)
    """One entry per run."""
    generated_at: str | None = None
    """When the report was written."""


class SubtestResult(ScyllaModel):
    """The SubTestResult embedded in a tier ``result.json``."""

    subtest_id: str
    """Two-digit subtest id."""
    tier_id: str
    """Tier id."""
    runs: list[RunResult] = Field(default_factory=list)
    """The full run results, sorted by run number."""
    pass_rate: float = 0.0
    """passed / runs."""
    mean_score: float = 0.0
    """Mean score."""
    median_score: float = 0.0
    """Median score."""
    std_dev_score: float = 0.0
    """Sample standard deviation of the scores."""
    mean_cost: float = 0.0
    """Mean run cost."""
    total_cost: float = 0.0
    """Summed run cost."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Summed tokens."""
    consistency: float = 0.0
    """max(0, 1 - std/mean)."""
    grade_distribution: dict[str, int] = Field(default_factory=dict)
    """Grade -> count."""
    modal_grade: str | None = None
    """Most frequent grade."""
    min_grade: str | None = None
    """Worst grade."""
    max_grade: str | None = None
    """Best grade."""
    selected_as_best: bool = False
    """This subtest won its tier."""
    selection_reason: str = ""
    """Why it was (or was not) selected."""
    rate_limit_info: Any = None
    """Rate-limit details when the subtest was interrupted, else null."""
