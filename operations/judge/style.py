"""Which ProjectScylla version's judge prompt an experiment has: learnt from its stored prompts.

ProjectScylla's judge prompt changed over time. Since its baseline pipeline (captured once, before
any agent ran) the prompt has a ``## Baseline Pipeline Results (Before Agent)`` section and the
pipeline header reads ``## Build/Lint/Test Pipeline Results (After Agent)``; before, there is no
baseline and the header has no suffix. A re-judged run must read like its siblings, so we follow
the experiment's own ``judge_prompt.md`` files; with none to learn from, a ``pipeline_baseline.json``
in the experiment means the newer layout.

The baseline itself is the experiment's: its ``pipeline_baseline.json`` (experiment dir, else the
subtest dir, as ProjectScylla loads it), else the section as a sibling's prompt has it (the same
subtest's first) - the baseline describes the repository before any agent, the same for every run.

Whether the judges saw the agent's work committed (ProjectScylla since March 2026) or not is learnt
the same way: a ``## Committed Changes`` diff says committed, a file list under the workspace
state says not; without either, the older header layout says not, the newer says committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from operations.judge.pipeline_result import load_pipeline_baseline

__all__ = ["BASELINE_HEADER", "PIPELINE_HEADER", "PIPELINE_HEADER_AFTER", "PromptStyle", "prompt_style"]

PIPELINE_HEADER = "## Build/Lint/Test Pipeline Results"
PIPELINE_HEADER_AFTER = "## Build/Lint/Test Pipeline Results (After Agent)"
BASELINE_HEADER = "## Baseline Pipeline Results (Before Agent)"
BASELINE_NOTE = (
    "*This shows the build/lint/test status BEFORE the agent made any changes. "
    "Use this to distinguish regressions (things that got worse) from pre-existing failures.*"
)
_SIBLINGS_READ = 8
"""Stored prompts read at most (the newest layout any of them has wins)."""


@dataclass(frozen=True)
class PromptStyle:
    """How this experiment's judge prompts are laid out."""

    pipeline_header: str
    baseline_body: str | None
    """The baseline section's body (note and results), or None when the experiment has none."""
    learnt_from: str | None
    """The stored prompt (or baseline file) the layout was learnt from, for the record."""
    changes_committed: bool = True
    """The judges saw the agent's work committed (no file list; a ``## Committed Changes`` diff)."""


def _sibling_prompts(experiment: Path, run_dir: Path) -> list[Path]:
    """Stored prompts of other runs: the same subtest's first, archived attempts never."""
    own = run_dir.resolve()
    same = sorted(run_dir.parent.glob("run_*/judge_prompt.md"))
    other = sorted(experiment.glob("T*/*/run_*/judge_prompt.md"))
    seen: list[Path] = []
    for path in [*same, *other]:
        if path.parent.resolve() != own and path not in seen:
            seen.append(path)
        if len(seen) >= _SIBLINGS_READ:
            break
    return seen


def _section(text: str, header: str) -> str | None:
    """The body of the ``## `` section titled ``header`` (up to the next ``## `` line outside a fence)."""
    lines = text.split("\n")
    try:
        start = lines.index(header)
    except ValueError:
        return None
    body: list[str] = []
    fenced = False
    for line in lines[start + 1 :]:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"## ", line):
            break
        body.append(line)
    return "\n".join(body).strip("\n")


def _committed(texts: list[str], newer: bool) -> bool:
    for text in texts:
        if "## Committed Changes" in text.split("\n"):
            return True
        state = _section(text, "## Workspace State After Agent Execution") or ""
        if "- `" in state:
            return False
    return newer


def prompt_style(experiment: Path, run_dir: Path) -> PromptStyle:
    """The layout of ``run_dir``'s judge prompt, as the experiment's other runs have it."""
    experiment, run_dir = Path(experiment), Path(run_dir)
    siblings = []
    for path in _sibling_prompts(experiment, run_dir):
        try:
            siblings.append((path, path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    texts = [text for _, text in siblings]
    baseline = load_pipeline_baseline(experiment) or load_pipeline_baseline(run_dir.parent)
    baseline_body = f"{BASELINE_NOTE}\n\n{baseline.prompt_text()}" if baseline else None
    after = [path for path, text in siblings if PIPELINE_HEADER_AFTER in text.split("\n")]
    if siblings and not after:
        return PromptStyle(PIPELINE_HEADER, None, str(siblings[0][0]), _committed(texts, False))
    if baseline_body is None:
        for text in texts:
            baseline_body = _section(text, BASELINE_HEADER)
            if baseline_body:
                break
    if after:
        return PromptStyle(PIPELINE_HEADER_AFTER, baseline_body, str(after[0]), _committed(texts, True))
    if baseline_body is not None:
        return PromptStyle(PIPELINE_HEADER_AFTER, baseline_body, str(experiment / "pipeline_baseline.json"))
    return PromptStyle(PIPELINE_HEADER, None, None, changes_committed=False)
