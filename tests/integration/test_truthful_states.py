"""What Prefect shows is true, and every finished step stays finished (issue 16), against a real
``prefect server start`` shared by the module:

* a repair with a permanently failing agent, a quota-deferred run and injected 429/529s: the
  failing run's ``repair`` task is Failed with its reason, the deferred one Completed named
  ``Deferred``, no task run is RolledBack, every finished step's result is on disk, and the flow
  run is Failed with "1 of N reruns failed" (the CLI exits 1);
* the deployments as a user runs them (``prefect deploy --all`` from ``prefect.yaml``, a process
  work pool, a worker, ``prefect deployment run``): a repair completes with its artifacts, the
  nightly deployment has its cron schedule and the manual one its concurrency limit;
* a nightly deployment run whose subflow is deferred by a quota window schedules its resume on
  the ``rerun-agents`` deployment, and that run starts and completes.

The CLI runs here as a real process with ``PREFECT_API_URL`` set, so it pays no temporary-server
start; every process started here is stopped here, by its pid.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from experiment.scan import ScanFilters, load_context, scan_in_process
from simulation.claude_log import count_starts, fake_claude_bin, write_script
from simulation.generator import generate_experiment
from simulation.messages_server import MessagesServer, ServerBehavior
from tasks.artifacts import artifact_key
from tests.conftest import QUIET_SERVER_SERVICES
from tests.integration.services import (
    POOL,
    PROJECT,
    TIERS,
    prefect,
    prefect_server,
    process,
    wait_for,
)

# One worker runs the module (tests/conftest.py, ONE_WORKER_MODULES): its server is started once.
pytestmark = [pytest.mark.integration]

RERUN_AGENTS = Path(sys.executable).parent / "rerun-agents"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


class Server:
    def __init__(self, api_url: str, env: dict[str, str], api: httpx.Client) -> None:
        self.api_url, self.env, self.api = api_url, env, api

    def flow_runs(self, **filters: object) -> list[dict]:
        return self.api.post("/flow_runs/filter", json={"flow_runs": filters, "limit": 200}).json()

    def task_runs(self, flow_run_id: str) -> list[dict]:
        body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200}
        return self.api.post("/task_runs/filter", json=body).json()


# Module scope: the module's tests run on one worker, one after the other (ONE_WORKER_MODULES:
# xdist sends them as one unit), so the services are made once and stopped once the module ends.
@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-server")
    # Its clients (CLI, worker) get the plain environment; the server runs quietly.
    with (
        prefect_server(home, home / "server.log", startup_timeout=90, **QUIET_SERVER_SERVICES) as running,
        running.client(timeout=10) as api,
    ):
        yield Server(running.api_url, running.env, api)


@pytest.fixture(scope="module")
def deployed(server) -> str:
    """The process work pool of ``prefect.yaml`` and ``prefect deploy --all``, once per module;
    returns what ``deploy`` printed."""
    prefect(server.env, "work-pool", "create", POOL, "--type", "process", "--overwrite")
    return prefect(server.env, "--no-prompt", "deploy", "--all", timeout=240)


def make_experiment(root: Path, runs_per_subtest: int, mix: dict[str, float], seed: int = 3) -> Path:
    return generate_experiment(
        root / "2026-01-20T06-13-07-truth",
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=runs_per_subtest,
        mix=mix,
        seed=seed,
        tiers_dir=TIERS,
    ).path


def cli_env(base: dict[str, str], judges: MessagesServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    """``base`` (a Prefect client's environment) with the fake claude and the judges."""
    env = {k: v for k, v in base.items() if not k.startswith("FAKE_CLAUDE")}
    env.update(
        PATH=f"{fake_claude_bin()}{os.pathsep}{env['PATH']}",
        ANTHROPIC_BASE_URL=judges.url,
        ANTHROPIC_API_KEY="test-key-not-a-secret",
        FAKE_CLAUDE_LOG=str(tmp_path / "fake-claude.log"),
        PREFECT_LOGGING_LEVEL="WARNING",
        **extra,
    )
    return env


def repair_argv(exp: Path, *extra: str) -> list[str]:
    return [str(RERUN_AGENTS), str(exp), "--tiers-dir", str(TIERS), *extra]


def settled_task_runs(server: Server, flow_run_id: str, expected_repairs: int) -> list[dict]:
    """The flow run's task runs once the server has recorded every ``repair`` task's end."""

    def recorded():
        found = server.task_runs(flow_run_id)
        repairs = [t for t in found if t["name"].startswith("repair ")]
        done = all(t["state"]["type"] in FINAL for t in found)
        return found if len(repairs) == expected_repairs and done else None

    return wait_for(recorded, 60, "the server to record every task run", interval=1.0)


@pytest.mark.skipif(not RERUN_AGENTS.exists(), reason="console script not installed")
def test_states_tell_the_truth(server, tmp_path):
    exp = make_experiment(tmp_path, 4, {"failed": 1.0})
    labels = [f"T0/00/run_{n:02d}" for n in range(1, 5)]
    script = write_script(
        tmp_path / "script.json",
        [
            ("/run_01/", ["fail"]),  # agent_failed: for good
            ("/run_02/", ["overloaded", "success"]),  # a 529, retried
            ("/run_03/", ["rate_limit"]),  # "resets 4pm": a quota window, deferred
        ],
    )
    with MessagesServer(ServerBehavior(fail_sequence=["429", "529", "429"], retry_after=1)) as judges:
        env = cli_env(server.env, judges, tmp_path, FAKE_CLAUDE_SCRIPT=str(script))
        done = subprocess.run(
            repair_argv(exp, "--max-concurrent", "2"), env=env, capture_output=True, text=True, timeout=240
        )
        assert judges.stats()["by_status"].get("429", 0) >= 1
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]

    (flow_run,) = server.flow_runs(name={"any_": [f"repair {exp}"]})
    assert flow_run["state"]["type"] == "FAILED", flow_run["state"]
    assert flow_run["state"]["message"] == "1 of 4 reruns failed"
    tasks = settled_task_runs(server, flow_run["id"], expected_repairs=4)
    by_name = {t["name"]: t for t in tasks}
    rolled_back = [t["name"] for t in tasks if t["state"]["name"] == "RolledBack"]
    assert not rolled_back, rolled_back

    failed = by_name[f"repair {labels[0]}"]["state"]
    assert failed["type"] == "FAILED" and failed["message"].startswith("agent_failed: agent failed"), failed
    deferred = by_name[f"repair {labels[2]}"]["state"]
    assert deferred["type"] == "COMPLETED" and deferred["name"] == "Deferred", deferred
    assert "resumes after" in deferred["message"]
    agent_deferred = by_name[f"agent {labels[2]}"]["state"]
    assert agent_deferred["type"] == "COMPLETED" and agent_deferred["name"] == "Deferred", agent_deferred
    for label in (labels[1], labels[3]):
        assert by_name[f"repair {label}"]["state"]["type"] == "COMPLETED"
    assert by_name[f"agent {labels[1]}"]["run_count"] == 2  # the 529 was retried
    assert by_name[f"agent {labels[1]}"]["empirical_policy"]["retry_delay"] == 2.0  # a number: no "NaNs"
    assert not [t["name"] for t in tasks if re.search(r"-[0-9a-f]{3}$", t["name"])]  # no hashed names

    # Every step that finished persisted its result: three agents (the failed one too), the judges
    # of the two runs that succeeded; nothing for the deferred agent.
    results = [p.name for p in (exp / ".prefect" / "results").iterdir()]
    agents = sorted(name for name in results if name.startswith("agent-"))
    assert [a.split("-")[3] for a in agents] == ["run_01", "run_02", "run_04"], agents
    judged = {name.split("-")[3] for name in results if name.startswith("judge-")}
    assert judged == {"run_02", "run_04"}, sorted(results)


def test_deploy_run_and_schedule(server, deployed, tmp_path):
    """The deployments end to end, as a user runs them: a process work pool, ``prefect deploy
    --all``, a worker, and ``prefect deployment run`` on a generated experiment."""
    started = time.monotonic()
    generated = generate_experiment(
        tmp_path / "fullruns" / "2026-01-20T06-13-07-integration",
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        mix={"completed": 0.5, "failed": 0.25, "results": 0.25},
        seed=7,
        tiers_dir=TIERS,
    )
    exp = generated.path
    broken = sorted(r for r, s in generated.truth.items() if s != "completed")
    assert broken, "the generated experiment must need a repair"
    env, api = server.env, server.api
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in (
        "rerun-agents/rerun-agents",
        "rerun-judges/rerun-judges",
        "regenerate-results/regenerate-results",
        "nightly-repair/nightly-repair",
    ):
        assert name in deployed, deployed
    with ExitStack() as stack:
        judges = stack.enter_context(MessagesServer(ServerBehavior()))
        worker_env = dict(
            env,
            PATH=f"{fake_claude_bin()}{os.pathsep}{env['PATH']}",
            ANTHROPIC_BASE_URL=judges.url,
            ANTHROPIC_API_KEY="test-key-not-a-secret",
            FAKE_CLAUDE_LOG=str(tmp_path / "fake-claude.log"),
        )
        worker = stack.enter_context(
            process(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
                worker_env,
                logs / "worker.log",
            )
        )
        # The worker is entered last, so the ExitStack stops it before the judges and the server.
        t_ready = time.monotonic() - started

        out = prefect(
            env,
            "deployment",
            "run",
            "rerun-agents/rerun-agents",
            "--param",
            f"experiment_dir={json.dumps(str(exp))}",
            "--param",
            f"tiers_dir={json.dumps(str(TIERS))}",
        )
        flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1)

        def final_state():
            run = api.get(f"/flow_runs/{flow_run_id}").json()
            state = run["state"]["type"]
            if worker.poll() is not None:
                raise AssertionError("the worker died:\n" + (logs / "worker.log").read_text()[-3000:])
            return run if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        run = wait_for(final_state, 120, "the deployment run")
        t_run = time.monotonic() - started
        assert run["state"]["type"] == "COMPLETED", (logs / "worker.log").read_text()[-5000:]
        assert run["name"] == f"repair {exp}"

        # The experiment is repaired on disk ...
        after = scan_in_process(load_context(exp, TIERS), ScanFilters())
        assert after.counts["completed"] == after.total_expected
        assert count_starts(tmp_path / "fake-claude.log") == sum(
            1 for r in broken if generated.truth[r] == "failed"
        )
        # ... and the API has its artifacts: classification table, progress, markdown summary.
        keys = [artifact_key(kind, exp) for kind in ("classification", "rerun-progress", "repair-summary")]
        found = api.post("/artifacts/filter", json={"artifacts": {"key": {"any_": keys}}}).json()
        by_key = {a["key"]: a for a in found}
        assert set(by_key) == set(keys), sorted(by_key)
        assert by_key[keys[0]]["type"] == "table" and by_key[keys[1]]["type"] == "progress"
        assert by_key[keys[1]]["data"] == 100
        summary = by_key[keys[2]]["data"]
        assert (
            "Failed rerun: **0**" in summary
            and f"Successfully rerun: **{count_starts(tmp_path / 'fake-claude.log')}**" in summary
        )

        # The nightly deployment has its cron schedule, and the manual one its concurrency limit.
        nightly = api.get("/deployments/name/nightly-repair/nightly-repair").json()
        schedules = [s["schedule"] for s in nightly["schedules"]]
        assert schedules == [{"cron": "0 3 * * *", "timezone": "UTC", "day_or": True}] or (
            schedules[0]["cron"] == "0 3 * * *" and schedules[0]["timezone"] == "UTC"
        ), schedules
        manual = api.get("/deployments/name/rerun-agents/rerun-agents").json()
        assert manual["global_concurrency_limit"]["limit"] == 1
        assert manual["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(
            PROJECT
        )
    print(f"\nintegration timings: worker {t_ready:.1f} s, deployment run completed {t_run - t_ready:.1f} s")


def test_nightly_quota_resume_runs_on_the_rerun_deployment(server, deployed, tmp_path):
    root = tmp_path / "fullruns"
    exp = make_experiment(root, 2, {"failed": 1.0}, seed=11)
    quota_run = "T0/00/run_02"
    script = write_script(tmp_path / "script.json", [(f"/{quota_run}/", ["rate_limit", "success"])])
    env = server.env
    logs = tmp_path / "logs"
    logs.mkdir()
    with ExitStack() as stack:
        judges = stack.enter_context(MessagesServer(ServerBehavior()))
        worker_env = cli_env(server.env, judges, tmp_path, FAKE_CLAUDE_SCRIPT=str(script))
        worker_env["PREFECT_LOGGING_LEVEL"] = "INFO"
        worker = stack.enter_context(
            process(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
                worker_env,
                logs / "worker.log",
            )
        )

        def finished(flow_run_id: str):
            if worker.poll() is not None:
                raise AssertionError("the worker died:\n" + (logs / "worker.log").read_text()[-3000:])
            run = server.api.get(f"/flow_runs/{flow_run_id}").json()
            return run if run["state"]["type"] in FINAL else None

        out = prefect(
            env,
            "deployment",
            "run",
            "nightly-repair/nightly-repair",
            "--param",
            f"experiments_root={json.dumps(str(root))}",
            "--param",
            f"tiers_dir={json.dumps(str(TIERS))}",
            "--param",
            "min_idle_minutes=0",
        )
        nightly_id = re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1)
        nightly = wait_for(lambda: finished(nightly_id), 180, "the nightly run")
        assert nightly["state"]["type"] == "COMPLETED", (logs / "worker.log").read_text()[-5000:]
        assert str(root) in nightly["name"] and "$" not in nightly["name"]

        (resume,) = server.flow_runs(tags={"all_": ["resume-after-quota"]})
        rerun_deployment = server.api.get("/deployments/name/rerun-agents/rerun-agents").json()
        assert resume["deployment_id"] == rerun_deployment["id"]
        assert resume["parameters"]["experiment_dir"] == str(exp)
        assert resume["state"]["type"] == "SCHEDULED"
        # The window "resets 4pm": bring the scheduled start forward instead of waiting for it.
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        moved = server.api.post(
            f"/flow_runs/{resume['id']}/set_state",
            json={"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": now}}, "force": True},
        )
        assert moved.status_code in (200, 201), moved.text
        resumed = wait_for(lambda: finished(resume["id"]), 180, "the scheduled resume run")
        assert resumed["state"]["type"] == "COMPLETED", (logs / "worker.log").read_text()[-5000:]
    statuses = {
        e["run"]: e["status"]
        for e in json.loads(
            subprocess.run(
                repair_argv(exp, "--dry-run", "--json"), env=env, capture_output=True, text=True, timeout=120
            ).stdout
        )["runs"]
    }
    assert set(statuses.values()) == {"completed"}, statuses
