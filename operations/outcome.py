"""What happened to one run during a repair: the record a repair task returns.

Kept apart from the Prefect task that produces it, so the summary, the CLI and the UI can read
it without importing Prefect.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from experiment.failures import FailureClass

Outcome = Literal["succeeded", "failed", "regenerated", "deferred"]


class RunRepair(BaseModel):
    """What happened to one run during a repair."""

    run: str = Field(description="Run label, e.g. T0/00/run_01.")
    action: Literal["rerun", "regenerate"] = Field(description="Agent + judges, or results only.")
    outcome: Outcome = Field(description="The result of the action.")
    reason: str = Field(default="", description="Why it failed or was deferred (one line).")
    failure_class: FailureClass | None = Field(default=None, description="Failure taxonomy class.")
    cost_usd: float = Field(default=0.0, description="Agent cost of this repair's attempt(s).")
    archived_to: str | None = Field(default=None, description="Where the old attempt went.")
    resume_at: float | None = Field(default=None, description="Epoch seconds when a deferred run can resume.")
    judges_valid: int | None = Field(default=None, description="Valid judges after the repair.")
