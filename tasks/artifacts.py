"""What the Prefect UI shows: the classification table, rerun progress, the repair summary.

Each experiment keeps its own history in the Artifacts page: the key is the kind, the slug of
the experiment directory's name (readable) and a short hash of its resolved absolute path, so two
experiments with the same directory name under different roots never overwrite each other's
artifacts (keys allow lowercase letters, digits and dashes only).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
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
    """``<kind>-<slug of the directory name>-<8 hex digits of its resolved absolute path>``."""
    path = Path(experiment_dir).expanduser().resolve()
    slug = re.sub(r"[^a-z0-9]+", "-", path.name.lower()).strip("-")[:40].strip("-") or "experiment"
    digest = hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{kind}-{slug}-{digest}"


REASON_WIDTH = 100
"""Characters of a run's reason shown in the table (the scan's JSON output has it whole)."""


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= REASON_WIDTH else line[: REASON_WIDTH - 1] + "…"


def publish_classification(report: ScanReport) -> None:
    """A table artifact with one row per in-scope run, plus the counts in the description."""
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    create_table_artifact(
        key=artifact_key("classification", report.experiment),
        table=[
            {  # the short columns first: a long reason must not push the class off screen
                "run": e.run,
                "status": e.status.value,
                "failure_class": e.failure_class or "",
                "reason": _short(e.reason),
            }
            for e in report.entries
        ],
        description=f"Run classification of {report.experiment}: {report.total_expected} expected ({counts}); "
        f"{report.skipped_by_filter} skipped by filter.",
    )


progress_listeners: list[Callable[[int, int, int, float], None]] = []
"""In-process listeners ``(done, total, failed, cost_usd)``: the CLI's Rich progress bar."""


class ProgressArtifact:
    """A progress bar in the UI (and in the terminal, via listeners), updated as runs finish."""

    def __init__(self, experiment_dir: str | Path, total: int, description: str) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
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

    def advance(self, *, failed: bool = False, cost: float = 0.0) -> None:
        self.done += 1
        self.failed += int(failed)
        self.cost += cost
        progress = min(100.0, 100.0 * self.done / max(self.total, 1))
        update_progress_artifact(artifact_id=self.artifact_id, progress=progress)
        self._notify()

    def _notify(self) -> None:
        for listener in list(progress_listeners):
            listener(self.done, self.total, self.failed, self.cost)


def publish_markdown(kind: str, experiment_dir: str | Path, markdown: str, description: str) -> None:
    create_markdown_artifact(
        key=artifact_key(kind, experiment_dir), markdown=markdown, description=description
    )
