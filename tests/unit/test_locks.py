"""The repair lock and the checkpoint's single writer, across real processes (and their deaths)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from experiment.attempt import current_repair_id, finish_repair
from experiment.errors import RepairBlocked
from experiment.jsonio import load_model
from experiment.layout import ExperimentLayout
from experiment.locks import RepairLock, update_checkpoint
from experiment.models import Checkpoint, ExperimentConfig
from simulation.generator import generate_experiment

CTX = multiprocessing.get_context("fork")


@pytest.fixture
def layout(tmp_path: Path) -> ExperimentLayout:
    exp = generate_experiment(
        tmp_path / "exp", tiers=["T0"], subtests_per_tier=1, runs_per_subtest=1, with_base_repo=False
    )
    return ExperimentLayout(exp.path)


def _hold_forever(root: str, ready) -> None:
    with RepairLock(ExperimentLayout(Path(root))).hold(description="child"):
        ready.set()
        time.sleep(300)


def _start_holder(layout: ExperimentLayout):
    ready = CTX.Event()
    child = CTX.Process(target=_hold_forever, args=(str(layout.root), ready))
    child.start()
    assert ready.wait(30)
    return child


def test_second_repair_refuses_with_the_holder_named_then_gets_the_lock_after_sigkill(layout):
    child = _start_holder(layout)
    try:
        with pytest.raises(RepairBlocked) as info, RepairLock(layout).hold():
            pass
        message = str(info.value)
        assert "Another repair is already running on this experiment" in message
        assert f"pid {child.pid}" in message
        with pytest.raises(RepairBlocked):
            RepairLock(layout).ensure_free()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    # The kernel released the dead holder's lock: no stale lock file to clean by hand.
    RepairLock(layout).ensure_free()
    with RepairLock(layout).hold(description="after"):
        assert RepairLock(layout).holder()["pid"] == os.getpid()


def test_a_waiting_repair_starts_when_the_holder_dies(layout):
    child = _start_holder(layout)
    killer = CTX.Process(target=lambda: (time.sleep(0.5), os.kill(child.pid, signal.SIGKILL)))
    killer.start()
    started = time.monotonic()
    try:
        with RepairLock(layout).hold(wait_seconds=20):
            waited = time.monotonic() - started
    finally:
        killer.join(10)
        child.join(10)
    assert 0.3 < waited < 10


def _mark_many(root: str, worker: int, n: int) -> None:
    layout = ExperimentLayout(Path(root))
    config = load_model(layout.config_path, ExperimentConfig)
    for i in range(n):
        update_checkpoint(layout, config, lambda c, i=i: c.mark_run("T9", f"{worker:02d}", i + 1, "passed"))


def test_concurrent_writers_never_lose_an_entry(layout):
    workers, per_worker = 4, 15
    procs = [CTX.Process(target=_mark_many, args=(str(layout.root), w, per_worker)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    checkpoint = Checkpoint.load(layout.checkpoint_path)
    for w in range(workers):
        assert len(checkpoint.completed_runs["T9"][f"{w:02d}"]) == per_worker
        assert len(checkpoint.run_states["T9"][f"{w:02d}"]) == per_worker
    assert not list(layout.checkpoint_path.parent.glob(".checkpoint.json.*.tmp"))


def test_a_corrupt_checkpoint_is_set_aside_never_deleted(layout):
    config = load_model(layout.config_path, ExperimentConfig)
    for text in ('{"version": "2.0", "completed_r', "not json either"):
        layout.checkpoint_path.write_text(text)
        update_checkpoint(layout, config, lambda c: c.mark_run("T0", "00", 1, "passed"))
    kept = sorted(p.read_text() for p in layout.root.glob("checkpoint.json.corrupt-*"))
    assert kept == sorted(['{"version": "2.0", "completed_r', "not json either"])
    assert Checkpoint.load(layout.checkpoint_path).completed_runs["T0"]["00"]["1"] == "passed"


def test_a_dead_writers_temp_file_is_cleaned_and_the_checkpoint_untouched(layout):
    config = load_model(layout.config_path, ExperimentConfig)
    before = json.loads(layout.checkpoint_path.read_text())
    stale = layout.checkpoint_path.parent / ".checkpoint.json.abc123.tmp"
    stale.write_text('{"half": ')
    update_checkpoint(layout, config, lambda c: None)
    assert not stale.exists()
    after = json.loads(layout.checkpoint_path.read_text())
    assert after["completed_runs"] == before["completed_runs"]


def test_a_v2_checkpoint_still_loads_and_is_saved_as_v31(layout):
    config = load_model(layout.config_path, ExperimentConfig)
    v2 = {
        "version": "2.0",
        "experiment_id": "x",
        "experiment_dir": str(layout.root),
        "config_hash": "0" * 16,
        "completed_runs": {"T0": {"00": {"1": "failed"}}},
        "started_at": "2026-01-20T06:13:07+00:00",
        "last_updated_at": "2026-01-20T06:13:07+00:00",
        "status": "interrupted",
        "rate_limit_source": None,
        "rate_limit_until": None,
        "pause_count": 0,
        "pid": 1,
    }
    layout.checkpoint_path.write_text(json.dumps(v2))
    update_checkpoint(layout, config, lambda c: c.mark_run("T0", "00", 2, "passed"))
    saved = json.loads(layout.checkpoint_path.read_text())
    assert saved["version"] == "3.1"
    assert saved["completed_runs"]["T0"]["00"] == {"1": "failed", "2": "passed"}
    assert saved["run_states"]["T0"]["00"]["2"] == "report_written"


def test_the_repair_id_is_reused_until_the_repair_finishes(tmp_path):
    first, resumed = current_repair_id(tmp_path)
    assert not resumed
    assert current_repair_id(tmp_path) == (first, True)  # a crash and a re-run: same id
    finish_repair(tmp_path, first)
    second, resumed = current_repair_id(tmp_path)
    assert second != first and not resumed  # a deliberate new repair: new cache keys
