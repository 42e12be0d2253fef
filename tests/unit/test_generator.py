"""The synthetic experiment generator: exact truth, model-valid files, determinism, a real base repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from experiment import jsonio
from experiment.models import (
    AgentResult,
    AgentTiming,
    Checkpoint,
    ClaudeOutput,
    CommandLog,
    ConfigManifest,
    ExperimentConfig,
    ExperimentResult,
    JudgeConsensus,
    JudgeTiming,
    Judgment,
    RunReport,
    RunResult,
    SubtestReport,
    TierReport,
    TierResult,
)
from simulation.generator import STATUSES, generate_experiment, main

MIX = {"completed": 0.5, "results": 0.2, "failed": 0.15, "partial": 0.1, "missing": 0.05}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    dest = tmp_path_factory.mktemp("gen") / "exp"
    return generate_experiment(
        dest, tiers=["T0", "T1", "T2"], subtests_per_tier=4, runs_per_subtest=5, mix=MIX, seed=7
    )


def test_truth_counts_match_mix(generated):
    counts = generated.counts()
    assert len(generated.truth) == 60
    assert {s: counts.get(s, 0) for s in STATUSES} == {
        "completed": 30,
        "results": 12,
        "failed": 9,
        "partial": 6,
        "missing": 3,
    }


def test_shapes_on_disk_match_truth(generated):
    exp = generated.path
    for key, status in generated.truth.items():
        rd = exp / key
        agent = rd / "agent"
        variant = generated.variants[key]
        if status == "missing":
            assert not rd.exists() or not any(rd.iterdir())
        elif status == "partial":
            assert (agent / "prompt.md").exists()
            assert not (agent / "output.txt").exists() and not (agent / "timing.json").exists()
            assert not (agent / "stderr.log").exists()
        elif status == "failed":
            out = (agent / "output.txt").read_text()
            if variant == "rate_limit":
                assert ClaudeOutput.model_validate_json(out).is_error
                assert jsonio.load_model(agent / "result.json", AgentResult).exit_code == 1
            else:
                assert out == ""
                assert (agent / "stderr.log").exists() == (variant == "crash")
            assert not (rd / "run_result.json").exists()
        elif status == "results":
            assert ClaudeOutput.model_validate_json((agent / "output.txt").read_text()).subtype == "success"
            for name in ("timing.json", "command_log.json", "stderr.log"):
                assert (agent / name).exists()
            assert not ((rd / "run_result.json").exists() and (agent / "result.json").exists())
            assert (rd / "judge" / "result.json").exists()
        else:
            assert (rd / "run_result.json").exists() and (agent / "result.json").exists()
            assert (rd / "judge").is_dir() and (agent / "output.txt").stat().st_size > 0
    assert {v for k, v in generated.variants.items() if generated.truth[k] == "failed"} == {
        "crash",
        "rate_limit",
        "timeout",
    }
    assert {v for k, v in generated.variants.items() if generated.truth[k] == "results"} == {
        "no_run_result",
        "no_agent_result",
        "no_agent_or_run_result",
    }


MODELS = {
    "config/experiment.json": ExperimentConfig,
    "result.json": ExperimentResult,
    "run_result.json": RunResult,
    "agent/result.json": AgentResult,
    "agent/timing.json": AgentTiming,
    "agent/command_log.json": CommandLog,
    "judge/result.json": JudgeConsensus,
    "judge/timing.json": JudgeTiming,
}


def test_files_parse_with_models(generated):
    exp = generated.path
    checked = 0
    for path in exp.rglob("*.json"):
        rel = path.relative_to(exp)
        s = str(rel)
        model = next((m for suffix, m in MODELS.items() if s.endswith(suffix)), None)
        if s == "checkpoint.json":
            model = Checkpoint
        elif path.name == "judgment.json":
            model = Judgment
        elif path.parent.name.startswith("judge_") and path.name == "timing.json":
            model = JudgeTiming
        elif path.name == "config_manifest.json":
            model = ConfigManifest
        elif path.name == "report.json":
            model = {1: TierReport, 2: SubtestReport, 3: RunReport}.get(len(rel.parts) - 1)
        elif len(rel.parts) == 2 and path.name == "result.json":
            model = TierResult
        if model is None:
            continue
        data = json.loads(path.read_text())
        assert model.model_validate(data).to_json_dict() == data, s
        checked += 1
    assert checked > 500
    for key, status in generated.truth.items():
        if status in ("completed", "results"):
            out = ClaudeOutput.model_validate_json((exp / key / "agent" / "output.txt").read_text())
            assert 0.05 <= out.total_cost_usd <= 0.3
            md = (exp / key / "judge" / "judge_01" / "MODEL.md").read_text()
            assert "**Model**: claude-opus-4-5-20251101" in md


def test_checkpoint_marks_completed_runs_only(generated):
    cp = Checkpoint.load(generated.path / "checkpoint.json")
    assert cp.version == "3.1"
    marked = {
        f"{t}/{s}/run_{int(r):02d}"
        for t, subs in cp.completed_runs.items()
        for s, runs in subs.items()
        for r in runs
    }
    assert marked == {k for k, v in generated.truth.items() if v == "completed"}


def test_every_subtest_has_manifest_and_report(generated):
    for tier, first in (("T0", 0), ("T1", 1), ("T2", 1)):
        for i in range(first, first + 4):
            sd = generated.path / tier / f"{i:02d}"
            assert (sd / "config_manifest.json").exists() and (sd / "report.json").exists()


def test_base_repo_head_is_task_commit(generated):
    repo = generated.path / "repo"
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    config = jsonio.load_model(generated.path / "config/experiment.json", ExperimentConfig)
    assert head.stdout.strip() == config.task_commit == generated.task_commit


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "repo" not in p.relative_to(root).parts[:1]:
            text = p.read_text(errors="replace").replace(str(root), "<ROOT>")
            out[str(p.relative_to(root))] = text
    return out


def _strip_times(snap: dict[str, str]) -> dict[str, str]:
    import re

    pattern = re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00|[0-9a-f]{40}|[0-9a-f]{7} Initial|\"pid\": \d+|[0-9a-f]{16}"
    )
    return {k: pattern.sub("X", v) for k, v in snap.items()}


def test_deterministic_for_a_seed(tmp_path):
    kwargs = {
        "tiers": ["T0", "T3"],
        "subtests_per_tier": {"T0": 2, "T3": 3},
        "runs_per_subtest": 4,
        "seed": 3,
    }
    a = generate_experiment(tmp_path / "a", **kwargs)
    b = generate_experiment(tmp_path / "b", **kwargs)
    c = generate_experiment(tmp_path / "c", **{**kwargs, "seed": 4})
    assert a.truth == b.truth and a.variants == b.variants
    assert _strip_times(_snapshot(a.path)) == _strip_times(_snapshot(b.path))
    assert _strip_times(_snapshot(a.path)) != _strip_times(_snapshot(c.path))


def test_phased_layout_and_tiers_dir(tmp_path):
    subtests = tmp_path / "tiers" / "tests/claude-code/shared/subtests/t1"
    subtests.mkdir(parents=True)
    for name in ("03-alpha.yaml", "01-beta.yaml", "07-gamma.yaml"):
        (subtests / name).write_text("name: x\n")
    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T1"],
        subtests_per_tier=2,
        runs_per_subtest=10,
        seed=1,
        tiers_dir=tmp_path / "tiers",
        layout="phased",
        with_base_repo=False,
        mix={"completed": 0.4, "results": 0.2, "failed": 0.2, "partial": 0.1, "missing": 0.1},
    )
    assert {k.split("/")[1] for k in gen.truth} == {"01", "03"}
    for key, status in gen.truth.items():
        done = (gen.path / "completed" / key).exists()
        running = (gen.path / "in_progress" / key).exists()
        assert done == (status in ("completed", "results"))
        assert running == (status in ("failed", "partial"))
        assert not (gen.path / key).exists()
    manifest = jsonio.load_model(gen.path / "completed/T1/01/config_manifest.json", ConfigManifest)
    assert manifest.fixture_config_path.endswith("t1/01-beta.yaml")


def test_bad_mix_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown status"):
        generate_experiment(tmp_path / "x", mix={"done": 1.0}, with_base_repo=False)


def test_cli_summary(tmp_path, capsys):
    rc = main(
        [
            str(tmp_path / "cli"),
            "--tiers",
            "T0",
            "--subtests",
            "2",
            "--runs",
            "5",
            "--mix",
            "completed=0.8,failed=0.2",
            "--seed",
            "1",
            "--no-base-repo",
        ]
    )
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("Generated 10 runs") and "completed 8" in line and "failed 2" in line
