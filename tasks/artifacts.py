"""What the Prefect UI shows: the classification table, rerun progress, the repair summary.

Each experiment keeps its own history in the Artifacts page: the key is the kind, the slug of
the experiment directory's name (readable) and a short hash of its resolved absolute path, so two
experiments with the same directory name under different roots never overwrite each other's
artifacts (keys allow lowercase letters, digits and dashes only).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
)
from prefect.client.schemas.actions import ArtifactUpdate

from experiment.scan import ScanReport

logger = logging.getLogger(__name__)


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
"""In-process listeners, called as each run finishes (from the worker thread that finished it)."""

_RECEIVERS: dict[str, ProgressArtifact] = {}
_RECEIVERS_LOCK = threading.Lock()


def run_finished(repair_id: str, run: str, outcome: str, cost: float = 0.0) -> None:
    """Count ``run`` the moment its outcome is known (``repair_run`` calls this, in its worker
    thread), not when Prefect has reported the task done to the API: under load that report
    lagged the checkpoint by several runs."""
    with _RECEIVERS_LOCK:
        progress = _RECEIVERS.get(repair_id)
    if progress is not None:
        progress.advance(run, outcome, cost)


class ProgressArtifact:
    """A progress bar in the UI (and in the terminal, via listeners), advanced as each run finishes.

    Each run counts once, whoever reports it first: its task as it ends (:func:`run_finished`)
    or the flow as it collects the result (which also reports runs a guardrail never started).
    A sender thread keeps the UI's value on the newest count, so workers never wait for the API
    and a backlog of slow API calls collapses into one; the value only ever rises.
    """

    def __init__(self, experiment_dir: str | Path, total: int, description: str) -> None:
        self.total = total
        self.done = self.ok = self.failed = self.deferred = 0
        self.cost = 0.0
        self._counted: set[str] = set()
        self._changed = threading.Condition()
        self.artifact_id = cast(
            UUID,
            create_progress_artifact(
                progress=0.0 if total else 100.0,
                key=artifact_key("rerun-progress", experiment_dir),
                description=description,
            ),
        )  # called from sync code: the UUID itself, never the coroutine the stubs also allow
        self._notify(self.snapshot)

    @contextmanager
    def receiving(self, repair_id: str) -> Iterator[ProgressArtifact]:
        """Let the tasks of ``repair_id`` in this process report their runs, and send the count."""
        stop = threading.Event()
        sender = threading.Thread(
            target=contextvars.copy_context().run, args=(self._send_loop, stop), daemon=True, name="progress"
        )  # the copied context carries Prefect's settings (which API) into the thread
        with _RECEIVERS_LOCK:
            _RECEIVERS[repair_id] = self
        sender.start()
        try:
            yield self
        finally:
            with _RECEIVERS_LOCK:
                _RECEIVERS.pop(repair_id, None)
            stop.set()
            with self._changed:
                self._changed.notify_all()
            sender.join(timeout=30)

    def advance(self, run: str, outcome: str, cost: float = 0.0) -> None:
        """Count one finished run (once); ``outcome`` is its RunRepair outcome."""
        with self._changed:
            if run in self._counted:
                return
            self._counted.add(run)
            self.done += 1
            self.failed += int(outcome == "failed")
            self.deferred += int(outcome == "deferred")
            self.ok += int(outcome not in ("failed", "deferred"))
            self.cost += cost
            self._notify(self.snapshot)
            self._changed.notify_all()

    def _send_loop(self, stop: threading.Event) -> None:
        from prefect.client.orchestration import get_client

        sent = 0
        with get_client(sync_client=True) as client:  # one connection for the whole repair
            while True:
                with self._changed:
                    while self.done == sent and not stop.is_set():
                        self._changed.wait(1.0)
                    latest = self.snapshot
                if latest.done != sent:
                    try:
                        client.update_artifact(
                            artifact_id=self.artifact_id,
                            artifact=ArtifactUpdate(
                                data=min(100.0, 100.0 * latest.done / max(self.total, 1)),
                                description=latest.line(),
                            ),
                        )
                    except Exception as exc:  # noqa: BLE001 - the UI's bar must never stop a repair
                        logger.warning("Progress artifact not updated: %s", exc)
                    sent = latest.done
                if stop.is_set() and self.done == sent:
                    return

    @property
    def snapshot(self) -> RepairProgress:
        return RepairProgress(self.done, self.total, self.ok, self.failed, self.deferred, self.cost)

    def _notify(self, snapshot: RepairProgress) -> None:
        for listener in list(progress_listeners):
            listener(snapshot)


def publish_markdown(kind: str, experiment_dir: str | Path, markdown: str, description: str) -> None:
    create_markdown_artifact(
        key=artifact_key(kind, experiment_dir), markdown=markdown, description=description
    )
