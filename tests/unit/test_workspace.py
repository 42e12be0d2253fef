"""prepare_workspace: a real git worktree at task_commit, composed resources committed, prompts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed, FailureClass
from experiment.layout import RunKey
from experiment.scan import ExperimentContext, load_context
from operations.archive import archive_run
from operations.workspace import CONFIG_COMMIT_MESSAGE, prepare_workspace, remove_worktree, run_branch
from simulation.generator import generate_experiment

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"
T1 = RunKey("T1", "01", 1)
T0 = RunKey("T0", "00", 2)


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return result.stdout.strip()


@pytest.fixture
def ctx(tmp_path: Path) -> ExperimentContext:
    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T0", "T1"],
        subtests_per_tier=1,
        runs_per_subtest=2,
        tiers_dir=TIERS,
        with_base_repo=True,
    )
    return load_context(gen.path, TIERS)


def _branch(ctx: ExperimentContext, key: RunKey) -> str:
    return run_branch(ctx.config.experiment_id, key)


def _fresh(ctx: ExperimentContext, key: RunKey) -> None:
    archive_run(ctx.layout, key, ctx.root / "repo")


def test_worktree_at_task_commit_with_committed_configuration(ctx: ExperimentContext) -> None:
    _fresh(ctx, T1)
    info = prepare_workspace(ctx, T1, base_repo=ctx.root / "repo")

    ws = info.workspace
    assert ws == ctx.layout.run_dir(T1) / "workspace" and ws.is_dir()
    assert _git(ws, "rev-parse", "--abbrev-ref", "HEAD") == _branch(ctx, T1) == info.branch
    assert _git(ws, "rev-parse", "HEAD~1") == ctx.config.task_commit
    assert _git(ws, "log", "-1", "--format=%s") == CONFIG_COMMIT_MESSAGE
    assert _git(ws, "log", "-1", "--format=%an <%ae>") == "scylla-repair <scylla-repair@localhost>"
    committed = set(_git(ws, "ls-files").splitlines())
    assert {"CLAUDE.md", ".claude/settings.json", "hello.py", "README"} <= committed
    assert _git(ws, "status", "--porcelain") == ""
    assert info.config_committed and info.claude_md_hash
    assert "skill category 'agent'" in (info.compose_warning or "")  # the fixture has no skills
    assert str(ws) in _git(ctx.root / "repo", "worktree", "list")

    run_dir = info.run_dir
    assert (
        "Preparing worktree"
        in (run_dir / "cmd_0000_stderr.log").read_text() + (run_dir / "cmd_0000_stdout.log").read_text()
    )
    script = (run_dir / "worktree_create.sh").read_text().splitlines()
    assert script[0] == "#!/bin/bash"
    assert script[1] == f"# Worktree: {_branch(ctx, T1)} @ {ws}"
    assert script[2] == (
        f"git -C {ctx.root / 'repo'} worktree add -b {_branch(ctx, T1)} {ws} {ctx.config.task_commit}"
    )
    prompt = (ctx.root / "prompt.md").read_text()
    assert (run_dir / "task_prompt.md").read_text() == prompt
    assert (run_dir / "agent" / "prompt.md").read_text() == prompt
    assert info.prompt_file == run_dir / "agent" / "prompt.md"


def test_t0_00_has_only_settings(ctx: ExperimentContext) -> None:
    _fresh(ctx, T0)
    info = prepare_workspace(ctx, T0, base_repo=ctx.root / "repo")
    assert not (info.workspace / "CLAUDE.md").exists()
    settings = json.loads((info.workspace / ".claude" / "settings.json").read_text())
    assert settings == {"alwaysThinkingEnabled": False}
    assert ".claude/settings.json" in _git(info.workspace, "ls-files")


@pytest.mark.parametrize(
    ("mode", "prefix"), [("Low", "think\n\n"), ("High", "think hard\n\n"), ("UltraThink", "ultrathink\n\n")]
)
def test_thinking_keyword(ctx: ExperimentContext, mode: str, prefix: str) -> None:
    ctx.config.thinking_mode = mode
    _fresh(ctx, T0)
    info = prepare_workspace(ctx, T0, base_repo=ctx.root / "repo")
    prompt = (ctx.root / "prompt.md").read_text()
    assert info.prompt_file.read_text() == prefix + prompt
    assert (info.run_dir / "task_prompt.md").read_text() == prompt
    assert json.loads((info.workspace / ".claude" / "settings.json").read_text())["alwaysThinkingEnabled"]


def test_refuses_existing_run_dir(ctx: ExperimentContext) -> None:
    run_dir = ctx.layout.run_dir(T1)
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(RepairBlocked, match="already exists"):
        prepare_workspace(ctx, T1, base_repo=ctx.root / "repo")
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_stale_branch_is_replaced(ctx: ExperimentContext) -> None:
    repo = ctx.root / "repo"
    _git(repo, "branch", _branch(ctx, T1))
    _fresh(ctx, T1)
    info = prepare_workspace(ctx, T1, base_repo=repo)
    assert _git(info.workspace, "rev-parse", "HEAD~1") == ctx.config.task_commit


def test_worktree_failure_cleans_up(ctx: ExperimentContext, tmp_path: Path) -> None:
    """The branch is checked out elsewhere: cleanup + one retry, then INFRASTRUCTURE, nothing left."""
    repo = ctx.root / "repo"
    elsewhere = tmp_path / "elsewhere"
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "-q", "-b", _branch(ctx, T1), str(elsewhere)], check=True
    )
    _fresh(ctx, T1)
    with pytest.raises(AttemptFailed) as caught:
        prepare_workspace(ctx, T1, base_repo=repo)
    assert caught.value.failure.kind is FailureClass.INFRASTRUCTURE
    assert "even after cleanup" in caught.value.failure.message
    assert not ctx.layout.run_dir(T1).exists()  # back to "never started"
    assert elsewhere.is_dir()  # someone else's worktree is not touched


def test_unknown_commit_is_infrastructure_failure(ctx: ExperimentContext) -> None:
    ctx.config.task_commit = "1" * 40
    _fresh(ctx, T1)
    with pytest.raises(AttemptFailed) as caught:
        prepare_workspace(ctx, T1, base_repo=ctx.root / "repo")
    assert caught.value.failure.kind is FailureClass.INFRASTRUCTURE
    assert not ctx.layout.run_dir(T1).exists()


def test_prompt_falls_back_to_tiers_checkout(ctx: ExperimentContext) -> None:
    (ctx.root / "prompt.md").unlink()
    _fresh(ctx, T1)
    info = prepare_workspace(ctx, T1, base_repo=ctx.root / "repo")
    expected = (TIERS / ctx.config.task_prompt_file).read_text()
    assert (info.run_dir / "task_prompt.md").read_text() == expected


def test_missing_prompt_names_paths_and_creates_nothing(ctx: ExperimentContext) -> None:
    (ctx.root / "prompt.md").unlink()
    ctx.config.task_prompt_file = "nowhere/prompt.md"
    _fresh(ctx, T1)
    with pytest.raises(RepairBlocked) as caught:
        prepare_workspace(ctx, T1, base_repo=ctx.root / "repo")
    message = str(caught.value)
    assert "\n" not in message
    assert str(ctx.root / "prompt.md") in message and str(ctx.root / "nowhere/prompt.md") in message
    assert not ctx.layout.run_dir(T1).exists()


def test_unknown_subtest(ctx: ExperimentContext) -> None:
    with pytest.raises(RepairBlocked, match="Subtest 77 not found in tier T1"):
        prepare_workspace(ctx, RunKey("T1", "77", 1), base_repo=ctx.root / "repo")


def test_manifest_written_only_when_absent(ctx: ExperimentContext) -> None:
    manifest = ctx.layout.subtest_dir("T1", "01") / "config_manifest.json"
    manifest.unlink()
    _fresh(ctx, T1)
    info = prepare_workspace(ctx, T1, base_repo=ctx.root / "repo")
    data = json.loads(manifest.read_text())
    assert data["tier_id"] == "T1" and data["subtest_id"] == "01"
    assert data["claude_md_hash"] == info.claude_md_hash
    manifest.write_text('{"kept": true}')
    _fresh(ctx, T1)
    prepare_workspace(ctx, T1, base_repo=ctx.root / "repo")
    assert json.loads(manifest.read_text()) == {"kept": True}


def test_remove_worktree(ctx: ExperimentContext) -> None:
    _fresh(ctx, T1)
    repo = ctx.root / "repo"
    info = prepare_workspace(ctx, T1, base_repo=repo)
    remove_worktree(repo, info.workspace, info.branch)
    assert not info.workspace.exists()
    assert str(info.workspace) not in _git(repo, "worktree", "list")
    assert _git(repo, "branch", "--list", _branch(ctx, T1)) == ""
    remove_worktree(repo, info.workspace, info.branch)  # twice is harmless


def test_parallel_worktrees_on_one_base_repo_do_not_race(tmp_path: Path) -> None:
    # Concurrent `git worktree add`/`prune` on one repository race on .git/worktrees (seen in a
    # repair: "could not open .git/worktrees/workspace1/locked"); the repository lock serialises them.
    from concurrent.futures import ThreadPoolExecutor

    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=6,
        mix={"missing": 1.0},
        tiers_dir=TIERS,
    )
    ctx = load_context(gen.path, TIERS)
    keys = [RunKey("T0", s, n) for s in ("00", "01") for n in range(1, 7)]

    def setup(key: RunKey) -> str:
        archive_run(ctx.layout, key, ctx.root / "repo")
        return prepare_workspace(ctx, key, base_repo=ctx.root / "repo").branch

    with ThreadPoolExecutor(max_workers=8) as pool:
        branches = list(pool.map(setup, keys))
    assert sorted(branches) == sorted(_branch(ctx, k) for k in keys)
    listed = _git(ctx.root / "repo", "worktree", "list")
    assert all(str(ctx.layout.run_dir(k) / "workspace") in listed for k in keys)


def test_a_finished_runs_worktree_is_released_as_its_siblings_were(tmp_path: Path):
    """ProjectScylla removes a finished run's worktree (WORKTREE_CLEANED) and keeps its branch:
    with siblings that have no workspace/ the checkout goes; with siblings that kept theirs only
    the registration goes."""
    from operations.release import release_worktree

    gen = generate_experiment(
        tmp_path / "exp", tiers=["T1"], subtests_per_tier=1, runs_per_subtest=2, tiers_dir=TIERS
    )
    ctx = load_context(gen.path, TIERS)
    base = gen.path / "repo"
    key = RunKey("T1", "01", 1)
    sibling = ctx.layout.run_dir(RunKey("T1", "01", 2))

    def registered() -> int:
        listing = subprocess.run(["git", "-C", str(base), "worktree", "list"], capture_output=True, text=True)
        return len(listing.stdout.splitlines())

    def prepared() -> Path:
        archive_run(ctx.layout, key, base)
        info = prepare_workspace(ctx, key, base_repo=base)
        assert registered() == 2
        return info.workspace

    (sibling / "run_result.json").write_text("{}")  # a finished sibling that kept its workspace/
    assert (sibling / "workspace").is_dir()
    workspace = prepared()
    release_worktree(ctx.layout, key, base)
    assert registered() == 1 and workspace.is_dir() and not (workspace / ".git").exists()

    shutil.rmtree(sibling / "workspace")  # its harness removed it
    workspace = prepared()
    branch = subprocess.run(
        ["git", "-C", str(workspace), "branch", "--show-current"], capture_output=True, text=True
    )
    release_worktree(ctx.layout, key, base)
    assert registered() == 1 and not workspace.exists()
    branches = subprocess.run(
        ["git", "-C", str(base), "branch", "--list"], capture_output=True, text=True
    ).stdout
    assert branch.stdout.strip() in branches  # the agent's work stays reachable
    release_worktree(ctx.layout, key, base)  # nothing left to release: a no-op


def test_a_worktree_add_killed_midway_does_not_block_the_next_attempt(tmp_path: Path):
    """SIGKILL during `git worktree add` leaves a registration locked "initializing": the next
    attempt unlocks it (its own path only), prunes it and deletes the branch it held."""
    gen = generate_experiment(
        tmp_path / "exp", tiers=["T1"], subtests_per_tier=1, runs_per_subtest=1, tiers_dir=TIERS
    )
    ctx = load_context(gen.path, TIERS)
    base = gen.path / "repo"
    key = RunKey("T1", "01", 1)
    archive_run(ctx.layout, key, base)
    info = prepare_workspace(ctx, key, base_repo=base)
    subprocess.run(
        ["git", "-C", str(base), "worktree", "lock", "--reason", "initializing", str(info.workspace)],
        check=True,
    )
    shutil.rmtree(info.run_dir)  # the killed attempt's dir is gone (archived or removed)
    again = prepare_workspace(ctx, key, base_repo=base)
    assert (again.workspace / ".git").is_file()
