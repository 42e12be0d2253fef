"""The judge-slot classification behind rerun-judges, and its dry run (in-process, no Prefect)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli.common import run_command
from cli.rerun_judges import app
from experiment.errors import FilterError
from experiment.judge_slots import JUDGEABLE, SlotState, parse_judge_statuses, scan_judge_slots
from experiment.scan import ScanFilters, load_context, scan_in_process
from experiment.status import RunStatus
from simulation.generator import generate_experiment

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"


def test_status_filter_is_limited_to_runs_whose_agent_finished() -> None:
    assert parse_judge_statuses([]) == JUDGEABLE
    assert parse_judge_statuses(["complete"]) == (RunStatus.COMPLETED,)
    with pytest.raises(FilterError, match="rerun-agents"):
        parse_judge_statuses(["failed"])


def test_slot_states_and_dry_run_changes_nothing(tmp_path: Path, capsys) -> None:
    gen = generate_experiment(
        tmp_path / "exp",
        tiers=["T0"],
        subtests_per_tier=1,
        runs_per_subtest=3,
        mix={"completed": 1.0},
        tiers_dir=TIERS,
    )
    exp = gen.path
    slot = exp / "T0/00/run_01/judge/judge_03"
    (slot / "judgment.json").write_text("{not json")
    shutil.rmtree(exp / "T0/00/run_02/judge/judge_01")
    for n in (1, 2, 3):
        path = exp / f"T0/00/run_03/judge/judge_{n:02d}/judgment.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "is_valid": False}))
    mtimes = {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()}

    context = load_context(exp, TIERS)
    scan = scan_judge_slots(
        scan_in_process(context, ScanFilters(statuses=JUDGEABLE)), context.layout, context.config.judge_models
    )
    states = {r.run: r.slots for r in scan.runs}
    assert states["T0/00/run_01"] == [SlotState.COMPLETE, SlotState.COMPLETE, SlotState.INVALID]
    assert states["T0/00/run_02"] == [SlotState.MISSING, SlotState.COMPLETE, SlotState.COMPLETE]
    assert states["T0/00/run_03"] == [SlotState.INVALID] * 3
    assert scan.slots_to_judge == 5 and scan.totals() == {"complete": 4, "missing": 1, "invalid": 4}

    assert run_command(app, [str(exp), "--tiers-dir", str(TIERS), "--dry-run"], "rerun-judges") == 0
    out = capsys.readouterr().out
    assert "Would re-judge 5 judge slot(s) in 3 run(s) (1 with no valid judge); no agent is run." in out
    assert "T0/00/run_02 [completed]: judge_01 missing" in out
    assert {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()} == mtimes
    assert not (exp / ".prefect").exists()
