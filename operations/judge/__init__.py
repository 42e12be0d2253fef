"""Judging a run: the judge prompt (built once), one Messages API call per slot, strict parsing.

The modules, each with one job:

* ``prompt``        - ``judge_prompt.md``: built once from the run right after the agent, then reused.
* ``changes``       - what the agent changed in the workspace (file list, patch) for the prompt.
* ``pipeline``      - the build/lint/test pipeline run in the workspace and its prompt section.
* ``system_prompt`` - the judge's instructions (the system prompt every call sends).
* ``client``        - the Messages API call over httpx; HTTP errors -> failure classes.
* ``parsing``       - the judge's answer -> a Judgment, or JudgeParseError.
* ``slot``          - one judge slot: call, parse, write ``judge/judge_NN/``.
* ``__main__``      - ``python -m operations.judge``, the entry point of a slot's ``replay.sh``.

This package re-exports the names callers use, so ``from operations.judge import X`` keeps working.
"""

from __future__ import annotations

from operations.judge.client import JudgeAuthError, JudgeCall, JudgeConfigError, JudgeSettings, call_judge
from operations.judge.parsing import JudgeParseError, parse_judgment
from operations.judge.prompt import CLOSING_LINE, build_judge_prompt, ensure_judge_prompt
from operations.judge.slot import JSON_REMINDER, JudgeSlotOutcome, run_judge_slot, slot_dir
from operations.judge.system_prompt import JUDGE_SYSTEM_PROMPT

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
    "build_judge_prompt",
    "call_judge",
    "ensure_judge_prompt",
    "parse_judgment",
    "run_judge_slot",
    "slot_dir",
]
