"""The extra claude flags of a rerun: the ones its siblings ran with, else the subtest's definition.

ProjectScylla's claude command is a fixed head (``claude --model M --print --output-format json
--dangerously-skip-permissions``), then per-subtest flags, then the prompt path. Which flags a
subtest gets changed between ProjectScylla versions (the sample's runs have none, although its
T0/00 says ``system_prompt_mode: none``), so a rerun must not guess from today's rules when the
experiment shows what was done:

1. **Siblings.** The other runs of the same subtest whose agent finished (``completed`` or
   ``results``) recorded their argv in ``agent/command_log.json``. Their extra flags (everything but
   the fixed head, the model and the prompt path, in their order, e.g. ``--system-prompt ""``,
   ``--tools ""``, ``--agent NAME``, ``--max-turns N``) are used as they are, with this run's model
   and prompt. When siblings disagree, the flags most of them used win (the lowest run on a tie).
2. **Definition**, when no sibling finished: ProjectScylla's rules, in its order:
   ``system_prompt_mode: none`` -> ``--system-prompt ""``; the tier's ``tools_enabled: false`` in
   ``tiers.yaml`` -> ``--tools ""``; the first of the subtest's ``agents.names`` (without ``.md``) ->
   ``--agent NAME``; the experiment's ``max_turns`` -> ``--max-turns N``.

An ``--agent-command`` template, or ``extra_args`` set by the caller, is taken as the caller's
decision and left alone. Everything stays an argument list.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from experiment.errors import ExperimentError
from experiment.jsonio import read_json
from experiment.layout import RunKey
from experiment.models import CommandLog
from experiment.scan import ExperimentContext
from experiment.status import RunStatus, classify_run
from experiment.tiers import find_subtest, load_tier_config
from operations.agent.command import AgentSettings

__all__ = ["AgentFlags", "agent_flags", "definition_flags", "recorded_flags", "settings_for_run"]

log = logging.getLogger(__name__)

_HEAD_SWITCHES = {"--print", "-p", "--dangerously-skip-permissions"}
_HEAD_OPTIONS = {"--model", "--output-format"}
_FINISHED = (RunStatus.COMPLETED, RunStatus.RESULTS)


class AgentFlags(BaseModel):
    """The extra flags of one rerun and where they came from."""

    flags: list[str] = Field(default_factory=list, description="Inserted before the prompt path.")
    source: Literal["siblings", "definition", "caller"] = Field(
        description="siblings' command logs, the subtest definition, or the caller's own settings."
    )
    detail: str = Field(default="", description="Which runs or which definition (one line).")

    def line(self, label: str) -> str:
        shown = " ".join(repr(f) if f == "" or " " in f else f for f in self.flags) or "(none)"
        return f"{label}: agent flags {shown} from {self.source} ({self.detail})"


def recorded_flags(argv: list[str]) -> list[str] | None:
    """The extra flags of a recorded claude argv, or None when it is not a claude print command.

    The argv is ``BINARY ... PROMPT``: the binary and the last element (the prompt path) go, then
    the fixed head switches and the ``--model``/``--output-format`` options with their values.
    """
    if len(argv) < 3 or not _HEAD_SWITCHES.intersection(argv[1:-1]) or argv[-1].startswith("-"):
        return None
    body, flags, i = argv[1:-1], [], 0
    while i < len(body):
        arg = body[i]
        if arg in _HEAD_OPTIONS:
            i += 2
            continue
        if arg not in _HEAD_SWITCHES and not arg.startswith(("--model=", "--output-format=")):
            flags.append(arg)
        i += 1
    return flags


def _sibling_flags(context: ExperimentContext, key: RunKey) -> dict[int, list[str]]:
    """Run number -> recorded extra flags, for every finished sibling with a readable command log."""
    found: dict[int, list[str]] = {}
    layout = context.layout
    for number in layout.recorded_run_numbers(key.tier, key.subtest):
        if number == key.run_number:
            continue
        paths = layout.run_paths(RunKey(key.tier, key.subtest, number))
        if classify_run(paths.run_dir).status not in _FINISHED:
            continue
        try:
            data = read_json(paths.command_log)
            commands = CommandLog.model_validate(data).commands
        except (ExperimentError, OSError, ValueError, ValidationError):
            continue
        flags = recorded_flags(list(commands[0].command)) if commands else None
        if flags is not None:
            found[number] = flags
    return found


def definition_flags(context: ExperimentContext, key: RunKey, max_turns: int | None) -> list[str]:
    """ProjectScylla's flags for the subtest (module docstring, rule 2)."""
    tiers = context.require_tiers_dir()
    subtest = find_subtest(tiers, key.tier, key.subtest)
    flags: list[str] = []
    if subtest is not None and subtest.system_prompt_mode == "none":
        flags += ["--system-prompt", ""]
    if load_tier_config(tiers, key.tier).tools_enabled is False:
        flags += ["--tools", ""]
    agents = subtest.resources.get("agents") if subtest is not None else None
    names = agents.get("names") if isinstance(agents, dict) else None
    if isinstance(names, list) and names:
        flags += ["--agent", str(names[0]).replace(".md", "")]
    if max_turns is not None:
        flags += ["--max-turns", str(max_turns)]
    return flags


def agent_flags(context: ExperimentContext, key: RunKey, max_turns: int | None) -> AgentFlags:
    """The rerun's extra flags: the finished siblings' (majority), else the definition's."""
    siblings = _sibling_flags(context, key)
    if siblings:
        votes = Counter(tuple(flags) for flags in siblings.values())
        chosen, _ = votes.most_common(1)[0]
        runs = [f"run_{n:02d}" for n, flags in siblings.items() if tuple(flags) == chosen]
        detail = f"{key.tier}/{key.subtest} " + ", ".join(runs)
        if len(votes) > 1:
            detail += f"; {len(siblings) - len(runs)} sibling(s) recorded other flags"
        return AgentFlags(flags=list(chosen), source="siblings", detail=detail)
    subtest = f"{key.tier}/{key.subtest}"
    return AgentFlags(
        flags=definition_flags(context, key, max_turns),
        source="definition",
        detail=f"no finished sibling in {subtest}; subtest definition and config",
    )


def settings_for_run(
    settings: AgentSettings, context: ExperimentContext, key: RunKey
) -> tuple[AgentSettings, AgentFlags]:
    """``settings`` with this run's extra flags (they carry ``--max-turns`` themselves)."""
    if settings.command is not None or settings.extra_args:
        detail = "--agent-command template" if settings.command is not None else "explicit extra_args"
        return settings, AgentFlags(flags=list(settings.extra_args), source="caller", detail=detail)
    flags = agent_flags(context, key, settings.max_turns)
    return settings.model_copy(update={"extra_args": flags.flags, "max_turns": None}), flags
