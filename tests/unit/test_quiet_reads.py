"""Reads that spare the experiment: access times left alone (``experiment.quiet_read``) and the
runless skim of a large ``result.json`` (``regenerate.files.read_dict_without_runs``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from experiment import quiet_read
from experiment.jsonio import dumps
from experiment.quiet_read import read_bytes
from experiment.regenerate.files import _text_without_runs, read_dict_without_runs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-test001-dryrun"


def _runless(value: Any) -> Any:
    """What the old whole-file parse gave: every ``runs`` list dropped, at any depth."""
    if isinstance(value, dict):
        return {k: _runless(v) for k, v in value.items() if not (k == "runs" and isinstance(v, list))}
    if isinstance(value, list):
        return [_runless(v) for v in value]
    return value


def _experiment_like() -> dict[str, Any]:
    run = {"run_number": 1, "runs": [{"nested": ["]", "  ]"]}], "text": 'a "runs": [\n b'}
    subtest = {"subtest_id": "00", "runs": [run, dict(run, run_number=2)], "pass_rate": 1.0}
    return {
        "started_at": "2026-01-01T00:00:00+00:00",
        "tier_results": {"T0": {"subtest_results": {"00": subtest, "01": dict(subtest, runs=[])}}},
        "runs": [],
        "total_duration_seconds": 12.5,
    }


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(dumps, id="ours"),
        pytest.param(lambda d: json.dumps(d, indent=4), id="indent-4"),
        pytest.param(json.dumps, id="one-line"),
        pytest.param(lambda d: json.dumps(d, indent="\t"), id="tabs"),
    ],
)
def test_runless_read_equals_the_whole_parse_in_any_layout(tmp_path: Path, layout: Any) -> None:
    data = _experiment_like()
    path = tmp_path / "result.json"
    path.write_text(layout(data), encoding="utf-8")
    assert read_dict_without_runs(path) == _runless(data)


def test_indented_runs_are_skipped_line_by_line_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(dumps(_experiment_like()), encoding="utf-8")
    skimmed = _text_without_runs(path)
    assert "run_number" not in skimmed and skimmed.count('"runs": []') == 3


def test_runless_read_of_the_real_experiment_files() -> None:
    files = sorted(FIXTURE.rglob("result.json"))
    assert len(files) >= 3
    for path in files:
        assert read_dict_without_runs(path) == _runless(json.loads(path.read_text())), path


def test_runless_read_of_a_damaged_file_is_none(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(dumps(_experiment_like())[:-40], encoding="utf-8")  # cut inside the runs
    assert read_dict_without_runs(path) is None
    assert read_dict_without_runs(tmp_path / "missing.json") is None


def test_quiet_read_leaves_the_access_time_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b"x" * 200_000)  # more than one read block
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))  # atime before mtime: relatime would update it
    assert read_bytes(path) == b"x" * 200_000
    assert os.stat(path).st_atime_ns == 1_000_000_000
    with open(path, "rb") as handle:  # the ordinary read does update it (the test can fail)
        handle.read()
    assert os.stat(path).st_atime_ns != 1_000_000_000 or "noatime" in Path("/proc/mounts").read_text()


def test_quiet_read_of_a_file_we_do_not_own_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b"{}")
    real_open = os.open

    def not_owner(name: Any, flags: int, *args: Any) -> int:
        if flags & getattr(os, "O_NOATIME", 0):
            raise PermissionError(1, "Operation not permitted")
        return real_open(name, flags, *args)

    monkeypatch.setattr(quiet_read.os, "open", not_owner)
    monkeypatch.setattr(quiet_read, "_flags", [quiet_read._QUIET])
    assert read_bytes(path) == b"{}" and read_bytes(path) == b"{}"
    assert quiet_read._flags == [quiet_read._PLAIN]
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "missing")
