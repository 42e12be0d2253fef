"""Models of a run's final files: ``run_result.json`` and ``run_NN/report.json``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from experiment.models.agent import TokenStats
from experiment.models.base import ScyllaModel
from experiment.models.judge import JudgeSummary


class RunResult(ScyllaModel):
    """``run_result.json``: the final E2ERunResult (only run_number and exit_code are required)."""

    run_number: int
    """1-based run number."""
    exit_code: int
    """Agent exit code."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Agent tokens."""
    tokens_input: int = 0
    """input + cache_read tokens."""
    tokens_output: int = 0
    """Output tokens."""
    cost_usd: float = 0.0
    """Agent cost in USD."""
    duration_seconds: float = 0.0
    """agent + judge duration."""
    agent_duration_seconds: float = 0.0
    """Agent wall time."""
    judge_duration_seconds: float = 0.0
    """Judge wall time (all judges)."""
    judge_score: float | None = None
    """Consensus score."""
    judge_passed: bool | None = None
    """Consensus pass verdict."""
    judge_grade: str | None = None
    """Consensus grade."""
    judge_reasoning: str = ""
    """Consensus reasoning."""
    judges: list[JudgeSummary] = Field(default_factory=list)
    """Per-judge summaries (absent in files rewritten by ``--rejudge``)."""
    workspace_path: str = ""
    """Absolute workspace path on the machine that ran it (do not trust)."""
    logs_path: str = ""
    """Absolute agent log dir on the machine that ran it (do not trust)."""
    command_log_path: str | None = None
    """Absolute command_log.json path on the machine that ran it (do not trust)."""
    criteria_scores: dict[str, Any] = Field(default_factory=dict)
    """Consensus criteria scores (``{}`` when unknown)."""


class RunReport(ScyllaModel):
    """``run_NN/report.json``."""

    run_number: int = 1
    """1-based run number."""
    score: float | None = None
    """Consensus score."""
    grade: str | None = None
    """Consensus grade."""
    passed: bool | None = None
    """Consensus pass verdict."""
    cost_usd: float = 0.0
    """Agent cost in USD."""
    duration_seconds: float = 0.0
    """Total duration in seconds."""
    generated_at: str | None = None
    """When the report was written."""
    process_metrics: dict[str, Any] | None = None
    """HEAD-only process metrics."""
