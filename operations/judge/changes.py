"""What the agent changed in its workspace, worded for the judge prompt as ProjectScylla words it.

ProjectScylla asks git right after the agent, with the test configuration (``CLAUDE.md``,
``.claude/``) already committed: ``git status --porcelain`` for the file list (untracked dirs
expanded, the test configuration left out), ``git diff`` plus ``git diff --cached`` for the patch
(else the last commit's diff, when the agent committed its work), ``git diff --diff-filter=D HEAD``
for deleted files. Our workspaces are prepared the same way (the configuration commit), so the
same questions give the same answers.

Since March 2026 ProjectScylla commits the agent's work (``[scylla] Agent changes``) *before* asking,
so its prompts list no files and show the work as ``## Committed Changes``; we commit the same way.
Experiments judged by an older ProjectScylla saw the work uncommitted; for them
:func:`uncommitted_view` answers, from the agent's commit, what git would have said before it.
"""

from __future__ import annotations

from pathlib import Path

from operations.agent import AGENT_COMMIT_MESSAGE
from operations.workspace import git

__all__ = [
    "NO_CHANGES",
    "PATCH_UNAVAILABLE",
    "PATCH_LINE_LIMIT",
    "deleted_files",
    "is_test_config_file",
    "patchfile",
    "uncommitted_view",
    "workspace_state",
]

NO_CHANGES = "(no changes detected)"
PATCH_UNAVAILABLE = "(unable to generate patchfile)"
PATCH_LINE_LIMIT = 500
"""A longer patch keeps its first and last 250 lines."""

_EXCLUDE = ["--", ".", ":(exclude)CLAUDE.md", ":(exclude).claude"]
_STATUS_WORDS = {"M": "modified", "A": "added", "??": "created", "D": "deleted"}


def is_test_config_file(path: str) -> bool:
    """``CLAUDE.md`` and ``.claude/``: put there by the framework, not by the agent."""
    path = path.strip()
    return path == "CLAUDE.md" or path == ".claude" or path.startswith(".claude/")


def _porcelain_path(line: str) -> str:
    if len(line) > 3 and line[2] == " ":
        return line[3:].strip()
    if " " in line[1:]:
        return line.split(" ", 1)[1].strip()
    return ""


def workspace_state(workspace: Path) -> str:
    """``Files modified/created by agent:`` and one ``- `path` (what)`` line per change."""
    status = git(workspace, "status", "--porcelain")
    if status.returncode != 0:
        return "(unable to get workspace state)"
    lines = ["Files modified/created by agent:"]
    for line in status.stdout.strip().split("\n"):
        if not line:
            continue
        code, path = line[:2].strip(), _porcelain_path(line)
        if is_test_config_file(path):
            continue
        full = workspace / path
        if code == "??" and full.is_dir():
            for child in sorted(full.rglob("*")):
                relative = str(child.relative_to(workspace))
                if child.is_file() and not is_test_config_file(relative):
                    lines.append(f"- `{relative}` (created)")
        else:
            lines.append(f"- `{path}` ({_STATUS_WORDS.get(code, code)})")
    if len(lines) == 1:
        lines.append(NO_CHANGES)
    return "\n".join(lines)


def patchfile(workspace: Path) -> str:
    """Unstaged then staged changes (else the last commit's), the test configuration left out."""
    unstaged = git(workspace, "diff", *_EXCLUDE)
    staged = git(workspace, "diff", "--cached", *_EXCLUDE)
    if unstaged.returncode != 0 and staged.returncode != 0:
        return PATCH_UNAVAILABLE
    sections = []
    if unstaged.stdout.strip():
        sections.append("## Unstaged Changes\n" + unstaged.stdout.strip())
    if staged.stdout.strip():
        sections.append("## Staged Changes\n" + staged.stdout.strip())
    if not sections:
        committed = git(workspace, "diff", "HEAD~1..HEAD", *_EXCLUDE)
        if committed.returncode == 0 and committed.stdout.strip():
            sections.append("## Committed Changes\n" + committed.stdout.strip())
    return _joined_patch(sections)


def _joined_patch(sections: list[str]) -> str:
    if not sections:
        return NO_CHANGES
    lines = "\n\n".join(sections).split("\n")
    if len(lines) > PATCH_LINE_LIMIT:
        half = PATCH_LINE_LIMIT // 2
        lines = [*lines[:half], "", "... (truncated)", "", *lines[-half:]]
    return "\n".join(lines)


def deleted_files(workspace: Path) -> list[str]:
    """Files the agent deleted (relative to HEAD)."""
    result = git(workspace, "diff", "--name-only", "--diff-filter=D", "HEAD")
    if result.returncode != 0:
        return []
    return [name for name in result.stdout.strip().split("\n") if name]


def uncommitted_view(workspace: Path) -> tuple[str, str, list[str]] | None:
    """(workspace state, patch, deleted files) as an older ProjectScylla saw them - the agent's
    work not yet committed - computed from the agent's commit; None when HEAD is not that commit.

    New files were untracked then: listed as created after the tracked changes, left out of the
    patch (``git diff`` does not show untracked files).
    """
    head = git(workspace, "log", "-1", "--format=%s")
    if head.returncode != 0 or head.stdout.strip() != AGENT_COMMIT_MESSAGE:
        return None
    names = git(workspace, "diff", "--name-status", "--no-renames", "HEAD~1", "HEAD")
    if names.returncode != 0:
        return None
    tracked: list[str] = []
    created: list[str] = []
    for line in names.stdout.splitlines():
        code, _, path = line.partition("\t")
        if not path or is_test_config_file(path):
            continue
        if code.startswith("A"):
            created.append(f"- `{path}` (created)")
        else:
            tracked.append(f"- `{path}` ({_STATUS_WORDS.get(code[:1], code[:1])})")
    state = "\n".join(["Files modified/created by agent:", *tracked, *created])
    if not tracked and not created:
        state += "\n" + NO_CHANGES
    diff = git(workspace, "diff", "--diff-filter=a", "HEAD~1", "HEAD", *_EXCLUDE)
    sections = ["## Unstaged Changes\n" + diff.stdout.strip()] if diff.stdout.strip() else []
    deleted = git(workspace, "diff", "--name-only", "--diff-filter=D", "HEAD~1", "HEAD")
    return state, _joined_patch(sections), [n for n in deleted.stdout.strip().split("\n") if n]
