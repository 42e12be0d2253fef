"""The judge prompt: the user message every judge of a run receives, built as ProjectScylla builds it.

Sections, in ProjectScylla's order and wording, joined by blank lines: ``## Rubric (Evaluation
Criteria)`` (the experiment's ``rubric.yaml`` in a yaml fence, when there is one), ``## Task Given
to Agent``, ``## Agent's Output`` (the agent's stdout as recorded), ``## Workspace State After Agent
Execution``, ``## Git Diff (Patchfile)`` (only when there is a diff), ``## Deleted Files`` (only when
the agent deleted any), the baseline and pipeline sections (laid out as the experiment's other
prompts are, see ``style.py``), then the closing line.

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
from operations.judge.changes import (
    NO_CHANGES,
    PATCH_UNAVAILABLE,
    deleted_files,
    patchfile,
    uncommitted_view,
    workspace_state,
)
from operations.judge.commands import save_pipeline_commands, save_pipeline_outputs
from operations.judge.pipeline import run_pipeline
from operations.judge.style import BASELINE_HEADER, prompt_style
from operations.workspace import resolve_task_prompt

__all__ = ["CLOSING_LINE", "build_judge_prompt", "ensure_judge_prompt"]

CLOSING_LINE = "Evaluate the agent's work using the rubric and criteria in your system prompt."
PATCH_NOTE = (
    "*Note: This shows changes to tracked files. For new files, use the Read tool to view their contents.*"
)
WORKSPACE_GONE = "_The workspace no longer exists; no file state is available._"
PIPELINE_NOT_RUN = "_Pipeline not run: the workspace no longer exists._"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _task_prompt(context: ExperimentContext, run_dir: Path) -> str:
    task = _read(run_dir / "task_prompt.md")
    if task is None:
        try:
            task = _read(resolve_task_prompt(context))
        except RepairBlocked:
            task = None
    return task if task is not None else "_Task prompt not found._"


def _agent_output(run_dir: Path) -> str:
    output = _read(run_dir / "agent" / "stdout.log")
    if output is None:
        output = _read(run_dir / "agent" / "output.txt")
    return output or ""


def _change_sections(workspace: Path, committed_style: bool) -> list[str]:
    """Workspace state, patch and deleted files, as ProjectScylla asks git for them (as an older
    ProjectScylla saw them, before committing the agent's work, when ``committed_style`` is False)."""
    header = "## Workspace State After Agent Execution"
    if not workspace.is_dir():
        return [f"{header}\n\n{WORKSPACE_GONE}"]
    if not (workspace / ".git").exists():  # never let git answer for an enclosing repository
        return [f"{header}\n\n(unable to get workspace state)"]
    view = None if committed_style else uncommitted_view(workspace)
    state, patch, deleted = view or (
        workspace_state(workspace),
        patchfile(workspace),
        deleted_files(workspace),
    )
    sections = [f"{header}\n\n{state}"]
    if patch and patch not in (NO_CHANGES, PATCH_UNAVAILABLE):
        sections.append(f"## Git Diff (Patchfile)\n\n{PATCH_NOTE}\n\n```diff\n{patch}\n```")
    if deleted:
        sections.append("## Deleted Files\n\n" + "\n".join(f"- {name}" for name in deleted))
    return sections


def build_judge_prompt(context: ExperimentContext, run_dir: Path, workspace: Path) -> str:
    """Assemble the judge prompt from the run as it is now (see ensure_judge_prompt).

    The pipeline runs only when the workspace exists (spec §8.6); a missing workspace is said so
    in the prompt instead.
    """
    run_dir, workspace = Path(run_dir), Path(workspace)
    language = context.config.language or "python"
    style = prompt_style(context.root, run_dir)
    sections: list[str] = []
    rubric = _read(context.root / "rubric.yaml")
    if rubric:
        sections.append(f"## Rubric (Evaluation Criteria)\n\n```yaml\n{rubric}\n```")
    sections.append(f"## Task Given to Agent\n\n{_task_prompt(context, run_dir)}")
    sections.append(f"## Agent's Output\n\n{_agent_output(run_dir)}")
    sections.extend(_change_sections(workspace, style.changes_committed))
    if style.baseline_body:
        sections.append(f"{BASELINE_HEADER}\n\n{style.baseline_body}")
    if workspace.is_dir():
        save_pipeline_commands(run_dir, workspace, language)
        result = run_pipeline(workspace, language)
        save_pipeline_outputs(run_dir, result)
        pipeline = result.prompt_text()
    else:
        pipeline = PIPELINE_NOT_RUN
    sections.append(f"{style.pipeline_header}\n\n{pipeline}")
    sections.append(f"---\n\n{CLOSING_LINE}")
    return "\n\n".join(sections)


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
