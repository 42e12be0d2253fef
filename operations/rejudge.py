"""What ``rerun-judges`` did: the judge slots before and after, per run, printed by the CLI.

Kept apart from the flow (no Prefect import) so the CLI's dry run and the UI artifact read the
same record. A slot counts as re-judged when it had no valid judgment before and has one after.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from experiment.judge_slots import JudgeScan, SlotState
from experiment.status import RunStatus
from operations.outcome import RunRepair

__all__ = ["RejudgeSummary"]


class RejudgeSummary(BaseModel):
    """What a ``rerun-judges`` run did (or, dry, would do)."""

    experiment: str = Field(description="The experiment directory.")
    dry_run: bool = Field(default=False, description="True when nothing was changed.")
    before: JudgeScan = Field(description="Judge slots before.")
    after: JudgeScan | None = Field(default=None, description="The same runs' judge slots afterwards.")
    runs: list[RunRepair] = Field(default_factory=list, description="One record per run judged.")
    aggregates_rebuilt: bool = Field(default=False, description="Subtest/tier/experiment results rebuilt.")
    resume_at: float | None = Field(default=None, description="When deferred runs can resume (epoch s).")
    notes: list[str] = Field(default_factory=list, description="Anything the user should know.")

    def _targets(self) -> dict[str, list[int]]:
        return {r.run: r.to_judge for r in self.before.to_judge()}

    def _after_states(self) -> dict[str, list[SlotState]]:
        return {r.run: r.slots for r in (self.after.runs if self.after else [])}

    @property
    def slots_rejudged(self) -> int:
        """Slots without a valid judgment before that have one now."""
        after = self._after_states()
        return sum(
            1
            for run, slots in self._targets().items()
            for n in slots
            if run in after and after[run][n - 1] is SlotState.COMPLETE
        )

    @property
    def slots_failed(self) -> int:
        """Slots that were to be judged and still have no valid judgment (0 in a dry run)."""
        if self.dry_run or self.after is None:
            return 0
        return self.before.slots_to_judge - self.slots_rejudged

    @property
    def runs_finalized(self) -> int:
        """Runs that had slots to judge and are ``completed`` now (consensus and results rebuilt)."""
        targets = self._targets()
        after = self.after.runs if self.after else []
        return sum(1 for r in after if r.run in targets and r.status is RunStatus.COMPLETED)

    def to_json_dict(self) -> dict:
        data = (self.after or self.before).to_json_dict()
        data["before"] = {"slots": self.before.totals(), "runs_to_judge": len(self.before.to_judge())}
        data["rerun"] = {
            "slots_to_judge": self.before.slots_to_judge,
            "slots_rejudged": self.slots_rejudged,
            "slots_failed": self.slots_failed,
            "runs_finalized": self.runs_finalized,
            "aggregates_rebuilt": self.aggregates_rebuilt,
            "resume_at": self.resume_at,
            "runs": [r.model_dump(mode="json", exclude_none=True) for r in self.runs],
        }
        data["dry_run"] = self.dry_run
        data["notes"] = self.notes
        return data

    def markdown(self) -> str:
        lines = [
            f"# Judges of `{self.experiment}`",
            "",
            f"* Judge slots to re-judge: **{self.before.slots_to_judge}** "
            f"in {len(self.before.to_judge())} run(s)",
            f"* Re-judged (valid now): **{self.slots_rejudged}**",
            f"* Still without a valid judgment: **{self.slots_failed}**",
            f"* Runs finalized (consensus, run_result.json, reports): **{self.runs_finalized}**",
            f"* Subtest, tier and experiment results rebuilt: {'yes' if self.aggregates_rebuilt else 'no'}",
        ]
        if self.resume_at:
            lines.append(
                f"* Resumes after: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(self.resume_at))}"
            )
        problems = [r for r in self.runs if r.outcome in ("failed", "deferred")]
        if problems:
            lines += ["", "| run | outcome | class | reason |", "|---|---|---|---|"]
            lines += [
                f"| {r.run} | {r.outcome} | {r.failure_class or ''} | {r.reason.replace('|', '/')} |"
                for r in problems
            ]
        for note in self.notes:
            lines += ["", f"> {note}"]
        return "\n".join(lines)
