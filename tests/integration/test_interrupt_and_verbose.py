"""Issue 12: a long repair as the person at the terminal lives it.

* Ctrl+C (SIGINT to the process group, as a terminal sends it) at several instants of a 30-run
  repair: every run whose agent had not started keeps its status and its files byte for byte,
  ``.failed/`` gains only attempts of runs whose agent started, a run stopped mid-agent is
  ``partial``, and the same command then finishes the repair.
* ``-v`` tells our story at INFO (archive, worktree, agent argv and exit + failure class, judge
  calls and outcomes, checkpoint writes) without third-party DEBUG; ``-vv`` brings that too.

The processes are the real console script on the test run's shared Prefect server (harness shared
with ``test_crash_resume``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from simulation.claude_log import runs
from simulation.messages_server import MessagesServer, ServerBehavior
from tests.integration.test_crash_resume import Repairs, make_experiment, with_suppressed
from tests.integration.test_crash_resume import pytestmark as pytestmark  # skip without the console script


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="module")
def judge_server():
    with MessagesServer(ServerBehavior(latency=0.2)) as server:
        yield server


def run_digests(exp: Path) -> dict[str, dict[str, str]]:
    """Every run dir's content: run label -> {relative path: sha256 of its bytes ("" for a dir)}."""
    digests = {}
    for run_dir in sorted(exp.glob("T*/*/run_*")):
        digests[str(run_dir.relative_to(exp))] = {
            str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            if path.is_file() and not path.is_symlink()
            else ""
            for path in sorted(run_dir.rglob("*"))
        }
    return digests


def differences(old: dict[str, str] | None, new: dict[str, str] | None) -> list[str]:
    old, new = old or {}, new or {}
    return sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))


def agent_events(repairs: Repairs) -> list[dict]:
    return [
        dict(r, run="/".join(Path(r["cwd"]).relative_to(repairs.exp).parts[:3])) for r in runs(repairs.log)
    ]


def stopped_agents(exp: Path) -> dict[str, tuple[int, int]]:
    """Runs whose agent the repair spawned and then stopped (it records ``agent/interrupted.log``),
    with that record's inode and mtime: a run stopped again writes a new one (atomically: a new
    inode), with the same bytes when both agents were stopped before printing anything."""
    return {
        str(p.relative_to(exp).parents[1]): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in exp.glob("T*/*/run_*/agent/interrupted.log")
    }


def interrupt(repairs: Repairs, what: str, when) -> None:
    """Start the repair, SIGINT it once ``when()`` holds, and check what the stop left."""
    statuses, files = repairs.statuses(), run_digests(repairs.exp)
    archived, seen = repairs.archived(), len(agent_events(repairs))
    stopped_before = stopped_agents(repairs.exp)
    proc = repairs.start()
    repairs.wait_for(proc, what, when)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        with_suppressed(lambda: os.killpg(proc.pid, signal.SIGKILL))
    assert proc.returncode == 130, err[-3000:]
    repairs.assert_no_agent_left()

    events = agent_events(repairs)[seen:]
    # Started: the fake agent logged its start, or the repair spawned it and recorded the stop
    # (an agent killed within its first few hundred ms never gets to log its start).
    spawned = {
        run for run, record in stopped_agents(repairs.exp).items() if stopped_before.get(run) != record
    }
    started = {e["run"] for e in events} | spawned
    after, now = repairs.statuses(), run_digests(repairs.exp)
    for run in statuses:
        if run not in started:
            assert after[run] == statuses[run], (what, run, err[-4000:])
            changed = differences(files.get(run), now.get(run))
            assert not changed, (what, run, "files changed but its agent never started", changed[:20])
    new_archives = repairs.archived() - archived
    assert {
        "/".join(a.replace("/.failed/", "/").split("/")[:3]).split("_failed_")[0] for a in new_archives
    } <= started
    for event in events:
        if event["exit_code"] != 0:  # stopped mid-agent
            assert after[event["run"]] == "partial", (what, event["run"], after[event["run"]])
    for run in spawned:
        assert after[run] == "partial", (what, run, after[run])


def test_ctrl_c_at_several_instants_leaves_unstarted_runs_alone(
    tmp_path, prefect_home, judge_server, prefect_server_url
):
    exp = make_experiment(
        tmp_path, {"missing": 0.5, "failed": 0.3, "partial": 0.2}, runs_per_subtest=30, seed=12
    )
    repairs = Repairs(exp, tmp_path, prefect_home, judge_server, prefect_server_url)
    repairs.env["FAKE_CLAUDE_DELAY"] = "1.5"
    argv = repairs.argv
    repairs.argv = lambda *extra: (
        [a for a in argv(*extra) if a not in ("--max-concurrent", "1")]
        + [
            "--max-concurrent",
            "4",
        ]
    )
    lock = exp / ".prefect" / "repair.lock"

    interrupt(repairs, "the repair lock to be taken", lambda: lock.exists() and lock.stat().st_size > 0)
    interrupt(repairs, "an agent to start", repairs.agents_running)
    finished = repairs.agents_finished()
    interrupt(repairs, "six more agents to finish", lambda: repairs.agents_finished() >= finished + 6)
    # Resuming after a Ctrl+C is test_crash_resume's; this test stops here to stay short.


STORY = [
    "Archived T0/00/run_01 to",
    "Worktree of T0/00/run_01:",
    "Agent of T0/00/run_01: ",
    "Agent of T0/00/run_01 exited 1 after",
    "agent_failed",
    "Judge 01 (",
    "of T0/00/run_02: valid, score",
    "Checkpoint written:",
]


def test_story_at_v_and_only_vv_adds_library_debug(tmp_path, prefect_home, judge_server, prefect_server_url):
    exp = make_experiment(tmp_path, {"failed": 1.0}, runs_per_subtest=2, seed=3)
    repairs = Repairs(exp, tmp_path, prefect_home, judge_server, prefect_server_url)
    repairs.env["FAKE_CLAUDE_DELAY"] = "0"
    script = tmp_path / "script.json"
    script.write_text('{"rules": [{"match": "/run_01", "modes": ["fail"]}], "default": "success"}')
    repairs.env["FAKE_CLAUDE_SCRIPT"] = str(script)

    result = repairs.run("-v")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    for line in STORY:
        assert line in result.stderr, f"{line!r} missing from -v:\n{result.stderr[-5000:]}"
    assert "Agent of T0/00/run_01: " in result.stderr and "--print" in result.stderr
    assert "test-key-not-a-secret" not in result.stderr + result.stdout
    debug = [line for line in result.stderr.splitlines() if "DEBUG" in line]
    assert not debug, debug[:10]
    assert "[agent T0/00/run_01]" in result.stderr  # our lines name the task run they belong to

    start = time.monotonic()
    result = repairs.run("-vv")
    assert result.returncode == 1, result.stderr[-3000:]
    ours = ("prefect", "experiment", "operations", "tasks", "flows", "cli")
    library_debug = [
        line
        for line in result.stderr.splitlines()
        if "DEBUG" in line and not any(f" {o}" in line for o in ours)
    ]
    assert library_debug, result.stderr[-3000:]
    assert time.monotonic() - start < 240
