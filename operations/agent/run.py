"""Running the agent once in a prepared workspace, and recording it exactly as ProjectScylla does.

One call = one attempt (:func:`run_agent`): the argv comes from ``command.py``, the process runs
under ``process.py``'s guards. Every file of the run's ``agent/`` directory (spec §1.5) is written,
whatever happens: ``command_log.json`` and ``replay.sh`` before the process starts (exit 0,
duration 0, as the original) and again afterwards; ``stdout.log``/``stderr.log`` and their
``cmd_0000_*`` copies, ``output.txt``, ``timing.json``, ``result.json`` (canonical token keys,
``api_calls`` = claude's ``num_turns``, spec §8.4) and ``MODEL.md``. A crash, a spawn error or a
timeout gives the original's crash result (exit -1, zero tokens); unlike the original,
``stderr.log`` is written then too and says what happened, so a timed-out run is never mistaken
for one that never started.

The outcome is classified by :func:`experiment.failures.classify_agent_outcome` (one taxonomy for
the whole tool). This module does not retry and does not import Prefect; the caller's retry policy
reads :attr:`AgentOutcome.failure` (or calls :meth:`AgentOutcome.raise_if_transient`).
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path

from pydantic import BaseModel, Field

from experiment.failures import (
    AttemptFailed,
    Failure,
    FailureClass,
    classify_agent_outcome,
    parse_claude_output,
)
from experiment.jsonio import atomic_write_json, atomic_write_text
from experiment.models import AgentResult, AgentTiming, CommandLogEntry, TokenStats, utc_now_iso
from operations.agent.command import (
    RECORDED_ENV,
    AgentSettings,
    Scrubber,
    agent_env,
    build_command,
    redact_env,
)
from operations.agent.process import AgentInterrupted, ProcessRun, execute, stopping
from operations.agent.records import (
    STDERR_FILE,
    STDOUT_FILE,
    claude_version,
    write_command_log,
    write_model_md,
    write_replay,
)
from operations.workspace import git

__all__ = ["AGENT_COMMIT_MESSAGE", "AgentOutcome", "run_agent"]

log = logging.getLogger(__name__)

AGENT_COMMIT_MESSAGE = "[scylla] Agent changes"


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


def _commit_agent_changes(workspace: Path) -> bool:
    """Commit everything the agent left as ``[scylla] Agent changes``; False when nothing was."""
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


INTERRUPTED_NOTE = "\nStopped: the repair was interrupted (Ctrl+C); the next run starts it over\n"


def run_agent(run_dir: Path, workspace: Path, settings: AgentSettings) -> AgentOutcome:
    """Run the agent once on ``run_dir/agent/prompt.md`` in ``workspace`` and record everything.

    Never raises for an agent problem: the outcome carries the classified failure. Files are
    written even when the binary cannot be started.
    """
    run_dir, workspace = Path(run_dir).absolute(), Path(workspace).absolute()
    if stopping():  # Ctrl+C came first: write nothing, so the caller can put the run back as it was
        raise AgentInterrupted(f"agent in {workspace} not started: the repair was interrupted")
    agent_dir = run_dir / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)
    prompt_file = agent_dir / "prompt.md"
    argv = build_command(settings, prompt_file, workspace)
    env = agent_env(settings)
    scrub = Scrubber(env)
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
    write_command_log(agent_dir, entry)
    write_replay(agent_dir, argv, workspace, settings, started_at, 0.0, 0, scrub)
    log.info("Agent of %s: %s", "/".join(run_dir.parts[-3:]), shlex.join(entry.command))  # secrets scrubbed

    start = time.monotonic()
    if not prompt_file.is_file():
        run = ProcessRun()
        run.spawn_error = f"Agent prompt not found: {prompt_file} (prepare the workspace first)"
        run.stderr = run.spawn_error + "\n"
    elif not workspace.is_dir():
        run = ProcessRun()
        run.spawn_error = f"Workspace not found: {workspace}"
        run.stderr = run.spawn_error + "\n"
    else:
        run = execute(argv, workspace, env, settings)
    if stopping() and run.spawn_error is not None:  # stopped before it was spawned: no trace,
        (agent_dir / "command_log.json").unlink(missing_ok=True)  # so the caller puts the run back
        raise AgentInterrupted(f"agent in {workspace} not started: the repair was interrupted")
    if stopping():  # stop_agents() ended it: not the agent's outcome. Only command_log.json and
        # interrupted.log are left, so the run classifies as `partial` (started, not finished) and
        # the next repair archives it and starts it over; result.json would make it `failed`.
        atomic_write_text(agent_dir / "interrupted.log", run.stdout + run.stderr + INTERRUPTED_NOTE)
        raise AgentInterrupted(f"agent in {workspace} stopped: the repair was interrupted")
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
    log.info(
        "Agent of %s exited %s after %.1f s: %s",
        "/".join(run_dir.parts[-3:]),
        run.exit_code,
        duration,
        failure.kind.value if failure else "ok",
    )
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
    write_command_log(agent_dir, entry)
    write_replay(agent_dir, argv, workspace, settings, started_at, duration, run.exit_code, scrub)
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
    write_model_md(agent_dir, settings.model, claude_version(version_binary, env, workspace))

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
