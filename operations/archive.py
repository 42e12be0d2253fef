"""Archiving a run before it is re-run: move the whole run dir into ``<subtest>/.failed/``.

The rule of the house (spec §8.1): a run that is about to get a new agent is never modified in
place. Its directory moves *whole* (one ``os.rename``, so the old workspace, logs and judgments go
along; never copy-and-delete) to the first free name of ``.failed/run_NN``, ``run_NN_failed_1``,
``run_NN_failed_2``, ... (rerun_agents' scheme, spec §1.8; the name rule lives in
:meth:`ExperimentLayout.next_archive_path`). Nothing is ever overwritten: the target name is
reserved with ``mkdir`` (atomic, fails if taken) and the run dir is renamed over that empty dir.

The moved workspace is still registered as a worktree of the base repo, at its old path. After
the move ``git worktree prune`` drops that registration and ``git branch -D`` deletes the branch
that worktree had checked out (spec §8.10), read from the worktree's own git files before the move:
the bare ``T0_00_run_01`` of an original run, or the ``<experiment_id[:8]>_`` name of a rerun
(:func:`operations.workspace.run_branch`). Only that branch: a same-named branch of another
experiment sharing the base repository is never touched by guessing. The archived copy keeps its
files but is no longer a working checkout. Git errors are logged and ignored: the archive itself
already succeeded.

Calling it again finds nothing to move and returns None, so a retried step is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from experiment.layout import ExperimentLayout, RunKey
from operations.workspace import git

__all__ = ["archive_run", "worktree_branch"]

log = logging.getLogger(__name__)


def _reserve(layout: ExperimentLayout, key: RunKey) -> Path:
    """Atomically claim the first free archive name (an empty directory we then rename over)."""
    while True:
        candidate = layout.next_archive_path(key)
        candidate.parent.mkdir(parents=True, exist_ok=True)
        try:
            candidate.mkdir()
        except FileExistsError:  # another process took it between the check and the claim
            continue
        return candidate


def worktree_branch(workspace: Path, repo: Path | None = None) -> str | None:
    """The branch a git worktree has checked out, from its ``.git`` file and admin dir's ``HEAD``.

    None when ``workspace`` is not a linked worktree (no ``.git`` *file*), its HEAD is detached, or
    (with ``repo``) it is a worktree of another repository than ``repo``.
    Read from the files, not by running git in the directory, so a workspace that is not a worktree
    never resolves to whatever repository happens to contain the experiment.
    """
    dot_git = Path(workspace) / ".git"
    try:
        if not dot_git.is_file():
            return None
        pointer = dot_git.read_text(encoding="utf-8").strip()
        if not pointer.startswith("gitdir:"):
            return None
        admin = Path(pointer.removeprefix("gitdir:").strip())
        if not admin.is_absolute():
            admin = dot_git.parent / admin
        common = Path(repo) / ".git" if repo is not None else None
        if common is not None and common.is_dir() and not admin.resolve().is_relative_to(common.resolve()):
            return None
        head = (admin / "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else None


def archive_run(layout: ExperimentLayout, key: RunKey, base_repo: Path | None) -> Path | None:
    """Move the run dir of ``key`` into ``.failed/``; return where it went (None: nothing there)."""
    source = layout.run_dir(key)
    if not (source.exists() or source.is_symlink()):
        return None
    branch = worktree_branch(source / "workspace", base_repo) if source.is_dir() else None
    target = _reserve(layout, key)
    try:
        if source.is_dir() and not source.is_symlink():
            # rename(dir, empty dir) replaces the empty placeholder atomically; a non-empty
            # target would make it fail instead of overwriting anything.
            os.rename(source, target)
        else:  # not a directory: rename cannot replace a dir, so free the name first
            target.rmdir()
            os.rename(source, target)
    except BaseException:
        with contextlib.suppress(OSError):
            target.rmdir()
        raise
    log.info("Archived %s to %s", key.label, target)
    if base_repo is not None and Path(base_repo).exists():
        commands: list[tuple[str, ...]] = [("worktree", "prune")]
        if branch is not None:
            commands.append(("branch", "-D", branch))
        for args in commands:
            result = git(Path(base_repo), *args)
            if result.returncode != 0:
                log.info(
                    "git %s after archiving %s failed (ignored): %s",
                    " ".join(args),
                    key.label,
                    result.stderr.strip(),
                )
    return target
