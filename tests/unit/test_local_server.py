"""The background Prefect server a real repair uses when no PREFECT_API_URL is set (cli/local_server.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli import local_server
from cli.local_server import configured_api_url, running_url, stop_server, use_background_server


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    monkeypatch.delenv(local_server.OPT_OUT, raising=False)
    return tmp_path


def test_a_configured_api_is_used_and_nothing_started(home, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert use_background_server(lambda line: pytest.fail(line)) == "http://prefect.example:4200"
    assert not (home / local_server.STATE_FILE).exists()


def test_the_active_profile_counts_as_configured(home, monkeypatch):
    (home / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://10.0.0.5:4200/api"\n'
        "[profiles.ephemeral]\n"
    )
    assert configured_api_url(home) == "http://10.0.0.5:4200/api"
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")
    assert configured_api_url(home) is None


def test_opting_out_keeps_the_temporary_server(home, monkeypatch):
    monkeypatch.setenv(local_server.OPT_OUT, "1")
    assert use_background_server(lambda line: pytest.fail(line)) is None
    assert "PREFECT_API_URL" not in os.environ


def test_a_dead_server_is_not_reused_and_stop_cleans_up(home):
    (home / local_server.STATE_FILE).write_text(
        json.dumps({"pid": 2**22 + 7, "url": "http://127.0.0.1:1/api"})
    )
    (home / "server.pid").write_text(str(2**22 + 7))
    assert running_url(home) is None
    assert "was not running" in stop_server(home)
    assert not (home / local_server.STATE_FILE).exists() and not (home / "server.pid").exists()
    assert "No scylla-repair background server" in stop_server(home)


def test_a_running_server_is_reused(prefect_server_url, monkeypatch):
    """The test run's shared server was started by ensure_server: a command finds it, in ms."""
    shared = Path(os.environ["SCYLLA_TEST_SHARED_PREFECT_HOME"])
    monkeypatch.setenv("PREFECT_HOME", str(shared))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv(local_server.OPT_OUT, raising=False)
    pid = json.loads((shared / local_server.STATE_FILE).read_text())["pid"]
    assert running_url(shared) == prefect_server_url
    assert use_background_server(
        lambda line: pytest.fail(f"started again: {line}")
    ) == prefect_server_url.removesuffix("/api")
    assert os.environ["PREFECT_API_URL"] == prefect_server_url
    assert json.loads((shared / local_server.STATE_FILE).read_text())["pid"] == pid
    assert (shared / "server.pid").read_text() == str(pid)  # `prefect server stop` finds it too
