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

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from experiment.errors import RepairBlocked
from experiment.layout import ExperimentLayout
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


class RepairLock:
    """At most one repair at a time per experiment (see the module docstring)."""

    def __init__(self, layout: ExperimentLayout) -> None:
        self.path = layout.prefect_dir / "repair.lock"

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    @contextmanager
    def hold(self, *, wait_seconds: float = 0.0, description: str = "") -> Iterator[None]:
        with _flock(self.path, blocking=wait_seconds > 0, timeout=wait_seconds) as fd:
            if fd is None:
                holder = self.holder()
                who = f"pid {holder.get('pid', '?')} since {holder.get('since', '?')}"
                raise RepairBlocked(
                    "Another repair is already running on this experiment",
                    f"{self.path.parent.parent} ({who})",
                    "wait for it to finish, or stop it; a crashed repair releases its lock automatically",
                )
            info = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "what": description}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            yield


def update_checkpoint(
    layout: ExperimentLayout, config: ExperimentConfig, change: Callable[[Checkpoint], None]
) -> Checkpoint:
    """Re-read ``checkpoint.json`` under the writer lock, apply ``change``, save atomically.

    A missing checkpoint starts fresh (status ``rerunning``); an unreadable one is kept aside as
    ``checkpoint.json.corrupt-<time>`` (never deleted) and rebuilt from the change.
    """
    with _flock(layout.prefect_dir / "checkpoint.lock", blocking=True):
        path = layout.checkpoint_path
        checkpoint = None
        if path.exists():
            try:
                checkpoint = Checkpoint.load(path)
            except Exception:  # noqa: BLE001 - any unreadable checkpoint is set aside, not lost
                os.replace(path, path.with_name(f"checkpoint.json.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"))
        if checkpoint is None:
            checkpoint = Checkpoint.fresh(config, layout.root)
        change(checkpoint)
        checkpoint.save(path)
        return checkpoint
