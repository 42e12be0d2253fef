"""Scenario 2 of the guide: a repair that hits rate limits finishes by itself.

Acceptance: a repair of >= 50 runs with 3 judges each, against the local Messages server that
enforces a requests-per-window budget and a concurrency limit and injects 429, 529 and 500,
completes every run; the server never sees more concurrent requests than its limit; no run is
lost or left partial and every old attempt is under ``.failed/``.

Quota window: one run's agent answers "You've hit your limit · resets 4pm (...)": the flow ends
cleanly, that run is deferred with its resume time after exactly one invocation (no retry
burned), and every other run completes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from experiment.layout import RunKey
from experiment.scan import load_context
from experiment.status import RunStatus
from simulation.claude_log import count_starts, fake_claude_bin, write_script
from simulation.generator import generate_experiment
from simulation.messages_server import MessagesServer, ServerBehavior
from tasks import retry

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"
WINDOW = 5.0
"""The server's rate window (a 'minute' of 5 s keeps the test fast)."""
RPM = 30
"""Requests the server accepts per window."""
SERVER_CONCURRENCY = 4


@pytest.fixture
def provider_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_claude_bin()}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-a-secret")
    monkeypatch.setenv("FAKE_CLAUDE_LOG", str(tmp_path / "fake-claude.log"))
    monkeypatch.setenv("SCYLLA_RATE_WINDOW_SECONDS", str(WINDOW))
    monkeypatch.delenv("FAKE_CLAUDE_MODE", raising=False)
    monkeypatch.delenv("FAKE_CLAUDE_SCRIPT", raising=False)
    return tmp_path


def _old_attempts_archived(exp: Path, before) -> list[str]:
    """Labels of runs that had an attempt on disk before the repair but none in .failed/ now."""
    layout = load_context(exp).layout
    lost = []
    for entry in before.entries:
        if entry.status in (RunStatus.FAILED, RunStatus.PARTIAL) and not layout.archived_attempts(
            RunKey.parse(entry.run)
        ):
            lost.append(entry.run)
    return lost


def test_repair_under_rate_limits_completes_every_run(provider_env, monkeypatch):
    from flows.rerun_agents import rerun_agents, summary_of

    exp = generate_experiment(
        provider_env / "exp" / "2026-01-20T06-13-07-ratelimit",
        tiers=["T0", "T1", "T2"],
        subtests_per_tier=2,
        runs_per_subtest=9,
        mix={"failed": 0.6, "partial": 0.2, "missing": 0.2},
        seed=5,
        tiers_dir=TIERS,
    ).path
    behavior = ServerBehavior(
        rpm=RPM,
        window_seconds=WINDOW,
        max_concurrent=SERVER_CONCURRENCY,
        latency=0.05,
        fault_rates={"429": 0.04, "529": 0.04, "500": 0.04},
        retry_after=1,
        seed=11,
    )
    retry.RETRY_COUNTS.clear()
    started = time.monotonic()
    with MessagesServer(behavior) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        summary = summary_of(
            rerun_agents(
                experiment_dir=str(exp),
                tiers_dir=str(TIERS),
                max_concurrent=4,
                judge_rpm=RPM,
                max_in_flight=SERVER_CONCURRENCY,
                return_state=True,
            )
        )
        stats = server.stats()
    elapsed = time.monotonic() - started

    reruns = [r for r in summary.runs if r.action == "rerun"]
    assert len(reruns) >= 50
    assert len(summary.before.to_rerun()) == len(reruns)
    not_done = [
        (r.run, r.outcome, r.reason) for r in summary.runs if r.outcome not in ("succeeded", "regenerated")
    ]
    assert not_done == []
    assert all(r.judges_valid == 3 for r in reruns)
    # Every run completed, none partial or lost.
    assert summary.after.counts["completed"] == summary.after.total_expected == 54
    for entry in summary.before.entries:
        assert (load_context(exp).layout.run_dir(RunKey.parse(entry.run)) / "run_result.json").is_file()
    assert _old_attempts_archived(exp, summary.before) == []
    # The provider's limits held.
    assert stats["max_concurrent_violations"] == 0
    assert stats["peak_concurrency"] <= SERVER_CONCURRENCY
    # Faults were injected and retried (and the server saw each judgment at least once).
    by_status = stats["by_status"]
    assert by_status.get("200", 0) >= 3 * len(reruns)
    assert sum(by_status.get(code, 0) for code in ("429", "529", "500")) > 0
    assert sum(retry.RETRY_COUNTS.values()) > 0
    # The rate window held too: never more than RPM accepted requests in any window.
    times = sorted(stats["accepted_times"])
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - WINDOW:
            j += 1
        assert i - j + 1 <= RPM
    print(f"\nrate-limit acceptance: {elapsed:.1f} s, server {by_status}, retries {dict(retry.RETRY_COUNTS)}")


def test_quota_window_defers_the_run_without_burning_retries(provider_env, monkeypatch):
    from flows.rerun_agents import rerun_agents, summary_of

    exp = generate_experiment(
        provider_env / "exp" / "2026-01-20T06-13-07-quota",
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        mix={"failed": 1.0},
        seed=3,
        tiers_dir=TIERS,
    ).path
    quota_run = "T0/00/run_02"
    script = write_script(provider_env / "script.json", [(f"/{quota_run}/", ["rate_limit"])])
    monkeypatch.setenv("FAKE_CLAUDE_SCRIPT", str(script))
    log = provider_env / "fake-claude.log"
    with MessagesServer(ServerBehavior()) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        summary = summary_of(
            rerun_agents(experiment_dir=str(exp), tiers_dir=str(TIERS), max_concurrent=2, return_state=True)
        )

    by_run = {r.run: r for r in summary.runs}
    assert quota_run in by_run, sorted(by_run)
    deferred = by_run[quota_run]
    assert deferred.outcome == "deferred"
    assert deferred.failure_class == "quota_window"
    assert deferred.resume_at is not None and deferred.resume_at > time.time()
    # "resets 4pm (America/Los_Angeles)": at most a day away.
    assert deferred.resume_at - time.time() <= 24 * 3600 + 60
    assert summary.resume_at == deferred.resume_at
    assert summary.resume_scheduled is None  # not a deployment run: the note says when
    assert any("run the same command again after" in note for note in summary.notes)
    # Exactly one invocation for the quota run: no retry was burned on it.
    assert count_starts(log, f"/{quota_run}/") == 1
    others = [r for r in summary.runs if r.run != quota_run]
    assert others and all(r.outcome == "succeeded" for r in others)
    # The failure class is in the run's files.
    run_dir = load_context(exp).layout.run_dir(RunKey.parse(quota_run))
    timing = json.loads((run_dir / "agent" / "timing.json").read_text())
    assert timing["failure_class"] == "quota_window"


def test_a_slot_held_by_a_killed_process_is_freed_at_the_next_start(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    from tasks import limits

    spec = limits.ProviderLimits("killed-holder-test", 1, None, 60.0)
    limits.ensure_limits(spec)
    ready = tmp_path / "ready"
    holder = (
        "import sys, time, pathlib\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from tasks import limits\n"
        f"spec = limits.ProviderLimits('killed-holder-test', 1, None, 60.0)\n"
        "with limits.agent_slot(spec):\n"
        f"    pathlib.Path({str(ready)!r}).write_text('held')\n"
        "    time.sleep(600)\n"
    )
    env = dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    proc = subprocess.Popen([sys.executable, "-c", holder], env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert limits.slot_counts(spec.agents_name)[0] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    limits.forget_ensured()  # a later repair in a fresh process
    limits.ensure_limits(spec)
    assert limits.slot_counts(spec.agents_name)[0] == 0
    with limits.agent_slot(spec, timeout=5):  # the limit of 1 is usable again at once
        pass
