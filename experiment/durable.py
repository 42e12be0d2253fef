"""Durability in batches: one filesystem sync per batch of writes instead of one fsync per file.

Outside a batch, :func:`experiment.jsonio.atomic_write_text` and
:func:`experiment.backups.backup_file` make each file durable on their own (temp file, fsync,
rename). A regeneration writes thousands of small files, and one fsync costs about a millisecond
on an ordinary disk (the measured third of the wall time, see bench/README.md), so the
regeneration wraps each chunk of runs, and the aggregate rebuild, in :func:`write_batch`:

1. **During the batch** every new content goes to a temp file beside its target (a dot-file,
   ``.<name>.<pid>.<n>.tmp``) and nothing is renamed or linked yet; a backup is only noted.
2. **Commit, step 1**: one ``os.sync()`` makes the data of every temp file durable.
3. **Commit, step 2**: every file to back up is hard-linked to its name under ``.backups/``
   (``link`` never replaces an older backup), then every temp file is renamed over its target
   (``rename`` is atomic); backups come first, so no file is replaced before its previous version
   is kept. The link *is* the backup: the rename gives the live name a new inode, which leaves the
   old inode, whose data was durable before the batch began, to the backup alone, and nothing we
   write changes a file in place. So a backup costs one ``link``, not a copy (a file noted for
   backup that the batch does not replace is copied instead: it keeps its inode, which a later
   in-place write, ProjectScylla's own, would change under a link).
4. **Commit, step 3**: a second ``os.sync()`` makes the names durable (the directories' entries).

Why a crash at any instant is safe: before step 2 nothing visible has changed (at worst some
temp dot-files are left behind, which no reader looks at); during step 2 each target is either
still the old file or the new one, whose data step 1 already made durable, so no file can come
back empty or half-written after a power cut (the failure a rename without a prior data sync
allows); a lost rename leaves the old content, which is what a crash before the write would have
left. Files of one batch can be a mix of old and new after a crash, exactly as with per-file
fsyncs: a regeneration is idempotent (it rebuilds from the logs), so running it again completes
the job. An exception inside the batch removes its temp files and renames nothing.

Reads inside a batch see the files as they were before it: code that writes a file and reads it
back in the same batch must use the value it wrote (see ``ensure_judge_timing``).

Batches are per thread; a nested :func:`write_batch` joins the enclosing one. A forked worker that
writes for its parent (a tier folded in :mod:`experiment.regenerate.tier_fold`) collects its
writes with :func:`collected_writes` and hands them over: the parent adopts them
(:meth:`WriteBatch.adopt`) into its own batch, whose commit makes them durable with the rest.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

_local = threading.local()


@dataclass
class WriteBatch:
    """The temp files of one batch, waiting for :meth:`commit`."""

    renames: list[tuple[str, str]] = field(default_factory=list)
    """(temp file, target) pairs: the target is replaced at commit."""
    backups: list[tuple[str, str]] = field(default_factory=list)
    """(file, backup path) pairs: the file is linked to its backup name at commit, before any
    rename, never over an existing backup (module docstring, step 2)."""

    def rename_later(self, tmp: str, target: str) -> None:
        self.renames.append((tmp, target))

    def backup_later(self, path: str, backup: str) -> None:
        self.backups.append((path, backup))

    def adopt(self, renames: list[tuple[str, str]], backups: list[tuple[str, str]]) -> None:
        """Take over another batch's pending writes (a worker's :func:`collected_writes`): this
        batch's commit makes the backups and renames the temp files, its discard removes them."""
        self.renames.extend(renames)
        self.backups.extend(backups)

    def commit(self) -> None:
        """Sync, keep the backups, rename the files, sync (see the module docstring)."""
        if not self.renames and not self.backups:
            return
        try:
            os.sync()  # inside the try: a Ctrl+C during the sync must not leave the temp files
            replaced = {target for _, target in self.renames}
            for path, backup in self.backups:
                keep_backup(path, backup, linked=path in replaced)
            self.backups.clear()
            for tmp, target in self.renames:
                os.replace(tmp, target)
            self.renames.clear()
        finally:
            self.discard()
        os.sync()

    def discard(self) -> None:
        """Remove the temp files not yet renamed (a backup not yet made is just forgotten)."""
        for tmp, _ in self.renames:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.backups.clear()
        self.renames.clear()


def keep_backup(path: str, backup: str, *, linked: bool) -> str | None:
    """Keep ``path`` under ``backup`` (or ``backup.1``, ...: never over an older backup): a hard
    link of a file about to be replaced, else a durable copy (module docstring, step 2). Returns
    the name it got; None when the file is gone. A backup dir removed meanwhile is made again."""
    if linked:
        keep = link_unique
    else:
        from experiment.backups import copy_unique  # backups builds on this module

        keep = copy_unique
    try:
        return keep(path, backup)
    except FileNotFoundError:
        if not os.path.exists(path):
            return None  # removed since it was noted: there is nothing left to keep
        os.makedirs(os.path.dirname(backup), exist_ok=True)  # its backup dir was removed
        return keep(path, backup)


def link_unique(path: str, target: str) -> str:
    """Hard-link ``path`` to ``target``, or to ``target.1``, ``target.2``, ... when it exists."""
    candidate, counter = target, 0
    while True:
        try:
            os.link(path, candidate)
            return candidate
        except FileExistsError:
            counter += 1
            candidate = f"{target}.{counter}"


def current_batch() -> WriteBatch | None:
    """The batch this thread is writing in, if any."""
    batch: WriteBatch | None = getattr(_local, "batch", None)
    return batch


@contextlib.contextmanager
def write_batch() -> Iterator[WriteBatch]:
    """Collect this thread's writes and make them durable together on exit (module docstring)."""
    outer = current_batch()
    if outer is not None:
        yield outer
        return
    batch = WriteBatch()
    _local.batch = batch
    try:
        yield batch
    except BaseException:
        _local.batch = None
        batch.discard()
        raise
    _local.batch = None
    batch.commit()


@contextlib.contextmanager
def collected_writes() -> Iterator[WriteBatch]:
    """A batch of its own for this thread, never committed here: on exit its temp files wait in
    the returned batch for a parent's :meth:`WriteBatch.adopt` (on an exception they are removed).

    For a forked worker, whose inherited copy of the parent's batch must not collect anything
    (only the parent's batch commits), and for the same code run in the parent itself."""
    outer = current_batch()
    batch = WriteBatch()
    _local.batch = batch
    try:
        yield batch
    except BaseException:
        batch.discard()
        raise
    finally:
        _local.batch = outer
