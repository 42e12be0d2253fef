"""The deployments end to end, as a user runs them: a real Prefect server, a process work pool,
``prefect deploy --all``, a worker, and ``prefect deployment run`` on a generated experiment.

The agent is the fake ``claude`` CLI and the judges the local Messages server; everything else
is real. Every process listens on or talks to 127.0.0.1 only, and every process started here is
stopped here, by its pid (the worker before the server), even when an assertion fails.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from experiment.scan import ScanFilters, load_context, scan_in_process
from simulation.claude_log import count_starts, fake_claude_bin
from simulation.generator import generate_experiment
from simulation.messages_server import MessagesServer, ServerBehavior
from tasks.artifacts import artifact_key
from tests.conftest import seed_prefect_database
from tests.integration.services import free_port, healthy, prefect, prefect_env, process, wait_for

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]
TIERS = PROJECT / "tests" / "fixtures" / "scylla-tiers"
POOL = "scylla-repair"  # the work pool named in prefect.yaml


def test_deploy_run_and_schedule(tmp_path: Path):
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
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(tmp_path / "prefect-home", api_url, PREFECT_UI_ENABLED="false")
    seed_prefect_database(tmp_path / "prefect-home" / "prefect.db")
    logs = tmp_path / "logs"
    logs.mkdir()
    with ExitStack() as stack, httpx.Client(base_url=api_url, timeout=10) as api:
        server = stack.enter_context(
            process(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                env,
                logs / "server.log",
            )
        )
        wait_for(lambda: healthy(api) or server.poll() is not None, 300, "the Prefect server")  # 2 busy cores
        assert server.poll() is None, (logs / "server.log").read_text()
        t_server = time.monotonic() - started

        prefect(env, "work-pool", "create", POOL, "--type", "process")
        deployed = prefect(env, "--no-prompt", "deploy", "--all", timeout=120)
        for name in (
            "rerun-agents/rerun-agents",
            "rerun-judges/rerun-judges",
            "regenerate-results/regenerate-results",
            "nightly-repair/nightly-repair",
        ):
            assert name in deployed, deployed

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
    print(
        f"\nintegration timings: server up {t_server:.1f} s, pool+deploy+worker {t_ready - t_server:.1f} s, "
        f"deployment run completed {t_run - t_ready:.1f} s, total {time.monotonic() - started:.1f} s"
    )
