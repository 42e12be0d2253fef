"""Cross-process locks that a crash can never leave behind.

Both locks are ``flock`` locks on files under ``<exp>/.prefect/``: the kernel releases them when
the holding process dies (SIGKILL, reboot), so a resume after a crash never waits for a dead
process, unlike a Prefect concurrency slot, which leaks on the temporary server.

* :class:`RepairLock`: at most one repair per experiment. A second one refuses at once with a
  message naming the holder, or waits when asked to.
* :func:`update_checkpoint`: the single writer of ``checkpoint.json``. Every update re-reads the
  file under the lock, applies a small change and writes it atomically, so concurrent workers
  never overwrite each other's entries with a stale copy (the original lost 590 runs that way).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiment.attempt import pause_for_tests
from experiment.backups import backup_file
from experiment.backups import backup_stamp as new_backup_stamp
from experiment.errors import RepairBlocked
from experiment.jsonio import read_json
from experiment.layout import ExperimentLayout

if TYPE_CHECKING:  # the models load when a checkpoint is written, not with the locks the dry run probes
    from experiment.models import Checkpoint, ExperimentConfig


@contextmanager
def _flock(path: Path, *, blocking: bool, timeout: float | None = None) -> Iterator[int | None]:
    """Yield the open fd holding an exclusive flock, or None if it could not be taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not blocking or (deadline is not None and time.monotonic() >= deadline):
                    yield None
                    return
                time.sleep(0.2)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def repository_lock(repo: Path) -> Iterator[None]:
    """Serialise worktree/branch administration of one git repository across threads and
    processes: concurrent ``git worktree add``/``prune`` on one repository race on its
    ``.git/worktrees`` admin files (observed: "could not open .git/worktrees/workspace1/locked").
    A repository whose ``.git`` is not a directory (a worktree itself) is not locked."""
    git_dir = Path(repo) / ".git"
    if not git_dir.is_dir():
        yield
        return
    with _flock(git_dir / "scylla-repair-worktrees.lock", blocking=True):
        yield


_HELD_HERE: set[Path] = set()
"""Repair locks this process holds (see :meth:`RepairLock.hold`)."""


class RepairLock:
    """At most one repair at a time per experiment (see the module docstring)."""

    def __init__(self, layout: ExperimentLayout) -> None:
        self.path = layout.prefect_dir / "repair.lock"

    def holder(self) -> dict[str, Any]:
        try:
            holder: dict[str, Any] = json.loads(self.path.read_text() or "{}")
            return holder
        except (OSError, ValueError):
            return {}

    def blocked(self) -> RepairBlocked:
        holder = self.holder()
        who = f"pid {holder.get('pid', '?')} since {holder.get('since', '?')}"
        return RepairBlocked(
            "Another repair is already running on this experiment",
            f"{self.path.parent.parent} ({who})",
            "wait for it to finish, or stop it; a crashed repair releases its lock automatically",
        )

    def ensure_free(self) -> None:
        """Refuse early (before Prefect starts) when another repair holds the lock right now.
        Only a probe: :meth:`hold` inside the flow is what actually excludes a second repair."""
        with _flock(self.path, blocking=False) as fd:
            if fd is None:
                raise self.blocked()

    def busy(self) -> bool:
        """True when another process holds the lock right now. Creates nothing (the dry run)."""
        if self.path in _HELD_HERE:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases a lock we took
        return False

    @contextmanager
    def hold(self, *, wait_seconds: float = 0.0, description: str = "") -> Iterator[None]:
        """Hold the lock for a repair; refuse at once, or wait up to ``wait_seconds`` for it.

        Reentrant within this process: the CLI takes the lock before Prefect starts (so two
        repairs started together get one line, never a flow traceback) and the flow it runs
        then holds it through the CLI's hold."""
        if self.path in _HELD_HERE:
            yield
            return
        with _flock(self.path, blocking=wait_seconds > 0, timeout=wait_seconds) as fd:
            if fd is None:
                raise self.blocked()
            info = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "what": description}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            _HELD_HERE.add(self.path)
            try:
                yield
            finally:
                _HELD_HERE.discard(self.path)


def update_checkpoint(
    layout: ExperimentLayout,
    config: ExperimentConfig,
    change: Callable[[Checkpoint], None],
    *,
    backup_stamp: str | None = None,
) -> Checkpoint:
    """Re-read ``checkpoint.json`` under the writer lock, apply ``change``, save atomically.

    A missing checkpoint starts fresh (status ``rerunning``); an unreadable one is kept aside as
    ``checkpoint.json.corrupt-<time>`` (never deleted) and rebuilt from the change. A change that
    alters nothing the file records writes nothing (:mod:`experiment.checkpoint_states`). Before
    an existing file is overwritten it is backed up under ``.backups/`` when it is migrated (v2.0
    or v3.0 to v3.1) or when ``backup_stamp`` is given (then under that stamp). A written
    checkpoint has its tier and subtest states and its config hash as ProjectScylla has them.
    """
    from experiment.checkpoint_states import changes_the_file, fill_states
    from experiment.models import Checkpoint

    with _flock(layout.prefect_dir / "checkpoint.lock", blocking=True):
        path = layout.checkpoint_path
        _remove_stale_temp_files(path)
        checkpoint, raw = None, None
        if path.exists():
            try:
                raw = read_json(path)
                checkpoint = Checkpoint.load(path)
            except Exception:  # noqa: BLE001 - any unreadable checkpoint is set aside, not lost
                set_aside(path)
                raw = None
        if checkpoint is None:
            checkpoint = Checkpoint.fresh(config, layout.root)
        before = checkpoint.model_copy(deep=True)
        change(checkpoint)
        if not changes_the_file(raw, before, checkpoint):
            return checkpoint
        if raw is not None and (backup_stamp or raw.get("version") != "3.1"):
            backup_file(layout.root, path, backup_stamp or new_backup_stamp())
        fill_states(checkpoint, layout, config)
        pause_for_tests("checkpoint", str(path))  # crash-test hook: killed while holding the lock
        checkpoint.save(path)
        logging.getLogger(__name__).info(
            "Checkpoint written: %s (%d runs recorded)",
            path,
            sum(len(runs) for subs in checkpoint.completed_runs.values() for runs in subs.values()),
        )
        return checkpoint


def set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint to ``checkpoint.json.corrupt-<time>[-N]``; never overwrite."""
    stem = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    target, n = stem, 1
    while True:
        try:
            os.link(path, target)  # fails if ``target`` exists: nothing is ever overwritten
            break
        except FileExistsError:
            target, n = stem.with_name(f"{stem.name}-{n}"), n + 1
    os.unlink(path)
    return target


def _remove_stale_temp_files(path: Path) -> None:
    """Temp files of a writer that died between write and rename (we hold the writer lock, so
    none belongs to a live writer). The checkpoint itself was never touched by them."""
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            temp.unlink()
