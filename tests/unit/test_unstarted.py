"""A repair ended by Ctrl+C around a run's agent start (``operations.unstarted``): each run ends as
what really happened to it, whoever settles it (the run's own thread or ``put_back_all``, the
CLI's last act before a stuck process exits).

* its agent was spawned: the stop is recorded (``interrupted.log``) and the run is ``partial``;
* its agent never ran: it is put back exactly as it was, its archived attempt back in place and
  nothing left under ``.failed/``;
* a thread in the middle of changing the run's files is waited for, and changes nothing after;
* a run registered but not yet archived is left alone.

Each case was a failure of the Ctrl+C test of ``tests/integration/test_interrupt_and_verbose.py``
under load before its fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiment.layout import ExperimentLayout, RunKey
from experiment.status import RunStatus, classify_run
from operations.agent import process
from operations.agent.command import AgentSettings
from operations.agent.process import AgentInterrupted, execute
from operations.agent.run import INTERRUPTED_NOTE
from operations.archive import archive_run
from operations.unstarted import DISCARDED_DIR, changing, preparing, put_back_all
from simulation.generator import generate_experiment

KEY = RunKey("T0", "00", 1)


def files_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def experiment(tmp_path: Path):
    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=1,
        mix={"failed": 1.0},
        with_base_repo=True,
    )
    return gen, ExperimentLayout(gen.path)


def new_attempt(layout: ExperimentLayout) -> Path:
    """The fresh run dir a workspace step leaves: prompt and command log, no agent output."""
    agent_dir = layout.run_dir(KEY) / "agent"
    agent_dir.mkdir(parents=True)
    (agent_dir / "prompt.md").write_text("task\n")
    (agent_dir / "command_log.json").write_text('{"commands": []}')
    return agent_dir


def archive(preparation, layout: ExperimentLayout, repo: Path) -> Path:
    with changing(layout.run_dir(KEY)) as held:
        assert held is preparation
        archived_to = archive_run(layout, KEY, repo)
        preparation.archived(archived_to)
    return archived_to


@pytest.fixture
def stop_flag():
    """The process-wide stop flag of a Ctrl+C, cleared again for the next test."""
    process._STOPPED.set()
    yield
    process._STOPPED.clear()


def test_a_spawned_agent_is_recorded_as_interrupted(experiment) -> None:
    gen, layout = experiment
    with preparing(layout, KEY, gen.path / "repo") as preparation:
        archived_to = archive(preparation, layout, gen.path / "repo")
        agent_dir = new_attempt(layout)
        execute(  # this process started the agent (it printed, then the process was ended)
            [sys.executable, "-c", "print('working')"],
            agent_dir,
            dict(os.environ),
            AgentSettings(),
            agent_dir / "stdout.live.log",
            agent_dir / "stderr.live.log",
        )
        assert put_back_all() == 0
    assert (agent_dir / "interrupted.log").read_text().startswith("working\n")
    assert INTERRUPTED_NOTE in (agent_dir / "interrupted.log").read_text()
    assert classify_run(layout.run_dir(KEY)).status is RunStatus.PARTIAL
    assert archived_to.exists()  # the old attempt stays archived: a new one ran


def test_a_command_log_without_an_agent_is_put_back(experiment) -> None:
    gen, layout = experiment
    before = files_of(layout.run_dir(KEY))
    with preparing(layout, KEY, gen.path / "repo") as preparation:
        archived_to = archive(preparation, layout, gen.path / "repo")
        new_attempt(layout)
        assert put_back_all() == 1
    assert not archived_to.exists() and not any(archived_to.parent.iterdir())
    assert files_of(layout.run_dir(KEY)) == before
    assert classify_run(layout.run_dir(KEY)).status is RunStatus.FAILED  # as it was
    assert not any((layout.prefect_dir / DISCARDED_DIR).iterdir())  # the fresh dir is gone


def test_a_run_being_written_is_waited_for_and_then_left_alone(experiment) -> None:
    """At a forced exit the run's own thread may be in its workspace step (a worktree being
    checked out): the put-back waits for that change to end, puts the run back, and the thread
    then changes nothing more (one rmtree raced it before, and the failed run read ``missing``)."""
    gen, layout = experiment
    before = files_of(layout.run_dir(KEY))
    run_dir = layout.run_dir(KEY)
    inside, refused = threading.Event(), []

    def workspace_step(preparation) -> None:
        with changing(run_dir):
            inside.set()
            for n in range(30):  # a checkout that takes a moment
                (run_dir / "workspace").mkdir(parents=True, exist_ok=True)
                (run_dir / "workspace" / f"f{n}").write_text("x")
                time.sleep(0.01)
        deadline = time.monotonic() + 5  # Prefect's bookkeeping between two steps
        while not preparation.settled and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            with changing(run_dir):  # its next step (the agent's command log)
                (run_dir / "agent").mkdir(exist_ok=True)
        except AgentInterrupted:
            refused.append(True)

    with preparing(layout, KEY, gen.path / "repo") as preparation:
        archived_to = archive(preparation, layout, gen.path / "repo")
        writer = threading.Thread(target=workspace_step, args=(preparation,))
        writer.start()
        inside.wait(5)
        assert put_back_all() == 1
        writer.join()
    assert refused == [True]
    assert not archived_to.exists()
    assert files_of(run_dir) == before
    assert classify_run(run_dir).status is RunStatus.FAILED  # as it was


def test_a_second_put_back_of_the_same_run_changes_nothing(experiment) -> None:
    """The run's thread and the CLI's exit path may both put a run back: the second must not
    take the restored attempt for a fresh dir and delete it (an old attempt without a command
    log, e.g. one killed before its agent step, looked exactly like that)."""
    gen, layout = experiment
    (layout.run_dir(KEY) / "agent" / "command_log.json").unlink()
    with preparing(layout, KEY, gen.path / "repo") as preparation:
        archive(preparation, layout, gen.path / "repo")
        new_attempt(layout)
        assert preparation.settle(thorough=True) is True
        restored = files_of(layout.run_dir(KEY))
        assert put_back_all() == 0
    assert files_of(layout.run_dir(KEY)) == restored


def test_a_run_not_yet_archived_is_left_alone(experiment) -> None:
    """Registered, the stop came before its archive: its files are the old attempt's, and the
    archive that follows is refused."""
    gen, layout = experiment
    before = files_of(layout.run_dir(KEY))
    with preparing(layout, KEY, gen.path / "repo"):
        assert put_back_all() == 0
        with pytest.raises(AgentInterrupted), changing(layout.run_dir(KEY)):
            archive_run(layout, KEY, gen.path / "repo")
    assert files_of(layout.run_dir(KEY)) == before


def test_no_run_registers_once_a_stop_was_asked_for(experiment, stop_flag) -> None:
    """``put_back_all`` looks once: a run registering after the stop would be archived unseen."""
    gen, layout = experiment
    with pytest.raises(AgentInterrupted), preparing(layout, KEY, gen.path / "repo"):
        pass


def test_the_thread_put_back_removes_the_fresh_worktree_and_only_its_branch(experiment) -> None:
    """The fresh worktree's branch is read from its files (``<id>_T0_00_run_01`` for a rerun):
    the bare ``T0_00_run_01`` of another experiment sharing the repository stays."""
    gen, layout = experiment
    repo = gen.path / "repo"
    with preparing(layout, KEY, repo) as preparation:
        archive(preparation, layout, repo)
        new_attempt(layout)
        git = ["git", "-C", str(repo)]
        subprocess.run([*git, "branch", "T0_00_run_01"], check=True, capture_output=True)
        subprocess.run(
            [
                *git,
                "worktree",
                "add",
                "-q",
                "-b",
                "abcd1234_T0_00_run_01",
                str(layout.run_dir(KEY) / "workspace"),
            ],
            check=True,
            capture_output=True,
        )
        assert preparation.settle(thorough=True) is True
    branches = subprocess.run([*git, "branch", "--list"], capture_output=True, text=True, check=True).stdout
    assert "abcd1234_T0_00_run_01" not in branches and "T0_00_run_01" in branches
    worktrees = subprocess.run([*git, "worktree", "list"], capture_output=True, text=True, check=True).stdout
    assert str(layout.run_dir(KEY)) not in worktrees


def test_a_retried_attempt_stopped_before_its_spawn_is_put_back(experiment) -> None:
    """The agent step ran once (this process spawned it), failed and was retried: the retry
    archived that attempt and was stopped before its own spawn. The earlier spawn says nothing
    about the new attempt: it is put back, the attempt that ran back in place."""
    gen, layout = experiment
    with preparing(layout, KEY, gen.path / "repo") as preparation:
        first_archive = archive(preparation, layout, gen.path / "repo")
        agent_dir = new_attempt(layout)
        execute(
            [sys.executable, "-c", "print('rate limited')"],
            agent_dir,
            dict(os.environ),
            AgentSettings(),
            agent_dir / "stdout.live.log",
            agent_dir / "stderr.live.log",
        )
        ran = files_of(layout.run_dir(KEY))
        retry_archive = archive(preparation, layout, gen.path / "repo")
        new_attempt(layout)
        assert put_back_all() == 1
    assert files_of(layout.run_dir(KEY)) == ran
    assert not (layout.run_dir(KEY) / "agent" / "interrupted.log").exists()
    assert first_archive.exists() and not retry_archive.exists()
