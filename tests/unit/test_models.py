"""The file models: every real file round-trips, legacy inputs are read, canonical output is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiment import jsonio
from experiment.errors import FormatError
from experiment.models import (
    AgentResult,
    AgentTiming,
    BestSubtest,
    Checkpoint,
    CheckpointV2,
    ClaudeOutput,
    CommandLog,
    ConfigManifest,
    ExperimentConfig,
    ExperimentReport,
    ExperimentResult,
    JudgeConsensus,
    JudgeTiming,
    Judgment,
    RunReport,
    RunResult,
    ScyllaModel,
    SubtestReport,
    TierComparison,
    TierReport,
    TierResult,
    TokenStats,
    grade_for_score,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-test001-dryrun"


def model_for(rel: Path) -> type | None:
    """Map a fixture file (relative path) to its model; None for files we do not model."""
    parts = rel.parts
    name = rel.name
    if "workspace" in parts or name.endswith(".md") or name.endswith(".yaml"):
        return None
    if rel == Path("config/experiment.json"):
        return ExperimentConfig
    if rel == Path("checkpoint.json"):
        return CheckpointV2
    if len(parts) == 1:
        return {
            "result.json": ExperimentResult,
            "report.json": ExperimentReport,
            "tier_comparison.json": TierComparison,
        }.get(name)
    if len(parts) == 2:  # T0/x.json
        return {"result.json": TierResult, "report.json": TierReport, "best_subtest.json": BestSubtest}.get(
            name
        )
    if len(parts) == 3:  # T0/00/x.json
        return {"report.json": SubtestReport, "config_manifest.json": ConfigManifest}.get(name)
    if len(parts) == 4:  # T0/00/run_01/x.json
        return {"run_result.json": RunResult, "report.json": RunReport}.get(name)
    if parts[3] == "agent":
        if name == "output.txt" or name == "stdout.log":
            return ClaudeOutput
        return {"result.json": AgentResult, "timing.json": AgentTiming, "command_log.json": CommandLog}.get(
            name
        )
    if parts[3] == "judge":
        if len(parts) == 5:
            return {"result.json": JudgeConsensus, "timing.json": JudgeTiming}.get(name)
        return {"judgment.json": Judgment, "timing.json": JudgeTiming}.get(name)
    return None


FILES = sorted(
    p.relative_to(FIXTURE)
    for p in FIXTURE.rglob("*")
    if p.is_file() and model_for(p.relative_to(FIXTURE)) is not None
)


def test_every_json_file_is_mapped():
    unmapped = [
        p.relative_to(FIXTURE)
        for p in FIXTURE.rglob("*.json")
        if "workspace" not in p.parts and model_for(p.relative_to(FIXTURE)) is None
    ]
    assert unmapped == []
    assert len(FILES) > 100


@pytest.mark.parametrize("rel", FILES, ids=str)
def test_fixture_round_trip(rel: Path):
    data = json.loads((FIXTURE / rel).read_text())
    model = model_for(rel)
    instance = model.model_validate(data)
    assert instance.to_json_dict() == data
    # and the dump is valid JSON that ProjectScylla can read
    assert json.loads(jsonio.dumps(instance.to_json_dict())) == data


def test_legacy_token_keys_read_and_dumped_canonical():
    legacy = {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 4,
    }
    stats = TokenStats.model_validate(legacy)
    assert (stats.cache_creation_tokens, stats.cache_read_tokens) == (3, 4)
    assert stats.to_json_dict() == {
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_tokens": 3,
        "cache_read_tokens": 4,
    }
    agent = AgentResult.model_validate({"token_stats": legacy, "api_calls": 1})
    assert agent.to_json_dict()["token_stats"]["cache_read_tokens"] == 4


def test_token_arithmetic_and_claude_usage():
    a = TokenStats(input_tokens=1, output_tokens=2, cache_creation_tokens=3, cache_read_tokens=4)
    assert (a + a).total_tokens == 20
    assert TokenStats.sum([a, a, a]).tokens_input == 15
    assert TokenStats.sum([]).to_json_dict() == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_tokens": 0,
        "cache_read_tokens": 0,
    }
    out = ClaudeOutput.model_validate(json.loads((FIXTURE / "T0/00/run_01/agent/output.txt").read_text()))
    assert out.token_stats == TokenStats(
        input_tokens=29, output_tokens=656, cache_creation_tokens=23106, cache_read_tokens=112686
    )
    assert out.token_stats.tokens_input == 112715


def test_infinity_becomes_null(tmp_path: Path):
    path = tmp_path / "result.json"
    path.write_text('{"tier_id": "T0", "cost_of_pass": Infinity}')
    tier = jsonio.load_model(path, TierResult)
    assert tier.cost_of_pass is None
    assert "Infinity" not in jsonio.dumps(tier.to_json_dict())
    exp = ExperimentResult.model_validate({"frontier_cop": float("inf"), "tier_results": {}})
    assert exp.frontier_cop is None  # in memory: nothing passed
    assert exp.to_json_dict()["frontier_cop"] == float("inf")  # in the file: ProjectScylla's Infinity
    assert ExperimentResult.model_validate({"frontier_cop": float("nan")}).frontier_cop is None


def test_judgment_validity():
    assert Judgment.model_validate({"score": 0.5}).valid
    assert not Judgment.model_validate({"score": 0.5, "is_valid": False}).valid
    assert not Judgment.model_validate({"score": None}).valid
    assert not Judgment.model_validate({"score": 0.7, "grade": "C", "fallback": True}).valid
    assert grade_for_score(1.0) == "S" and grade_for_score(0.8) == "A" and grade_for_score(0.1) == "F"


def test_checkpoint_v2_migrates_to_v31():
    raw = json.loads((FIXTURE / "checkpoint.json").read_text())
    cp = Checkpoint.from_any(raw)
    assert cp.version == "3.1"
    assert cp.completed_runs == raw["completed_runs"]
    assert cp.run_states["T0"]["00"]["1"] == "report_written"
    assert cp.subtest_states["T3"]["01"] == "runs_in_progress"
    assert cp.tier_states["T6"] == "subtests_running"
    assert cp.experiment_state == "tiers_running"
    assert cp.last_heartbeat == raw["last_updated_at"]
    assert raw["version"] == "2.0"  # input not mutated
    dumped = cp.to_json_dict()
    assert dumped["pid"] == 275043 and dumped["version"] == "3.1"
    assert Checkpoint.model_validate(dumped).to_json_dict() == dumped  # v3.1 round trip


def test_checkpoint_v30_state_mapping():
    data = {
        "version": "3.0",
        "completed_runs": {"T0": {"00": {"1": "passed", "2": "agent_complete"}}},
        "run_states": {"T0": {"00": {"1": "run_complete", "2": "agent_ready", "3": "judge_ready"}}},
    }
    cp = Checkpoint.from_any(data)
    assert cp.run_states["T0"]["00"] == {
        "1": "report_written",
        "2": "replay_generated",
        "3": "judge_prompt_built",
    }


@pytest.mark.parametrize("version", ["1.0", "4.0", None])
def test_checkpoint_bad_version(tmp_path: Path, version):
    data = {"completed_runs": {}}
    if version:
        data["version"] = version
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=f"Incompatible checkpoint version {version or '1.0'}: {path}"):
        Checkpoint.load(path)
    with pytest.raises(ValueError, match="Incompatible checkpoint version"):
        Checkpoint.from_any(data)


def test_checkpoint_rejects_bad_outcome(tmp_path: Path):
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({"version": "3.1", "completed_runs": {"T0": {"00": {"1": "done"}}}}))
    with pytest.raises(FormatError, match="Invalid Checkpoint"):
        Checkpoint.load(path)


def test_checkpoint_fresh_mark_unmark_save(tmp_path: Path):
    config = ExperimentConfig.model_validate(json.loads((FIXTURE / "config/experiment.json").read_text()))
    cp = Checkpoint.fresh(config, tmp_path)
    assert cp.status == "rerunning" and cp.version == "3.1" and len(cp.config_hash) == 16
    cp.mark_run("T0", "00", 1, "passed")
    cp.mark_run("T0", "00", 2, "agent_complete")
    cp.mark_run("T0", "01", 1, "failed", run_state="failed")
    assert cp.run_states["T0"]["00"] == {"1": "report_written", "2": "agent_complete"}
    assert cp.run_states["T0"]["01"]["1"] == "failed"
    with pytest.raises(ValueError):
        cp.mark_run("T0", "00", 3, "done")  # type: ignore[arg-type]
    cp.unmark_run("T0", "01", 1)
    assert "01" not in cp.completed_runs["T0"] and "01" not in cp.run_states["T0"]
    path = tmp_path / "checkpoint.json"
    before = cp.last_updated_at
    cp.save(path)
    loaded = Checkpoint.load(path)
    assert loaded.completed_runs == {"T0": {"00": {"1": "passed", "2": "agent_complete"}}}
    assert loaded.last_updated_at >= before
    assert set(json.loads(path.read_text())) >= {"experiment_state", "run_states", "last_heartbeat", "pid"}


def test_checkpoint_loaded_v2_marks_are_dumped():
    cp = CheckpointV2.model_validate({"version": "2.0"})
    assert cp.to_json_dict() == {"version": "2.0"}
    migrated = Checkpoint.from_any({"version": "2.0", "experiment_id": "x"})
    migrated.mark_run("T1", "01", 1, "passed")
    assert migrated.to_json_dict()["completed_runs"] == {"T1": {"01": {"1": "passed"}}}


BASE_CONFIG = {
    "experiment_id": "e",
    "task_repo": "https://example.invalid/r",
    "task_commit": "abc",
    "task_prompt_file": "p.md",
    "language": "python",
}


def test_config_defaults():
    cfg = ExperimentConfig.model_validate(BASE_CONFIG)
    assert cfg.runs_per_subtest == 10
    assert cfg.judge_models == ["claude-opus-4-6"]
    assert cfg.timeout_seconds == 3600
    assert cfg.tiers_to_run == []
    assert cfg.max_turns is None and cfg.max_subtests is None
    assert cfg.thinking_mode == "None" and cfg.skip_agent_teams is False
    assert cfg.to_json_dict() == BASE_CONFIG


def test_config_legacy_judge_model_and_aliases():
    cfg = ExperimentConfig.model_validate(
        {**BASE_CONFIG, "judge_model": "opus", "models": ["sonnet-4.5", "x-1"]}
    )
    assert cfg.judge_models == ["claude-opus-4-6"]
    assert cfg.models == ["claude-sonnet-4-5", "x-1"]
    assert "judge_model" not in cfg.to_json_dict()
    cfg = ExperimentConfig.model_validate({**BASE_CONFIG, "judge_models": ["haiku", "opus-4.5", "haiku-4.5"]})
    assert cfg.judge_models == ["claude-haiku-4-5", "claude-opus-4-5", "claude-haiku-4-5"]


@pytest.mark.parametrize(
    "bad", [{"tiers_to_run": ["T7"]}, {"tiers_to_run": ["t0"]}, {"runs_per_subtest": 0}], ids=str
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        ExperimentConfig.model_validate({**BASE_CONFIG, **bad})


def test_config_missing_key_is_one_line_format_error(tmp_path: Path):
    data = dict(BASE_CONFIG)
    del data["task_repo"]
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError) as info:
        jsonio.load_model(path, ExperimentConfig)
    message = str(info.value)
    assert "\n" not in message and "task_repo" in message and str(path) in message


def test_unknown_fields_kept():
    run = RunResult.model_validate({"run_number": 1, "exit_code": 0, "process_metrics": {"r_prog": 1}})
    assert run.to_json_dict()["process_metrics"] == {"r_prog": 1}


def test_every_field_has_a_docstring():
    def walk(cls, seen):
        if cls in seen:
            return
        seen.add(cls)
        for sub in cls.__subclasses__():
            walk(sub, seen)

    models: set[type] = set()
    walk(ScyllaModel, models)
    missing = [
        f"{m.__name__}.{name}" for m in models for name, f in m.model_fields.items() if not f.description
    ]
    assert missing == []
