"""SIGKILL at 20 seeded random instants across agents, judges and finalize, then one resume
(issue 16): every run completed, no finished agent started again, every JSON file readable.

The CLI runs as a real process on the test run's shared Prefect server (``prefect_server_url``):
it pays no temporary-server start, and this long test runs beside the truthful-states module
(its own server, one worker) instead of after it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from simulation.claude_log import runs
from simulation.messages_server import MessagesServer, ServerBehavior
from tests.integration.services import prefect_env, wait_for
from tests.integration.test_crash_resume import _running, assert_every_json_parses, with_suppressed
from tests.integration.test_truthful_states import RERUN_AGENTS, cli_env, make_experiment, repair_argv

pytestmark = [pytest.mark.integration]


def kill_once(argv: list[str], env: dict[str, str], log: Path, judges: MessagesServer, delay: float):
    """Start the repair, wait until it works (an agent starts or a judge is asked), SIGKILL it
    ``delay`` s later; returns ``delay``, or None when the repair ended before working."""
    agents_before = len(runs(log)) if log.exists() else 0
    judged_before = judges.stats()["requests"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            started = len(runs(log)) if log.exists() else 0
            if started > agents_before or judges.stats()["requests"] > judged_before:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            return None
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        with_suppressed(lambda: os.killpg(proc.pid, signal.SIGKILL))
        proc.wait(timeout=30)
    alive = [r["pid"] for r in runs(log) if r["exit_code"] is None and _running(r["pid"])]
    wait_for(lambda: not [p for p in alive if _running(p)], 5, "the killed repair's agents to die")
    return delay


@pytest.mark.skipif(not RERUN_AGENTS.exists(), reason="console script not installed")
def test_sigkill_at_20_random_instants_then_resume(prefect_server_url, tmp_path):
    seed = int(os.environ.get("SCYLLA_KILL_SEED", str(random.SystemRandom().randrange(10**6))))
    print(f"\nSIGKILL instants seed: {seed} (rerun with SCYLLA_KILL_SEED={seed})")
    rng = random.Random(seed)
    # Enough work for 20 kills on a fast machine: each kill lets about 1.5 runs finish (at most
    # ~4), so 28 runs ran out after 19 kills on a quiet machine; the rest is the resume's.
    exp = make_experiment(tmp_path, 44, {"failed": 0.5, "missing": 0.5}, seed=seed % 97)
    log = tmp_path / "fake-claude.log"
    with MessagesServer(ServerBehavior(latency=0.3, seed=seed)) as judges:
        base = prefect_env(tmp_path / "prefect-home", prefect_server_url)
        env = cli_env(base, judges, tmp_path, FAKE_CLAUDE_DELAY="1.0")
        argv = repair_argv(exp, "--max-concurrent", "2")
        kills = []
        for _ in range(20):
            delay = kill_once(argv, env, log, judges, rng.uniform(0.0, 2.5))
            if delay is None:  # nothing left to do: the repair finished between kills
                break
            kills.append(round(delay, 2))
            assert_every_json_parses(exp)
        print(f"killed {len(kills)} times, {kills} s after work began")
        assert len(kills) == 20, "the repair finished before the 20th kill: give it more runs"
        done = subprocess.run(argv + ["--json"], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    statuses = json.loads(
        subprocess.run(
            argv + ["--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=120
        ).stdout
    )
    assert {r["status"] for r in statuses["runs"]} == {"completed"}
    finished: dict[str, int] = {}
    for r in runs(log):
        if r["exit_code"] == 0:
            label = "/".join(Path(r["cwd"]).relative_to(exp).parts[:3])
            finished[label] = finished.get(label, 0) + 1
    assert set(finished.values()) == {1}, {k: v for k, v in finished.items() if v > 1}
    assert_every_json_parses(exp)
