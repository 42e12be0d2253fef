"""After a rerun is judged and checkpointed: its git worktree is released, as ProjectScylla does.

ProjectScylla's last stage (``WORKTREE_CLEANED``) removes a finished run's worktree once the
checkpoint is saved: the diff, the pipeline results and the judge prompt are already on disk, and
the branch, which holds the agent's committed work, is kept. A repaired run is released the same
way, so the base repository does not accumulate registered worktrees.

What stays in the run dir follows its siblings, so the repaired run looks like them:

* the subtest's finished runs have no ``workspace/`` (their harness removed it): ``git worktree
  remove --force``, the files go, as theirs did;
* they kept their ``workspace/`` (an older harness, or a generated experiment): the files stay and
  only the registration goes (the ``.git`` link file, then ``git worktree prune``).

Never raises: a run that is already complete must not fail on housekeeping; what could not be
done is logged, and ``git worktree prune`` catches up at the next workspace preparation.
"""

from __future__ import annotations

import logging
from pathlib import Path

from experiment.layout import ExperimentLayout, RunKey
from operations.workspace import git

__all__ = ["release_worktree", "siblings_keep_workspaces"]

log = logging.getLogger(__name__)


def siblings_keep_workspaces(layout: ExperimentLayout, key: RunKey) -> bool:
    """True when a finished sibling of ``key`` (same subtest, ``run_result.json`` written) still
    has its ``workspace/``; also True when no sibling is finished (nothing to follow: keep)."""
    run_dir = layout.run_dir(key)
    finished = [
        sibling
        for sibling in run_dir.parent.glob("run_*")
        if sibling != run_dir and (sibling / "run_result.json").is_file()
    ]
    return not finished or any((sibling / "workspace").is_dir() for sibling in finished)


def release_worktree(layout: ExperimentLayout, key: RunKey, base_repo: Path) -> None:
    """Release the worktree of ``key``'s finished run (see the module docstring)."""
    workspace = layout.run_dir(key) / "workspace"
    link = workspace / ".git"
    if not link.is_file():  # not a registered worktree (already released, or never one)
        return
    if siblings_keep_workspaces(layout, key):
        try:
            link.unlink()
        except OSError as exc:
            log.warning("Could not unregister the worktree of %s: %s", key.label, exc)
            return
        verb = "unregistered (its files kept, as its siblings')"
    else:
        git(base_repo, "worktree", "remove", "--force", str(workspace))
        verb = "removed, as its siblings' were"
    done = git(base_repo, "worktree", "prune")
    if done.returncode != 0:
        log.warning("git worktree prune in %s failed: %s", base_repo, done.stderr.strip())
        return
    log.info("Worktree of %s %s; its branch is kept", key.label, verb)
