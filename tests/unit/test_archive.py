"""archive_run: whole-dir rename into .failed/, first free name, never overwrite, git cleanup."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from experiment.layout import ExperimentLayout, RunKey
from operations.archive import archive_run
from simulation.generator import generate_experiment

KEY = RunKey("T0", "00", 1)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


@pytest.fixture
def exp(tmp_path: Path):
    gen = generate_experiment(
        tmp_path / "exp", tiers=["T0"], subtests_per_tier=1, runs_per_subtest=2, with_base_repo=True
    )
    return gen


def _add_worktree(gen, key: RunKey) -> Path:
    """Register a real worktree inside the run dir, as a rerun would have created it."""
    layout = ExperimentLayout(gen.path)
    run_dir = layout.run_dir(key)
    run_dir.mkdir(parents=True, exist_ok=True)
    workspace = run_dir / "workspace"
    if workspace.exists():
        subprocess.run(["rm", "-rf", str(workspace)], check=True)
    result = _git(gen.path / "repo", "worktree", "add", "-b", key.branch, str(workspace), gen.task_commit)
    assert result.returncode == 0, result.stderr
    return workspace


def test_moves_whole_dir_by_rename_and_cleans_git(exp) -> None:
    layout = ExperimentLayout(exp.path)
    repo = exp.path / "repo"
    workspace = _add_worktree(exp, KEY)
    run_dir = layout.run_dir(KEY)
    inode = run_dir.stat().st_ino
    files_before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))

    target = archive_run(layout, KEY, repo)

    assert target == run_dir.parent / ".failed" / "run_01"
    assert not run_dir.exists()
    assert target.stat().st_ino == inode  # a rename, not a copy
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == files_before
    assert str(workspace) not in _git(repo, "worktree", "list", "--porcelain").stdout
    assert _git(repo, "rev-parse", "--verify", "--quiet", KEY.branch).returncode != 0


def test_idempotent_and_never_overwrites(exp) -> None:
    layout = ExperimentLayout(exp.path)
    run_dir = layout.run_dir(KEY)
    (run_dir / "marker.txt").write_text("first attempt")

    first = archive_run(layout, KEY, exp.path / "repo")
    assert first is not None and first.name == "run_01"
    assert archive_run(layout, KEY, exp.path / "repo") is None  # nothing left to move

    run_dir.mkdir()
    (run_dir / "marker.txt").write_text("second attempt")
    second = archive_run(layout, KEY, None)
    run_dir.mkdir()
    (run_dir / "marker.txt").write_text("third attempt")
    third = archive_run(layout, KEY, None)

    assert second is not None and second.name == "run_01_failed_1"
    assert third is not None and third.name == "run_01_failed_2"
    assert (first / "marker.txt").read_text() == "first attempt"
    assert (second / "marker.txt").read_text() == "second attempt"
    assert (third / "marker.txt").read_text() == "third attempt"


def test_empty_placeholder_is_claimed_not_clobbered(exp) -> None:
    """A name taken by anything (even an empty dir) is skipped; other runs are untouched."""
    layout = ExperimentLayout(exp.path)
    failed = layout.failed_dir(KEY)
    (failed / "run_01").mkdir(parents=True)
    other = RunKey("T0", "00", 2)
    target = archive_run(layout, KEY, None)
    assert target == failed / "run_01_failed_1"
    assert layout.run_dir(other).exists()
    assert sorted(os.listdir(failed)) == ["run_01", "run_01_failed_1"]


def test_missing_run_and_missing_repo(exp, tmp_path: Path) -> None:
    layout = ExperimentLayout(exp.path)
    assert archive_run(layout, RunKey("T0", "00", 9), exp.path / "repo") is None
    assert archive_run(layout, KEY, tmp_path / "no-such-repo") is not None  # git errors ignored
