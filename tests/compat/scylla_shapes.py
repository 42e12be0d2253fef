"""ProjectScylla-shaped models: what its readers require of each file we write.

Each model below mirrors, field for field, the model (or the dict a writer builds and a reader
indexes) that ProjectScylla uses for one file: the same names, types and required-ness, written
from reading its source (``scylla/e2e/models.py``, ``checkpoint.py``, ``judge_selection.py``,
``run_report_hierarchy.py``, ``agent_runner.py``, ``judge_runner.py``, ``command_logger.py``,
``stage_finalization.py``). They are deliberately *not* ``experiment.models``: ours are lenient
readers, these are the strictest reader a repaired experiment meets. Like ProjectScylla's models
they validate in pydantic's default (lax) mode and ignore keys they do not know.

Files whose reader indexes keys by hand (``report.json`` files, ``tier_comparison.json``, the
timing files, ``agent/result.json``) are mirrored as models whose required fields are the keys
read without a default.

:func:`shape_for` maps a file of an experiment to its shape; :func:`check_experiment` validates
every JSON file of an experiment and returns the problems.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TierID = Literal["T0", "T1", "T2", "T3", "T4", "T5", "T6"]
"""ProjectScylla's ``TierID`` enum, by value."""
RunStateValue = Literal[
    "pending",
    "dir_structure_created",
    "worktree_created",
    "symlinks_applied",
    "config_committed",
    "baseline_captured",
    "prompt_written",
    "replay_generated",
    "agent_complete",
    "agent_changes_committed",
    "diff_captured",
    "promoted_to_completed",
    "judge_pipeline_run",
    "judge_prompt_built",
    "judge_complete",
    "run_finalized",
    "report_written",
    "checkpointed",
    "worktree_cleaned",
    "failed",
    "rate_limited",
]
"""ProjectScylla's ``RunState`` values."""
SubtestStateValue = Literal["pending", "runs_in_progress", "runs_complete", "aggregated", "failed"]
"""ProjectScylla's ``SubtestState`` values."""
TierStateValue = Literal[
    "pending",
    "config_loaded",
    "subtests_running",
    "subtests_complete",
    "best_selected",
    "reports_generated",
    "complete",
    "failed",
]
"""ProjectScylla's ``TierState`` values."""
ExperimentStateValue = Literal[
    "initializing",
    "dir_created",
    "repo_cloned",
    "tiers_running",
    "tiers_complete",
    "reports_generated",
    "complete",
    "interrupted",
    "failed",
]
"""ProjectScylla's ``ExperimentState`` values."""


class Shape(BaseModel):
    """Base: lax validation and unknown keys ignored, as ProjectScylla's models do."""

    model_config = ConfigDict(extra="ignore")


# -- tokens, agent, judges ---------------------------------------------------------------------


class TokenStatsShape(Shape):
    """``TokenStats`` (and the adapter's ``AdapterTokenStats``): four counts, each defaulting to 0."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0


class AgentResultShape(Shape):
    """``agent/result.json`` as ``_load_agent_result`` reads it: every key indexed without default."""

    exit_code: int
    stdout: str
    stderr: str
    token_stats: TokenStatsShape
    cost_usd: float
    api_calls: int


class AgentTimingShape(Shape):
    """``agent/timing.json``: the duration its resume reads, and when it was measured."""

    agent_duration_seconds: float
    measured_at: str


class JudgeTimingShape(Shape):
    """``judge/timing.json`` and ``judge/judge_NN/timing.json`` (failed slots add ``failed``/``error``)."""

    judge_duration_seconds: float
    measured_at: str
    failed: bool = False
    error: str | None = None


class CommandShape(Shape):
    """One entry of ``agent/command_log.json`` (its ``CommandLog``)."""

    timestamp: str
    command: list[str]
    cwd: str
    env_vars: dict[str, str]
    exit_code: int
    stdout_file: str
    stderr_file: str
    duration_seconds: float


class CommandLogShape(Shape):
    """``agent/command_log.json`` (its ``CommandLogger`` dump)."""

    generated_at: str
    total_commands: int
    commands: list[CommandShape]


CriteriaScores = dict[str, dict[str, Any]]
"""Criterion name -> its details: each value must be an object."""


class JudgeResultShape(Shape):
    """``judge/result.json`` and a valid ``judge_NN/judgment.json``: its ``JudgeResult``."""

    score: float
    passed: bool
    grade: str
    reasoning: str
    is_valid: bool = True
    criteria_scores: CriteriaScores | None = None


class JudgeResultSummaryShape(Shape):
    """One entry of ``run_result.judges``: its ``JudgeResultSummary``."""

    model: str
    score: float | None = None
    passed: bool | None = None
    grade: str | None = None
    reasoning: str | None = None
    judge_number: int = 1
    is_valid: bool = True
    criteria_scores: CriteriaScores | None = None


# -- runs ----------------------------------------------------------------------------------------


class RunResultShape(Shape):
    """``run_result.json``: its ``E2ERunResult`` (with ``RunResultBase``); ``criteria_scores`` null
    is read as ``{}``."""

    run_number: int = 0
    cost_usd: float = 0.0
    duration_seconds: float = 0.0
    exit_code: int
    token_stats: TokenStatsShape
    agent_duration_seconds: float
    judge_duration_seconds: float
    judge_score: float
    judge_passed: bool
    judge_grade: str
    judge_reasoning: str
    workspace_path: str
    logs_path: str
    judges: list[JudgeResultSummaryShape] = Field(default_factory=list)
    command_log_path: str | None = None
    criteria_scores: CriteriaScores = Field(default_factory=dict)
    baseline_pipeline_summary: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_criteria(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("criteria_scores", {}) is None:
            return {**data, "criteria_scores": {}}
        return data


class RunReportShape(Shape):
    """A run's ``report.json`` (the dict ``save_run_report_json`` writes)."""

    run_number: int
    score: float | None
    grade: str | None
    passed: bool | None
    cost_usd: float
    duration_seconds: float
    generated_at: str


# -- subtests ------------------------------------------------------------------------------------


class RateLimitInfoShape(Shape):
    """``rate_limit_info`` of a subtest result: its ``RateLimitInfo``."""

    source: Literal["agent", "judge"]
    retry_after_seconds: float | None
    error_message: str
    detected_at: str


class SubTestResultShape(Shape):
    """One ``subtest_results`` entry of a tier ``result.json``: its ``SubTestResult``."""

    subtest_id: str
    tier_id: TierID
    runs: list[RunResultShape]
    pass_rate: float = 0.0
    mean_score: float = 0.0
    median_score: float = 0.0
    std_dev_score: float = 0.0
    mean_cost: float = 0.0
    total_cost: float = 0.0
    token_stats: TokenStatsShape = Field(default_factory=TokenStatsShape)
    consistency: float = 0.0
    grade_distribution: dict[str, int] | None = None
    modal_grade: str | None = None
    min_grade: str | None = None
    max_grade: str | None = None
    selected_as_best: bool = False
    selection_reason: str = ""
    rate_limit_info: RateLimitInfoShape | None = None


class SubtestReportChildShape(Shape):
    """One run in a subtest ``report.json``."""

    run_number: int
    score: float | None
    passed: bool | None
    report: str


class SubtestReportSummaryShape(Shape):
    """``summary`` of a subtest ``report.json``."""

    total_runs: int
    passed: int
    pass_rate: float
    mean_score: float
    median_score: float
    std_dev: float
    total_cost: float
    consistency: float
    grade_distribution: dict[str, int] | None
    modal_grade: str | None
    min_grade: str | None
    max_grade: str | None


class SubtestReportShape(Shape):
    """A subtest ``report.json`` (the dict ``save_subtest_report`` writes)."""

    subtest_id: str
    tier_id: TierID
    summary: SubtestReportSummaryShape
    token_stats: TokenStatsShape
    children: list[SubtestReportChildShape]
    generated_at: str


class ResourceManifestShape(Shape):
    """A subtest ``config_manifest.json``: its ``ResourceManifest``."""

    tier_id: str
    subtest_id: str
    fixture_config_path: str
    resources: dict[str, Any]
    composed_at: str
    claude_md_hash: str | None = None
    inherited_from: dict[str, Any] | None = None


# -- tiers ---------------------------------------------------------------------------------------


class TierBaselineShape(Shape):
    """``inherited_from`` of a tier result: its ``TierBaseline`` (both paths required, nullable)."""

    tier_id: TierID
    subtest_id: str
    claude_md_path: str | None
    claude_dir_path: str | None
    resources: dict[str, Any] = Field(default_factory=dict)


class TierResultShape(Shape):
    """A tier ``result.json``: its ``TierResult`` (``cost_of_pass`` is a property, not read)."""

    tier_id: TierID
    subtest_results: dict[str, SubTestResultShape]
    best_subtest: str | None = None
    best_subtest_score: float = 0.0
    inherited_from: TierBaselineShape | None = None
    tiebreaker_needed: bool = False
    total_cost: float = 0.0
    total_duration: float = 0.0
    token_stats: TokenStatsShape = Field(default_factory=TokenStatsShape)


class JudgeVoteShape(Shape):
    """One vote, and the tie-breaker's result, of ``best_subtest.json``: its ``JudgeVote``."""

    subtest_id: str
    score: float
    confidence: float
    reasoning: str


class JudgeSelectionShape(Shape):
    """``best_subtest.json``: its ``JudgeSelection``."""

    winning_subtest: str
    winning_score: float
    votes: list[JudgeVoteShape]
    margin: float
    tiebreaker_needed: bool = False
    tiebreaker_result: JudgeVoteShape | None = None


class TierReportSummaryShape(Shape):
    """``summary`` of a tier ``report.json``."""

    total_subtests: int
    best_subtest: str | None
    best_score: float
    total_cost: float
    total_duration: float
    tiebreaker_needed: bool


class TierReportBestShape(Shape):
    """``best`` of a tier ``report.json``."""

    subtest: str | None
    score: float
    report: str | None


class TierReportChildShape(Shape):
    """One subtest in a tier ``report.json``."""

    id: str
    score: float
    pass_rate: float
    cost: float
    selected: bool
    report: str


class TierReportShape(Shape):
    """A tier ``report.json`` (the dict ``save_tier_report`` writes)."""

    tier: TierID
    summary: TierReportSummaryShape
    token_stats: TokenStatsShape
    best: TierReportBestShape
    children: list[TierReportChildShape]
    generated_at: str


class TierComparisonEntryShape(Shape):
    """One tier of ``tier_comparison.json``."""

    best_subtest: str | None
    best_score: float
    total_cost: float
    tiebreaker_needed: bool


# -- experiment ----------------------------------------------------------------------------------


class ExperimentConfigShape(Shape):
    """``config`` of the root ``result.json`` (and ``config/experiment.json``): its ``ExperimentConfig``."""

    experiment_id: str
    task_repo: str
    task_commit: str
    task_prompt_file: str
    language: str
    models: list[str] = Field(default_factory=list)
    runs_per_subtest: int = 10
    tiers_to_run: list[TierID] = Field(default_factory=list)
    judge_models: list[str] = Field(default_factory=list)
    timeout_seconds: int = 3600
    max_turns: int | None = None
    max_subtests: int | None = None
    skip_agent_teams: bool = False
    thinking_mode: str = "None"
    use_containers: bool = False


class ExperimentResultShape(Shape):
    """The root ``result.json``: its ``ExperimentResult``. ``frontier_cop`` is a float (``inf``
    when no tier passed) and ``started_at`` a string: null is rejected for both."""

    config: ExperimentConfigShape
    tier_results: dict[TierID, TierResultShape]
    best_overall_tier: TierID | None = None
    best_overall_subtest: str | None = None
    frontier_cop: float = float("inf")
    frontier_cop_tier: TierID | None = None
    total_cost: float = 0.0
    total_duration_seconds: float = 0.0
    token_stats: TokenStatsShape = Field(default_factory=TokenStatsShape)
    started_at: str = ""
    completed_at: str | None = None


class ExperimentReportSummaryShape(Shape):
    """``summary`` of the root ``report.json`` (``frontier_cop`` null when nothing passed)."""

    total_tiers: int
    best_tier: TierID | None
    best_subtest: str | None
    frontier_cop: float | None
    total_cost: float
    total_duration: float
    started_at: str | None
    completed_at: str | None


class ExperimentReportBestShape(Shape):
    """``best`` of the root ``report.json``."""

    tier: TierID | None
    subtest: str | None
    report: str | None


class ExperimentReportChildShape(Shape):
    """One tier in the root ``report.json``."""

    tier: TierID
    best_subtest: str | None
    best_score: float
    cost: float
    report: str


class ExperimentReportShape(Shape):
    """The root ``report.json`` (the dict ``save_experiment_report`` writes)."""

    experiment_id: str
    summary: ExperimentReportSummaryShape
    token_stats: TokenStatsShape
    best: ExperimentReportBestShape
    children: list[ExperimentReportChildShape]
    generated_at: str


class CheckpointShape(Shape):
    """``checkpoint.json`` as ProjectScylla loads it: its ``E2ECheckpoint`` (v2.0 and v3.0 files are
    migrated by its loader, so only the fields they share are checked for them; run numbers
    of ``completed_runs`` become ints; every timestamp is a string, never null)."""

    version: Literal["2.0", "3.0", "3.1"]
    experiment_id: str = ""
    experiment_dir: str = ""
    config_hash: str = ""
    experiment_state: ExperimentStateValue = "initializing"
    tier_states: dict[str, TierStateValue] = Field(default_factory=dict)
    subtest_states: dict[str, dict[str, SubtestStateValue]] = Field(default_factory=dict)
    run_states: dict[str, dict[str, dict[str, RunStateValue]]] = Field(default_factory=dict)
    completed_runs: dict[str, dict[str, dict[int, Literal["passed", "failed", "agent_complete"]]]] = Field(
        default_factory=dict
    )
    started_at: str = ""
    last_updated_at: str = ""
    last_heartbeat: str = ""
    status: str = "running"
    rate_limit_source: str | None = None
    rate_limit_until: str | None = None
    pause_count: int = 0
    pid: int | None = None


# -- which file has which shape ------------------------------------------------------------------

_RUN = r"(?:completed/|in_progress/)?T[0-6]/\d{2}/run_\d{2,}"
_SUB = r"(?:completed/)?T[0-6]/\d{2}"
_TIER = r"(?:completed/)?T[0-6]"


class OwnRecordShape(BaseModel):
    """A file of ours that no ProjectScylla reader opens (a judge slot's ``request.json``: the
    request parameters and system prompt it was judged with); it must only be a JSON object."""

    model_config = ConfigDict(extra="allow")


SHAPES: list[tuple[re.Pattern[str], type[BaseModel] | None]] = [
    (re.compile(rf"^{_RUN}/run_result\.json$"), RunResultShape),
    (re.compile(rf"^{_RUN}/report\.json$"), RunReportShape),
    (re.compile(rf"^{_RUN}/agent/result\.json$"), AgentResultShape),
    (re.compile(rf"^{_RUN}/agent/timing\.json$"), AgentTimingShape),
    (re.compile(rf"^{_RUN}/agent/command_log\.json$"), CommandLogShape),
    (re.compile(rf"^{_RUN}/judge/result\.json$"), JudgeResultShape),
    (re.compile(rf"^{_RUN}/judge/timing\.json$"), JudgeTimingShape),
    (re.compile(rf"^{_RUN}/judge/judge_\d{{2,}}/timing\.json$"), JudgeTimingShape),
    (re.compile(rf"^{_RUN}/judge/judge_\d{{2,}}/judgment\.json$"), JudgeResultShape),
    (re.compile(rf"^{_RUN}/judge/judge_\d{{2,}}/request\.json$"), OwnRecordShape),
    (re.compile(rf"^{_SUB}/report\.json$"), SubtestReportShape),
    (re.compile(rf"^{_SUB}/config_manifest\.json$"), ResourceManifestShape),
    (re.compile(rf"^{_TIER}/result\.json$"), TierResultShape),
    (re.compile(rf"^{_TIER}/best_subtest\.json$"), JudgeSelectionShape),
    (re.compile(rf"^{_TIER}/report\.json$"), TierReportShape),
    (re.compile(r"^result\.json$"), ExperimentResultShape),
    (re.compile(r"^report\.json$"), ExperimentReportShape),
    (re.compile(r"^checkpoint\.json$"), CheckpointShape),
    (re.compile(r"^config/experiment\.json$"), ExperimentConfigShape),
    (re.compile(r"^tier_comparison\.json$"), None),  # checked by _check_tier_comparison
]
SKIPPED_DIRS = frozenset({".prefect", ".backups", ".failed", "workspace", "repo", ".git"})
"""Not part of the results ProjectScylla reads: our bookkeeping, backups, archived attempts, the
agent's workspace and the task repository. Hidden files (``.repair-attempt.json``, our record of
a run's repair attempt) are skipped too: no ProjectScylla reader opens them."""


def shape_for(relative: str) -> type[BaseModel] | None | Literal["unknown"]:
    """The shape of a JSON file at ``relative`` (posix path in the experiment); "unknown" when
    no ProjectScylla reader is known for it."""
    for pattern, shape in SHAPES:
        if pattern.match(relative):
            return shape
    return "unknown"


def _load(path: Path) -> Any:
    """JSON as ProjectScylla reads it (Python's ``json``, which takes a bare ``Infinity``)."""
    return json.loads(path.read_text(encoding="utf-8"))


def _check_tier_comparison(data: Any) -> None:
    if not isinstance(data, dict):
        raise ValueError("not an object")
    for tier, entry in data.items():
        if tier not in TierID.__args__:  # type: ignore[attr-defined]
            raise ValueError(f"unknown tier {tier!r}")
        TierComparisonEntryShape.model_validate(entry)


def json_files(experiment: Path) -> list[Path]:
    """Every JSON file of the experiment's results (see :data:`SKIPPED_DIRS`)."""
    found = []
    for path in sorted(Path(experiment).rglob("*.json")):
        parts = path.relative_to(experiment).parts
        if not any(p in SKIPPED_DIRS for p in parts[:-1]) and not path.name.startswith("."):
            found.append(path)
    return found


def check_file(experiment: Path, path: Path) -> str | None:
    """None when ``path`` satisfies its shape, else a one-line problem."""
    relative = path.relative_to(experiment).as_posix()
    shape = shape_for(relative)
    if shape == "unknown":
        return f"{relative}: no ProjectScylla shape known for this file"
    try:
        data = _load(path)
        if shape is None:
            _check_tier_comparison(data)
        elif shape is JudgeResultShape and relative.endswith("judgment.json") and not _valid_judgment(data):
            if not isinstance(data, dict):  # a failed judge's file is read field by field
                raise ValueError("not an object")
        else:
            shape.model_validate(data)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()
        return f"{relative}: {' '.join(first[:3])}"
    return None


def _valid_judgment(data: Any) -> bool:
    """A judgment ProjectScylla counts (``is_valid`` not false and a score): only those must be
    full ``JudgeResult`` objects; a failed judge's file is kept for diagnosis."""
    return (
        isinstance(data, dict) and data.get("is_valid", True) is not False and data.get("score") is not None
    )


def check_experiment(experiment: Path, only: set[str] | None = None) -> list[str]:
    """Problems of every results JSON file of ``experiment`` (only those relative paths in ``only``
    when given)."""
    problems = []
    for path in json_files(experiment):
        if only is not None and path.relative_to(experiment).as_posix() not in only:
            continue
        problem = check_file(experiment, path)
        if problem:
            problems.append(problem)
    return problems
