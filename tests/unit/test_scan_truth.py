"""Classification of generated experiments agrees with the generator's ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiment.scan import ScanFilters, load_context, scan_in_process
from simulation.generator import generate_experiment

MIX = {"completed": 0.4, "results": 0.2, "failed": 0.2, "partial": 0.1, "missing": 0.1}


@pytest.mark.parametrize("layout", ["flat", "phased"])
@pytest.mark.parametrize("seed", [1, 2])
def test_classification_matches_truth(tmp_path: Path, layout: str, seed: int):
    generated = generate_experiment(
        tmp_path / "exp",
        tiers=["T0", "T1", "T3"],
        subtests_per_tier=3,
        runs_per_subtest=4,
        mix=MIX,
        seed=seed,
        layout=layout,
        with_base_repo=False,
    )
    report = scan_in_process(load_context(generated.path), ScanFilters())
    got = {e.run: e.status.value for e in report.entries}
    assert got == generated.truth
    assert report.counts == {s: list(generated.truth.values()).count(s) for s in report.counts}


def test_every_run_of_a_subtest_missing_entirely_is_still_expected(tmp_path: Path):
    generated = generate_experiment(
        tmp_path / "exp", tiers=["T0"], subtests_per_tier=2, runs_per_subtest=3, mix={"missing": 1.0}, seed=0
    )
    report = scan_in_process(load_context(generated.path), ScanFilters())
    assert report.total_expected == 6
    assert report.counts["missing"] == 6


def test_parallel_classification_equals_sequential(tmp_path: Path, monkeypatch):
    import experiment.scan as scan

    generated = generate_experiment(
        tmp_path / "exp",
        tiers=["T0", "T2"],
        subtests_per_tier=2,
        runs_per_subtest=30,
        mix=MIX,
        seed=5,
        with_base_repo=False,
    )
    context = load_context(generated.path)
    keys, _ = scan.expected_keys(context, ScanFilters())
    sequential = scan.classify_all(context.root, scan.chunked(keys), workers=1)
    monkeypatch.setattr(scan, "PARALLEL_THRESHOLD", 10)
    parallel = scan.classify_all(context.root, scan.chunked(keys, size=7), workers=2)
    assert [e.model_dump() for e in parallel] == [e.model_dump() for e in sequential]
    assert {e.run: e.status.value for e in parallel} == generated.truth
