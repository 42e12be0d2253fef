"""The judge prompt (spec §3.5): the user message every judge of a run receives.

It is assembled from the run as it is *right after the agent*, saved once as
``run_dir/judge_prompt.md`` and reused by every later judge attempt: rebuilding it from a
workspace that was since reset made judges fail good runs (spec §8.1). Building it runs the
build/lint/test pipeline in the workspace (``pipeline.py``), replayable from ``run_dir/commands/``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from experiment.errors import RepairBlocked
from experiment.jsonio import atomic_write_text
from experiment.scan import ExperimentContext
from operations.judge.changes import agent_patch, baseline_commit, changed_files
from operations.judge.pipeline import pipeline_section
from operations.workspace import resolve_task_prompt

__all__ = ["CLOSING_LINE", "build_judge_prompt", "ensure_judge_prompt"]

CLOSING_LINE = "Evaluate the agent's work using the rubric and criteria in your system prompt."


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def build_judge_prompt(context: ExperimentContext, run_dir: Path, workspace: Path) -> str:
    """Assemble the judge prompt of spec §3.5 from the run as it is now (see ensure_judge_prompt).

    Commands run in the workspace only when it exists (spec §8.6); a missing workspace is said so
    in the prompt instead.
    """
    run_dir, workspace = Path(run_dir), Path(workspace)
    config = context.config
    parts: list[str] = []

    rubric = _read(context.root / "rubric.yaml")
    parts.append("## Rubric (Evaluation Criteria)\n")
    parts.append(f"```yaml\n{rubric.rstrip()}\n```\n" if rubric else "_No rubric.yaml in the experiment._\n")

    task = _read(run_dir / "task_prompt.md")
    if task is None:
        try:
            task = _read(resolve_task_prompt(context))
        except RepairBlocked:
            task = None
    parts.append("## Task Given to Agent\n")
    parts.append((task or "_Task prompt not found._").rstrip() + "\n")

    output = _read(run_dir / "agent" / "stdout.log")
    if output is None:
        output = _read(run_dir / "agent" / "output.txt")
    parts.append("## Agent's Output\n")
    parts.append((output.strip() if output and output.strip() else "_The agent produced no output._") + "\n")

    parts.append("## Workspace State After Agent Execution\n")
    is_repo = workspace.is_dir() and (workspace / ".git").exists()
    changes: list[tuple[str, str]] = []
    if not workspace.is_dir():
        parts.append("_The workspace no longer exists; no file state is available._\n")
    elif not is_repo:
        parts.append("_The workspace is not a git checkout; changes cannot be determined._\n")
    else:
        baseline = baseline_commit(workspace, config.task_commit)
        changes = changed_files(workspace, baseline)
        if changes:
            listing = "\n".join(f"- `{path}` ({what})" for path, what in changes)
            parts.append(f"Files modified/created by agent:\n\n{listing}\n")
        else:
            parts.append("No files were modified or created by the agent.\n")
        patch = agent_patch(workspace, baseline, changes)
        if patch.strip():
            parts.append("## Git Diff (Patchfile)\n")
            parts.append(f"```diff\n{patch.rstrip()}\n```\n")

    parts.append("## Build/Lint/Test Pipeline Results\n")
    parts.append(pipeline_section(config, run_dir, workspace, changes))
    parts.append("---\n")
    parts.append(CLOSING_LINE + "\n")
    return "\n".join(parts)


def ensure_judge_prompt(context: ExperimentContext, run_dir: Path, workspace: Path) -> str:
    """The run's saved ``judge_prompt.md``, building and saving it the first time only.

    Once saved it is never rebuilt, so later judge attempts see the workspace as the agent left
    it even if the workspace has since been reset or deleted (spec §8.1).
    """
    path = Path(run_dir) / "judge_prompt.md"
    saved = _read(path)
    if saved and saved.strip():
        return saved
    # Judge slots of one run may start together: one builds (and runs the pipeline), the others
    # wait and read. The lock is on the run dir itself, so no lock file is left in the run.
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        saved = _read(path)
        if saved and saved.strip():
            return saved
        prompt = build_judge_prompt(context, run_dir, workspace)
        atomic_write_text(path, prompt)
        return prompt
    finally:
        os.close(fd)  # releases the lock
