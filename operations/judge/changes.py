"""What the agent changed in its workspace: the file list and the patch the judge prompt shows.

"Changed" means relative to the commit the agent started from (our configuration commit when
there is one, else the task commit), including uncommitted and untracked files, so the judge sees
the agent's work whether or not it was committed.
"""

from __future__ import annotations

from pathlib import Path

from operations.workspace import CONFIG_COMMIT_MESSAGE, git

__all__ = ["DIFF_LIMIT", "agent_patch", "baseline_commit", "changed_files"]

DIFF_LIMIT = 20_000


def baseline_commit(workspace: Path, task_commit: str) -> str:
    """The commit the agent started from: our configuration commit when there is one."""
    log_out = git(workspace, "log", "--format=%H %s", f"{task_commit}..HEAD")
    if log_out.returncode == 0:
        for line in log_out.stdout.splitlines():
            sha, _, subject = line.partition(" ")
            if subject == CONFIG_COMMIT_MESSAGE:
                return sha
    return task_commit


_STATUS_WORDS = {
    "A": "created",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "modified",
}


def changed_files(workspace: Path, baseline: str) -> list[tuple[str, str]]:
    """(path, created/modified/deleted/...) of everything that differs from ``baseline``,
    including uncommitted and untracked files (untracked dirs expanded)."""
    changes: dict[str, str] = {}
    diff = git(workspace, "diff", "--name-status", "--no-renames", baseline)
    for line in diff.stdout.splitlines():
        code, _, path = line.partition("\t")
        if path:
            changes[path] = _STATUS_WORDS.get(code[:1], "modified")
    untracked = git(workspace, "ls-files", "--others", "--exclude-standard")
    for path in untracked.stdout.splitlines():
        if path:
            changes[path] = "created"
    return sorted(changes.items())


def agent_patch(workspace: Path, baseline: str, changes: list[tuple[str, str]]) -> str:
    parts = [git(workspace, "diff", "--no-renames", baseline).stdout]
    tracked = set(git(workspace, "ls-files").stdout.splitlines())
    for path, what in changes:
        if what == "created" and path not in tracked:
            extra = git(workspace, "diff", "--no-index", "--", "/dev/null", path)
            parts.append(extra.stdout)
    text = "".join(parts)
    if len(text) > DIFF_LIMIT:
        text = text[:DIFF_LIMIT] + f"\n... (diff truncated: {len(text) - DIFF_LIMIT} more characters)\n"
    return text
