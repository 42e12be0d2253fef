"""Every classification rule, on mutated copies of the real experiment and on edge cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiment.status import RULES, RunStatus, classify_run

RUN = "T0/00/run_01"


@pytest.fixture
def run_dir(fixture_experiment: Path) -> Path:
    return fixture_experiment / RUN


def test_real_fixture_runs_are_all_completed(fixture_experiment: Path):
    runs = sorted(fixture_experiment.glob("T*/*/run_*"))
    assert len(runs) == 7
    assert {classify_run(r).status for r in runs} == {RunStatus.COMPLETED}


def test_missing_dir_is_missing(tmp_path: Path):
    result = classify_run(tmp_path / "run_01")
    assert (result.status, result.reason) == (RunStatus.MISSING, "Run never started")


def test_empty_run_dir_is_missing(tmp_path: Path):
    (tmp_path / "run_01").mkdir()
    assert classify_run(tmp_path / "run_01").status is RunStatus.MISSING


def test_run_dir_without_agent_is_missing(run_dir: Path):
    shutil.rmtree(run_dir / "agent")
    assert classify_run(run_dir).status is RunStatus.MISSING


@pytest.mark.parametrize("deleted", ["run_result.json", "agent/result.json"])
def test_deleted_result_file_is_results(run_dir: Path, deleted: str):
    (run_dir / deleted).unlink()
    result = classify_run(run_dir)
    assert result.status is RunStatus.RESULTS
    assert f"{deleted} missing" in result.reason


def test_both_result_files_deleted_is_results(run_dir: Path):
    (run_dir / "run_result.json").unlink()
    (run_dir / "agent/result.json").unlink()
    result = classify_run(run_dir)
    assert result.status is RunStatus.RESULTS
    assert "agent/result.json missing" in result.reason and "run_result.json missing" in result.reason


@pytest.mark.parametrize("broken", ["run_result.json", "agent/result.json"])
def test_unreadable_result_file_is_not_completed(run_dir: Path, broken: str):
    # The original only checked existence and called this run completed.
    (run_dir / broken).write_text('{"exit_code": 0, "tok')
    result = classify_run(run_dir)
    assert result.status is RunStatus.RESULTS
    assert broken in result.reason and "invalid JSON" in result.reason


def test_result_file_that_is_not_an_object_is_not_completed(run_dir: Path):
    (run_dir / "run_result.json").write_text("[]")
    result = classify_run(run_dir)
    assert result.status is RunStatus.RESULTS
    assert "run_result.json is not a JSON object" in result.reason


def test_deleted_output_with_stderr_is_failed(run_dir: Path):
    (run_dir / "agent/output.txt").unlink()
    assert classify_run(run_dir).status is RunStatus.FAILED


def test_truncated_output_is_failed(run_dir: Path):
    (run_dir / "agent/output.txt").write_text("")
    result = classify_run(run_dir)
    assert result.status is RunStatus.FAILED
    assert "no output" in result.reason


def test_stderr_message_is_in_the_reason(run_dir: Path):
    (run_dir / "agent/output.txt").write_text("")
    (run_dir / "agent/stderr.log").write_text(
        "+ cd /x\n+ claude --model m\nError: connection reset by peer\n"
    )
    assert classify_run(run_dir).reason.endswith("Error: connection reset by peer")


def test_timed_out_agent_is_failed_not_missing(run_dir: Path):
    # Empty output, timing and command log present, no stderr.log: the original said "missing".
    (run_dir / "agent/output.txt").write_text("")
    (run_dir / "agent/stderr.log").unlink()
    (run_dir / "agent/result.json").unlink()
    result = classify_run(run_dir)
    assert result.status is RunStatus.FAILED
    assert "timed out" in result.reason


def test_no_run_result_and_no_timing_is_partial(run_dir: Path):
    (run_dir / "run_result.json").unlink()
    (run_dir / "agent/timing.json").unlink()
    result = classify_run(run_dir)
    assert result.status is RunStatus.PARTIAL
    assert "timing.json" in result.reason


def test_only_prompt_in_agent_dir_is_partial(tmp_path: Path):
    (tmp_path / "run_01/agent").mkdir(parents=True)
    (tmp_path / "run_01/agent/prompt.md").write_text("task")
    assert classify_run(tmp_path / "run_01").status is RunStatus.PARTIAL


def _rate_limited_output(run_dir: Path, text: str, status: int | None = None) -> None:
    payload = {"type": "result", "subtype": "success", "is_error": True, "result": text, "num_turns": 1}
    if status:
        payload["api_error_status"] = status
    (run_dir / "agent/output.txt").write_text(json.dumps(payload))
    agent_result = json.loads((run_dir / "agent/result.json").read_text())
    agent_result.update(exit_code=1, stdout=json.dumps(payload))
    (run_dir / "agent/result.json").write_text(json.dumps(agent_result))


def test_rate_limited_agent_is_failed_even_with_all_files(run_dir: Path):
    _rate_limited_output(run_dir, "You've hit your limit · resets 4pm (America/Los_Angeles)")
    result = classify_run(run_dir)
    assert result.status is RunStatus.FAILED
    assert result.failure is not None and result.failure.kind.value == "quota_window"
    assert "hit your limit" in result.reason


def test_overloaded_agent_is_rate_limited_failure(run_dir: Path):
    _rate_limited_output(run_dir, "API Error: 529 overloaded", status=529)
    result = classify_run(run_dir)
    assert result.status is RunStatus.FAILED
    assert result.failure.kind.value == "rate_limited"


def test_is_error_agent_is_failed(run_dir: Path):
    _rate_limited_output(run_dir, "Tool execution crashed")
    result = classify_run(run_dir)
    assert result.status is RunStatus.FAILED
    assert result.failure.kind.value == "agent_failed"


def test_nonzero_exit_code_is_failed(run_dir: Path):
    data = json.loads((run_dir / "agent/result.json").read_text())
    data["exit_code"] = 2
    (run_dir / "agent/result.json").write_text(json.dumps(data))
    assert classify_run(run_dir).status is RunStatus.FAILED


def test_crash_result_is_failed(run_dir: Path):
    data = {"exit_code": -1, "stdout": "", "stderr": "", "token_stats": {}, "cost_usd": 0, "api_calls": 0}
    (run_dir / "agent/result.json").write_text(json.dumps(data))
    (run_dir / "agent/output.txt").write_text("")
    result = classify_run(run_dir)
    assert result.status is RunStatus.FAILED


def test_empty_agent_result_object_still_counts(run_dir: Path):
    # ProjectScylla's own tests accept `{}` as an agent result (spec §10).
    (run_dir / "agent/result.json").write_text("{}")
    assert classify_run(run_dir).status is RunStatus.COMPLETED


def test_judge_dir_missing_is_results(run_dir: Path):
    shutil.rmtree(run_dir / "judge")
    result = classify_run(run_dir)
    assert result.status is RunStatus.RESULTS
    assert "judges never ran" in result.reason


def test_last_rule_catches_everything():
    assert RULES[-1].when(None) is True  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("alias", "status"),
    [
        ("agent-failed", RunStatus.FAILED),
        ("never-started", RunStatus.MISSING),
        ("agent-complete-missing-results", RunStatus.RESULTS),
        ("COMPLETED", RunStatus.COMPLETED),
        ("agent_partial", RunStatus.PARTIAL),
    ],
)
def test_status_aliases(alias: str, status: RunStatus):
    assert RunStatus.parse(alias) is status


def test_unknown_status_alias():
    with pytest.raises(ValueError):
        RunStatus.parse("bogus")


def test_runs_decided_at_a_glance_get_what_the_full_table_gives(tmp_path: Path):
    """Completed runs, and runs failed by the agent's own verdict, are classified without the
    directory listings: exactly as the whole table would classify them, for every kind of run
    the generator writes."""
    from experiment.status import _decided_at_a_glance, classify_facts, gather_facts
    from simulation.generator import generate_experiment

    mix = {"completed": 0.4, "results": 0.15, "failed": 0.25, "partial": 0.1, "missing": 0.1}
    generate_experiment(
        tmp_path / "exp", subtests_per_tier=3, runs_per_subtest=30, mix=mix, seed=3, with_base_repo=False
    )
    glanced = set()
    for run_dir in sorted((tmp_path / "exp").glob("T*/*/run_*")):
        full = classify_facts(gather_facts(run_dir))
        glance = _decided_at_a_glance(str(run_dir))
        if glance is not None:
            glanced.add(glance.status)
            assert (glance.status, glance.reason, glance.agent_cost_usd) == (
                full.status,
                full.reason,
                full.agent_cost_usd,
            ), run_dir
            assert (glance.failure and glance.failure.kind) == (full.failure and full.failure.kind)
        elif full.status is RunStatus.COMPLETED:
            pytest.fail(f"a completed run was not decided at a glance: {run_dir}")
    assert glanced == {RunStatus.COMPLETED, RunStatus.FAILED}
