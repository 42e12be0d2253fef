"""Running the agent process: its own process group, a timeout that kills the whole group, and
the guards that keep an agent from outliving the repair.

The agent runs with ``cwd`` = the workspace, stdin from ``/dev/null`` and its own process group,
so a timeout can kill everything it started: SIGTERM to the group, a grace period, SIGKILL (spec
§3.4). Leftover background processes are killed when the agent exits as well.

The agent runs in its own session, which also means a Ctrl+C in the terminal or a SIGKILL of the
repair does not reach it: it would go on running, and paying, while the resumed repair starts the
run again. Two guards:

* Linux ``PR_SET_PDEATHSIG``: the kernel sends SIGKILL to the agent when the thread that started
  it dies (the repair process killed by SIGKILL, OOM, a worker shutdown);
* :func:`stop_agents` (called on Ctrl+C by the CLI): SIGTERM, then SIGKILL, to every agent process
  group still running, and no new agent starts in this process afterwards.

The agent's stdout and stderr go straight into files (the caller's, in the run's ``agent/``), not
into pipes: the moment the agent exits, everything it printed is on disk, so a
repair killed right after (before ``result.json``) loses nothing and a resume can recognise the
finished agent from those files instead of paying for it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from operations.agent.command import AgentSettings

__all__ = [
    "AgentInterrupted",
    "ProcessRun",
    "execute",
    "finish",
    "not_started",
    "start",
    "stop_agents",
    "stopping",
]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class AgentInterrupted(Exception):
    """The agent was stopped by :func:`stop_agents` (Ctrl+C): no outcome, nothing to persist."""


_LIVE_GROUPS: set[int] = set()
_LIVE_LOCK = threading.Lock()
_SPAWNED: set[Path] = set()
"""Directories (of ``stdout_path``) whose agent this process started: at a forced exit, tells a
run whose agent ran from one whose agent step wrote its command log but never spawned it."""
_STOPPED = threading.Event()


_HELD_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
"""Blocked in the forking thread while an agent is forked (see :func:`_spawning`)."""


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A ``preexec_fn`` setting PR_SET_PDEATHSIG=SIGKILL (None where prctl is unavailable).

    It also gives the child the default action for SIGINT/SIGTERM before unblocking them
    (:func:`_spawning` blocked them for the fork): until its exec the child is a copy of this
    process running Python, and a Ctrl+C to the terminal's process group landing there ran the
    CLI's own handler in the child, which waited forever on a lock the parent held at the fork
    (``_LIVE_LOCK``); the parent, waiting for the child's exec with that lock held, hung too."""
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
        for sig in _HELD_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_SIGNALS)

    return preexec


@contextlib.contextmanager
def _spawning(preexec: Callable[[], None] | None) -> Iterator[None]:
    """Block SIGINT/SIGTERM in this thread while it forks an agent whose ``preexec`` unblocks
    them (the child inherits the mask; see :func:`_die_with_parent_fn`). The process still gets
    them: the kernel hands them to another thread, and the main thread runs the handler."""
    if preexec is None:  # no Python runs in the child (and nothing would unblock them there)
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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


def was_spawned(agent_dir: Path) -> bool:
    """True if this process started an agent whose output streams into ``agent_dir``."""
    with _LIVE_LOCK:
        return Path(agent_dir).absolute() in _SPAWNED


def forget_spawned(agent_dir: Path) -> None:
    """A new attempt of the run begins in ``agent_dir`` (its previous one was just archived): an
    agent this process started there before belonged to that attempt, not to this one."""
    with _LIVE_LOCK:
        _SPAWNED.discard(Path(agent_dir).absolute())


def stopping() -> bool:
    """True once :func:`stop_agents` was called: an agent that ended since was stopped by us."""
    return _STOPPED.is_set()


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


class ProcessRun:
    """What happened to the process."""

    def __init__(self) -> None:
        self.exit_code = -1
        self.stdout = ""
        self.stderr = ""
        self.timed_out = False
        self.spawn_error: str | None = None


def execute(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    settings: AgentSettings,
    stdout_path: Path,
    stderr_path: Path,
) -> ProcessRun:
    """Run ``argv`` once within ``settings.timeout_seconds``, streaming its output into
    ``stdout_path``/``stderr_path``; never raises for the agent's sake (a spawn error is recorded
    in the result, as is a timeout)."""
    started = start(argv, cwd, env, stdout_path, stderr_path)
    return started if isinstance(started, ProcessRun) else finish(started, settings, stdout_path, stderr_path)


def start(
    argv: list[str], cwd: Path, env: dict[str, str], stdout_path: Path, stderr_path: Path
) -> subprocess.Popen[bytes] | ProcessRun:
    """Spawn the agent in its own session, its output streaming into the two files; a
    :class:`ProcessRun` with ``spawn_error`` when it was not started (stopping, or an OSError)."""
    if _STOPPED.is_set():
        return not_started(_STOPPING)
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        try:
            with _LIVE_LOCK:  # registered before a concurrent stop_agents() can miss it, and
                if _STOPPED.is_set():  # the stop flag read under the same lock: no agent after it
                    return not_started(_STOPPING)
                preexec = _die_with_parent_fn()
                with _spawning(preexec):
                    proc = subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                        preexec_fn=preexec,
                    )
                _LIVE_GROUPS.add(proc.pid)
                _SPAWNED.add(stdout_path.parent.absolute())
        except OSError as exc:
            return not_started(f"Failed to start agent {argv[0]!r}: {exc.strerror or exc}")
    return proc


_STOPPING = "The repair is stopping (interrupted); the agent was not started"


def not_started(reason: str) -> ProcessRun:
    run = ProcessRun()
    run.spawn_error = reason
    run.stderr = reason + "\n"
    return run


def finish(
    proc: subprocess.Popen[bytes], settings: AgentSettings, stdout_path: Path, stderr_path: Path
) -> ProcessRun:
    """Wait for a :func:`start` ed agent (timeout: its group is ended) and read what it wrote."""
    run = ProcessRun()
    try:
        run.exit_code, run.timed_out = _wait(proc, settings)
    finally:
        _signal_group(proc.pid, signal.SIGKILL)  # nothing the agent started outlives it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with _LIVE_LOCK:
            _LIVE_GROUPS.discard(proc.pid)
    run.stdout, run.stderr = _decode(stdout_path.read_bytes()), _decode(stderr_path.read_bytes())
    if run.timed_out:
        run.stderr += (
            f"\nAgent timed out after {settings.timeout_seconds:g}s; "
            "its process group was sent SIGTERM, then SIGKILL\n"
        )
    return run


def _wait(proc: subprocess.Popen[bytes], settings: AgentSettings) -> tuple[int, bool]:
    """(exit code, timed out): wait for the agent; on timeout SIGTERM its group, then SIGKILL."""
    try:
        return proc.wait(timeout=settings.timeout_seconds), False
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(proc.pid, sig)
        try:
            proc.wait(timeout=settings.kill_grace_seconds)
            break
        except subprocess.TimeoutExpired:
            continue
    return -1, True
