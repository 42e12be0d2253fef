"""The identity of one attempt at a run, recorded in the run dir so it survives a crash.

Prefect's cache keys for a run's agent and judge steps include this id: re-running the same
repair after a crash finds the same id on disk and reuses every finished step, while a run dir
created later (a deliberate new repair, after the user deleted the run) gets a new id and can
never be served a stale result. ProjectScylla's loaders ignore the extra dot-file.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from experiment.jsonio import atomic_write_json

MARKER = ".repair-attempt.json"


def start_attempt(run_dir: Path, repair_id: str) -> str:
    """Record a new attempt in ``run_dir`` and return its id."""
    attempt_id = uuid.uuid4().hex[:16]
    atomic_write_json(Path(run_dir) / MARKER, {"attempt_id": attempt_id, "repair_id": repair_id})
    return attempt_id


def attempt_id(run_dir: Path) -> str:
    """The run dir's attempt id; runs made by ProjectScylla itself have none ("original")."""
    try:
        return str(json.loads((Path(run_dir) / MARKER).read_text())["attempt_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return "original"


def attempt_repair_id(run_dir: Path) -> str | None:
    """The id of the repair that started the run dir's attempt (None: not one of ours)."""
    try:
        return str(json.loads((Path(run_dir) / MARKER).read_text())["repair_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


REPAIR_RECORD = "repair.json"


def current_repair_id(prefect_dir: Path) -> tuple[str, bool]:
    """The id of the unfinished repair of this experiment, or a new one; (id, resumed?).

    Running the same repair again after a crash finds the unfinished record and reuses its id,
    so every persisted step result is found again; a repair that finished leaves none behind.
    """
    path = Path(prefect_dir) / REPAIR_RECORD
    try:
        record = json.loads(path.read_text())
        if not record.get("finished") and record.get("repair_id"):
            return str(record["repair_id"]), True
    except (OSError, ValueError, AttributeError):
        pass
    repair_id = uuid.uuid4().hex[:12]
    atomic_write_json(path, {"repair_id": repair_id, "finished": False})
    return repair_id, False


def finish_repair(prefect_dir: Path, repair_id: str) -> None:
    """Mark the repair finished: the next invocation starts a new one."""
    atomic_write_json(Path(prefect_dir) / REPAIR_RECORD, {"repair_id": repair_id, "finished": True})


# -- test hook ---------------------------------------------------------------------------------

PAUSE_ENV = "SCYLLA_REPAIR_TEST_PAUSE_AT"
"""Test hook, never set in production: ``judge,finalize,checkpoint`` (any subset). The crash
tests (``tests/integration/test_crash_resume.py``) kill the repair while it sleeps there."""


def pause_for_tests(point: str, what: str = "") -> None:
    """Crash-test hook: if ``point`` is listed in ``$SCYLLA_REPAIR_TEST_PAUSE_AT``, create
    ``$SCYLLA_REPAIR_TEST_PAUSE_DIR/<point>`` (its text names ``what``) and sleep
    ``$SCYLLA_REPAIR_TEST_PAUSE_SECONDS`` (default 60) so the test can kill the process there.
    A no-op (one environment lookup) otherwise."""
    points = os.environ.get(PAUSE_ENV)
    if not points or point not in points.split(","):
        return
    marker_dir = Path(os.environ.get("SCYLLA_REPAIR_TEST_PAUSE_DIR", "."))
    marker_dir.mkdir(parents=True, exist_ok=True)
    (marker_dir / point).write_text(f"{os.getpid()} {what}\n")
    time.sleep(float(os.environ.get("SCYLLA_REPAIR_TEST_PAUSE_SECONDS", "60")))
