"""The judge's system prompt: ProjectScylla's own, or - only as a fallback - ours.

A re-judged run is comparable with the rest of its experiment only when its judges got the
instructions ProjectScylla's judges got: the checkout's ``config/judge/system_prompt.md``, which
ProjectScylla passes as the judge's system prompt (``--system-prompt-file``). We find it beside the
tiers dir (the tiers dir itself or one of its ancestors is the checkout), or take the file the user
names (``--judge-system-prompt``). Only when neither exists do we fall back to
:data:`JUDGE_SYSTEM_PROMPT`; :attr:`JudgeSystemPrompt.comparable` is then False, and the dry run,
the repair summary and every judge slot's ``request.json`` say so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from experiment.errors import RepairBlocked
from experiment.scan import ExperimentContext

__all__ = [
    "CHECKOUT_SYSTEM_PROMPT",
    "JUDGE_SYSTEM_PROMPT",
    "JudgeSystemPrompt",
    "find_checkout_system_prompt",
    "resolve_system_prompt",
    "system_prompt_for",
    "tiers_starts",
]

CHECKOUT_SYSTEM_PROMPT = Path("config") / "judge" / "system_prompt.md"
"""Where a ProjectScylla checkout keeps its judge system prompt, relative to the checkout root."""


class JudgeSystemPrompt(BaseModel):
    """The system prompt every judge call of a repair sends, and where it came from."""

    text: str = Field(description="The system prompt sent with every judge request.")
    source: Literal["option", "checkout", "fallback"] = Field(
        description="option: --judge-system-prompt; checkout: the ProjectScylla checkout of the "
        "tiers dir; fallback: scylla-repair's own prompt (judgments not comparable)."
    )
    path: str | None = Field(default=None, description="The file read (None for the fallback).")
    sha256: str = Field(description="sha256 of the text as sent (hex).")

    @property
    def comparable(self) -> bool:
        """True when the judges get the instructions ProjectScylla's judges got."""
        return self.source != "fallback"

    def record(self) -> dict[str, object]:
        """What a judge slot records about its system prompt (no text: the path and hash say it)."""
        return {
            "source": self.source,
            "path": self.path,
            "sha256": self.sha256,
            "comparable": self.comparable,
        }

    def not_comparable_note(self, searched: Iterable[Path] = ()) -> str:
        """The plain warning shown by the dry run and the repair summary in the fallback case."""
        places = ", ".join(dict.fromkeys(str(p) for p in searched))
        where = f" (looked for {CHECKOUT_SYSTEM_PROMPT} in {places} and their parents)" if places else ""
        return (
            "Judge system prompt: ProjectScylla's judge system prompt was not found" + where + "; "
            "re-judged runs are graded with scylla-repair's own system prompt instead and will NOT be "
            "comparable with the experiment's other judgments. Pass --tiers-dir <ProjectScylla checkout> or "
            "--judge-system-prompt FILE."
        )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find_checkout_system_prompt(starts: Iterable[Path]) -> Path | None:
    """``config/judge/system_prompt.md`` of the first of ``starts`` (or an ancestor) that has one."""
    for start in starts:
        current = Path(start).expanduser().absolute()
        for directory in (current, *current.parents):
            candidate = directory / CHECKOUT_SYSTEM_PROMPT
            if candidate.is_file():
                return candidate
    return None


def _read_prompt(path: str, source: str) -> JudgeSystemPrompt:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RepairBlocked(
            f"Cannot read the judge system prompt ({exc.__class__.__name__})",
            path,
            "pass --judge-system-prompt FILE with a readable UTF-8 file",
        ) from None
    if not text.strip():
        raise RepairBlocked("The judge system prompt is empty", path, "pass a non-empty file")
    return JudgeSystemPrompt(text=text, source=source, path=path, sha256=_sha256(text))  # type: ignore[arg-type]


def resolve_system_prompt(
    explicit: str | Path | None, tiers_starts: Iterable[Path] = ()
) -> JudgeSystemPrompt:
    """The system prompt of a repair: ``explicit`` (must exist), else the checkout's, else ours.

    ``tiers_starts`` are the tiers dir's paths (the test dir and the shared dir, or the path the
    user gave); the checkout is the first of them or their ancestors holding
    ``config/judge/system_prompt.md``.
    """
    if explicit:
        path = Path(explicit).expanduser().absolute()
        if not path.is_file():
            raise RepairBlocked(
                "The judge system prompt file does not exist",
                path,
                "pass --judge-system-prompt the path of ProjectScylla's config/judge/system_prompt.md",
            )
        return _read_prompt(str(path), "option")
    found = find_checkout_system_prompt(tiers_starts)
    if found is not None:
        return _read_prompt(str(found), "checkout")
    return JudgeSystemPrompt(
        text=JUDGE_SYSTEM_PROMPT, source="fallback", path=None, sha256=_sha256(JUDGE_SYSTEM_PROMPT)
    )


def tiers_starts(context: ExperimentContext, tiers_dir: str | Path | None = None) -> list[Path]:
    """Where the checkout search starts: the tiers dir the user gave, then the one in use."""
    starts = [Path(tiers_dir)] if tiers_dir else []
    found = context.tiers_dir
    for attr in ("test_dir", "shared_dir"):
        value = getattr(found, attr, None)
        if value is not None:
            starts.append(Path(value))
    return starts


def system_prompt_for(
    context: ExperimentContext, explicit: str | Path | None = None, tiers_dir: str | Path | None = None
) -> JudgeSystemPrompt:
    """The judge system prompt of a repair of ``context`` (see :func:`resolve_system_prompt`)."""
    return resolve_system_prompt(explicit, tiers_starts(context, tiers_dir))


JUDGE_SYSTEM_PROMPT = """\
You are an expert software engineering evaluator. You judge the work an AI coding agent did on a
task, using the rubric in the user message, the agent's output, the files it changed, the git diff
and the build/lint/test pipeline results.

## Method

1. Go through every rubric category and every item in it.
   - "checklist" items are objective: award the item's points if the check is met, 0 if it is not,
     and partial points only when the item is partially met.
   - "subjective" items use engineering judgment: award points in proportion to quality, as a
     senior engineer reviewing the change would.
2. N/A handling: when an item's `na_condition` holds (for example "ruff not available in
   workspace"), mark the item's `achieved` and `max` as the string "N/A" and leave it out of the
   category's totals. A category whose items are all N/A is itself "N/A" and drops out of the
   weighted score; the remaining category weights are re-normalised to sum to 1.
3. Category score = achieved / max over its applicable items. Overall score = the weighted mean of
   the applicable category scores, using the rubric's weights, in [0, 1].
4. `passed` is your verdict: does the work meet the task's requirements well enough to accept it
   (the rubric's pass_threshold is guidance)?
5. Grade scale: S = 1.0 exactly, A >= 0.80, B >= 0.60, C >= 0.40, D >= 0.20, F below.
6. Judge the evidence you are given (pipeline output, diff, workspace state), not the agent's own
   claims about what it did.

## Output

Respond with ONLY a JSON object (optionally inside one ```json fenced block), nothing else:

{
  "score": 0.0,
  "passed": false,
  "grade": "F",
  "reasoning": "2-5 sentences: what was done well, what is missing or wrong",
  "categories": {
    "<category>": {
      "achieved": 0.0,
      "max": 0.0,
      "score": 0.0,
      "items": {"<ID>": {"achieved": 0.0, "max": 0.0, "reason": "one sentence"}}
    }
  }
}
"""


def judge_system_prompt_choice(
    context: ExperimentContext, option: str | Path | None, tiers_dir: str | Path | None, has_work: bool
) -> tuple[JudgeSystemPrompt, list[str]]:
    """The judges' system prompt for a repair, and the note to show when it is our fallback.

    A ``--judge-system-prompt`` file that does not exist stops the repair here, before anything
    moves; with no checkout found, re-judged runs would not be comparable, and the summary says so.
    """
    system_prompt = system_prompt_for(context, option, tiers_dir)
    fallback = has_work and not system_prompt.comparable
    notes = [system_prompt.not_comparable_note(tiers_starts(context, tiers_dir))] if fallback else []
    return system_prompt, notes
