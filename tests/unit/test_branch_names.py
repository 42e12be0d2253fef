"""Rerun branches carry the experiment id (ProjectScylla's ``experiment_id[:8]_`` prefix), so two
experiments sharing one base repository never take or delete each other's branches."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from experiment.layout import RunKey
from experiment.scan import ExperimentContext, load_context
from operations.archive import archive_run, worktree_branch
from operations.workspace import prepare_workspace, run_branch
from simulation.generator import generate_experiment

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"
KEY = RunKey("T0", "00", 1)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize(
    ("experiment_id", "branch"),
    [
        ("test-001", "test-001_T0_00_run_01"),
        ("2026-01-20T06-13-07-test-001", "2026-01-_T0_00_run_01"),  # the first 8 characters only
        ("abc", "abc_T0_00_run_01"),
        ("", "T0_00_run_01"),  # no id: the bare name, as ProjectScylla
        ("a b:c~d", "a_b_c_d_T0_00_run_01"),  # characters git refuses in a branch name
    ],
)
def test_run_branch_format(experiment_id: str, branch: str) -> None:
    assert run_branch(experiment_id, KEY) == branch


def _experiment(
    tmp_path: Path, name: str, experiment_id: str, task_commit: str | None = None
) -> ExperimentContext:
    gen = generate_experiment(
        tmp_path / name, tiers=["T0"], subtests_per_tier=1, runs_per_subtest=1, tiers_dir=TIERS
    )
    config_path = gen.path / "config" / "experiment.json"
    config = json.loads(config_path.read_text())
    config["experiment_id"] = experiment_id
    if task_commit:
        config["task_commit"] = task_commit
    config_path.write_text(json.dumps(config))
    return load_context(gen.path, TIERS)


def test_two_experiments_share_a_base_repo_without_collisions(tmp_path: Path) -> None:
    first = _experiment(tmp_path, "a", "exp-aaaa-1")
    repo = first.root / "repo"
    second = _experiment(tmp_path, "b", "exp-bbbb-2", task_commit=first.config.task_commit)
    # The original (bare-named) run of another experiment lives in the same repository.
    foreign = tmp_path / "foreign-ws"
    _git(repo, "worktree", "add", "-q", "-b", KEY.branch, str(foreign), first.config.task_commit)

    infos = []
    for ctx in (first, second):
        archive_run(ctx.layout, KEY, repo)
        infos.append(prepare_workspace(ctx, KEY, base_repo=repo))
    assert [i.branch for i in infos] == ["exp-aaaa_T0_00_run_01", "exp-bbbb_T0_00_run_01"]
    assert [_git(i.workspace, "rev-parse", "--abbrev-ref", "HEAD") for i in infos] == [
        i.branch for i in infos
    ]
    assert worktree_branch(infos[0].workspace, repo) == infos[0].branch

    # Re-running the first experiment's run again archives it: only its own branch goes.
    archive_run(first.layout, KEY, repo)
    branches = set(_git(repo, "branch", "--format=%(refname:short)").splitlines())
    assert "exp-aaaa_T0_00_run_01" not in branches
    assert {"exp-bbbb_T0_00_run_01", KEY.branch} <= branches
    assert _git(infos[1].workspace, "status", "--porcelain") == ""  # the other rerun is untouched
    assert _git(foreign, "rev-parse", "--abbrev-ref", "HEAD") == KEY.branch


def test_worktree_branch_ignores_plain_directories(tmp_path: Path) -> None:
    plain = tmp_path / "workspace"
    plain.mkdir()
    assert worktree_branch(plain) is None
    (plain / ".git").write_text("not a pointer\n")
    assert worktree_branch(plain) is None
