"""Putting back a run whose new attempt was prepared but whose agent never started (Ctrl+C).

A repair holds the run's agent slot from before the archive to the agent's end and checks the
stop flag first, so a stop normally finds the run untouched. The window left is between the
archive and the agent's start (worktree creation, Prefect task bookkeeping: after Ctrl+C the
temporary API server is gone and those calls fail or hang). If the stop lands there, the fresh
run dir (worktree, prompt files, no agent output) is removed and the archived attempt moved back,
so the run has the status and files it had before and ``.failed/`` holds no attempt that never
ran: by the run's own thread when its step fails (:func:`put_back_unstarted`), or by the CLI just
before a stuck process is ended (:func:`put_back_all`), for every run registered by
:func:`preparing`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from experiment.layout import ExperimentLayout, RunKey
from operations.workspace import remove_worktree

log = logging.getLogger(__name__)


def agent_started(run_dir: Path) -> bool:
    """True once the agent step wrote its command log (it does so just before spawning)."""
    return (Path(run_dir) / "agent" / "command_log.json").exists()


def put_back_unstarted(
    layout: ExperimentLayout,
    key: RunKey,
    base_repo: Path,
    archived_to: str | Path | None,
    *,
    never_spawned: bool = False,
) -> bool:
    """Undo the archive and workspace of ``key`` if its agent never started; True if undone.

    One at a time, and once: the run's own thread and the CLI's exit path may both put the same
    run back. Unserialised, the later one found no run dir (so "not started"), the earlier one
    then moved the archived attempt back, and the later one deleted it as the fresh dir: a failed
    run lost its attempt and read ``missing`` (the Ctrl+C test, under load)."""
    run_dir = layout.run_dir(key)
    with _PUT_BACK_LOCK:
        if archived_to is not None and not Path(archived_to).exists():
            return False  # its archived attempt is back in place already (or was never moved)
        if agent_started(run_dir) and not never_spawned:  # never_spawned: its command log only
            return False
        if run_dir.exists():
            remove_worktree(base_repo, run_dir / "workspace", key.branch)
            _remove_while_written(run_dir)
        if archived_to is not None and not run_dir.exists():
            os.rename(archived_to, run_dir)
    log.info("Interrupted before its agent started: %s put back as it was", key.label)
    return True


_PUT_BACK_LOCK = threading.Lock()


def _remove_while_written(run_dir: Path, attempts: int = 40) -> None:
    """Remove ``run_dir`` even while a last writer finishes in it. At a forced exit the run's own
    thread may still be in its workspace step (a ``git worktree add`` writing files): one rmtree
    then left the dir behind, the archived attempt was not moved back, and a ``failed`` run that
    never started read ``missing`` (seen in the Ctrl+C test under load)."""
    for _ in range(attempts):
        shutil.rmtree(run_dir, ignore_errors=True)
        if not run_dir.exists():
            return
        time.sleep(0.05)
    log.warning("Could not remove %s: something keeps writing in it", run_dir)


_PREPARING: dict[str, tuple[ExperimentLayout, RunKey, Path, str | Path | None]] = {}
_PREPARING_LOCK = threading.Lock()


@contextlib.contextmanager
def preparing(
    layout: ExperimentLayout, key: RunKey, base_repo: Path, archived_to: str | Path | None
) -> Iterator[None]:
    """Register ``key`` as archived and being prepared, so :func:`put_back_all` can undo it."""
    label = f"{layout.root}:{key.label}"
    with _PREPARING_LOCK:
        _PREPARING[label] = (layout, key, base_repo, archived_to)
    try:
        yield
    finally:
        with _PREPARING_LOCK:
            _PREPARING.pop(label, None)


def put_back_all() -> int:
    """Put back every registered run whose agent never started (the process is about to end).

    A run whose agent step had begun when the process is ended is settled here too, since its
    own thread may not get to it: if its agent was spawned, the stop is recorded
    (``interrupted.log``, as the thread would have: the run is ``partial``, an attempt that ran);
    if only its command log was written, it is put back like any run whose agent never started."""
    from operations.agent.process import was_spawned
    from operations.agent.run import note_interrupted

    with _PREPARING_LOCK:
        entries = list(_PREPARING.values())
    undone = 0
    for layout, key, base_repo, archived_to in entries:
        try:
            agent_dir = layout.run_dir(key) / "agent"
            started = agent_started(agent_dir.parent)
            if started and was_spawned(agent_dir):
                if not any((agent_dir / name).exists() for name in _AGENT_ENDED):
                    note_interrupted(agent_dir)
                continue
            undone += put_back_unstarted(layout, key, base_repo, archived_to, never_spawned=started)
        except OSError as exc:
            log.warning("Could not put back %s: %s", key.label, exc)
    return undone


_AGENT_ENDED = ("interrupted.log", "stdout.log", "result.json")
"""Files that say an agent's end was already recorded (by its own thread)."""
