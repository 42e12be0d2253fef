"""``rerun-agents EXP --status results`` needing no judge runs in-process, and ends exactly like the flow.

The in-process path (``operations/results_only.py``) must leave the experiment as the Prefect
flow leaves it: the same summary, the same files (run results, aggregates, checkpoint). When a
run needs judges it hands over to the flow, which judges it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from cli.common import run_command
from cli.rerun_agents import app
from experiment.scan import ScanFilters, load_context, parse_statuses, scan_in_process
from flows.rerun_agents import rerun_agents
from operations.results_only import repair_results_only
from simulation.generator import generate_experiment
from tests.flows.simulated import TIERS, simulated_provider

REPO = Path(__file__).resolve().parents[2]
MIX = {"completed": 0.5, "results": 0.5}
VOLATILE = ("timestamp", "generated_at", "created_at", "updated_at", "last_updated", "backup", "duration")


def _experiment(dest: Path) -> Path:
    return generate_experiment(
        dest / "2026-01-20T06-13-07-results", tiers=["T0"], subtests_per_tier=2, runs_per_subtest=2,
        mix=MIX, seed=4, tiers_dir=TIERS,
    ).path  # fmt: skip


def _files(root: Path, *paths: Path) -> dict[str, object]:
    """Every JSON file of the experiment (minus backups and Prefect's dir), volatile keys dropped,
    the experiments' paths (embedded in run results; a copy keeps its original's) replaced."""

    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not any(t in k for t in VOLATILE)}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    out = {}
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root).as_posix()
        if not rel.startswith((".backups", ".prefect", ".scylla")):
            text = path.read_text()
            for embedded in paths:
                text = text.replace(str(embedded), "EXP")
            out[rel] = clean(json.loads(text))
    return out


def test_results_only_matches_the_flow(tmp_path):
    ours = _experiment(tmp_path / "a")
    flow = tmp_path / "b" / ours.name
    shutil.copytree(ours, flow, symlinks=True)
    statuses = parse_statuses(["results"])
    context = load_context(ours, TIERS)
    filters = ScanFilters(statuses=statuses)
    report = scan_in_process(context, filters)
    assert len(report.to_regenerate()) == 2
    summary = repair_results_only(context, filters, report, skip_regenerate=False, estimated_cost_usd=0.0)
    assert summary is not None
    expected = rerun_agents(experiment_dir=str(flow), statuses=list(statuses), tiers_dir=str(TIERS))
    assert [(r.run, r.outcome, r.judges_valid) for r in summary.runs] == [
        (r.run, r.outcome, r.judges_valid) for r in expected.runs
    ]
    assert summary.aggregates_rebuilt == expected.aggregates_rebuilt
    assert summary.after is not None and expected.after is not None
    assert summary.after.counts == expected.after.counts
    assert _files(ours, ours, flow) == _files(flow, ours, flow)


def test_results_only_command_does_not_import_prefect(tmp_path):
    exp = _experiment(tmp_path)
    code = (
        "import sys\n"
        "from cli.common import run_command\nfrom cli.rerun_agents import app\n"
        f"code = run_command(app, [{str(exp)!r}, '--status', 'results', '--tiers-dir', {str(TIERS)!r}], 'x')\n"
        "assert 'prefect' not in sys.modules, 'Prefect was imported'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Regenerated (missing results):        2" in done.stdout


def test_a_run_needing_judges_goes_to_the_flow(tmp_path, monkeypatch, capsys):
    exp = _experiment(tmp_path)
    context = load_context(exp, TIERS)
    report = scan_in_process(context, ScanFilters(statuses=parse_statuses(["results"])))
    run_dir = exp / report.to_regenerate()[0].run
    shutil.rmtree(run_dir / "judge")
    with simulated_provider(monkeypatch, tmp_path) as provider:
        assert run_command(app, [str(exp), "--status", "results", "--tiers-dir", str(TIERS)], "x") == 0
        assert provider.server.stats()["requests"] == 3  # the judges of that run, through the flow
    assert "Regenerated (missing results):        2" in capsys.readouterr().out
