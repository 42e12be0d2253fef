"""The scan flow under Prefect: same classification as the in-process dry run, plus artifacts."""

from __future__ import annotations

import json
from pathlib import Path

from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from flows.scan import scan_experiment
from simulation.generator import generate_experiment
from tasks.artifacts import artifact_key
from tests.integration.services import wait_for


def test_scan_flow_matches_in_process_scan_and_publishes_table(tmp_path: Path):
    generated = generate_experiment(
        tmp_path / "exp-scan",
        tiers=["T0", "T1"],
        subtests_per_tier=3,
        runs_per_subtest=40,  # 240 runs -> 5 chunks of <= 50
        mix={"completed": 0.5, "results": 0.2, "failed": 0.1, "partial": 0.1, "missing": 0.1},
        seed=7,
        with_base_repo=False,
    )
    state = scan_experiment(str(generated.path), statuses=[RunStatus.FAILED], return_state=True)
    assert state.is_completed()
    report = state.result()
    expected = scan_in_process(load_context(generated.path), ScanFilters(statuses=(RunStatus.FAILED,)))
    assert report.entries == expected.entries
    assert {e.run: e.status.value for e in report.entries} == generated.truth
    assert {e.status for e in report.selected} == {RunStatus.FAILED}

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        # The server records task runs from their events, after the flow returns.
        def recorded():
            runs = [t for t in client.read_task_runs() if t.flow_run_id == state.state_details.flow_run_id]
            return runs if len(runs) >= 5 else None

        classify_runs = wait_for(recorded, 60, "the scan's task runs on the server", interval=0.2)
        assert len(classify_runs) == 5, "one task per chunk of 50 runs"
        key = artifact_key("classification", generated.path)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        assert artifacts and artifacts[0].type == "table"
        assert len(json.loads(artifacts[0].data)) == 240
