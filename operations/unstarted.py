"""Putting back a run whose new attempt was prepared but whose agent never started (Ctrl+C).

A repair holds one of ``max_agents`` places for a run from before its archive to its agent's end
(:meth:`operations.budget.ProviderBudget.attempt`) and checks the stop flag first, so a stop
normally finds at most that many runs touched. The window left is between the archive and the
agent's start (worktree creation, Prefect task bookkeeping: after Ctrl+C the
temporary API server is gone and those calls fail or hang). If the stop lands there, the fresh
run dir (worktree, prompt files, no agent output) is discarded and the archived attempt moved
back, so the run has the status and files it had before and ``.failed/`` holds no attempt that
never ran. If the agent had been spawned, the stop is recorded instead (``interrupted.log``: the
run is ``partial``, an attempt that ran).

Two parties may do that, and they must not interleave: the run's own thread (its step failed
with the stop) and the CLI's exit path (:func:`put_back_all`, its last act before a stuck process
is ended). Earlier designs let them race and each fix closed one window (a put-back deleting the
other's restored attempt; a run archived but not yet registered; a command log written but the
agent not yet spawned). So the rule now is one lock per run (:class:`Preparation`):

* the run is registered (:func:`preparing`) *before* its archive, and a run cannot register once
  a stop was asked for, so the exit path sees every run a repair may have touched;
* every change to the run's files before its agent runs (the archive, the workspace, the command
  log and the spawn) happens inside :meth:`Preparation.changing`, which holds the lock and refuses
  (``AgentInterrupted``) once the run is settled;
* :meth:`Preparation.settle` takes the same lock, so it sees the run between two such changes,
  never in the middle of one, and it settles the run once.

The exit path's put-back is two renames (the fresh dir into ``.prefect/discarded/``, the archive
back), so a forced exit a moment later still finds the run as it was; the discarded dir is removed
after every run is settled, or by the next repair (:func:`sweep_discarded`).
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

DISCARDED_DIR = "discarded"
"""Under ``<exp>/.prefect/``: fresh run dirs of runs put back, until they are removed."""

_AGENT_ENDED = ("interrupted.log", "stdout.log", "result.json")
"""Files that say an agent's end was already recorded (by its own thread)."""


class Preparation:
    """One run of this process between its registration and its agent's start."""

    def __init__(self, layout: ExperimentLayout, key: RunKey, base_repo: Path) -> None:
        self.layout, self.key, self.base_repo = layout, key, Path(base_repo)
        self.run_dir = layout.run_dir(key).absolute()
        self.archived_to: Path | None = None
        self.fresh = False
        """The run dir, if any, is this repair's new attempt (the old one archived, or none)."""
        self.settled = False
        """Put back, or its stop recorded: nothing more changes the run's files before its agent."""
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def changing(self, *, refuse_settled: bool = True) -> Iterator[Preparation]:
        """Hold while changing the run's files before its agent runs; refused once settled.
        ``refuse_settled=False``: recording a spawned agent's end, which a settle must then see
        recorded or not, never half-written (the agent ran: its end is recorded regardless)."""
        with self._lock:
            if self.settled and refuse_settled:
                from operations.agent.process import AgentInterrupted

                raise AgentInterrupted(f"{self.key.label} not started: the repair was interrupted")
            yield self

    def archived(self, target: str | Path | None) -> None:
        """The old attempt is in ``target`` (None: there was none); the run dir is now ours, and
        an agent spawned there before (a retried agent step) was the old attempt's."""
        from operations.agent.process import forget_spawned

        self.archived_to = Path(target) if target is not None else None
        self.fresh = True
        forget_spawned(self.run_dir / "agent")

    def settle(self, *, thorough: bool, timeout: float | None = None) -> bool | None:
        """Put the run back if its agent never started, else record its stop; once.

        True if put back, False if there was nothing to put back (or it was settled already),
        None if the lock was not free within ``timeout``. ``thorough`` (the run's own thread):
        also remove the fresh worktree's git registration and branch and the discarded dir;
        otherwise (the exit path, racing the grace period) only the renames, the rest is
        :func:`sweep_discarded`'s and the next workspace step's."""
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return None
        try:
            if self.settled:
                return False
            self.settled = True
            return self._settle(thorough)
        finally:
            self._lock.release()

    def _settle(self, thorough: bool) -> bool:
        from operations.agent.process import was_spawned
        from operations.agent.run import note_interrupted

        if not self.fresh:  # not archived yet (or its agent result was persisted): not ours
            return False
        agent_dir = self.run_dir / "agent"
        if was_spawned(agent_dir):
            if not any((agent_dir / name).exists() for name in _AGENT_ENDED):
                note_interrupted(agent_dir)
            return False
        discarded = None
        if self.run_dir.exists() or self.run_dir.is_symlink():
            if thorough:
                _forget_worktree(self.base_repo, self.run_dir / "workspace")
            discarded = _discard(self.layout, self.key, self.run_dir)
        if self.archived_to is not None:
            os.rename(self.archived_to, self.run_dir)
        if thorough and discarded is not None:
            shutil.rmtree(discarded, ignore_errors=True)
        log.info("Interrupted before its agent started: %s put back as it was", self.key.label)
        return True


def _forget_worktree(base_repo: Path, workspace: Path) -> None:
    from operations.archive import worktree_branch

    branch = worktree_branch(workspace, base_repo)
    if branch is not None:
        remove_worktree(base_repo, workspace, branch)


def _discard(layout: ExperimentLayout, key: RunKey, run_dir: Path) -> Path:
    """Move ``run_dir`` out of the experiment's runs in one rename; returns where it went."""
    parent = layout.prefect_dir / DISCARDED_DIR
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / f"{key.tier}_{key.subtest}_{key.run_name}-{os.getpid()}-{time.time_ns()}"
    os.rename(run_dir, target)
    return target


def sweep_discarded(layout: ExperimentLayout) -> None:
    """Remove fresh run dirs left in ``.prefect/discarded/`` by a put-back at a forced exit."""
    parent = layout.prefect_dir / DISCARDED_DIR
    if parent.is_dir():
        for entry in parent.iterdir():
            shutil.rmtree(entry, ignore_errors=True)


_PREPARING: dict[str, Preparation] = {}
_PREPARING_LOCK = threading.Lock()


@contextlib.contextmanager
def preparing(layout: ExperimentLayout, key: RunKey, base_repo: Path) -> Iterator[Preparation]:
    """Register ``key`` before its archive, so :func:`put_back_all` can settle it; refused
    (``AgentInterrupted``) once a stop was asked for: the exit path may have looked already."""
    from operations.agent.process import AgentInterrupted, stopping

    preparation = Preparation(layout, key, base_repo)
    label = str(preparation.run_dir)
    with _PREPARING_LOCK:
        if stopping():
            raise AgentInterrupted(f"{key.label} not started: the repair was interrupted")
        _PREPARING[label] = preparation
    try:
        yield preparation
    finally:
        with _PREPARING_LOCK:
            if _PREPARING.get(label) is preparation:
                del _PREPARING[label]


@contextlib.contextmanager
def changing(run_dir: Path, *, refuse_settled: bool = True) -> Iterator[Preparation | None]:
    """:meth:`Preparation.changing` of the run registered for ``run_dir``; nothing to hold when
    none is (a step called outside a repair's run, e.g. by a test)."""
    preparation = _registered(run_dir)
    if preparation is None:
        yield None
        return
    with preparation.changing(refuse_settled=refuse_settled):
        yield preparation


def _registered(run_dir: Path) -> Preparation | None:
    with _PREPARING_LOCK:
        return _PREPARING.get(str(Path(run_dir).absolute()))


def put_back_all() -> int:
    """Settle every registered run (the process is about to end); returns how many were put back.

    Runs whose lock is free are settled first, then the others as their threads leave their
    current change (the caller caps the whole with the grace period). Only renames happen
    before every run is settled; the discarded dirs are removed last."""
    with _PREPARING_LOCK:
        waiting = list(_PREPARING.values())
    layouts = {p.layout.root: p.layout for p in waiting}
    undone = 0
    for timeout in (0.0, None):
        busy = []
        for preparation in waiting:
            try:
                settled = preparation.settle(thorough=False, timeout=timeout)
            except OSError as exc:
                log.warning("Could not put back %s: %s", preparation.key.label, exc)
                continue
            if settled is None:
                busy.append(preparation)
            else:
                undone += settled
        waiting = busy
    for layout in layouts.values():
        sweep_discarded(layout)
    return undone
