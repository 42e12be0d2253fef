"""The repair's summary: the RERUN RESULTS counts, what failed and why, cost, when to resume."""

from __future__ import annotations

import time
from collections import Counter

from pydantic import BaseModel, Field

from experiment.scan import ScanReport
from operations.outcome import RunRepair


class RepairSummary(BaseModel):
    """What a repair did. Returned by the flow, printed by the CLI, shown in the UI."""

    experiment: str = Field(description="The experiment directory.")
    dry_run: bool = Field(default=False, description="True when nothing was changed.")
    before: ScanReport = Field(description="Classification before the repair.")
    after: ScanReport | None = Field(default=None, description="Classification after the repair.")
    runs: list[RunRepair] = Field(default_factory=list, description="One record per run acted on.")
    aggregates_rebuilt: bool = Field(default=False, description="Subtest/tier/experiment results rebuilt.")
    resume_at: float | None = Field(default=None, description="When deferred runs can resume (epoch s).")
    resume_scheduled: str | None = Field(default=None, description="The scheduled flow run that resumes.")
    notes: list[str] = Field(default_factory=list, description="Anything the user should know.")
    estimated_cost_usd: float | None = Field(
        default=None, description="Agent cost estimated from completed runs before the repair (no judges)."
    )
    stopped: str | None = Field(
        default=None, description="Why runs were left unstarted (cost cap, circuit breaker), or None."
    )

    @property
    def counts(self) -> Counter:
        return Counter(r.outcome for r in self.runs)

    @property
    def succeeded(self) -> int:
        return self.counts["succeeded"]

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def regenerated(self) -> int:
        return self.counts["regenerated"]

    @property
    def deferred(self) -> int:
        return self.counts["deferred"]

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.runs)

    def to_json_dict(self) -> dict:
        final = self.after or self.before
        data = final.to_json_dict()
        data["before"] = {"counts": self.before.counts}
        data["rerun"] = {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "regenerated": self.regenerated,
            "deferred": self.deferred,
            "cost_usd": round(self.cost_usd, 6),
            "aggregates_rebuilt": self.aggregates_rebuilt,
            "resume_at": self.resume_at,
            "runs": [r.model_dump(mode="json", exclude_none=True) for r in self.runs],
        }
        data["estimated_cost_usd"] = (
            round(self.estimated_cost_usd, 6) if self.estimated_cost_usd is not None else None
        )
        data["rerun"]["stopped"] = self.stopped
        data["dry_run"] = self.dry_run
        data["notes"] = self.notes
        return data

    def markdown(self) -> str:
        lines = [
            f"# Repair of `{self.experiment}`",
            "",
            f"* Successfully rerun: **{self.succeeded}**",
            f"* Failed rerun: **{self.failed}**",
            f"* Regenerated (missing results): **{self.regenerated}**",
            f"* Deferred: **{self.deferred}**",
            f"* Agent cost of this repair: **${self.cost_usd:.4f}**"
            + (
                f" (estimated beforehand: ${self.estimated_cost_usd:.4f}; judges not included)"
                if self.estimated_cost_usd is not None
                else ""
            ),
            f"* Subtest, tier and experiment results rebuilt: {'yes' if self.aggregates_rebuilt else 'no'}",
        ]
        if self.resume_at:
            lines.append(
                f"* Resumes after: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(self.resume_at))}"
            )
        failures = [r for r in self.runs if r.outcome in ("failed", "deferred")]
        if failures:
            lines += ["", "| run | outcome | class | reason |", "|---|---|---|---|"]
            lines += [
                f"| {r.run} | {r.outcome} | {r.failure_class or ''} | {r.reason.replace('|', '/')} |"
                for r in failures
            ]
        done = [r for r in self.runs if r.outcome in ("succeeded", "regenerated")]
        if done:
            lines += ["", "| run | action | cost (USD) | valid judges |", "|---|---|---:|---:|"]
            lines += [f"| {r.run} | {r.action} | {r.cost_usd:.4f} | {r.judges_valid or ''} |" for r in done]
        for note in self.notes:
            lines += ["", f"> {note}"]
        return "\n".join(lines)
