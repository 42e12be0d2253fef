"""Issue 12: the progress a user sees follows the runs that finished, never the submissions.

A 40-run repair with agents of varied durations (a quarter of them slow): at every update, the
terminal bar and the UI's progress artifact have risen monotonically and are within 2 runs of
what ``checkpoint.json`` records as done.

The artifact is checked where the repair controls it, at each update it sends to the server
(the value sent against the checkpoint when it is sent), and as the UI reads it back (it only
rises, never runs ahead of the checkpoint, and ends at 40). How long the server takes to store
an update and serve it back is the server's: on 2 busy cores one round trip let 3 more runs
finish, so a read-back compared with the checkpoint of that instant failed for the server's lag.
"""

from __future__ import annotations

import contextvars
import io
import json
import threading
from pathlib import Path

from prefect.client.orchestration import SyncPrefectClient
from rich.console import Console

from cli.progress import terminal_progress
from flows.rerun_agents import rerun_agents
from simulation.generator import generate_experiment
from tasks.artifacts import RepairProgress, artifact_key, progress_listeners
from tests.flows.simulated import TIERS, simulated_provider


def checkpoint_count(exp: Path) -> int:
    """Runs the checkpoint records as judged (passed or failed); ``agent_complete`` is mid-repair."""
    path = exp / "checkpoint.json"
    if not path.exists():
        return 0
    data = json.loads(path.read_text())
    completed = data.get("completed_runs", {})
    return sum(
        v in ("passed", "failed")
        for subs in completed.values()
        for runs in subs.values()
        for v in runs.values()
    )


def artifact_runs(exp: Path, total: int) -> int | None:
    """Runs done according to the UI's progress artifact (None before it exists)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key("rerun-progress", exp)])),
        )
    if not artifacts:
        return None
    latest = max(artifacts, key=lambda a: a.created)
    return round(float(latest.data) * total / 100)


def test_progress_rises_with_completions_and_follows_the_checkpoint(tmp_path, monkeypatch):
    exp = generate_experiment(
        tmp_path / "2026-01-20T06-13-07-progress",
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=10,
        mix={"missing": 1.0},
        seed=12,
        tiers_dir=TIERS,
    ).path
    bar_samples: list[tuple[int, int, float]] = []  # (checkpoint, done, bar), in the listener
    sent: list[tuple[int, int]] = []  # (checkpoint as the update is sent, runs it says)
    ui_samples: list[tuple[int, float, int]] = []  # (checkpoint before, artifact runs, checkpoint after)
    finished = threading.Event()
    send_update = SyncPrefectClient.update_artifact

    def record_update(client, artifact_id, artifact):  # the progress sender (nothing else updates)
        sent.append((checkpoint_count(exp), round(float(artifact.data) * 40 / 100)))
        return send_update(client, artifact_id, artifact)

    monkeypatch.setattr(SyncPrefectClient, "update_artifact", record_update)

    def poll_artifact() -> None:  # the UI's view, sampled from outside as a user would
        while not finished.wait(0.25):
            before = checkpoint_count(exp)
            runs = artifact_runs(exp, 40)
            if runs is not None:
                ui_samples.append((before, runs, checkpoint_count(exp)))

    with simulated_provider(monkeypatch, tmp_path) as provider:
        monkeypatch.setenv("FAKE_CLAUDE_SLOW_DELAY", "0.8")  # a quarter of the agents are slow
        provider.script_rules(
            [
                {"match": f"/{t}/0{s}/run_0{n}", "modes": ["slow_success"]}
                for t in ("T0", "T1")
                for s in (0, 1)
                for n in (1, 4, 7)
            ]
        )
        console = Console(file=io.StringIO(), force_terminal=True, width=120)
        poller = threading.Thread(target=contextvars.copy_context().run, args=(poll_artifact,), daemon=True)
        with terminal_progress(True, console=console) as bar:
            assert bar is not None

            def sample(state: RepairProgress) -> None:
                if state.done:
                    bar_samples.append((checkpoint_count(exp), state.done, bar.tasks[0].completed))

            progress_listeners.append(sample)
            poller.start()
            try:
                summary = rerun_agents(str(exp), tiers_dir=str(TIERS), max_concurrent=8)
            finally:
                finished.set()
                poller.join()
                progress_listeners.remove(sample)

    assert summary.succeeded == 40 and summary.failed == 0
    assert [done for _, done, _ in bar_samples] == list(range(1, 41))
    for recorded, done, shown in bar_samples:
        assert shown == done and abs(recorded - done) <= 2, bar_samples
    assert sent and sent[-1][1] == 40
    assert [runs for _, runs in sent] == sorted(runs for _, runs in sent), sent
    for recorded, runs in sent:
        assert abs(recorded - runs) <= 2, sent
    assert ui_samples and artifact_runs(exp, 40) == 40
    shown_runs = [runs for _, runs, _ in ui_samples]
    assert shown_runs == sorted(shown_runs), ui_samples
    for _, runs, after in ui_samples:
        assert runs <= after + 2, ui_samples
