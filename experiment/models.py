"""Pydantic models of every JSON file the repair reads or writes: one schema per file, one place.

The files are ProjectScylla's (see ``spec/scylla-format.md`` §1.3-1.6 and §5). Three rules hold for
every model here:

* **Unknown fields are kept** (``extra="allow"``): a newer ProjectScylla may add keys, and a file we
  rewrite must not lose them.
* **Round trip**: ``Model.model_validate(data).to_json_dict() == data`` for every real file. The dump
  uses ``exclude_unset`` so a default never appears in a file that did not have it; a model we build
  from scratch sets every field by keyword, so all of them are written.
* **Canonical output**: legacy inputs are accepted (the ``cache_*_input_tokens`` token keys of the
  regeneration bug, a singular ``judge_model``, a bare ``Infinity`` cost-of-pass, a v2.0 checkpoint)
  but we always write the canonical form, so ProjectScylla's readers see correct data (spec §8.4).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    field_validator,
    model_validator,
)

from experiment.errors import FormatError
from experiment.jsonio import atomic_write_json, read_json

__all__ = [
    "AgentResult",
    "AgentTiming",
    "BestSubtest",
    "Checkpoint",
    "CheckpointV2",
    "ClaudeOutput",
    "CommandLog",
    "CommandLogEntry",
    "ConfigManifest",
    "ExperimentConfig",
    "ExperimentReport",
    "ExperimentResult",
    "JudgeConsensus",
    "JudgeSummary",
    "JudgeTiming",
    "Judgment",
    "MODEL_ALIASES",
    "RUN_STATES",
    "RunReport",
    "RunResult",
    "ScyllaModel",
    "SubtestReport",
    "SubtestResult",
    "TierComparison",
    "TierComparisonEntry",
    "TierReport",
    "TierResult",
    "TokenStats",
    "Vote",
    "grade_for_score",
    "utc_now_iso",
]


def utc_now_iso() -> str:
    """The current time as ProjectScylla writes it: ISO 8601 with ``+00:00``."""
    return datetime.now(UTC).isoformat()


def grade_for_score(score: float) -> str:
    """ProjectScylla's grade scale: S if 1.0, A >= .8, B >= .6, C >= .4, D >= .2, else F."""
    if score >= 1.0:
        return "S"
    for threshold, grade in ((0.8, "A"), (0.6, "B"), (0.4, "C"), (0.2, "D")):
        if score >= threshold:
            return grade
    return "F"


def _finite_or_none(value: Any) -> Any:
    """Turn NaN/±Infinity (Python's ``json`` reads the bare ``Infinity`` token) into None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FiniteFloat = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A float that is never NaN/Infinity: non-finite input becomes None, so dumps stay valid JSON."""


class ScyllaModel(BaseModel):
    """Base of every file model: keeps unknown keys, accepts field names or aliases."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, use_attribute_docstrings=True)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON-ready dict we write: aliases, only the fields that were set (never invented)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --------------------------------------------------------------------------------------------------
# Tokens and the agent
# --------------------------------------------------------------------------------------------------


class TokenStats(ScyllaModel):
    """Token counts of a run or an aggregate (canonical keys; legacy ``cache_*_input_tokens`` read)."""

    input_tokens: int = 0
    """Fresh (uncached) input tokens."""
    output_tokens: int = 0
    """Output tokens."""
    cache_creation_tokens: int = Field(
        default=0, validation_alias=AliasChoices("cache_creation_tokens", "cache_creation_input_tokens")
    )
    """Tokens written to the prompt cache (legacy key ``cache_creation_input_tokens`` accepted)."""
    cache_read_tokens: int = Field(
        default=0, validation_alias=AliasChoices("cache_read_tokens", "cache_read_input_tokens")
    )
    """Tokens read from the prompt cache (legacy key ``cache_read_input_tokens`` accepted)."""

    def __add__(self, other: TokenStats) -> TokenStats:
        if not isinstance(other, TokenStats):
            return NotImplemented
        return TokenStats(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_tokens=self.cache_creation_tokens + other.cache_creation_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
        )

    @classmethod
    def sum(cls, items: Iterable[TokenStats]) -> TokenStats:
        """Fieldwise sum; an empty iterable gives all zeros (with every field set)."""
        total = cls(input_tokens=0, output_tokens=0, cache_creation_tokens=0, cache_read_tokens=0)
        for item in items:
            total = total + item
        return total

    @property
    def total_tokens(self) -> int:
        """All four counts: the tie-breaker of best-subtest selection (spec §4.2 step 5)."""
        return self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens

    @property
    def tokens_input(self) -> int:
        """``run_result.tokens_input``: fresh input plus cache reads."""
        return self.input_tokens + self.cache_read_tokens

    @classmethod
    def from_claude_usage(cls, usage: dict[str, Any] | None) -> TokenStats:
        """Map Claude Code's ``usage`` object (``cache_*_input_tokens``) to canonical stats."""
        usage = usage or {}
        return cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_creation_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
        )


class ClaudeOutput(ScyllaModel):
    """The JSON object ``claude --print --output-format json`` prints (agent ``output.txt``)."""

    type: str = "result"
    """Always ``"result"`` for the final object."""
    subtype: str = "success"
    """``success`` or an error subtype (``error_max_turns``, ...)."""
    is_error: bool = False
    """True when the run ended in an error (rate limits included, even with subtype success)."""
    duration_ms: int = 0
    """Wall time of the claude process in milliseconds."""
    duration_api_ms: int = 0
    """Time spent waiting for the API in milliseconds."""
    num_turns: int = 0
    """Number of agent turns; becomes ``agent/result.json.api_calls``."""
    result: str = ""
    """Final text of the agent (or the error message, e.g. "You've hit your limit ...")."""
    session_id: str = ""
    """Claude Code session id."""
    total_cost_usd: float = 0.0
    """Cost reported by Claude Code; becomes ``cost_usd``."""
    usage: dict[str, Any] = Field(default_factory=dict)
    """Raw usage with Claude's key names (``cache_creation_input_tokens``, ...)."""
    model_usage: dict[str, Any] = Field(default_factory=dict, alias="modelUsage")
    """Per-model usage (``modelUsage`` in the file)."""
    permission_denials: list[Any] = Field(default_factory=list)
    """Tool calls that were denied."""
    uuid: str = ""
    """Id of the result message."""
    error: str | None = None
    """Error text some failure modes carry instead of ``result``."""
    api_error_status: int | None = None
    """HTTP status of the API error (e.g. 429), when there was one."""

    @property
    def token_stats(self) -> TokenStats:
        """Canonical token stats from ``usage``."""
        return TokenStats.from_claude_usage(self.usage)


class AgentResult(ScyllaModel):
    """``agent/result.json``: the adapter's summary; ``{}`` is a legal (if useless) file."""

    exit_code: int = 0
    """Exit code of the claude process (-1 for a crash or timeout)."""
    stdout: str = ""
    """The full claude stdout (one JSON line)."""
    stderr: str = ""
    """The process stderr (bash xtrace lines at least)."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Tokens mapped from claude's usage."""
    cost_usd: float = 0.0
    """Claude's ``total_cost_usd``."""
    api_calls: int = 0
    """Claude's ``num_turns``."""


class AgentTiming(ScyllaModel):
    """``agent/timing.json``."""

    agent_duration_seconds: float = 0.0
    """Wall time of the agent in seconds."""
    measured_at: str | None = None
    """When the timing was written (ISO 8601)."""


class CommandLogEntry(ScyllaModel):
    """One command of ``agent/command_log.json``."""

    timestamp: str | None = None
    """When the command started (ISO 8601)."""
    command: list[str] = Field(default_factory=list)
    """The argv."""
    cwd: str | None = None
    """Working directory of the command."""
    env_vars: dict[str, str] = Field(default_factory=dict)
    """Selected environment, secrets replaced by ``[REDACTED]``."""
    exit_code: int = 0
    """Exit code (0 with duration 0 while the command has not finished)."""
    stdout_file: str | None = None
    """Per-command stdout log name (``cmd_0000_stdout.log``)."""
    stderr_file: str | None = None
    """Per-command stderr log name (``cmd_0000_stderr.log``)."""
    duration_seconds: float = 0.0
    """Duration of the command in seconds."""


class CommandLog(ScyllaModel):
    """``agent/command_log.json``: the CommandLogger record."""

    generated_at: str | None = None
    """When the log was written (ISO 8601)."""
    total_commands: int = 0
    """Number of commands (1 for an agent run)."""
    commands: list[CommandLogEntry] = Field(default_factory=list)
    """The commands, in order."""


# --------------------------------------------------------------------------------------------------
# Judges
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Subtests and tiers
# --------------------------------------------------------------------------------------------------


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
    tiebreaker_result: Any = None
    """Tie-breaker details, or null."""


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


# --------------------------------------------------------------------------------------------------
# Experiment
# --------------------------------------------------------------------------------------------------

MODEL_ALIASES: dict[str, str] = {
    "opus": "claude-opus-4-6",
    "sonnet": "claude-sonnet-4-6",
    "haiku": "claude-haiku-4-5",
    "opus-4.6": "claude-opus-4-6",
    "sonnet-4.6": "claude-sonnet-4-6",
    "opus-4.5": "claude-opus-4-5",
    "sonnet-4.5": "claude-sonnet-4-5",
    "haiku-4.5": "claude-haiku-4-5",
}
"""Short model names accepted in configs; full ids pass unchanged."""

_TIER_RE = re.compile(r"^T[0-6]$")


def _resolve_models(value: Any) -> Any:
    if isinstance(value, list):
        return [MODEL_ALIASES.get(v, v) if isinstance(v, str) else v for v in value]
    return value


class ExperimentConfig(ScyllaModel):
    """``config/experiment.json``; the config of record for every repair (spec §1.3)."""

    experiment_id: str
    """Experiment id (``test-001``)."""
    task_repo: str
    """URL of the task repository."""
    task_commit: str
    """Commit the workspaces are checked out at."""
    task_prompt_file: str
    """Prompt path, relative to the ProjectScylla checkout (not the experiment)."""
    language: str
    """Task language (``python``)."""
    models: list[str] = Field(default_factory=lambda: ["claude-sonnet-4-5-20250929"])
    """Agent model ids (aliases such as ``sonnet`` resolved)."""
    runs_per_subtest: int = Field(default=10, ge=1)
    """Runs per subtest (>= 1)."""
    tiers_to_run: list[str] = Field(default_factory=list)
    """Tiers (``T0``-``T6``); absent means none, i.e. zero expected runs."""
    judge_models: list[str] = Field(default_factory=lambda: ["claude-opus-4-6"])
    """Judge model ids, one judge slot each (legacy ``judge_model`` accepted)."""
    timeout_seconds: int = 3600
    """Agent timeout in seconds."""
    max_turns: int | None = None
    """Agent turn limit, or null."""
    max_subtests: int | None = None
    """Only the first N subtests of each tier, or null for all."""
    thinking_mode: str = "None"
    """``None``, ``Low``, ``High`` or ``UltraThink``."""
    skip_agent_teams: bool = False
    """Skip agent-team subtests."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_judge_model(cls, data: Any) -> Any:
        """A legacy singular ``judge_model`` becomes ``judge_models=[it]`` (and is not kept)."""
        if isinstance(data, dict) and "judge_model" in data:
            data = dict(data)
            legacy = data.pop("judge_model")
            if "judge_models" not in data and legacy:
                data["judge_models"] = [legacy]
        return data

    @field_validator("models", "judge_models", mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> Any:
        return _resolve_models(value)

    @field_validator("tiers_to_run")
    @classmethod
    def _tiers(cls, value: list[str]) -> list[str]:
        for tier in value:
            if not _TIER_RE.match(tier):
                raise ValueError(f"unknown tier {tier!r}; tiers are T0 to T6")
        return value

    def config_hash(self) -> str:
        """First 16 hex of sha256 over the sorted-key config, minus run-selection fields (§5.1)."""
        data = self.model_dump(mode="json")
        for key in list(data):
            if key in {"max_subtests", "tiers_to_run", "keep_failed_workspaces"} or key.startswith(
                ("parallel_", "until_", "from_", "filter_", "max_concurrent_")
            ):
                data.pop(key)
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class ExperimentResult(ScyllaModel):
    """Root ``result.json``; ``frontier_cop`` is finite or null (Infinity is read as null)."""

    config: dict[str, Any] = Field(default_factory=dict)
    """The config as the runner saw it (kept verbatim)."""
    tier_results: dict[str, TierResult] = Field(default_factory=dict)
    """Tier id -> tier result."""
    best_overall_tier: str | None = None
    """Frontier tier."""
    best_overall_subtest: str | None = None
    """Best subtest of the frontier tier."""
    frontier_cop: FiniteFloat = None
    """Lowest cost-of-pass; ProjectScylla's bare ``Infinity`` becomes null."""
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
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --------------------------------------------------------------------------------------------------
# Checkpoint
# --------------------------------------------------------------------------------------------------

RunOutcome = Literal["passed", "failed", "agent_complete"]
"""Values of ``completed_runs``; anything else is rejected."""

CheckpointStatus = Literal["running", "paused_rate_limit", "completed", "failed", "interrupted", "rerunning"]

RUN_STATES: tuple[str, ...] = (
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
)
"""The v3.1 run states: 19 sequential ones, then the terminal ``failed`` and ``rate_limited``."""

_V30_TO_V31 = {
    "workspace_configured": "config_committed",
    "agent_ready": "replay_generated",
    "judge_ready": "judge_prompt_built",
    "run_complete": "report_written",
}
_OUTCOME_TO_STATE = {
    "passed": "report_written",
    "failed": "report_written",
    "agent_complete": "agent_complete",
}

CompletedRuns = dict[str, dict[str, dict[str, RunOutcome]]]


class CheckpointV2(ScyllaModel):
    """A raw v2.0 ``checkpoint.json`` (as in the sample), validated without migration."""

    version: str = "2.0"
    """Format version (``2.0``)."""
    experiment_id: str = ""
    """Experiment id."""
    experiment_dir: str = ""
    """Absolute experiment dir on the machine that ran it (do not trust)."""
    config_hash: str = ""
    """Hash of the config (never validated by the repair)."""
    completed_runs: CompletedRuns = Field(default_factory=dict)
    """tier -> subtest -> run number (string) -> passed|failed|agent_complete."""
    started_at: str | None = None
    """Experiment start."""
    last_updated_at: str | None = None
    """Last save."""
    status: CheckpointStatus = "running"
    """Experiment status."""
    rate_limit_source: str | None = None
    """``agent`` or ``judge`` while paused on a rate limit."""
    rate_limit_until: str | None = None
    """When the rate-limit pause ends."""
    pause_count: int = 0
    """Rate-limit pauses so far."""
    pid: int | None = None
    """PID of the runner."""


def _migrate_checkpoint(data: dict[str, Any]) -> dict[str, Any]:
    """v2.0 / v3.0 -> v3.1 in memory (spec §5.1 "Loading"); the input dict is not modified."""
    version = data.get("version", "1.0")
    if version == "3.1":
        return data
    data = json.loads(json.dumps(data))  # deep copy of plain JSON data
    if version == "2.0":
        run_states: dict[str, dict[str, dict[str, str]]] = {}
        for tier, subtests in (data.get("completed_runs") or {}).items():
            for subtest, runs in subtests.items():
                for run, outcome in runs.items():
                    state = _OUTCOME_TO_STATE.get(outcome, outcome)
                    run_states.setdefault(tier, {}).setdefault(subtest, {})[run] = state
        data["run_states"] = run_states
        data["subtest_states"] = {t: dict.fromkeys(s, "runs_in_progress") for t, s in run_states.items()}
        data["tier_states"] = dict.fromkeys(run_states, "subtests_running")
        data["experiment_state"] = "tiers_running"
        data["last_heartbeat"] = data.get("last_updated_at")
    elif version == "3.0":
        for subtests in (data.get("run_states") or {}).values():
            for runs in subtests.values():
                for run, state in runs.items():
                    runs[run] = _V30_TO_V31.get(state, state)
    else:
        raise ValueError(f"Incompatible checkpoint version {version}")
    data["version"] = "3.1"
    return data


class Checkpoint(ScyllaModel):
    """``checkpoint.json`` as v3.1; validating a v2.0 or v3.0 dict migrates it in memory first.

    ``completed_runs`` and ``run_states`` use string run numbers (``"1"``) as in the file; the
    methods take ints. Use ``Checkpoint.load(path)`` for one-line errors, ``Checkpoint.from_any``
    for a dict of any supported version, and ``CheckpointV2`` to see a v2.0 file unmigrated.
    """

    version: str = "3.1"
    """Format version; always ``3.1`` after loading."""
    experiment_id: str = ""
    """Experiment id."""
    experiment_dir: str = ""
    """Absolute experiment dir on the machine that ran it (do not trust)."""
    config_hash: str = ""
    """Hash of the config (never validated by the repair)."""
    completed_runs: CompletedRuns = Field(default_factory=dict)
    """tier -> subtest -> run number (string) -> passed|failed|agent_complete."""
    started_at: str | None = None
    """Experiment start."""
    last_updated_at: str | None = None
    """Last save (set by ``save``)."""
    status: CheckpointStatus = "running"
    """Experiment status (``rerunning`` for a checkpoint created by a repair)."""
    rate_limit_source: str | None = None
    """``agent`` or ``judge`` while paused on a rate limit."""
    rate_limit_until: str | None = None
    """When the rate-limit pause ends."""
    pause_count: int = 0
    """Rate-limit pauses so far."""
    pid: int | None = None
    """PID of the process that owns the checkpoint."""
    experiment_state: str = "initializing"
    """Experiment state machine state."""
    tier_states: dict[str, str] = Field(default_factory=dict)
    """tier -> tier state."""
    subtest_states: dict[str, dict[str, str]] = Field(default_factory=dict)
    """tier -> subtest -> subtest state."""
    run_states: dict[str, dict[str, dict[str, str]]] = Field(default_factory=dict)
    """tier -> subtest -> run number (string) -> one of ``RUN_STATES``."""
    last_heartbeat: str | None = None
    """Last liveness heartbeat (zombie detection)."""

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return _migrate_checkpoint(data)
        return data

    @classmethod
    def from_any(cls, data: dict[str, Any]) -> Checkpoint:
        """Validate a v2.0, v3.0 or v3.1 dict (migrating to 3.1); other versions raise ValueError."""
        version = data.get("version", "1.0") if isinstance(data, dict) else None
        if version not in {"2.0", "3.0", "3.1"}:
            raise ValueError(f"Incompatible checkpoint version {version}")
        return cls.model_validate(data)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read and migrate ``path``; any problem is a one-line ``FormatError`` naming the file."""
        data = read_json(path)
        version = data.get("version", "1.0") if isinstance(data, dict) else None
        if version not in {"2.0", "3.0", "3.1"}:
            raise FormatError(
                f"Incompatible checkpoint version {version}",
                path,
                "move it aside; the repair creates a fresh checkpoint",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
            raise FormatError(f"Invalid Checkpoint ({where}: {first.get('msg')})", path) from None

    @classmethod
    def fresh(cls, config: ExperimentConfig, experiment_dir: Path | str) -> Checkpoint:
        """A new v3.1 checkpoint for a repair of an experiment that has none (status ``rerunning``)."""
        now = utc_now_iso()
        return cls(
            version="3.1",
            experiment_id=config.experiment_id,
            experiment_dir=str(Path(experiment_dir).resolve()),
            config_hash=config.config_hash(),
            completed_runs={},
            started_at=now,
            last_updated_at=now,
            status="rerunning",
            rate_limit_source=None,
            rate_limit_until=None,
            pause_count=0,
            pid=os.getpid(),
            experiment_state="tiers_running",
            tier_states={},
            subtest_states={},
            run_states={},
            last_heartbeat=now,
        )

    def mark_run(
        self, tier: str, subtest: str, run_number: int, outcome: RunOutcome, *, run_state: str | None = None
    ) -> None:
        """Record a run's outcome in ``completed_runs`` and its state in ``run_states``.

        The state defaults to ``report_written`` for passed/failed and ``agent_complete`` for
        agent_complete; pass ``run_state="failed"`` (or any of ``RUN_STATES``) to override it.
        """
        if outcome not in _OUTCOME_TO_STATE:
            raise ValueError(f"invalid run outcome {outcome!r}; expected passed, failed or agent_complete")
        state = run_state or _OUTCOME_TO_STATE[outcome]
        if state not in RUN_STATES:
            raise ValueError(f"invalid run state {state!r}")
        key = str(int(run_number))
        self.completed_runs.setdefault(tier, {}).setdefault(subtest, {})[key] = outcome
        self.run_states.setdefault(tier, {}).setdefault(subtest, {})[key] = state
        # Mutating nested containers does not mark the fields as set; do it so they are dumped.
        self.__pydantic_fields_set__.update({"completed_runs", "run_states"})

    def unmark_run(self, tier: str, subtest: str, run_number: int) -> None:
        """Forget a run in ``completed_runs`` and ``run_states`` (empty parents are removed)."""
        key = str(int(run_number))
        for table in (self.completed_runs, self.run_states):
            runs = table.get(tier, {}).get(subtest)
            if runs is None:
                continue
            runs.pop(key, None)
            if not runs:
                del table[tier][subtest]
            if not table[tier]:
                del table[tier]

    def run_outcome(self, tier: str, subtest: str, run_number: int) -> str | None:
        """The ``completed_runs`` value of a run, or None."""
        return self.completed_runs.get(tier, {}).get(subtest, {}).get(str(int(run_number)))

    def save(self, path: Path) -> None:
        """Set ``last_updated_at`` to now and write atomically (temp file + rename)."""
        self.last_updated_at = utc_now_iso()
        atomic_write_json(path, self.to_json_dict())
