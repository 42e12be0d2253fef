"""Artifact keys: one history per experiment, readable, and valid for Prefect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prefect.types.names import raise_on_name_alphanumeric_dashes_only

from tasks.artifacts import artifact_key

NAME = "2026-01-20T06-13-07-test-001"


def test_same_directory_name_under_two_roots_gets_two_keys(tmp_path: Path):
    first = artifact_key("repair-summary", tmp_path / "fullruns-a" / NAME)
    second = artifact_key("repair-summary", tmp_path / "fullruns-b" / NAME)
    assert first != second
    # Still readable: the kind and the directory name come first, the hash last.
    for key in (first, second):
        assert key.startswith("repair-summary-2026-01-20t06-13-07-test-001-")
        assert len(key.rsplit("-", 1)[1]) == 8


def test_one_experiment_has_one_key_however_its_path_is_spelled(tmp_path: Path, monkeypatch):
    exp = tmp_path / "fullruns" / NAME
    exp.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spellings = [exp, str(exp), Path("fullruns") / NAME, f"{tmp_path}/fullruns/../fullruns/{NAME}/"]
    assert len({artifact_key("classification", s) for s in spellings}) == 1
    link = tmp_path / "link"
    os.symlink(exp, link)
    assert artifact_key("classification", link) == artifact_key("classification", exp)


@pytest.mark.parametrize(
    "name",
    [NAME, "Expé rience_№1", "---", "A" * 200, "x" * 39 + "-y", "..."],
)
def test_keys_are_valid_prefect_artifact_keys(tmp_path: Path, name: str):
    key = artifact_key("rerun-progress", tmp_path / name)
    assert raise_on_name_alphanumeric_dashes_only(key, field_name="Artifact key") == key
    assert "--" not in key and not key.endswith("-")
    assert len(key) <= len("rerun-progress-") + 40 + 1 + 8
