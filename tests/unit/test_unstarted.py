"""A repair ended by Ctrl+C while a run's agent step had begun (``put_back_all``, the CLI's last
act before a stuck process exits): each run ends as what really happened to it.

* its agent was spawned: the stop is recorded (``interrupted.log``) and the run is ``partial``;
* only its command log was written (no agent ever ran): it is put back exactly as it was,
  its archived attempt back in place and nothing left under ``.failed/``.

Before, both were left ``partial`` without a record, so a run whose agent never started looked
started (found by the Ctrl+C test of ``tests/integration/test_interrupt_and_verbose.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from experiment.layout import ExperimentLayout, RunKey
from experiment.status import RunStatus, classify_run
from operations.agent.command import AgentSettings
from operations.agent.process import execute
from operations.agent.run import INTERRUPTED_NOTE
from operations.archive import archive_run
from operations.unstarted import preparing, put_back_all, put_back_unstarted
from simulation.generator import generate_experiment

KEY = RunKey("T0", "00", 1)


@pytest.fixture
def archived(tmp_path: Path):
    """A failed run archived by a repair, its new run dir prepared and its command log written."""
    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=1,
        mix={"failed": 1.0},
        with_base_repo=True,
    )
    layout = ExperimentLayout(gen.path)
    archived_to = archive_run(layout, KEY, gen.path / "repo")
    agent_dir = layout.run_dir(KEY) / "agent"
    agent_dir.mkdir(parents=True)
    (agent_dir / "prompt.md").write_text("task\n")
    (agent_dir / "command_log.json").write_text('{"commands": []}')
    return gen, layout, archived_to, agent_dir


def test_a_spawned_agent_is_recorded_as_interrupted(archived) -> None:
    gen, layout, archived_to, agent_dir = archived
    execute(  # this process started the agent (it printed, then the process was ended)
        [sys.executable, "-c", "print('working')"],
        agent_dir,
        dict(os.environ),
        AgentSettings(),
        agent_dir / "stdout.live.log",
        agent_dir / "stderr.live.log",
    )
    with preparing(layout, KEY, gen.path / "repo", archived_to):
        assert put_back_all() == 0
    assert (agent_dir / "interrupted.log").read_text().startswith("working\n")
    assert INTERRUPTED_NOTE in (agent_dir / "interrupted.log").read_text()
    assert classify_run(layout.run_dir(KEY)).status is RunStatus.PARTIAL
    assert Path(archived_to).exists()  # the old attempt stays archived: a new one ran


def test_a_command_log_without_an_agent_is_put_back(archived) -> None:
    gen, layout, archived_to, agent_dir = archived
    with preparing(layout, KEY, gen.path / "repo", archived_to):
        assert put_back_all() == 1
    assert not Path(archived_to).exists()
    assert classify_run(layout.run_dir(KEY)).status is RunStatus.FAILED  # as it was
    assert not (layout.run_dir(KEY) / "agent" / "command_log.json").read_text().startswith('{"commands": []}')


def test_a_run_still_being_written_is_put_back_all_the_same(archived) -> None:
    """At a forced exit the run's own thread may still be writing its new attempt (a worktree
    being checked out): the put-back waits for the dir to stay removed, then moves the archived
    attempt back (one rmtree left the dir, and the failed run read ``missing``)."""
    gen, layout, archived_to, agent_dir = archived
    (agent_dir / "command_log.json").unlink()  # still preparing: no agent step yet
    run_dir = layout.run_dir(KEY)
    stop = threading.Event()

    def checkout() -> None:  # a writer that keeps adding files for a moment
        deadline = time.monotonic() + 0.3
        n = 0
        while time.monotonic() < deadline and not stop.is_set():
            with contextlib.suppress(OSError):
                (run_dir / "workspace").mkdir(parents=True, exist_ok=True)
                (run_dir / "workspace" / f"f{n}").write_text("x")
            n += 1

    writer = threading.Thread(target=checkout)
    writer.start()
    try:
        with preparing(layout, KEY, gen.path / "repo", archived_to):
            assert put_back_all() == 1
    finally:
        stop.set()
        writer.join()
    assert not Path(archived_to).exists()
    assert classify_run(run_dir).status is RunStatus.FAILED  # as it was


def test_a_second_put_back_of_the_same_run_changes_nothing(archived) -> None:
    """The run's thread and the CLI's exit path may both put a run back: the second must not
    take the restored attempt for a fresh dir and delete it (an old attempt without a command
    log, e.g. one killed before its agent step, looked exactly like that)."""
    gen, layout, archived_to, agent_dir = archived
    (Path(archived_to) / "agent" / "command_log.json").unlink()
    (agent_dir / "command_log.json").unlink()
    repo = gen.path / "repo"
    assert put_back_unstarted(layout, KEY, repo, archived_to)
    restored = sorted(p.name for p in layout.run_dir(KEY).rglob("*"))
    assert not put_back_unstarted(layout, KEY, repo, archived_to)
    assert sorted(p.name for p in layout.run_dir(KEY).rglob("*")) == restored
