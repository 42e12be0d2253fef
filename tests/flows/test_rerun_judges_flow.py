"""``rerun-judges``: exactly the missing and invalid judge slots are judged again, through the local
Messages server, including a run whose every judge is invalid; no agent runs; a dry run changes
nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

from cli.common import run_command
from cli.rerun_judges import app
from experiment.consensus import is_valid_judgment
from experiment.judge_slots import scan_judge_slots
from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus, classify_run
from flows.rerun_judges import rerun_judges
from simulation.generator import DEFAULT_JUDGES, generate_experiment
from tests.flows.simulated import TIERS, simulated_provider

ALL_INVALID = "T0/00/run_01"
ONE_MISSING = "T0/00/run_02"
NEVER_JUDGED = "T0/01/run_01"
EXPECTED = {ALL_INVALID: [1, 2, 3], ONE_MISSING: [2], NEVER_JUDGED: [1, 2, 3]}


def broken_experiment(tmp_path: Path) -> Path:
    """All runs completed, then: every judgment of one run invalid, one slot of another gone, a
    third run's judges (and results) gone; two failed runs the command must leave alone."""
    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T0"],
        subtests_per_tier=2,
        runs_per_subtest=3,
        mix={"completed": 1.0},
        tiers_dir=TIERS,
        seed=4,
    )
    exp = gen.path
    for slot in (1, 2, 3):
        path = exp / ALL_INVALID / "judge" / f"judge_{slot:02d}" / "judgment.json"
        data = json.loads(path.read_text())
        data["is_valid"] = False
        path.write_text(json.dumps(data))
    shutil.rmtree(exp / ONE_MISSING / "judge" / "judge_02")
    shutil.rmtree(exp / NEVER_JUDGED / "judge")
    (exp / NEVER_JUDGED / "run_result.json").unlink()
    for run in ("T0/01/run_02", "T0/01/run_03"):  # agent failed: not a judge's business
        (exp / run / "agent" / "output.txt").write_text("")
        (exp / run / "agent" / "result.json").unlink()
    return exp


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "/.git/" not in str(p) and not str(p.relative_to(root)).startswith("repo/")
    }


def test_classification_finds_exactly_the_broken_slots(tmp_path):
    exp = broken_experiment(tmp_path)
    context = load_context(exp, TIERS)
    statuses = {e.run: e.status for e in scan_in_process(context, ScanFilters()).entries}
    assert statuses[ALL_INVALID] is RunStatus.COMPLETED  # what rerun-agents would never touch
    scan = scan_judge_slots(scan_in_process(context, ScanFilters()), context.layout, DEFAULT_JUDGES)
    assert {r.run: r.to_judge for r in scan.to_judge()} == EXPECTED
    assert scan.agent_not_finished == 2


def test_rerun_judges_rejudges_exactly_those_slots_and_runs_no_agent(tmp_path, monkeypatch):
    exp = broken_experiment(tmp_path)
    before = snapshot(exp)
    with simulated_provider(monkeypatch, tmp_path) as provider:
        summary = rerun_judges(str(exp), tiers_dir=str(TIERS))
        stats = provider.server.stats()
        assert provider.agent_starts() == 0
    # One accepted request per slot to judge, each with that slot's model.
    assert stats["accepted"] == 7
    wanted = Counter(DEFAULT_JUDGES[slot - 1] for slots in EXPECTED.values() for slot in slots)
    assert Counter(stats["by_model"]) == wanted
    assert summary.slots_rejudged == 7 and summary.slots_failed == 0 and summary.runs_finalized == 3
    assert summary.aggregates_rebuilt
    after = snapshot(exp)
    for run in EXPECTED:
        run_dir = exp / run
        assert classify_run(run_dir).status is RunStatus.COMPLETED
        assert all(
            is_valid_judgment(run_dir / "judge" / f"judge_{n:02d}" / "judgment.json") for n in (1, 2, 3)
        )
        assert json.loads((run_dir / "run_result.json").read_text())["judge_score"] is not None
    # Slots that were valid, and runs with nothing to judge, are byte-identical.
    kept = [
        name
        for name in before
        if "/judge/judge_" in name
        and not any(name.startswith(f"{run}/judge/judge_{n:02d}/") for run, s in EXPECTED.items() for n in s)
    ]
    assert kept and all(after.get(name) == before[name] for name in kept)
    for run in ("T0/00/run_03", "T0/01/run_02", "T0/01/run_03"):
        assert {k: v for k, v in after.items() if k.startswith(run + "/")} == {
            k: v for k, v in before.items() if k.startswith(run + "/")
        }
    # A second run finds nothing to judge.
    with simulated_provider(monkeypatch, tmp_path) as provider:
        again = rerun_judges(str(exp), tiers_dir=str(TIERS))
        assert provider.server.stats()["accepted"] == 0
    assert again.before.slots_to_judge == 0


def test_dry_run_changes_nothing_and_filters_apply(tmp_path, monkeypatch, capsys):
    exp = broken_experiment(tmp_path)
    before = snapshot(exp)
    with simulated_provider(monkeypatch, tmp_path) as provider:
        summary = rerun_judges(str(exp), tiers_dir=str(TIERS), dry_run=True)
        assert run_command(app, [str(exp), "--tiers-dir", str(TIERS), "--dry-run"], "rerun-judges") == 0
        assert run_command(app, [str(exp), "--dry-run", "--json", "--tier", "T0", "--subtest", "00"]) == 0
        assert provider.server.stats()["accepted"] == 0 and provider.agent_starts() == 0
    assert snapshot(exp) == before
    assert summary.dry_run and summary.before.slots_to_judge == 7
    out = capsys.readouterr().out
    assert (
        "DRY RUN MODE" in out and "Would re-judge 7 judge slot(s) in 3 run(s) (2 with no valid judge)" in out
    )
    assert f"{ALL_INVALID} [completed]: judge_01 invalid, judge_02 invalid, judge_03 invalid" in out
    data = json.loads(out[out.index("{") :])
    assert [r["run"] for r in data["runs"]] == [ALL_INVALID, ONE_MISSING]
    assert data["rerun"]["slots_to_judge"] == 4 and data["dry_run"] is True


def test_cli_rejudges_and_reports(tmp_path, monkeypatch, capsys):
    exp = broken_experiment(tmp_path)
    from cli.regenerate_results import app as regenerate_app

    run_command(
        regenerate_app, [str(exp), "--tiers-dir", str(TIERS), "--skip-aggregates"], "regenerate-results"
    )
    assert "repaired by: rerun-judges EXPERIMENT_DIR" in capsys.readouterr().out  # the advice we make true
    with simulated_provider(monkeypatch, tmp_path) as provider:
        code = run_command(app, [str(exp), "--tiers-dir", str(TIERS), "--runs", "2"], "rerun-judges")
        assert provider.server.stats()["accepted"] == 1 and provider.agent_starts() == 0
    assert code == 0
    out = capsys.readouterr().out
    assert "Judge slots re-judged:                 1" in out
    assert "Judge slots still invalid:             0" in out
    assert is_valid_judgment(exp / ONE_MISSING / "judge" / "judge_02" / "judgment.json")
    assert not is_valid_judgment(exp / ALL_INVALID / "judge" / "judge_01" / "judgment.json")  # --runs 2
