"""Scenario 1 of the users' guide: a crash, a Ctrl+C or a reboot is a non-event.

``rerun-agents EXP`` runs here as a real process (the console script, on Prefect's temporary
server, with the fake ``claude`` on PATH and the local Messages server answering the judges).
It is killed with SIGKILL at each point of a run's repair, then run again; at the end:

* every run is completed (the dry run says so) and the checkpoint lists each of them;
* the fake agent's log shows that every agent which had finished was invoked exactly once;
* every ``*.json`` of the experiment parses (nothing half-written);
* every attempt archived under ``.failed/`` is still there;
* no agent outlived the process that started it.

The kill points are found by watching the outside world: the fake agent's log ("during an
agent"), the judge server's in-flight count ("during a judge"), and the test hook
``SCYLLA_REPAIR_TEST_PAUSE_AT`` (``experiment.attempt.pause_for_tests``), which makes the repair
sleep at a named point (before a judge, after regenerate wrote a run's results, while holding the
checkpoint writer lock) so the kill lands exactly there.

The CLI talks to the test run's shared ``prefect server start`` (``PREFECT_API_URL``), as a user's
CLI talks to its background server: the server lives in its own session, so a SIGKILL or Ctrl+C
of the repair's process group never reaches it. (Prefect's temporary per-command server, 6-10 s
per invocation, is what ``test_demo`` runs on.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simulation.claude_log import fake_claude_bin, runs
from simulation.generator import generate_experiment
from simulation.messages_server import MessagesServer, ServerBehavior

REPO = Path(__file__).resolve().parents[2]
TIERS = REPO / "tests" / "fixtures" / "scylla-tiers"
RERUN_AGENTS = Path(sys.executable).parent / "rerun-agents"
PHASE_TIMEOUT = 120.0

pytestmark = pytest.mark.skipif(not RERUN_AGENTS.exists(), reason="console script not installed")


# --------------------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    """The CLI's own PREFECT_HOME (settings, local caches): never the user's ``~/.prefect``."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="module")
def judge_server():
    """Judges take 1.5 s each, so "during a judge" is a wide window."""
    with MessagesServer(ServerBehavior(latency=1.5)) as server:
        yield server


class Repairs:
    """Starts, watches and kills ``rerun-agents`` processes on one experiment."""

    def __init__(
        self, exp: Path, root: Path, prefect_home: Path, server: MessagesServer, api_url: str
    ) -> None:
        """``api_url``: the Prefect server the CLI uses."""
        self.exp, self.root, self.server = exp, root, server
        self.log = root / "fake-claude.log"
        self.pause_dir = root / "paused"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "FAKE_CLAUDE"))}
        self.env.update(
            PATH=f"{fake_claude_bin()}{os.pathsep}{os.environ['PATH']}",
            ANTHROPIC_BASE_URL=server.url,
            ANTHROPIC_API_KEY="test-key-not-a-secret",
            FAKE_CLAUDE_LOG=str(self.log),
            FAKE_CLAUDE_DELAY="2",
            PREFECT_HOME=str(prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            SCYLLA_REPAIR_TEST_PAUSE_DIR=str(self.pause_dir),
            SCYLLA_REPAIR_TEST_PAUSE_SECONDS="300",
        )
        self.env["PREFECT_API_URL"] = api_url

    def argv(self, *extra: str) -> list[str]:
        return [str(RERUN_AGENTS), str(self.exp), "--tiers-dir", str(TIERS), "--max-concurrent", "1", *extra]

    def start(self, *, pause_at: str | None = None) -> subprocess.Popen:
        env = dict(self.env)
        if pause_at:
            env["SCYLLA_REPAIR_TEST_PAUSE_AT"] = pause_at
        for marker in self.pause_dir.glob("*"):
            marker.unlink()
        return subprocess.Popen(
            self.argv(),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group: the test can clean up the temporary server
        )

    def run(self, *extra: str, timeout: float = 240.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*extra), env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def wait_for(self, proc: subprocess.Popen, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while not condition():
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(
                    f"the repair ended (exit {proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.kill(proc)
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.05)

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the repair process only (as the OOM killer or a dead worker would), then
        reap its temporary Prefect server, which a hard crash leaves orphaned in its group."""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        with_suppressed(lambda: os.killpg(proc.pid, signal.SIGKILL))  # it holds our pipes too
        proc.communicate(timeout=30)
        self.assert_no_agent_left()

    def assert_no_agent_left(self) -> None:
        """No agent outlives its repair (PR_SET_PDEATHSIG / stop_agents in operations/agent/process.py)."""
        deadline = time.monotonic() + 5
        alive = [r["pid"] for r in runs(self.log) if r["exit_code"] is None and _running(r["pid"])]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [pid for pid in alive if _running(pid)]
        assert not alive, f"agent processes still running after the repair died: {alive}"

    # -- observations
    def agents_running(self) -> bool:
        return any(r["exit_code"] is None and _running(r["pid"]) for r in runs(self.log))

    def agents_finished(self) -> int:
        return sum(1 for r in runs(self.log) if r["exit_code"] == 0)

    def agents_recorded(self) -> bool:
        """Every agent that exited has had its results written (``agent/result.json``).

        The few hundred ms between the agent's exit and its files is the one window in which a
        kill loses a finished agent (its stdout lives in a pipe until then); the tests kill
        outside it, and the report says so."""
        done = [r for r in runs(self.log) if r["exit_code"] is not None]
        return all((Path(r["cwd"]).parent / "agent" / "result.json").exists() for r in done)

    def paused(self, point: str) -> bool:
        return (self.pause_dir / point).exists()

    def statuses(self) -> dict[str, str]:
        result = self.run("--dry-run", "--json")
        assert result.returncode == 0, result.stderr
        return {r["run"]: r["status"] for r in json.loads(result.stdout)["runs"]}

    def archived(self) -> set[str]:
        return {str(p.relative_to(self.exp)) for p in self.exp.glob("T*/*/.failed/*")}

    def finished_agent_invocations(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in runs(self.log):
            if r["exit_code"] == 0:
                label = "/".join(Path(r["cwd"]).relative_to(self.exp).parts[:3])
                counts[label] = counts.get(label, 0) + 1
        return counts


def with_suppressed(call: Callable[[], object]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        call()


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed agent reparented to an init that does not reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_every_json_parses(exp: Path) -> None:
    bad = []
    for path in exp.rglob("*.json"):
        if ".git" in path.parts:
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            bad.append(f"{path.relative_to(exp)}: {exc}")
    assert not bad, "half-written or invalid JSON files:\n" + "\n".join(bad)


def make_experiment(root: Path, mix: dict[str, float], runs_per_subtest: int, seed: int = 3) -> Path:
    return generate_experiment(
        root / "2026-01-20T06-13-07-crash",
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=runs_per_subtest,
        mix=mix,
        seed=seed,
        tiers_dir=TIERS,
    ).path


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_sigkill_at_every_step_then_resume(tmp_path, prefect_home, judge_server, prefect_server_url):
    """Kill -9 during an agent, between agent and judges, during a judge, after regenerate wrote
    a run's results, while writing the checkpoint; each time the same command resumes."""
    exp = make_experiment(tmp_path, {"failed": 0.5, "missing": 0.25, "results": 0.25}, runs_per_subtest=4)
    repairs = Repairs(exp, tmp_path, prefect_home, judge_server, prefect_server_url)
    before = repairs.statuses()
    needs_agent = sorted(
        label for label, status in before.items() if status in ("failed", "partial", "missing")
    )
    archived_seen = repairs.archived()

    def crash(what: str, condition: Callable[[], bool], pause_at: str | None = None) -> None:
        proc = repairs.start(pause_at=pause_at)
        repairs.wait_for(proc, what, condition)
        repairs.kill(proc)
        assert_every_json_parses(exp)
        archived = repairs.archived()
        assert archived_seen <= archived, f"archived attempts lost after a crash {what}"
        archived_seen.update(archived)

    finished = repairs.agents_finished()
    crash("during an agent", repairs.agents_running)
    crash(
        "between an agent and its judges",
        lambda: (
            repairs.paused("judge") and repairs.agents_finished() > finished and repairs.agents_recorded()
        ),
        pause_at="judge",
    )
    crash("during a judge", lambda: judge_server.stats()["in_flight"] > 0)
    crash("after regenerate, before the checkpoint", lambda: repairs.paused("finalize"), pause_at="finalize")
    crash("while writing the checkpoint", lambda: repairs.paused("checkpoint"), pause_at="checkpoint")

    result = repairs.run("--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(repairs.statuses().values()) == {"completed"}
    # An agent that finished was never invoked again; killed attempts are the only re-invocations.
    assert repairs.finished_agent_invocations() == {label: 1 for label in needs_agent}
    assert_every_json_parses(exp)
    assert archived_seen <= repairs.archived()
    checkpoint = json.loads((exp / "checkpoint.json").read_text())
    assert checkpoint["version"] == "3.1"
    assert checkpoint["status"] == "completed"
    for label in before:
        tier, subtest, run = label.split("/")
        number = str(int(run.removeprefix("run_")))
        assert checkpoint["completed_runs"][tier][subtest][number] in ("passed", "failed"), label
        assert checkpoint["run_states"][tier][subtest][number] == "report_written", label


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(
    tmp_path, prefect_home, judge_server, prefect_server_url
):
    exp = make_experiment(tmp_path, {"missing": 0.5, "failed": 0.5}, runs_per_subtest=2, seed=5)
    repairs = Repairs(exp, tmp_path, prefect_home, judge_server, prefect_server_url)
    repairs.env["FAKE_CLAUDE_DELAY"] = "30"
    proc = repairs.start()
    repairs.wait_for(proc, "an agent to start", repairs.agents_running)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl+C
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        with_suppressed(lambda: os.killpg(proc.pid, signal.SIGKILL))
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - started < 15
    assert "run the same command again to resume" in err
    assert len(err.strip().splitlines()) <= 3, err[-3000:]  # no pages of tracebacks
    repairs.assert_no_agent_left()  # the agent runs in its own session: stopped explicitly
    assert_every_json_parses(exp)

    repairs.env["FAKE_CLAUDE_DELAY"] = "1"
    result = repairs.run()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(repairs.statuses().values()) == {"completed"}


def test_one_repair_at_a_time_and_a_new_repair_is_not_served_stale_results(
    tmp_path, prefect_home, judge_server, prefect_server_url
):
    exp = make_experiment(tmp_path, {"missing": 0.5, "failed": 0.5}, runs_per_subtest=2, seed=7)
    repairs = Repairs(exp, tmp_path, prefect_home, judge_server, prefect_server_url)
    repairs.env["FAKE_CLAUDE_DELAY"] = "0.5"

    first = repairs.start(pause_at="judge")  # holds the experiment's repair lock while paused
    repairs.wait_for(
        first,
        "the first repair to reach a judge",
        lambda: repairs.paused("judge") and repairs.agents_finished() == 2 and repairs.agents_recorded(),
    )
    second = repairs.run()
    repairs.kill(first)
    assert second.returncode == 2, second.stderr[-3000:]
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr[-3000:]
    assert "Another repair is already running on this experiment" in lines[0]

    result = repairs.run()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(repairs.statuses().values()) == {"completed"}
    counts = repairs.finished_agent_invocations()
    assert set(counts.values()) == {1}

    # A deliberate new repair: the user deletes a completed run. Its agent must really run
    # again (a new repair id and a new attempt id: no persisted result may answer for it).
    victim = sorted(counts)[0]
    shutil.rmtree(exp / victim)
    result = repairs.run()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert repairs.finished_agent_invocations()[victim] == 2
    assert set(repairs.statuses().values()) == {"completed"}
    assert_every_json_parses(exp)
