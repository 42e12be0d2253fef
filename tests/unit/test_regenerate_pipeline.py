"""The CLI's regeneration pipeline (``experiment.regenerate.pipeline``): each tier folded only
once its own runs are regenerated and committed, in forked workers or in this process alike."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from experiment.regenerate import pipeline, regenerate_in_process
from experiment.scan import CHUNK_SIZE
from simulation.generator import generate_experiment

_STAMPS = re.compile(r'^.*("generated_at"|\*\*Generated\*\*).*$', re.MULTILINE)


def _experiment(dest: Path) -> Path:
    generate_experiment(
        dest,
        tiers=["T0", "T1", "T2"],
        subtests_per_tier=2,
        runs_per_subtest=20,
        mix={"completed": 0.3, "results": 0.7},
        seed=11,
        with_base_repo=False,
    )
    return dest


def test_forked_pipeline_folds_every_regenerated_run_and_matches_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than a chunk of runs to regenerate: forked workers. A tier folded before its runs
    were committed would miss the runs whose run_result.json was missing (fewer runs
    aggregated, skipped runs); the result must also be what one process writes."""
    forked = _experiment(tmp_path / "forked")
    alone = Path(shutil.copytree(forked, tmp_path / "alone", symlinks=True))
    missing = sum(1 for _ in forked.glob("T*/*/run_*") if not (_ / "run_result.json").exists())
    assert missing > 10
    summary = regenerate_in_process(forked)
    assert summary.regenerated > CHUNK_SIZE  # so the pipeline forked its workers
    assert summary.aggregates is not None
    assert summary.aggregates.runs == 120 and summary.aggregates.skipped_runs == []
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    one = regenerate_in_process(alone)
    assert [r.model_dump() for r in one.runs] == [r.model_dump() for r in summary.runs]
    assert one.aggregates is not None
    assert one.aggregates.model_dump(exclude={"experiment"}) == summary.aggregates.model_dump(
        exclude={"experiment"}
    )
    for name in summary.aggregates.written:
        texts = [
            (exp / name).read_text().replace(str(alone), "EXP").replace(str(forked), "EXP")
            for exp in (forked, alone)
        ]
        assert _STAMPS.sub("", texts[0]) == _STAMPS.sub("", texts[1]), name


def test_a_failed_regeneration_stops_the_pass_before_any_aggregate_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = _experiment(tmp_path / "exp")
    aggregates = ["result.json", "T0/result.json", "T1/result.json", "T2/result.json"]
    before = {name: (exp / name).read_bytes() for name in aggregates}
    real = pipeline.regenerate_chunk

    def fails_on_t1(root: Path, labels: list[str], **kwargs: object) -> object:
        if labels[0].startswith("T1/"):
            raise RuntimeError("disk on fire")
        return real(root, labels, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "regenerate_chunk", fails_on_t1)  # inherited by the forked workers
    with pytest.raises(RuntimeError, match="disk on fire"):
        regenerate_in_process(exp)
    assert {name: (exp / name).read_bytes() for name in aggregates} == before
    assert not list(exp.rglob(".*.tmp"))  # no task's temp files: unfinished, dropped or uncommitted
