"""Which judge slots of an experiment need a judge: the classification behind ``rerun-judges``.

A run's status (:mod:`experiment.status`) says whether its *agent* needs work; it calls a run
``completed`` as soon as its judge dir and ``run_result.json`` exist, even when not one of its
judgments is valid. ``rerun-judges`` looks one level deeper, at every judge slot (``judge_NN``,
one per ``config.judge_models`` entry) of every run whose agent finished (``completed`` or
``results``):

* ``complete`` - ``judgment.json`` is a valid judgment (:mod:`experiment.consensus` rules);
* ``missing``  - the slot's directory does not exist (the judge never ran);
* ``invalid``  - the directory exists but holds no valid judgment (failed, unparseable,
  ``is_valid: false``, a legacy fallback).

Missing and invalid slots are re-judged; runs whose agent did not finish are counted and left to
``rerun-agents`` (a judge cannot grade an agent that did not finish). Pure file reading, no Prefect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from experiment.consensus import JUDGMENT_FILE, is_valid_judgment
from experiment.errors import FilterError
from experiment.layout import ExperimentLayout, RunKey
from experiment.scan import ScanReport, parse_statuses
from experiment.status import RunStatus, classify_run

__all__ = [
    "JUDGEABLE",
    "JudgeScan",
    "RunSlots",
    "SlotState",
    "parse_judge_statuses",
    "rescan",
    "scan_judge_slots",
    "slot_state",
]

JUDGEABLE = (RunStatus.COMPLETED, RunStatus.RESULTS)
"""Run statuses whose agent finished: the only runs a judge can grade."""


class SlotState(StrEnum):
    COMPLETE = "complete"
    MISSING = "missing"
    INVALID = "invalid"


def parse_judge_statuses(values: Iterable[str]) -> tuple[RunStatus, ...]:
    """``--status`` of rerun-judges: completed and/or results (default both); others are an error."""
    statuses = parse_statuses(values)
    wrong = [s.value for s in statuses if s not in JUDGEABLE]
    if wrong:
        raise FilterError(
            "rerun-judges only judges runs whose agent finished",
            f"--status {', '.join(wrong)}",
            "use --status completed or results; failed, partial and missing runs need rerun-agents",
        )
    return statuses or JUDGEABLE


def slot_state(layout: ExperimentLayout, key: RunKey, slot: int) -> SlotState:
    """The state of one 1-based judge slot of a run."""
    slot_dir = layout.run_paths(key).judge_slot(slot)
    if not slot_dir.is_dir():
        return SlotState.MISSING
    return SlotState.COMPLETE if is_valid_judgment(slot_dir / JUDGMENT_FILE) else SlotState.INVALID


class RunSlots(BaseModel):
    """The judge slots of one run whose agent finished."""

    run: str = Field(description="Run label, e.g. T0/00/run_01.")
    status: RunStatus = Field(description="The run's classification (completed or results).")
    slots: list[SlotState] = Field(description="State of judge_01, judge_02, ... in slot order.")

    @property
    def to_judge(self) -> list[int]:
        """1-based slots without a valid judgment: exactly the judges rerun-judges runs."""
        return [n for n, state in enumerate(self.slots, start=1) if state is not SlotState.COMPLETE]

    @property
    def no_valid_judge(self) -> bool:
        """Not one valid judgment (the run has no consensus at all)."""
        return bool(self.slots) and SlotState.COMPLETE not in self.slots

    def line(self) -> str:
        slots = ", ".join(f"judge_{n:02d} {self.slots[n - 1].value}" for n in self.to_judge)
        every = " (no valid judge)" if self.no_valid_judge else ""
        return f"{self.run} [{self.status.value}]: {slots}{every}"


class JudgeScan(BaseModel):
    """The judge slots of every in-scope run whose agent finished."""

    experiment: str = Field(description="Absolute experiment directory.")
    judge_models: list[str] = Field(description="config.judge_models: one slot each, in order.")
    runs: list[RunSlots] = Field(default_factory=list, description="In-scope runs whose agent finished.")
    agent_not_finished: int = Field(
        default=0, description="In-scope runs whose agent did not finish (rerun-agents' work, not judged)."
    )
    skipped_by_filter: int = Field(default=0, description="Runs excluded by --runs.")

    def to_judge(self) -> list[RunSlots]:
        return [r for r in self.runs if r.to_judge]

    @property
    def slots_to_judge(self) -> int:
        return sum(len(r.to_judge) for r in self.runs)

    def per_slot(self) -> list[Counter[str]]:
        """For each slot (index 0 = judge_01) how many runs have it complete, missing, invalid."""
        counters: list[Counter[str]] = [Counter() for _ in self.judge_models]
        for run in self.runs:
            for index, state in enumerate(run.slots):
                counters[index][state.value] += 1
        return counters

    def totals(self) -> dict[str, int]:
        counter = Counter(state.value for run in self.runs for state in run.slots)
        return {state.value: counter.get(state.value, 0) for state in SlotState}

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "judge_models": self.judge_models,
            "total_slots": sum(len(r.slots) for r in self.runs),
            "slots": self.totals(),
            "per_slot": [
                {"slot": n, "model": model, **{s.value: c.get(s.value, 0) for s in SlotState}}
                for n, (model, c) in enumerate(zip(self.judge_models, self.per_slot(), strict=True), start=1)
            ],
            "runs_to_judge": len(self.to_judge()),
            "runs_without_valid_judge": sum(1 for r in self.runs if r.no_valid_judge),
            "agent_not_finished": self.agent_not_finished,
            "skipped_by_filter": self.skipped_by_filter,
            "runs": [
                {"run": r.run, "status": r.status.value, "slots": [s.value for s in r.slots]}
                for r in self.to_judge()
            ],
        }


def _run_slots(layout: ExperimentLayout, label: str, status: RunStatus, total: int) -> RunSlots:
    key = RunKey.parse(label)
    return RunSlots(run=label, status=status, slots=[slot_state(layout, key, n) for n in range(1, total + 1)])


def scan_judge_slots(report: ScanReport, layout: ExperimentLayout, judge_models: Sequence[str]) -> JudgeScan:
    """Classify the judge slots of the report's selected runs (its status filter applies); in-scope
    runs whose agent did not finish are counted whatever the status filter."""
    scan = JudgeScan(
        experiment=report.experiment,
        judge_models=list(judge_models),
        skipped_by_filter=report.skipped_by_filter,
    )
    for entry in report.entries:
        if entry.status not in JUDGEABLE:
            scan.agent_not_finished += 1
        elif not report.statuses or entry.status in report.statuses:
            scan.runs.append(_run_slots(layout, entry.run, entry.status, len(judge_models)))
    return scan


def rescan(before: JudgeScan, layout: ExperimentLayout) -> JudgeScan:
    """The same runs read again (after judging): statuses and slot states as they are now."""
    runs = [
        _run_slots(
            layout, r.run, classify_run(layout.run_dir(RunKey.parse(r.run))).status, len(before.judge_models)
        )
        for r in before.runs
    ]
    return before.model_copy(update={"runs": runs})
