"""Judging a run: the judge prompt (built once), one Messages API call per slot, strict parsing.

The modules, each with one job:

* ``prompt``        - ``judge_prompt.md``: built once from the run right after the agent, then reused.
* ``changes``       - what the agent changed in the workspace (file list, patch) for the prompt.
* ``style``         - which ProjectScylla prompt layout the experiment has (baseline, headers).
* ``pipeline``      - the build/lint/test pipeline run in the workspace, as ProjectScylla runs it.
* ``pipeline_result`` - its result and its text in the prompt (also loads pipeline_baseline.json).
* ``commands``      - ``run_dir/commands/``: the pipeline as replayable scripts and step outputs.
* ``system_prompt`` - the judge's instructions: ProjectScylla's checkout file, else our fallback.
* ``client``        - the Messages API call over httpx; HTTP errors -> failure classes.
* ``parsing``       - the judge's answer -> a Judgment, or JudgeParseError.
* ``slot``          - one judge slot: call, parse, write ``judge/judge_NN/``.
* ``__main__``      - ``python -m operations.judge``, the entry point of a slot's ``replay.sh``.

This package re-exports the names callers use, so ``from operations.judge import X`` keeps working;
the re-exports load on first use, so importing one light module (``system_prompt``, for the dry
run) does not import httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operations.judge.client import JudgeAuthError, JudgeCall, JudgeConfigError, JudgeSettings, call_judge
    from operations.judge.parsing import JudgeParseError, parse_judgment
    from operations.judge.prompt import CLOSING_LINE, build_judge_prompt, ensure_judge_prompt
    from operations.judge.slot import JSON_REMINDER, JudgeSlotOutcome, run_judge_slot, slot_dir
    from operations.judge.system_prompt import (
        JUDGE_SYSTEM_PROMPT,
        JudgeSystemPrompt,
        resolve_system_prompt,
        system_prompt_for,
    )

_EXPORTS = {
    "client": ["JudgeAuthError", "JudgeCall", "JudgeConfigError", "JudgeSettings", "call_judge"],
    "parsing": ["JudgeParseError", "parse_judgment"],
    "prompt": ["CLOSING_LINE", "build_judge_prompt", "ensure_judge_prompt"],
    "slot": ["JSON_REMINDER", "JudgeSlotOutcome", "run_judge_slot", "slot_dir"],
    "system_prompt": [
        "JUDGE_SYSTEM_PROMPT",
        "JudgeSystemPrompt",
        "resolve_system_prompt",
        "system_prompt_for",
    ],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "CLOSING_LINE",
    "JSON_REMINDER",
    "JUDGE_SYSTEM_PROMPT",
    "JudgeAuthError",
    "JudgeCall",
    "JudgeConfigError",
    "JudgeParseError",
    "JudgeSettings",
    "JudgeSlotOutcome",
    "JudgeSystemPrompt",
    "build_judge_prompt",
    "call_judge",
    "ensure_judge_prompt",
    "parse_judgment",
    "resolve_system_prompt",
    "run_judge_slot",
    "slot_dir",
    "system_prompt_for",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
