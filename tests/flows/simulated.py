"""Test support: a simulated provider (fake claude + local Messages server) in the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from operations.judge.pipeline import PIPELINE_TOOLS_ENV
from simulation import TOOLCHAIN_DIR
from simulation.claude_log import count_starts, fake_claude_bin, read_invocations
from simulation.messages_server import MessagesServer, ServerBehavior

TIERS = Path(__file__).parents[1] / "fixtures" / "scylla-tiers"


@dataclass
class Provider:
    server: MessagesServer
    claude_log: Path
    script: Path

    def agent_starts(self, match: str | None = None) -> int:
        return count_starts(self.claude_log, match) if self.claude_log.exists() else 0

    def invocations(self) -> list[dict]:
        return read_invocations(self.claude_log) if self.claude_log.exists() else []

    def script_rules(self, rules: list[dict], default: str = "success") -> None:
        self.script.write_text(json.dumps({"rules": rules, "default": default}))


@contextmanager
def simulated_provider(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    behavior: ServerBehavior | None = None,
    *,
    simulated_pipeline: bool = True,
) -> Iterator[Provider]:
    """The fake ``claude``, the local Messages server and (unless ``simulated_pipeline=False``)
    the simulated pipeline toolchain, for the duration of the block."""
    with MessagesServer(behavior or ServerBehavior()) as server:
        log = tmp_path / "fake-claude.log"
        script = tmp_path / "fake-claude-script.json"
        script.write_text(json.dumps({"rules": [], "default": "success"}))
        monkeypatch.setenv("PATH", f"{fake_claude_bin()}:{__import__('os').environ['PATH']}")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-a-secret")
        monkeypatch.setenv("FAKE_CLAUDE_LOG", str(log))
        if simulated_pipeline:
            monkeypatch.setenv(PIPELINE_TOOLS_ENV, str(TOOLCHAIN_DIR))
        else:
            monkeypatch.delenv(PIPELINE_TOOLS_ENV, raising=False)
        monkeypatch.setenv("FAKE_CLAUDE_SCRIPT", str(script))
        yield Provider(server, log, script)
