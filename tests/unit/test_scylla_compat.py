"""ProjectScylla reads back every file we write, where it looks for it (issue 11).

Every file a regeneration or a checkpoint rebuild writes is validated against the
ProjectScylla-shaped models of :mod:`tests.compat.scylla_shapes`, on both layouts; written files
have the umask's mode (or keep theirs); every judged run has ``judge/timing.json``; a pass with
nothing to do changes no byte and no mode. The repair flow's half is in
``tests/flows/test_scylla_compat_repair.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from experiment import jsonio
from experiment.layout import ExperimentLayout
from experiment.locks import update_checkpoint
from experiment.models import ExperimentConfig
from experiment.regenerate import rebuild_aggregates, rebuild_checkpoint, regenerate_in_process
from simulation.generator import generate_experiment
from tests.compat.files import mode_problems, snapshot, umask_mode, written_since
from tests.compat.scylla_shapes import (
    CheckpointShape,
    ExperimentResultShape,
    JudgeSelectionShape,
    JudgeTimingShape,
    check_experiment,
)

SAMPLE = Path(__file__).parents[1] / "fixtures" / "scylla-test001-dryrun"
SAMPLE_CONFIG_HASH = "a3ce7392db88aa85"
"""ProjectScylla's ``compute_config_hash(ExperimentConfig.load(...))`` of the sample's config at
its commit b1b5ea8 (the sample's own checkpoint holds an older version's hash, 8553442b41f0adc8)."""


def make(tmp_path: Path, layout: str, **kwargs) -> Path:
    options = dict(
        tiers=["T0", "T1"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        mix={"completed": 0.5, "results": 0.5},
        seed=7,
        with_base_repo=False,
        layout=layout,
    )
    options.update(kwargs)
    return generate_experiment(tmp_path / f"exp-{layout}", **options).path


def run_dirs(exp: Path) -> list[Path]:
    return sorted(
        p.parent
        for p in exp.rglob("agent")
        if p.is_dir() and ".failed" not in p.parts and ".backups" not in p.parts
    )


def judged_runs_without_timing(exp: Path) -> list[str]:
    missing = []
    for run in run_dirs(exp):
        if (run / "judge" / "result.json").is_file():
            timing = run / "judge" / "timing.json"
            if not timing.is_file():
                missing.append(str(run.relative_to(exp)))
            else:
                JudgeTimingShape.model_validate(json.loads(timing.read_text()))
    return missing


@pytest.mark.parametrize("layout", ["flat", "phased"])
def test_regenerate_writes_what_projectscylla_reads_where_it_reads_it(tmp_path: Path, layout: str):
    exp = make(tmp_path, layout)
    for run in run_dirs(exp):  # runs to regenerate whose judge/timing.json was never written
        if not (run / "run_result.json").is_file() or not (run / "agent/result.json").is_file():
            (run / "judge" / "timing.json").unlink(missing_ok=True)
    summary_md = exp / "summary.md"
    summary_md.write_text("stale\n")
    summary_md.chmod(0o640)  # a replaced file keeps its mode
    before = snapshot(exp)

    summary = regenerate_in_process(exp)
    rebuild_checkpoint(exp)

    after = snapshot(exp)
    written = written_since(before, after)
    assert summary.regenerated > 0 and "summary.md" in written
    assert check_experiment(exp) == []
    assert mode_problems(before, after, written) == []
    assert stat.S_IMODE(summary_md.stat().st_mode) == 0o640
    assert judged_runs_without_timing(exp) == []
    checkpoint = json.loads((exp / "checkpoint.json").read_text())
    assert checkpoint["version"] == "3.1" and checkpoint["config_hash"]
    assert checkpoint["tier_states"] and checkpoint["subtest_states"]
    if layout == "phased":  # aggregates only in ProjectScylla's completed/ tier dirs
        assert not [p for p in exp.glob("T*")], "aggregates outside completed/"
        for tier in ("T0", "T1"):
            for name in ("result.json", "best_subtest.json", "report.json", "report.md", "summary.md"):
                assert (exp / "completed" / tier / name).is_file(), name
            assert sorted(p.parent.name for p in (exp / "completed" / tier).glob("*/report.json"))


def test_a_written_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_own(tmp_path: Path):
    new = tmp_path / "new.json"
    jsonio.atomic_write_json(new, {"a": 1})
    assert stat.S_IMODE(new.stat().st_mode) == umask_mode() == 0o666 & ~jsonio.process_umask()
    kept = tmp_path / "kept.md"
    kept.write_text("old")
    kept.chmod(0o604)
    jsonio.atomic_write_text(kept, "new")
    assert kept.read_text() == "new" and stat.S_IMODE(kept.stat().st_mode) == 0o604
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stale_aggregates_of_a_phased_experiment_are_moved_aside_and_their_values_kept(tmp_path: Path):
    exp = make(tmp_path, "phased", mix={"completed": 1.0})
    recorded = json.loads((exp / "completed/T0/result.json").read_text())
    # What an earlier scylla-repair left: the tier's aggregates in <exp>/T0, ProjectScylla's gone.
    shutil.copytree(exp / "completed/T0", exp / "T0", ignore=shutil.ignore_patterns("run_*", ".failed"))
    for name in ("result.json", "best_subtest.json", "report.json"):
        (exp / "completed/T0" / name).unlink()
    (exp / "completed/T0/00/config_manifest.json").unlink()

    summary = rebuild_aggregates(exp, stamp="20260101T000000Z")

    assert not (exp / "T0").exists() and (exp / ".backups/20260101T000000Z/T0/result.json").is_file()
    assert summary.moved_aside == ["T0 -> .backups/20260101T000000Z/T0"]
    rebuilt = json.loads((exp / "completed/T0/result.json").read_text())
    assert rebuilt["total_duration"] == recorded["total_duration"]  # read back, not approximated
    assert not [a for a in summary.approximated if a.startswith("T")]
    assert (exp / "completed/T0/00/config_manifest.json").is_file()  # carried over, not lost
    assert check_experiment(exp) == []


def test_a_tie_is_broken_by_tokens_then_by_subtest_id_with_a_judge_vote(tmp_path: Path):
    exp = make(tmp_path, "flat", tiers=["T0"], mix={"completed": 1.0})
    tokens = {"00": 900, "01": 500}
    for path in exp.glob("T0/*/run_*/run_result.json"):
        data = json.loads(path.read_text())
        data["judge_score"] = 0.9
        data["token_stats"] = {**data["token_stats"], "cache_read_tokens": tokens[path.parts[-3]]}
        path.write_text(json.dumps(data))
    rebuild_aggregates(exp)
    best = JudgeSelectionShape.model_validate(json.loads((exp / "T0/best_subtest.json").read_text()))
    assert best.tiebreaker_needed and best.winning_subtest == "01"
    assert best.tiebreaker_result is not None and best.tiebreaker_result.subtest_id == "01"
    assert best.tiebreaker_result.confidence == 1.0
    tier = json.loads((exp / "T0/result.json").read_text())
    assert tier["subtest_results"]["01"]["selection_reason"].startswith("Tie-breaker")

    tokens["01"] = 900  # equal medians and equal tokens: the lower subtest id wins
    for path in exp.glob("T0/01/run_*/run_result.json"):
        data = json.loads(path.read_text())
        data["token_stats"] = json.loads((exp / "T0/00/run_01/run_result.json").read_text())["token_stats"]
        path.write_text(json.dumps(data))
    rebuild_aggregates(exp)
    best = JudgeSelectionShape.model_validate(json.loads((exp / "T0/best_subtest.json").read_text()))
    assert best.winning_subtest == "00" and best.tiebreaker_result.subtest_id == "00"


def test_no_tier_passing_writes_a_frontier_cop_a_float_field_accepts(tmp_path: Path):
    exp = make(tmp_path, "phased", mix={"completed": 1.0})
    for path in exp.glob("completed/T*/*/run_*/run_result.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "judge_passed": False}))
    summary = rebuild_aggregates(exp)
    assert summary.frontier_cop is None and summary.best_tier is None
    result = ExperimentResultShape.model_validate(json.loads((exp / "result.json").read_text()))
    assert result.frontier_cop == float("inf") and result.best_overall_tier is None
    assert json.loads((exp / "report.json").read_text())["summary"]["frontier_cop"] is None
    assert check_experiment(exp) == []


@pytest.mark.parametrize("layout", ["flat", "phased"])
def test_a_pass_with_nothing_to_do_changes_no_byte_and_no_mode(tmp_path: Path, layout: str):
    exp = make(tmp_path, layout)
    regenerate_in_process(exp)
    rebuild_checkpoint(exp)
    before = snapshot(exp)
    assert regenerate_in_process(exp).regenerated == 0
    rebuild_checkpoint(exp)
    config = ExperimentConfig.model_validate(json.loads((exp / "config/experiment.json").read_text()))
    update_checkpoint(ExperimentLayout(exp), config, lambda checkpoint: None)
    assert snapshot(exp) == before


def test_the_sample_with_nothing_to_do_keeps_its_v2_checkpoint_byte_for_byte(tmp_path: Path):
    exp = tmp_path / "sample"
    shutil.copytree(SAMPLE, exp)
    before = (exp / "checkpoint.json").read_bytes()
    config = ExperimentConfig.model_validate(json.loads((exp / "config/experiment.json").read_text()))

    def settle(checkpoint):  # what a repair that finds every run complete records
        checkpoint.experiment_state = "complete"
        for tier, subtests in checkpoint.completed_runs.items():
            for subtest, runs in subtests.items():
                for run, outcome in runs.items():
                    checkpoint.mark_run(tier, subtest, int(run), outcome, run_state="report_written")

    update_checkpoint(ExperimentLayout(exp), config, settle)
    assert (exp / "checkpoint.json").read_bytes() == before and not (exp / ".backups").exists()


def test_a_migrated_checkpoint_is_backed_up_and_written_as_projectscylla_has_it(tmp_path: Path):
    exp = tmp_path / "sample"
    shutil.copytree(SAMPLE, exp)
    original = (exp / "checkpoint.json").read_bytes()
    rebuild_aggregates(exp)  # the aggregates exist, so every tier can be complete
    config = ExperimentConfig.model_validate(json.loads((exp / "config/experiment.json").read_text()))
    update_checkpoint(ExperimentLayout(exp), config, lambda c: setattr(c, "pause_count", 1))

    backups = list(exp.glob(".backups/*/checkpoint.json"))
    assert [b.read_bytes() for b in backups] == [original]
    saved = json.loads((exp / "checkpoint.json").read_text())
    CheckpointShape.model_validate(saved)
    assert saved["version"] == "3.1" and saved["config_hash"] == SAMPLE_CONFIG_HASH
    assert saved["tier_states"] == dict.fromkeys(saved["completed_runs"], "complete")
    assert all(set(s.values()) == {"aggregated"} for s in saved["subtest_states"].values())
    assert stat.S_IMODE(os.stat(exp / "checkpoint.json").st_mode) == stat.S_IMODE(
        os.stat(SAMPLE / "checkpoint.json").st_mode
    )


def test_the_experiment_report_keeps_projectscylla_tier_order(tmp_path: Path):
    exp = tmp_path / "sample"
    shutil.copytree(SAMPLE, exp)
    order = [c["tier"] for c in json.loads((SAMPLE / "report.json").read_text())["children"]]
    assert order != sorted(order)  # the order the tiers finished in
    (exp / "result.json").unlink()
    rebuild_aggregates(exp)
    assert [c["tier"] for c in json.loads((exp / "report.json").read_text())["children"]] == order
    assert list(json.loads((exp / "result.json").read_text())["tier_results"]) == order
    assert check_experiment(exp) == []
