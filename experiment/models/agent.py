"""Models of the agent's files: token counts, Claude Code's JSON result, ``agent/*.json``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import AliasChoices, Field

from experiment.models.base import ScyllaModel


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
