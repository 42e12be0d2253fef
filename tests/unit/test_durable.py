"""Write batches (experiment.durable) and the streamed experiment result (regenerate.spill)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from experiment.backups import backup_file
from experiment.durable import collected_writes, current_batch, write_batch
from experiment.forked import forked_map
from experiment.jsonio import atomic_write_text, dumps
from experiment.models import ExperimentResult
from experiment.regenerate import rebuild_aggregates
from experiment.regenerate.spill import TierSpill, without_runs
from simulation.generator import generate_experiment


def test_batch_renames_nothing_until_commit(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("old")
    with write_batch():
        atomic_write_text(tmp_path / "a.json", "new")
        atomic_write_text(tmp_path / "sub" / "b.json", "b")
        assert (tmp_path / "a.json").read_text() == "old"
        assert not (tmp_path / "sub" / "b.json").exists()
    assert (tmp_path / "a.json").read_text() == "new"
    assert (tmp_path / "sub" / "b.json").read_text() == "b"
    assert current_batch() is None
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.json", "sub"]  # no temp left


def test_batch_exception_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(RuntimeError), write_batch():
        atomic_write_text(tmp_path / "a.json", "new")
        backup_file(tmp_path, tmp_path / "a.json", "S")
        raise RuntimeError("boom")
    assert (tmp_path / "a.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".backups", "a.json"]
    assert not any(p.is_file() for p in (tmp_path / ".backups").rglob("*"))


def test_batch_backups_never_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("v1")
    with write_batch():
        backup_file(tmp_path, target, "S")
        atomic_write_text(target, "v2")
    with write_batch():
        backup_file(tmp_path, target, "S")
        atomic_write_text(target, "v3")
    kept = tmp_path / ".backups" / "S"
    assert (kept / "a.json").read_text() == "v1"
    assert (kept / "a.json.1").read_text() == "v2"
    assert target.read_text() == "v3"


def test_batch_backup_of_a_replaced_file_is_the_old_inode(tmp_path: Path) -> None:
    """The backup is a link, made at commit, of the inode the rename takes off the live name: a
    later in-place write to the live file (ProjectScylla writes that way) leaves it alone."""
    target = tmp_path / "a.json"
    target.write_text("v1")
    old_inode = target.stat().st_ino
    with write_batch():
        kept = backup_file(tmp_path, target, "S")
        atomic_write_text(target, "v2")
        assert kept is not None and not kept.exists()  # made at the commit, not before
    assert kept.stat().st_ino == old_inode and kept.read_text() == "v1"
    assert target.stat().st_ino != old_inode and kept.stat().st_nlink == 1
    target.write_text("v3")  # in place
    assert kept.read_text() == "v1"


def test_batch_backup_of_a_file_not_replaced_is_a_copy(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("v1")
    with write_batch():
        kept = backup_file(tmp_path, target, "S")
    assert kept is not None and kept.read_text() == "v1"
    assert kept.stat().st_ino != target.stat().st_ino
    target.write_text("v2")  # in place: a link would have changed with it
    assert kept.read_text() == "v1"
    assert not list(tmp_path.rglob("*.tmp"))


def test_batch_backup_of_a_file_removed_before_the_commit_is_skipped(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("v1")
    with write_batch():
        backup_file(tmp_path, target, "S")
        target.unlink()
        atomic_write_text(target, "v2")
    assert target.read_text() == "v2"
    assert not any(p.is_file() for p in (tmp_path / ".backups").rglob("*"))


@pytest.mark.parametrize("replaced", [True, False], ids=["linked", "copied"])
def test_batch_backup_whose_backup_dir_was_removed_is_made_again(tmp_path: Path, replaced: bool) -> None:
    target = tmp_path / "a.json"
    target.write_text("v1")
    with write_batch():
        kept = backup_file(tmp_path, target, "S")
        shutil.rmtree(tmp_path / ".backups")
        if replaced:
            atomic_write_text(target, "v2")
    assert kept is not None and kept.read_text() == "v1"


def test_backup_outside_a_batch_remakes_a_removed_backup_dir(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("v1")
    assert backup_file(tmp_path, target, "S") is not None
    shutil.rmtree(tmp_path / ".backups")  # the process still remembers having made it
    target.write_text("v2")
    kept = backup_file(tmp_path, target, "S")
    assert kept is not None and kept.read_text() == "v2"


def test_nested_batch_joins_outer(tmp_path: Path) -> None:
    with write_batch() as outer:
        with write_batch() as inner:
            assert inner is outer
            atomic_write_text(tmp_path / "a", "x")
        assert not (tmp_path / "a").exists()
    assert (tmp_path / "a").read_text() == "x"


def _write_for_parent(path: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A worker's writes: a new file and a backed-up overwrite, collected, not committed."""
    with collected_writes() as batch:
        atomic_write_text(Path(path) / "new.json", "new")
        backup_file(Path(path), Path(path) / "a.json", "S")
        atomic_write_text(Path(path) / "a.json", "changed")
    return batch.renames, batch.backups


@pytest.mark.parametrize("processes", [1, 2])
def test_collected_writes_wait_for_the_adopting_batch(tmp_path: Path, processes: int) -> None:
    """A forked worker's (or the parent's own) collected writes are committed by the parent's
    batch, not by the worker, and not by the batch the worker inherited."""
    dirs = [tmp_path / "x", tmp_path / "y"]
    for d in dirs:
        d.mkdir()
        (d / "a.json").write_text("old")
    with write_batch() as batch, forked_map(processes) as map_:
        for renames, backups in map_(_write_for_parent, [str(d) for d in dirs]):
            batch.adopt(renames, backups)
        assert all((d / "a.json").read_text() == "old" for d in dirs)
        assert not any((d / "new.json").exists() for d in dirs)
        assert len(batch.renames) == 4 and len(batch.backups) == 2
    for d in dirs:
        assert (d / "a.json").read_text() == "changed" and (d / "new.json").read_text() == "new"
        assert (d / ".backups/S/a.json").read_text() == "old"
    assert not list(tmp_path.rglob("*.tmp"))


def test_collected_writes_of_a_failed_worker_are_removed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), write_batch() as outer, collected_writes():
        atomic_write_text(tmp_path / "a.json", "new")
        raise RuntimeError("boom")
    assert not outer.renames and sorted(p.name for p in tmp_path.iterdir()) == []


def test_write_outside_batch_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    with write_batch():
        atomic_write_text(target, "new")
    assert (target.stat().st_mode & 0o777) == 0o640


def test_spilled_experiment_text_equals_full_dump(tmp_path: Path) -> None:
    """The streamed experiment result.json is byte for byte the dump of the full tree."""
    exp = tmp_path / "exp"
    generate_experiment(
        exp,
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        seed=7,
        mix={"completed": 1.0},
        with_base_repo=False,
    )
    rebuild_aggregates(exp)
    text = (exp / "result.json").read_text(encoding="utf-8")
    full = ExperimentResult.model_validate(json.loads(text))
    assert sum(len(s.runs) for t in full.tier_results.values() for s in t.subtest_results.values()) == 12
    assert text == dumps(full.to_json_dict())
    tier = full.tier_results["T0"]
    runless = without_runs(tier)
    for sid, sub in runless.subtest_results.items():
        assert len(sub.runs) == (len(tier.subtest_results[sid].runs) if sid == tier.best_subtest else 0)
    with TierSpill() as spill:
        for tier_id, result in full.tier_results.items():
            spill.add(tier_id, dumps(result.to_json_dict()))
        light = full.model_copy(
            update={"tier_results": {t: without_runs(r) for t, r in full.tier_results.items()}}
        )
        assert "".join(spill.experiment_chunks(light)) == text
