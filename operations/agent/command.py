"""What to run: :class:`AgentSettings`, the agent argv, its environment and what of it may be written.

The argv is an argument list (never a shell string): claude's command of spec §3.4, or a
``command`` template for another agent. The environment is inherited (``CLAUDECODE`` stripped so
a nested Claude Code does not refuse to start) plus ``extra_env``; only PATH/HOME/USER/SHELL/LANG
and the ``extra_env`` names are recorded, any name containing KEY/TOKEN/SECRET/PASSWORD as
``[REDACTED]``, and :class:`Scrubber` removes the value of every such variable from text we write
about the command, in case a template embedded it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from experiment.models import ExperimentConfig

__all__ = [
    "RECORDED_ENV",
    "REDACTED",
    "AgentSettings",
    "Scrubber",
    "agent_env",
    "build_command",
    "is_sensitive",
    "redact_env",
]

RECORDED_ENV = ("PATH", "HOME", "USER", "SHELL", "LANG")
SENSITIVE_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
REDACTED = "[REDACTED]"


class AgentSettings(BaseModel):
    """How to invoke the agent; :meth:`from_config` fills it from ``config/experiment.json``."""

    command: list[str] | None = None
    """argv template for another agent; elements may use ``{model}``, ``{prompt_file}``,
    ``{workspace}``, ``{max_turns}``. None means the claude command of spec §3.4."""
    claude_binary: str = "claude"
    """The claude executable (a name on PATH or a path)."""
    model: str = "claude-sonnet-4-5-20250929"
    """Agent model id (``config.models[0]``)."""
    timeout_seconds: float = Field(default=3600.0, gt=0)
    """Wall-time budget of one attempt; then SIGTERM, grace, SIGKILL to the process group."""
    max_turns: int | None = None
    """``--max-turns`` when set."""
    extra_args: list[str] = Field(default_factory=list)
    """Inserted before the prompt path of the claude command (e.g. the original's ``--agent NAME``
    for T3/T4, ``--tools ""`` when a tier disables tools, ``--system-prompt ""``); the caller
    decides, because not every claude build (or the test double) accepts them."""
    extra_env: dict[str, str] = Field(default_factory=dict, repr=False)
    """Added to the inherited environment (values may be secrets: never shown, never written)."""
    kill_grace_seconds: float = Field(default=5.0, ge=0)
    """Seconds between SIGTERM and SIGKILL on timeout."""

    @classmethod
    def from_config(cls, config: ExperimentConfig, **overrides: Any) -> AgentSettings:
        """Settings of the experiment's agent: model, timeout and turn limit from the config."""
        values: dict[str, Any] = {
            "model": config.models[0] if config.models else cls.model_fields["model"].default,
            "timeout_seconds": config.timeout_seconds,
            "max_turns": config.max_turns,
        }
        values.update(overrides)
        return cls(**values)


def build_command(settings: AgentSettings, prompt_file: Path, workspace: Path) -> list[str]:
    """The agent argv: claude's (spec §3.4) or the ``command`` template filled in.

    In a template a lone ``{max_turns}`` element is dropped (with a preceding ``-`` flag) when no
    turn limit is set, so ``["--max-turns", "{max_turns}"]`` means "only if configured".
    """
    if settings.command is None:
        argv = [
            settings.claude_binary,
            "--model",
            settings.model,
            "--print",
            "--output-format",
            "json",
            "--dangerously-skip-permissions",
        ]
        if settings.max_turns is not None:
            argv += ["--max-turns", str(settings.max_turns)]
        return [*argv, *settings.extra_args, str(prompt_file)]
    values = {
        "{model}": settings.model,
        "{prompt_file}": str(prompt_file),
        "{workspace}": str(workspace),
        "{max_turns}": "" if settings.max_turns is None else str(settings.max_turns),
    }
    argv = []
    for element in settings.command:
        if element == "{max_turns}" and settings.max_turns is None:
            if argv and argv[-1].startswith("-"):
                argv.pop()
            continue
        for token, value in values.items():
            element = element.replace(token, value)
        argv.append(element)
    return argv


def is_sensitive(name: str) -> bool:
    """True for a variable name that may hold a secret (KEY/TOKEN/SECRET/PASSWORD in it)."""
    upper = name.upper()
    return any(marker in upper for marker in SENSITIVE_MARKERS)


def redact_env(env: dict[str, str], names: list[str]) -> dict[str, str]:
    """The recorded ``env_vars``: ``names`` that are set, sensitive ones as ``[REDACTED]``."""
    return {name: (REDACTED if is_sensitive(name) else env[name]) for name in names if name in env}


def agent_env(settings: AgentSettings) -> dict[str, str]:
    """The agent's environment: ours without ``CLAUDECODE``, plus ``extra_env``."""
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
    env.update(settings.extra_env)
    return env


class Scrubber:
    """Replaces the values of sensitive variables in text we write about the command."""

    def __init__(self, env: dict[str, str]) -> None:
        values = {v for k, v in env.items() if is_sensitive(k) and len(v) >= 6}
        self.values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return text
