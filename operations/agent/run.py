"""Running the agent once in a prepared workspace, and recording it exactly as ProjectScylla does.

One call = one attempt (:func:`run_agent`): the argv comes from ``command.py``, the process runs
under ``process.py``'s guards. Every file of the run's ``agent/`` directory (spec §1.5) is written,
whatever happens: ``command_log.json`` and ``replay.sh`` before the process starts (exit 0,
duration 0, as the original) and again afterwards; ``stdout.log``/``stderr.log`` and their
``cmd_0000_*`` copies, ``output.txt``, ``timing.json``, ``result.json`` (canonical token keys,
``api_calls`` = claude's ``num_turns``, spec §8.4) and ``MODEL.md``. A ``total_cost_usd`` of 0 with
tokens used is replaced by the tokens' price (:mod:`experiment.pricing`), recorded as such in
``result.json`` (``cost_source``/``cost_note``). A crash, a spawn error or a
timeout gives the original's crash result (exit -1, zero tokens); unlike the original,
``stderr.log`` is written then too and says what happened, so a timed-out run is never mistaken
for one that never started.

stdout and stderr stream into ``stdout.live.log``/``stderr.live.log`` while the agent runs, so an
agent that exited just before the repair was killed is still on disk: :func:`finished_agent`
recognises it (from ``result.json``, else from claude's final result object in the streamed
stdout) and :func:`recover_agent` completes its records, so a resume never pays for it again.
The streams are not written under ProjectScylla's names while the agent runs: an ``agent/stderr.log``
without output means "the agent ran and failed" to ProjectScylla's classifier (and ours), so a
run killed or stopped mid-agent would read as ``failed`` instead of ``partial``. The live files
are removed once the final records are written.

The outcome is classified by :func:`experiment.failures.classify_agent_outcome` (one taxonomy for
the whole tool). This module does not retry and does not import Prefect; the caller's retry policy
reads :attr:`AgentOutcome.failure` (or calls :meth:`AgentOutcome.raise_if_transient`).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
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
from experiment.pricing import price_tokens
from operations.agent.command import (
    RECORDED_ENV,
    AgentSettings,
    Scrubber,
    agent_env,
    build_command,
    redact_env,
)
from operations.agent.process import AgentInterrupted, ProcessRun, finish, not_started, start, stopping
from operations.agent.records import (
    STDERR_FILE,
    STDOUT_FILE,
    claude_version,
    write_command_log,
    write_model_md,
    write_replay,
)
from operations.unstarted import changing
from operations.workspace import git

__all__ = [
    "AGENT_COMMIT_MESSAGE",
    "COST_FROM_TOKENS",
    "AgentOutcome",
    "FinishedAgent",
    "finished_agent",
    "recover_agent",
    "run_agent",
]

log = logging.getLogger(__name__)

AGENT_COMMIT_MESSAGE = "[scylla] Agent changes"
COST_FROM_TOKENS = "token_pricing"
"""``cost_source`` of an ``agent/result.json`` whose cost was computed from the tokens (the agent
reported none); ``cost_note`` then says how. ProjectScylla reads only its own keys of this file."""
INTERRUPTED_NOTE = "Stopped: the repair was interrupted (Ctrl+C); the next run starts it over"
"""Ends ``interrupted.log`` of an agent stopped by :func:`stop_agents`: not an outcome."""
LIVE_STDOUT, LIVE_STDERR = "stdout.live.log", "stderr.live.log"
"""Where the agent's output streams while it runs (``agent/``); see the module docstring."""


class AgentOutcome(BaseModel):
    """The summary of one agent attempt (the files in ``agent/`` hold the detail)."""

    exit_code: int
    """Process exit code; -1 for a crash, a spawn error or a timeout."""
    duration_seconds: float
    """Wall time of the attempt."""
    cost_usd: float = 0.0
    """claude's ``total_cost_usd`` (or the tokens' price when it reported 0, see ``experiment.pricing``)."""
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


class _Invocation:
    """The argv, environment and command-log entry of one attempt (what every record repeats)."""

    def __init__(self, run_dir: Path, workspace: Path, settings: AgentSettings) -> None:
        self.run_dir, self.workspace, self.settings = (
            Path(run_dir).absolute(),
            Path(workspace).absolute(),
            settings,
        )
        self.agent_dir = self.run_dir / "agent"
        self.live_logs = (self.agent_dir / LIVE_STDOUT, self.agent_dir / LIVE_STDERR)
        self.prompt_file = self.agent_dir / "prompt.md"
        self.argv = build_command(settings, self.prompt_file, self.workspace)
        self.env = agent_env(settings)
        self.scrub = Scrubber(self.env)
        recorded = list(RECORDED_ENV) + [n for n in sorted(settings.extra_env) if n not in RECORDED_ENV]
        self.started_at = utc_now_iso()
        self.entry = CommandLogEntry(
            timestamp=self.started_at,
            command=[self.scrub(a) for a in self.argv],
            cwd=str(self.workspace),
            env_vars=redact_env(self.env, recorded),
            exit_code=0,
            stdout_file=STDOUT_FILE,
            stderr_file=STDERR_FILE,
            duration_seconds=0.0,
        )

    def write_command(self, duration: float, exit_code: int) -> None:
        self.entry.exit_code, self.entry.duration_seconds = exit_code, round(duration, 6)
        write_command_log(self.agent_dir, self.entry)
        write_replay(
            self.agent_dir,
            self.argv,
            self.workspace,
            self.settings,
            self.started_at,
            duration,
            exit_code,
            self.scrub,
        )


def _classify(run: ProcessRun) -> tuple[Failure | None, dict | None]:
    """(failure or None, claude's result object or None) of a finished process."""
    crashed = run.timed_out or run.spawn_error is not None
    output = None if crashed else parse_claude_output(run.stdout)
    if run.spawn_error is not None:
        return Failure(FailureClass.INFRASTRUCTURE, run.spawn_error), output
    failure = classify_agent_outcome(output, run.exit_code, run.stderr, run.timed_out)
    if failure is not None and run.exit_code < -1 and output is None:
        failure = Failure(FailureClass.INFRASTRUCTURE, f"Agent killed by signal {-run.exit_code}")
    return failure, output


def run_agent(run_dir: Path, workspace: Path, settings: AgentSettings) -> AgentOutcome:
    """Run the agent once on ``run_dir/agent/prompt.md`` in ``workspace`` and record everything.

    Never raises for an agent problem: the outcome carries the classified failure. Files are
    written even when the binary cannot be started. stdout and stderr stream into
    ``agent/`` (:data:`LIVE_STDOUT`, :data:`LIVE_STDERR`) while the agent runs (:func:`finished_agent`).
    """
    call = _Invocation(run_dir, workspace, settings)
    # Under the run's preparation lock (operations.unstarted): a Ctrl+C put-back sees both the
    # command log and the spawn, or neither, and once it put the run back nothing starts here.
    with changing(call.run_dir):
        if stopping():  # Ctrl+C came first: write nothing, so the run is put back as it was
            raise AgentInterrupted(f"agent in {workspace} not started: the repair was interrupted")
        call.agent_dir.mkdir(parents=True, exist_ok=True)
        call.write_command(0.0, 0)
        log.info("Agent of %s: %s", _label(call.run_dir), shlex.join(call.entry.command))  # secrets scrubbed
        begun = time.monotonic()
        started = _start(call)
    run = started if isinstance(started, ProcessRun) else finish(started, settings, *call.live_logs)
    with changing(
        call.run_dir, refuse_settled=False
    ):  # a put-back at the exit finds its end recorded, or not
        if stopping() and run.spawn_error is not None:  # stopped before it was spawned: no trace,
            (call.agent_dir / "command_log.json").unlink(missing_ok=True)  # so the run is put back
            raise AgentInterrupted(f"agent in {call.workspace} not started: the repair was interrupted")
        if stopping():  # stop_agents() ended it: not the agent's outcome. No result.json is written,
            # so the run classifies as `partial` (started, not finished) and the next repair archives
            # it and starts it over; interrupted.log says why (finished_agent() then ignores it).
            note_interrupted(call.agent_dir, run.stdout + run.stderr)
            raise AgentInterrupted(f"agent in {call.workspace} stopped: the repair was interrupted")
        return _record(call, run, time.monotonic() - begun)


def _start(call: _Invocation) -> subprocess.Popen[bytes] | ProcessRun:
    if not call.prompt_file.is_file():
        return not_started(f"Agent prompt not found: {call.prompt_file} (prepare the workspace first)")
    if not call.workspace.is_dir():
        return not_started(f"Workspace not found: {call.workspace}")
    return start(call.argv, call.workspace, call.env, *call.live_logs)


def note_interrupted(agent_dir: Path, output: str | None = None) -> None:
    """Record that the agent in ``agent_dir`` was stopped by Ctrl+C (``interrupted.log``: its
    output so far, then :data:`INTERRUPTED_NOTE`). ``output`` None: what the live logs hold."""
    if output is None:
        output = "".join(
            (agent_dir / name).read_text(errors="replace")
            for name in (LIVE_STDOUT, LIVE_STDERR)
            if (agent_dir / name).is_file()
        )
    atomic_write_text(agent_dir / "interrupted.log", output + f"\n{INTERRUPTED_NOTE}\n")


class FinishedAgent:
    """An attempt whose agent process ended, as its streamed files tell (see :func:`finished_agent`)."""

    def __init__(self, run: ProcessRun, duration: float) -> None:
        self.run, self.duration = run, duration
        self.failure, _ = _classify(run)

    @property
    def final(self) -> bool:
        """True when the attempt needs no new agent: it succeeded or failed for good."""
        return self.failure is None or not self.failure.transient


def finished_agent(run_dir: Path) -> FinishedAgent | None:
    """The agent of ``run_dir``'s current attempt, if its process ended; read-only.

    ``result.json`` says so once recorded. Before that, the streamed stdout does when it holds
    claude's final result object: the agent printed it and exited, and the repair died before
    recording it (SIGKILL). A crashed or timed-out attempt (exit -1) counts as unfinished.
    """
    agent_dir = Path(run_dir) / "agent"
    if (agent_dir / "interrupted.log").exists():  # stopped by Ctrl+C (another branch's record of it)
        return None
    streams = _read_streams(agent_dir, "stdout.log", "stderr.log") or _read_streams(
        agent_dir, LIVE_STDOUT, LIVE_STDERR
    )
    if streams is None:
        return None
    stdout, stderr = streams
    run = ProcessRun()
    run.stdout, run.stderr = stdout, stderr
    try:
        recorded = AgentResult.model_validate_json((agent_dir / "result.json").read_bytes())
        timing = AgentTiming.model_validate_json((agent_dir / "timing.json").read_bytes())
    except (OSError, ValueError):
        output = parse_claude_output(stdout)
        if output is None or output.get("type") != "result":
            return None
        run.exit_code = 1 if output.get("is_error") else 0
        return FinishedAgent(run, float(output.get("duration_ms") or 0) / 1000)
    if recorded.exit_code == -1 or INTERRUPTED_NOTE in stderr:  # crashed, timed out, or stopped by us
        return None
    run.exit_code = recorded.exit_code
    return FinishedAgent(run, timing.agent_duration_seconds)


def _read_streams(agent_dir: Path, stdout_name: str, stderr_name: str) -> tuple[str, str] | None:
    try:
        return (
            (agent_dir / stdout_name).read_text(encoding="utf-8", errors="replace"),
            (agent_dir / stderr_name).read_text(encoding="utf-8", errors="replace"),
        )
    except OSError:
        return None


def recover_agent(
    run_dir: Path, workspace: Path, settings: AgentSettings, finished: FinishedAgent
) -> AgentOutcome:
    """Complete the records of an agent that finished before the repair died, and return its
    outcome, without running it again (the files it streamed are the truth)."""
    return _record(_Invocation(run_dir, workspace, settings), finished.run, finished.duration)


def _label(run_dir: Path) -> str:
    """``T0/00/run_01`` of a run dir, for log lines."""
    return "/".join(run_dir.parts[-3:])


def _record(call: _Invocation, run: ProcessRun, duration: float) -> AgentOutcome:
    """Write every ``agent/`` file of a finished process and return its outcome."""
    agent_dir, settings = call.agent_dir, call.settings
    failure, output = _classify(run)
    crashed = run.timed_out or run.spawn_error is not None
    log.info(
        "Agent of %s exited %s after %.1f s: %s",
        _label(call.run_dir),
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
    # No cost reported but tokens used: priced from the tokens, as ProjectScylla does, and said so.
    priced = price_tokens(cost, tokens, settings.model) if output is not None else None
    if priced is not None:
        cost = priced.cost_usd
        log.info("%s: %s", agent_dir, priced.note)

    # -- record (the original's order: logs, command log, timing, output, result, model)
    atomic_write_text(agent_dir / "stdout.log", run.stdout)
    atomic_write_text(agent_dir / "stderr.log", run.stderr)
    atomic_write_text(agent_dir / STDOUT_FILE, run.stdout)
    atomic_write_text(agent_dir / STDERR_FILE, run.stderr)
    call.write_command(duration, run.exit_code)
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
        **({"cost_source": COST_FROM_TOKENS, "cost_note": priced.note} if priced else {}),
    )
    atomic_write_json(agent_dir / "result.json", result.to_json_dict())
    version_binary = settings.claude_binary if settings.command is None else call.argv[0]
    write_model_md(agent_dir, settings.model, claude_version(version_binary, call.env, call.workspace))
    for live in (LIVE_STDOUT, LIVE_STDERR):  # recorded above under ProjectScylla's names
        (agent_dir / live).unlink(missing_ok=True)

    if stopping():  # interrupted: run_agent raises; nothing to commit
        committed = False
    else:
        committed = _commit_agent_changes(call.workspace) if call.workspace.is_dir() else False
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
