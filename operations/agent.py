"""Running the agent once in a prepared workspace, and recording it exactly as ProjectScylla does.

One call = one attempt: the agent command runs as an argument list (never a shell string) with
``cwd`` = the workspace, stdin from ``/dev/null`` and its own process group, so a timeout can kill
everything it started: SIGTERM to the group, 5 s grace, SIGKILL (spec §3.4). Leftover background
processes are killed when the agent exits as well.

Every file of the run's ``agent/`` directory (spec §1.5) is written, whatever happens:
``command_log.json`` and ``replay.sh`` before the process starts (exit 0, duration 0, as the
original) and again afterwards; ``stdout.log``/``stderr.log`` and their ``cmd_0000_*`` copies,
``output.txt``, ``timing.json``, ``result.json`` (canonical token keys, ``api_calls`` = claude's
``num_turns``, spec §8.4) and ``MODEL.md``. A crash, a spawn error or a timeout gives the original's
crash result (exit -1, zero tokens); unlike the original, ``stderr.log`` is written then too and says
what happened, so a timed-out run is never mistaken for one that never started.

Secrets: the environment is inherited (``CLAUDECODE`` stripped so a nested Claude Code does not
refuse to start) plus ``extra_env``; only PATH/HOME/USER/SHELL/LANG and the ``extra_env`` names are
recorded, any name containing KEY/TOKEN/SECRET/PASSWORD as ``[REDACTED]``, and the value of every
such variable is scrubbed from ``replay.sh`` and ``command_log.json`` in case a template embedded it.

The outcome is classified by :func:`experiment.failures.classify_agent_outcome` (one taxonomy for
the whole tool). This module does not retry and does not import Prefect; the caller's retry policy
reads :attr:`AgentOutcome.failure` (or calls :meth:`AgentOutcome.raise_if_transient`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from experiment.failures import (
    AttemptFailed,
    Failure,
    FailureClass,
    classify_agent_outcome,
    parse_claude_output,
)
from experiment.jsonio import atomic_write_json, atomic_write_text
from experiment.models import (
    AgentResult,
    AgentTiming,
    CommandLog,
    CommandLogEntry,
    ExperimentConfig,
    TokenStats,
    utc_now_iso,
)
from operations.workspace import git

__all__ = [
    "AGENT_COMMIT_MESSAGE",
    "AgentInterrupted",
    "AgentOutcome",
    "AgentSettings",
    "build_command",
    "redact_env",
    "run_agent",
    "stop_agents",
]

log = logging.getLogger(__name__)

AGENT_COMMIT_MESSAGE = "[scylla] Agent changes"
RECORDED_ENV = ("PATH", "HOME", "USER", "SHELL", "LANG")
SENSITIVE_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
REDACTED = "[REDACTED]"
VERSION_TIMEOUT = 10.0
STDOUT_FILE, STDERR_FILE = "cmd_0000_stdout.log", "cmd_0000_stderr.log"


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


class AgentOutcome(BaseModel):
    """The summary of one agent attempt (the files in ``agent/`` hold the detail)."""

    exit_code: int
    """Process exit code; -1 for a crash, a spawn error or a timeout."""
    duration_seconds: float
    """Wall time of the attempt."""
    cost_usd: float = 0.0
    """claude's ``total_cost_usd``."""
    token_stats: TokenStats = Field(default_factory=TokenStats)
    """Canonical token counts."""
    api_calls: int = 0
    """claude's ``num_turns``."""
    timed_out: bool = False
    """True when the timeout killed the agent."""
    committed: bool = False
    """True when the agent's changes were committed as ``[scylla] Agent changes``."""
    failure_kind: FailureClass | None = None
    """Why the attempt failed (None: success)."""
    failure_message: str | None = None
    """The failure's message."""
    retry_after_seconds: float | None = None
    """When the provider said so, how long to wait before retrying."""

    @property
    def failure(self) -> Failure | None:
        """The classified failure, rebuilt from the serialisable fields."""
        if self.failure_kind is None:
            return None
        return Failure(self.failure_kind, self.failure_message or "", self.retry_after_seconds)

    @property
    def succeeded(self) -> bool:
        return self.failure_kind is None

    def raise_if_transient(self) -> None:
        """Raise AttemptFailed when the failure is worth a retry (rate limit, timeout, infra)."""
        failure = self.failure
        if failure is not None and failure.transient:
            raise AttemptFailed(failure)


# --------------------------------------------------------------------------------------------------
# Command and environment
# --------------------------------------------------------------------------------------------------


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


def _sensitive(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SENSITIVE_MARKERS)


def redact_env(env: dict[str, str], names: list[str]) -> dict[str, str]:
    """The recorded ``env_vars``: ``names`` that are set, sensitive ones as ``[REDACTED]``."""
    return {name: (REDACTED if _sensitive(name) else env[name]) for name in names if name in env}


def _agent_env(settings: AgentSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
    env.update(settings.extra_env)
    return env


class _Scrubber:
    """Replaces the values of sensitive variables in text we write about the command."""

    def __init__(self, env: dict[str, str]) -> None:
        values = {v for k, v in env.items() if _sensitive(k) and len(v) >= 6}
        self.values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return text


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def _write_command_log(agent_dir: Path, entry: CommandLogEntry) -> None:
    record = CommandLog(generated_at=utc_now_iso(), total_commands=1, commands=[entry])
    atomic_write_json(agent_dir / "command_log.json", record.to_json_dict())


def _write_replay(
    agent_dir: Path,
    argv: list[str],
    workspace: Path,
    settings: AgentSettings,
    started_at: str,
    duration: float,
    exit_code: int,
    scrub: _Scrubber,
) -> None:
    env_lines = [
        "# export ANTHROPIC_API_KEY='your-anthropic-api-key-here'",
        "# export OPENAI_API_KEY='your-openai-api-key-here'",
    ]
    for name, value in sorted(settings.extra_env.items()):
        if _sensitive(name):
            env_lines.append(f"# export {name}='{REDACTED}'")
        else:
            env_lines.append(f"export {name}={shlex.quote(value)}")
    text = (
        "#!/bin/bash\n"
        f"# Generated: {utc_now_iso()}\n"
        "# Total commands: 1\n"
        "#\n"
        "# This script executes commands for the test run.\n"
        "# All output is captured to stdout/stderr logs.\n"
        "#\n"
        "set -e  # Exit on first error\n"
        "set -x  # Print commands as they execute\n"
        "\n"
        "# Environment variables (secrets redacted)\n"
        "# Uncomment and fill in as needed:\n" + "\n".join(env_lines) + "\n\n# Commands\n\n"
        f"# Command 1/1 at {started_at}\n"
        f"# Duration: {duration:.2f}s, Exit: {exit_code}\n"
        f"cd {shlex.quote(str(workspace))}\n"
        f"{shlex.join(argv)}\n"
    )
    path = agent_dir / "replay.sh"
    atomic_write_text(path, scrub(text))
    path.chmod(0o755)


def _claude_version(binary: str, env: dict[str, str], cwd: Path) -> str:
    try:
        result = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            env=env,
            cwd=cwd if cwd.is_dir() else None,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc.__class__.__name__})"
    version = result.stdout.strip().splitlines()
    return version[0] if result.returncode == 0 and version else "unknown"


def _write_model_md(agent_dir: Path, model: str, version: str) -> None:
    atomic_write_text(
        agent_dir / "MODEL.md",
        "# Agent Model Information\n\n"
        f"**Model**: {model}\n"
        f"**Claude Code Version**: {version}\n"
        f"**Timestamp**: {utc_now_iso()}\n\n"
        "## Configuration\n\n"
        f"- Model ID: {model}\n"
        "- Output Format: json\n"
        "- Permissions: dangerously-skip-permissions (for testing)\n\n"
        "## Environment\n\n"
        "- Generated by scylla-repair\n",
    )


# --------------------------------------------------------------------------------------------------
# Process
# --------------------------------------------------------------------------------------------------


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# -- the agent never outlives the repair ----------------------------------------------------------
# The agent runs in its own session (so a timeout can kill its whole group), which also means a
# Ctrl+C in the terminal or a SIGKILL of the repair does not reach it: it would go on running,
# and paying, while the resumed repair starts the run again. Two guards:
# * Linux ``PR_SET_PDEATHSIG``: the kernel sends SIGKILL to the agent when the thread that
#   started it dies (the repair process killed by SIGKILL, OOM, a worker shutdown);
# * :func:`stop_agents` (called on Ctrl+C by the CLI): SIGTERM, then SIGKILL, to every agent
#   process group still running, and no new agent starts in this process afterwards.


class AgentInterrupted(Exception):
    """The agent was stopped by :func:`stop_agents` (Ctrl+C): no outcome, nothing to persist."""


_LIVE_GROUPS: set[int] = set()
_LIVE_LOCK = threading.Lock()
_STOPPED = threading.Event()


def _die_with_parent_fn():
    """A ``preexec_fn`` setting PR_SET_PDEATHSIG=SIGKILL (None where prctl is unavailable)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:  # runs in the child between fork and exec: no locks, no imports
        prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def stop_agents(grace_seconds: float = 3.0) -> int:
    """Stop every running agent of this process (SIGTERM, ``grace_seconds``, SIGKILL) and refuse
    to start new ones; returns how many process groups were signalled. For Ctrl+C."""
    _STOPPED.set()
    with _LIVE_LOCK:
        groups = list(_LIVE_GROUPS)
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while groups and time.monotonic() < deadline:
        with _LIVE_LOCK:
            groups = [g for g in groups if g in _LIVE_GROUPS]
        time.sleep(0.05)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    return len(groups)


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


class _Run:
    """What happened to the process."""

    def __init__(self) -> None:
        self.exit_code = -1
        self.stdout = ""
        self.stderr = ""
        self.timed_out = False
        self.spawn_error: str | None = None


def _execute(argv: list[str], cwd: Path, env: dict[str, str], settings: AgentSettings) -> _Run:
    run = _Run()
    if _STOPPED.is_set():
        run.spawn_error = "The repair is stopping (interrupted); the agent was not started"
        run.stderr = run.spawn_error + "\n"
        return run
    try:
        with _LIVE_LOCK:  # registered before a concurrent stop_agents() can miss it
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent_fn(),
            )
            _LIVE_GROUPS.add(proc.pid)
    except OSError as exc:
        run.spawn_error = f"Failed to start agent {argv[0]!r}: {exc.strerror or exc}"
        run.stderr = run.spawn_error + "\n"
        return run
    try:
        try:
            out, err = proc.communicate(timeout=settings.timeout_seconds)
            run.exit_code = proc.returncode
        except subprocess.TimeoutExpired:
            run.timed_out = True
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=settings.kill_grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                try:
                    out, err = proc.communicate(timeout=settings.kill_grace_seconds)
                except subprocess.TimeoutExpired:  # a process outside the group holds the pipes
                    proc.kill()
                    out, err = b"", b""
            run.exit_code = -1
    finally:
        _signal_group(proc.pid, signal.SIGKILL)  # nothing the agent started outlives it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with _LIVE_LOCK:
            _LIVE_GROUPS.discard(proc.pid)
    run.stdout, run.stderr = _decode(out), _decode(err)
    if run.timed_out:
        run.stderr += (
            f"\nAgent timed out after {settings.timeout_seconds:g}s; "
            "its process group was sent SIGTERM, then SIGKILL\n"
        )
    return run


def _commit_agent_changes(workspace: Path) -> bool:
    if not (workspace / ".git").exists():
        return False
    added = git(workspace, "add", "-A")
    if added.returncode != 0:
        log.warning("git add -A in %s failed: %s", workspace, added.stderr.strip())
        return False
    result = git(workspace, "commit", "-q", "--no-verify", "-m", AGENT_COMMIT_MESSAGE, identity=True)
    if result.returncode == 0:
        return True
    output = result.stdout + result.stderr
    if "nothing to commit" not in output and "nothing added to commit" not in output:
        log.warning("Committing the agent's changes in %s failed: %s", workspace, output.strip())
    return False


# --------------------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------------------


def run_agent(run_dir: Path, workspace: Path, settings: AgentSettings) -> AgentOutcome:
    """Run the agent once on ``run_dir/agent/prompt.md`` in ``workspace`` and record everything.

    Never raises for an agent problem: the outcome carries the classified failure. Files are
    written even when the binary cannot be started.
    """
    run_dir, workspace = Path(run_dir).absolute(), Path(workspace).absolute()
    agent_dir = run_dir / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)
    prompt_file = agent_dir / "prompt.md"
    argv = build_command(settings, prompt_file, workspace)
    env = _agent_env(settings)
    scrub = _Scrubber(env)
    recorded_names = list(RECORDED_ENV) + [n for n in sorted(settings.extra_env) if n not in RECORDED_ENV]
    started_at = utc_now_iso()
    entry = CommandLogEntry(
        timestamp=started_at,
        command=[scrub(a) for a in argv],
        cwd=str(workspace),
        env_vars=redact_env(env, recorded_names),
        exit_code=0,
        stdout_file=STDOUT_FILE,
        stderr_file=STDERR_FILE,
        duration_seconds=0.0,
    )
    _write_command_log(agent_dir, entry)
    _write_replay(agent_dir, argv, workspace, settings, started_at, 0.0, 0, scrub)

    start = time.monotonic()
    if not prompt_file.is_file():
        run = _Run()
        run.spawn_error = f"Agent prompt not found: {prompt_file} (prepare the workspace first)"
        run.stderr = run.spawn_error + "\n"
    elif not workspace.is_dir():
        run = _Run()
        run.spawn_error = f"Workspace not found: {workspace}"
        run.stderr = run.spawn_error + "\n"
    else:
        run = _execute(argv, workspace, env, settings)
    interrupted = _STOPPED.is_set()  # stop_agents() ended it: not the agent's outcome
    if interrupted:
        run.stderr += "\nStopped: the repair was interrupted (Ctrl+C); the next run starts it over\n"
    duration = time.monotonic() - start

    # -- classify
    crashed = run.timed_out or run.spawn_error is not None
    output = None if crashed else parse_claude_output(run.stdout)
    if run.spawn_error is not None:
        failure: Failure | None = Failure(FailureClass.INFRASTRUCTURE, run.spawn_error)
    else:
        failure = classify_agent_outcome(output, run.exit_code, run.stderr, run.timed_out)
        if failure is not None and run.exit_code < -1 and output is None:
            failure = Failure(FailureClass.INFRASTRUCTURE, f"Agent killed by signal {-run.exit_code}")
    tokens = TokenStats(input_tokens=0, output_tokens=0, cache_creation_tokens=0, cache_read_tokens=0)
    cost, api_calls = 0.0, 0
    if output is not None:
        try:
            tokens = TokenStats.from_claude_usage(
                output.get("usage") if isinstance(output.get("usage"), dict) else None
            )
            cost = float(output.get("total_cost_usd") or 0.0)
            api_calls = int(output.get("num_turns") or 0)
        except (TypeError, ValueError):
            log.warning("Unexpected types in the agent's result object in %s", agent_dir)

    # -- record (the original's order: logs, command log, timing, output, result, model)
    atomic_write_text(agent_dir / "stdout.log", run.stdout)
    atomic_write_text(agent_dir / "stderr.log", run.stderr)
    atomic_write_text(agent_dir / STDOUT_FILE, run.stdout)
    atomic_write_text(agent_dir / STDERR_FILE, run.stderr)
    entry.exit_code = run.exit_code
    entry.duration_seconds = round(duration, 6)
    _write_command_log(agent_dir, entry)
    _write_replay(agent_dir, argv, workspace, settings, started_at, duration, run.exit_code, scrub)
    atomic_write_json(
        agent_dir / "timing.json",
        AgentTiming(
            agent_duration_seconds=round(duration, 6),
            measured_at=utc_now_iso(),
            **({"failure_class": failure.kind.value} if failure else {}),
        ).to_json_dict(),
    )
    atomic_write_text(agent_dir / "output.txt", "" if crashed else run.stdout)
    result = AgentResult(
        exit_code=run.exit_code,
        stdout="" if crashed else run.stdout,
        stderr=run.stderr,
        token_stats=tokens,
        cost_usd=cost,
        api_calls=api_calls,
    )
    atomic_write_json(agent_dir / "result.json", result.to_json_dict())
    version_binary = settings.claude_binary if settings.command is None else argv[0]
    _write_model_md(agent_dir, settings.model, _claude_version(version_binary, env, workspace))

    if interrupted:  # raise, so no outcome is persisted and a resume runs the agent again
        raise AgentInterrupted(f"agent in {workspace} stopped: the repair was interrupted")
    committed = _commit_agent_changes(workspace) if workspace.is_dir() else False
    return AgentOutcome(
        exit_code=run.exit_code,
        duration_seconds=round(duration, 6),
        cost_usd=cost,
        token_stats=tokens,
        api_calls=api_calls,
        timed_out=run.timed_out,
        committed=committed,
        failure_kind=failure.kind if failure else None,
        failure_message=failure.message if failure else None,
        retry_after_seconds=failure.retry_after_seconds if failure else None,
    )
