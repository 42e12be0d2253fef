"""What the Prefect UI shows: the classification table, rerun progress, the repair summary.

Artifact keys are derived from the experiment directory's name so each experiment keeps its
own history in the Artifacts page (keys allow lowercase letters, digits and dashes only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from experiment.scan import ScanReport


def artifact_key(kind: str, experiment_dir: str | Path) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", Path(experiment_dir).name.lower()).strip("-")[:40] or "experiment"
    return f"{kind}-{slug}"


def publish_classification(report: ScanReport) -> None:
    """A table artifact with one row per in-scope run, plus the counts in the description."""
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    create_table_artifact(
        key=artifact_key("classification", report.experiment),
        table=[
            {
                "run": e.run,
                "status": e.status.value,
                "reason": e.reason,
                "failure_class": e.failure_class or "",
            }
            for e in report.entries
        ],
        description=f"Run classification of {report.experiment}: {report.total_expected} expected ({counts}); "
        f"{report.skipped_by_filter} skipped by filter.",
    )


@dataclass(frozen=True)
class RepairProgress:
    """Where a repair stands, counted from the runs that finished (never from submissions)."""

    done: int
    total: int
    ok: int
    failed: int
    deferred: int
    cost_usd: float

    def line(self) -> str:
        return (
            f"{self.done}/{self.total} runs done: {self.ok} ok, {self.failed} failed, "
            f"{self.deferred} deferred, ${self.cost_usd:.2f} spent"
        )


progress_listeners: list[Callable[[RepairProgress], None]] = []
"""In-process listeners, called after each finished run: the CLI's Rich progress bar."""


class ProgressArtifact:
    """A progress bar in the UI (and in the terminal, via listeners), advanced as each run finishes.

    The flow calls :meth:`advance` in the order runs *complete*, so the bar and the UI follow
    ``checkpoint.json`` (which each run's finalize step writes just before it completes).
    """

    def __init__(self, experiment_dir: str | Path, total: int, description: str) -> None:
        self.total = total
        self.done = self.ok = self.failed = self.deferred = 0
        self.cost = 0.0
        self.artifact_id = cast(
            UUID,
            create_progress_artifact(
                progress=0.0 if total else 100.0,
                key=artifact_key("rerun-progress", experiment_dir),
                description=description,
            ),
        )  # called from sync code: the UUID itself, never the coroutine the stubs also allow
        self._notify()

    def advance(self, outcome: str, cost: float = 0.0) -> None:
        """Count one finished run; ``outcome`` is its RunRepair outcome."""
        self.done += 1
        self.failed += int(outcome == "failed")
        self.deferred += int(outcome == "deferred")
        self.ok += int(outcome not in ("failed", "deferred"))
        self.cost += cost
        progress = min(100.0, 100.0 * self.done / max(self.total, 1))
        update_progress_artifact(
            artifact_id=self.artifact_id, progress=progress, description=self.snapshot.line()
        )
        self._notify()

    @property
    def snapshot(self) -> RepairProgress:
        return RepairProgress(self.done, self.total, self.ok, self.failed, self.deferred, self.cost)

    def _notify(self) -> None:
        snapshot = self.snapshot
        for listener in list(progress_listeners):
            listener(snapshot)


def publish_markdown(kind: str, experiment_dir: str | Path, markdown: str, description: str) -> None:
    create_markdown_artifact(
        key=artifact_key(kind, experiment_dir), markdown=markdown, description=description
    )
