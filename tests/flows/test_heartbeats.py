"""Flow runs send their heartbeats as Prefect's engine does, and a flow call ends with its body."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import prefect
from prefect import flow
from prefect.flow_engine import FlowRunEngine
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

import flows  # noqa: F401 - importing the flows installs the heartbeats
from tasks.heartbeats import READ_VERSIONS, prompt_heartbeats


def test_installed_in_the_prefect_engine_we_read():
    assert prefect.__version__.startswith(READ_VERSIONS), (
        f"Prefect {prefect.__version__}: read its flow_engine._send_heartbeats, then update tasks/heartbeats.py"
    )
    assert prefect.flow_engine._send_heartbeats is prompt_heartbeats


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "flow-run-heartbeats"]


def test_a_sync_flow_sends_its_heartbeat_and_leaves_no_heartbeat_thread(monkeypatch):
    sent: list[Any] = []
    original = FlowRunEngine._emit_flow_run_heartbeat
    monkeypatch.setattr(
        FlowRunEngine, "_emit_flow_run_heartbeat", lambda self, *a: (sent.append(self), original(self, *a))
    )

    @flow
    def body() -> int:
        assert len(_heartbeat_threads()) == 1
        return 7

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        assert body() == 7
    assert len(sent) == 1  # the first heartbeat, at the start; the next would come after 30 s
    assert _heartbeat_threads() == []


class _Engine(SimpleNamespace):
    """The engine hooks the heartbeat context uses, recording what is sent."""

    def __init__(self, seconds: int | None, final: bool = False) -> None:
        state = SimpleNamespace(is_final=lambda: final)
        super().__init__(heartbeat_seconds=seconds, flow_run=SimpleNamespace(state=state), sent=[])
        self.logger = SimpleNamespace(debug=lambda *a, **k: None)
        self.first = threading.Event()

    def _build_heartbeat_event_template(self) -> tuple[str, list[str]]:
        return "resource", ["related"]

    def _emit_flow_run_heartbeat(self, resource: str, related: list[str]) -> None:
        self.sent.append((resource, related))
        self.first.set()


def test_the_heartbeat_thread_ends_with_the_body_whatever_the_interval(monkeypatch):
    # A sleep in the heartbeat thread is what held every flow's end (Prefect sleeps in 1 s
    # steps): here a sleep would never return, so the thread would outlive the join.
    never = threading.Event()
    monkeypatch.setattr(time, "sleep", lambda seconds: never.wait())
    engine = _Engine(seconds=180)
    with prompt_heartbeats(engine):
        assert engine.first.wait(10)
        [thread] = _heartbeat_threads()
    assert not thread.is_alive()
    assert engine.sent == [("resource", ["related"])]


def test_no_heartbeat_thread_when_heartbeats_are_turned_off():
    engine = _Engine(seconds=None)
    with prompt_heartbeats(engine):
        assert _heartbeat_threads() == []
    assert engine.sent == []


def test_no_heartbeat_for_a_run_already_final():
    engine = _Engine(seconds=30, final=True)
    with prompt_heartbeats(engine):
        for thread in _heartbeat_threads():
            thread.join(10)  # it returns by itself, before the body ends: the run is over
        assert _heartbeat_threads() == []
    assert engine.sent == []
