"""Past one machine: a PostgreSQL-backed Prefect server, two workers on one pool, a dead worker.

One PostgreSQL cluster and one ``prefect server start`` on it serve the whole module (started
here on 127.0.0.1, stopped here): the ``scylla-repair`` pool, ``prefect deploy --all`` from
``prefect.yaml``, the zombie automation (``deployments/zombies.py``) and two process workers
(``--limit 1``: one flow run each). The agent is the fake ``claude`` and the judges the local
Messages server, which counts requests in flight and per window; the fake agent logs every
invocation, so "no agent paid twice" is read from its log.

* ``test_cli_repair_sends_its_logs_to_the_server``: a CLI repair with PREFECT_API_URL set keeps
  its terminal quiet and still fills its flow run's log in the UI.
* ``test_two_workers_repair_two_experiments_within_the_provider_limits``: two experiments with
  the same directory name, one per worker, at once: the agent slots and the judge rate hold
  across both, no agent runs twice, each has its own artifacts and its log in the UI.
* ``test_a_killed_worker_crashes_its_run_frees_its_slots_and_the_rerun_finishes``: SIGKILL on a
  worker mid-repair: its flow run ends Crashed, its agent slots come back within the lease, and
  running the deployment again finishes the experiment without paying any agent twice.

Run alone with ``pytest -m postgres``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from experiment.scan import ScanFilters, load_context, scan_in_process
from simulation.claude_log import fake_claude_bin, peak_concurrency, runs, write_script
from simulation.generator import generate_experiment
from simulation.messages_server import MessagesServer, ServerBehavior
from tasks.artifacts import artifact_key
from tasks.limits import LEASE_SECONDS, ProviderLimits, provider_key
from tests.conftest import services_off
from tests.integration.services import (
    PrefectServer,
    postgres,
    prefect,
    prefect_server,
    process,
    wait_for,
)

# One worker runs the module (tests/conftest.py, ONE_WORKER_MODULES): its services are made once.
pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PROJECT = Path(__file__).resolve().parents[2]
TIERS = PROJECT / "tests" / "fixtures" / "scylla-tiers"
RERUN_AGENTS = Path(sys.executable).parent / "rerun-agents"
POOL = "scylla-repair"
DEPLOYMENT = "rerun-agents/rerun-agents"
NAME = "2026-01-20T06-13-07-scale"
"""Both experiments of the two-worker test have this directory name, under different roots."""
AGENTS = 2
"""Agent slots of the provider, shared by every repair (``--max-concurrent``)."""
WINDOW = 4.0
"""The provider's rate window in these tests (SCYLLA_RATE_WINDOW_SECONDS), instead of 60 s."""
RPM = 4
"""Judge requests per window allowed by the provider, across every repair: each repair alone may
send that many (its in-process window), so two at once exceed it unless they coordinate."""
ZOMBIE_WITHIN = 45.0
"""Seconds without a heartbeat (sent every 30 s, Prefect's minimum) before a run is Crashed."""
REPOSSESSOR_LOOP = 2.0
"""The server's expired-lease sweep (default 15 s), so the measured return is the lease's."""
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@dataclass
class Scale:
    """The module's services and what the tests need to drive them."""

    root: Path
    server: PrefectServer
    judges: MessagesServer
    script: Path
    agent_log: Path
    worker_env: dict[str, str]
    stack: ExitStack
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def start_worker(self, name: str) -> subprocess.Popen:
        args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"]
        proc = self.stack.enter_context(
            process([*args, "--name", name, "--limit", "1"], self.worker_env, self.logs / f"{name}.log")
        )
        self.workers[name] = proc
        return proc

    def worker_log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def ran(self, worker: str, flow_run_id: str) -> bool:
        """The worker started the flow run (both try to submit it; the slower one is aborted)."""
        log = self.worker_log(worker)
        return (
            f"submitting flow run '{flow_run_id}'" in log
            and f"Aborted submission of flow run '{flow_run_id}'" not in log
        )

    def run_deployment(self, exp: Path, **parameters) -> str:
        args = ["deployment", "run", DEPLOYMENT, "--param", f"experiment_dir={json.dumps(str(exp))}"]
        for key, value in {"tiers_dir": str(TIERS), "max_concurrent": AGENTS, **parameters}.items():
            args += ["--param", f"{key}={json.dumps(value)}"]
        out = prefect(self.server.env, *args)
        return re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1)

    def flow_run(self, api: httpx.Client, flow_run_id: str) -> dict:
        return api.get(f"/flow_runs/{flow_run_id}").json()

    def wait_final(self, api: httpx.Client, flow_run_id: str, timeout: float = 240) -> dict:
        def final():
            dead = [n for n, p in self.workers.items() if p.poll() is not None and n not in self.killed]
            assert not dead, f"worker {dead[0]} died:\n{self.worker_log(dead[0])[-3000:]}"
            run = self.flow_run(api, flow_run_id)
            return run if run["state"]["type"] in FINAL else None

        return wait_for(final, timeout, f"flow run {flow_run_id}", interval=1)

    killed: set[str] = field(default_factory=set)


# Module scope: the module's tests run on one worker, one after the other (ONE_WORKER_MODULES:
# xdist sends them as one unit), so the services are made once and stopped once the module ends.
@pytest.fixture(scope="module")
def scale(tmp_path_factory) -> Iterator[Scale]:
    """PostgreSQL, a Prefect server on it, the pool, the deployments and the judges; workers are
    started by the tests (and, entered last, stopped first)."""
    root = tmp_path_factory.mktemp("scale")
    (root / "logs").mkdir()
    timings = {}
    started = time.monotonic()
    with ExitStack() as stack:
        cluster = stack.enter_context(postgres())
        timings["postgres"] = time.monotonic() - started
        server = stack.enter_context(
            prefect_server(
                root / "prefect-home",
                root / "logs" / "server.log",
                cluster.url,
                PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS=str(REPOSSESSOR_LOOP),
                # Nothing here reads stored events (the zombie automation's triggers read the
                # event stream), and no schedule is due: see tests/conftest.QUIET_SERVER_SERVICES.
                **services_off("EVENT_PERSISTER", "SCHEDULER"),
            )
        )
        timings["server"] = time.monotonic() - started
        # The zombie automation (once per server) is created while the deployments are.
        zombies = subprocess.Popen(
            [sys.executable, "-m", "deployments.zombies", "--within", str(ZOMBIE_WITHIN)],
            env=server.env,
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            prefect(server.env, "work-pool", "create", POOL, "--type", "process")
            deployed = prefect(server.env, "--no-prompt", "deploy", "--all", timeout=240)
            assert DEPLOYMENT in deployed, deployed
            # prefect.yaml runs one manual repair at a time; two workers need two.
            prefect(server.env, "--no-prompt", "deploy", "-n", "rerun-agents", "--concurrency-limit", "2")
            out, _ = zombies.communicate(timeout=120)
        finally:
            kill_if_running(zombies)
        assert zombies.returncode == 0, out
        timings["deployed"] = time.monotonic() - started
        judges = stack.enter_context(MessagesServer(ServerBehavior(latency=0.3)))
        script = write_script(root / "claude-script.json", [], default="slow_success")
        agent_log = root / "fake-claude.log"
        worker_env = dict(
            server.env,
            PATH=f"{fake_claude_bin()}{os.pathsep}{server.env['PATH']}",
            ANTHROPIC_BASE_URL=judges.url,
            ANTHROPIC_API_KEY="test-key-not-a-secret",
            FAKE_CLAUDE_LOG=str(agent_log),
            FAKE_CLAUDE_SCRIPT=str(script),
            FAKE_CLAUDE_SLOW_DELAY="1.5",
            SCYLLA_RATE_WINDOW_SECONDS=str(WINDOW),
        )
        print(f"\nscale-out setup: {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}")
        yield Scale(root, server, judges, script, agent_log, worker_env, stack)


def kill_if_running(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def make_experiment(parent: Path, runs_per_subtest: int, seed: int, mix: dict[str, float]) -> Path:
    return generate_experiment(
        parent / NAME,
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=runs_per_subtest,
        mix=mix,
        seed=seed,
        tiers_dir=TIERS,
    ).path


def needs_agent(exp: Path) -> list[str]:
    report = scan_in_process(load_context(exp, TIERS), ScanFilters())
    return sorted(e.run for e in report.entries if e.status.needs_agent)


def fully_repaired(exp: Path) -> bool:
    after = scan_in_process(load_context(exp, TIERS), ScanFilters())
    return after.counts["completed"] == after.total_expected


def finished_agents(log: Path, exp: Path) -> dict[str, int]:
    """Agents that ran to the end, per run of ``exp``: what the provider was paid for."""
    counts: dict[str, int] = {}
    for r in runs(log):
        cwd = Path(r["cwd"])
        if r["exit_code"] == 0 and cwd.is_relative_to(exp):
            label = "/".join(cwd.relative_to(exp).parts[:3])
            counts[label] = counts.get(label, 0) + 1
    return counts


def flow_run_logs(api: httpx.Client, flow_run_id: str) -> list[dict]:
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
    return api.post("/logs/filter", json=body).json()


def max_per_window(times: list[float], window: float) -> int:
    """Most requests in any sliding window of ``window`` seconds."""
    times = sorted(times)
    most, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        most = max(most, i - j + 1)
    return most


def agent_slots(api: httpx.Client, base_url: str) -> int:
    name = ProviderLimits(provider_key(base_url), AGENTS).agents_name
    return api.get(f"/v2/concurrency_limits/{name}").json()["active_slots"]


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.skipif(not RERUN_AGENTS.exists(), reason="console script not installed")
def test_cli_repair_sends_its_logs_to_the_server(scale: Scale, tmp_path: Path):
    exp = make_experiment(tmp_path / "cli", 2, seed=3, mix={"failed": 0.5, "results": 0.5})
    # As a user runs it: PREFECT_API_URL set, Prefect's log level left alone.
    env = {k: v for k, v in scale.worker_env.items() if k != "PREFECT_LOGGING_LEVEL"}
    done = subprocess.run(
        [str(RERUN_AGENTS), str(exp), "--tiers-dir", str(TIERS), "--max-concurrent", str(AGENTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The terminal: the summary, no Prefect INFO chatter.
    assert " | INFO " not in done.stderr, done.stderr[-3000:]
    with scale.server.client() as api:
        found = api.post(
            "/flow_runs/filter", json={"flow_runs": {"name": {"any_": [f"repair {exp}"]}}}
        ).json()
        assert len(found) == 1, found
        assert found[0]["state"]["type"] == "COMPLETED"
        # The run's log in the UI (the API handler drains before the CLI exits).
        messages = [log["message"] for log in flow_run_logs(api, found[0]["id"])]
    assert any("Beginning flow run" in m for m in messages), messages
    assert any(m.startswith("Estimated cost of this repair") for m in messages), messages
    assert any("Prefect limits ready" in m for m in messages), messages  # a project logger's line
    assert any("Finished in state Completed" in m for m in messages), messages


def test_two_workers_repair_two_experiments_within_the_provider_limits(scale: Scale):
    mix = {"failed": 0.7, "completed": 0.3}
    exps = [
        make_experiment(scale.root / root / "fullruns", 5, seed, mix) for root, seed in (("a", 11), ("b", 12))
    ]
    todo = {exp: needs_agent(exp) for exp in exps}
    assert all(len(t) >= 3 for t in todo.values()), todo
    scale.judges.reset()
    for name in ("worker-a", "worker-b"):
        scale.start_worker(name)
    started = time.monotonic()
    ids = [scale.run_deployment(exp, judge_rpm=RPM) for exp in exps]
    with scale.server.client() as api:
        finished = [scale.wait_final(api, i) for i in ids]
        elapsed = time.monotonic() - started
        for run in finished:
            assert run["state"]["type"] == "COMPLETED", [scale.worker_log(n)[-3000:] for n in scale.workers]
        # One experiment per worker (each worker runs one flow run at a time), at the same time.
        runners = {i: [n for n in scale.workers if scale.ran(n, i)] for i in ids}
        assert sorted(sum(runners.values(), [])) == ["worker-a", "worker-b"], runners
        spans = [(r["start_time"], r["end_time"]) for r in finished]
        assert max(s for s, _ in spans) < min(e for _, e in spans), f"the repairs did not overlap: {spans}"

        for exp in exps:
            assert fully_repaired(exp), exp
            # Every agent the experiment needed ran exactly once.
            assert finished_agents(scale.agent_log, exp) == {label: 1 for label in todo[exp]}
        # The provider limits held across both workers.
        peak_agents = peak_concurrency(scale.agent_log)
        stats = scale.judges.stats()
        judges_per_window = max_per_window(stats["accepted_times"], WINDOW)
        assert peak_agents <= AGENTS, f"{peak_agents} agents at once across both workers; limit {AGENTS}"
        assert judges_per_window <= RPM, f"{judges_per_window} judge requests in {WINDOW:g} s; limit {RPM}"

        # Same directory name, two experiments: two artifact histories.
        keys = [artifact_key("repair-summary", exp) for exp in exps]
        assert keys[0] != keys[1]
        found = api.post("/artifacts/filter", json={"artifacts": {"key": {"any_": keys}}}).json()
        assert {a["key"] for a in found} == set(keys)
        # The worker-run flows' logs are in the UI.
        for i in ids:
            messages = [log["message"] for log in flow_run_logs(api, i)]
            assert any("Prefect limits ready" in m for m in messages), messages
            assert any("Finished in state Completed" in m for m in messages), messages
    print(
        f"\ntwo workers, two experiments ({sum(map(len, todo.values()))} agents, "
        f"{stats['accepted']} judge requests): {elapsed:.1f} s; peak agents {peak_agents} (limit {AGENTS}), "
        f"peak judges in flight {stats['peak_concurrency']}, most judge requests per {WINDOW:g} s "
        f"{judges_per_window} (limit {RPM})"
    )


def test_a_killed_worker_crashes_its_run_frees_its_slots_and_the_rerun_finishes(scale: Scale):
    if len(scale.workers) < 2:
        for name in ("worker-a", "worker-b"):
            if name not in scale.workers:
                scale.start_worker(name)
    exp = make_experiment(scale.root / "crash" / "fullruns", 4, 21, {"failed": 1.0})
    todo = needs_agent(exp)
    hanging = todo[-2:]
    # The last two runs' agents hang until killed the first time, then succeed.
    write_script(
        scale.script, [(f"{exp}/{label}/", ["hang", "slow_success"]) for label in hanging], "slow_success"
    )
    flow_run_id = scale.run_deployment(exp, max_concurrent=AGENTS + 1)

    def hung_and_rest_recorded() -> bool:
        mine = [r for r in runs(scale.agent_log) if Path(r["cwd"]).is_relative_to(exp)]
        hung = [
            r for r in mine if r["exit_code"] is None and any(f"/{h}/" in r["cwd"] + "/" for h in hanging)
        ]
        done = [
            label for label in todo if label not in hanging and (exp / label / "run_result.json").exists()
        ]
        return len(hung) == len(hanging) and len(done) == len(todo) - len(hanging)

    wait_for(hung_and_rest_recorded, 180, "two agents hanging and the other runs repaired")
    with scale.server.client() as api:
        run = scale.flow_run(api, flow_run_id)
        assert run["state"]["type"] == "RUNNING", run["state"]
        flow_pid = int(str(run["infrastructure_pid"]).rsplit(":", 1)[-1])
        owner = next(n for n, p in scale.workers.items() if _parent(flow_pid) == p.pid)
        # The hung agents hold their slots (an idle one lingers a few seconds, then goes back).
        wait_for(lambda: agent_slots(api, scale.judges.url) == len(hanging), 30, "the hung agents' slots")

        # The machine dies: the worker and the flow run's process (in a process group of its
        # own) are killed at once; the hung agents die with their parent (PR_SET_PDEATHSIG).
        killed_at = time.monotonic()
        scale.killed.add(owner)
        for group in (scale.workers[owner].pid, os.getpgid(flow_pid)):
            os.killpg(group, signal.SIGKILL)
        scale.workers[owner].wait(30)

        slots_back = crashed = None
        deadline = killed_at + LEASE_SECONDS + ZOMBIE_WITHIN + 60
        while (slots_back is None or crashed is None) and time.monotonic() < deadline:
            now = time.monotonic() - killed_at
            if slots_back is None and agent_slots(api, scale.judges.url) == 0:
                slots_back = now
            if crashed is None and scale.flow_run(api, flow_run_id)["state"]["type"] == "CRASHED":
                crashed = now
            time.sleep(1)
        state = scale.flow_run(api, flow_run_id)["state"]
        assert crashed is not None, f"the dead worker's flow run is still {state['type']}"
        assert "heartbeat" in (state["message"] or ""), state
        assert slots_back is not None and slots_back <= LEASE_SECONDS + REPOSSESSOR_LOOP + 5, slots_back
        # The hung agents died with their flow run (PR_SET_PDEATHSIG), nobody is paid for them.
        alive = [r["pid"] for r in runs(scale.agent_log) if r["exit_code"] is None and _running(r["pid"])]
        assert alive == []

        rerun_id = scale.run_deployment(exp, max_concurrent=AGENTS + 1)
        rerun = scale.wait_final(api, rerun_id)
        assert rerun["state"]["type"] == "COMPLETED", [scale.worker_log(n)[-3000:] for n in scale.workers]
    assert fully_repaired(exp)
    assert finished_agents(scale.agent_log, exp) == {label: 1 for label in todo}
    print(
        f"\nworker killed mid-repair: flow run Crashed {crashed:.0f} s after the kill "
        f"(heartbeat 30 s, automation {ZOMBIE_WITHIN:g} s), agent slots back after {slots_back:.0f} s "
        f"(lease {LEASE_SECONDS:g} s), rerun completed {time.monotonic() - killed_at:.0f} s after the kill"
    )


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
