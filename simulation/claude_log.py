"""Helpers for tests driving the fake ``claude`` CLI (see ``fake_claude.py``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_DOUBLES_DIR = Path(__file__).resolve().parent


def fake_claude_bin() -> Path:
    """Absolute path of the directory holding the ``claude`` shim (prepend it to PATH)."""
    return _DOUBLES_DIR / "bin"


def fake_claude_path() -> Path:
    """Absolute path of the ``claude`` shim executable itself."""
    return fake_claude_bin() / "claude"


def fake_claude_env(
    *,
    mode: str | None = None,
    log: str | os.PathLike[str] | None = None,
    script: str | os.PathLike[str] | None = None,
    delay: float | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the fake on PATH and the FAKE_CLAUDE_* knobs set."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(fake_claude_bin()), env.get("PATH", "")])
    for key, value in (
        ("FAKE_CLAUDE_MODE", mode),
        ("FAKE_CLAUDE_LOG", log),
        ("FAKE_CLAUDE_SCRIPT", script),
        ("FAKE_CLAUDE_DELAY", delay),
    ):
        if value is not None:
            env[key] = str(value)
    return env


def write_script(
    path: str | os.PathLike[str],
    rules: Iterable[tuple[str, list[str]] | Mapping[str, object]],
    default: str = "success",
) -> Path:
    """Write a FAKE_CLAUDE_SCRIPT file. ``rules`` items are ``(match, modes)`` or rule dicts."""
    out = []
    for rule in rules:
        if isinstance(rule, Mapping):
            out.append(dict(rule))
        else:
            match, modes = rule
            out.append({"match": match, "modes": list(modes)})
    target = Path(path)
    target.write_text(json.dumps({"rules": out, "default": default}, indent=2), encoding="utf-8")
    return target


def read_invocations(log_path: str | os.PathLike[str]) -> list[dict]:
    """All events (``start`` and ``end``) of the JSON-lines log, in append order. Missing log -> []."""
    path = Path(log_path)
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn line cannot happen with the lock, but never crash a test on it
    return events


def starts(log_path: str | os.PathLike[str], match: str | None = None) -> list[dict]:
    """``start`` events, optionally only those whose cwd contains ``match``."""
    return [
        e
        for e in read_invocations(log_path)
        if e.get("event") == "start" and (match is None or match in str(e.get("cwd", "")))
    ]


def count_starts(log_path: str | os.PathLike[str], match: str | None = None) -> int:
    """Number of invocations (optionally only those whose cwd contains ``match``)."""
    return len(starts(log_path, match))


def runs(log_path: str | os.PathLike[str]) -> list[dict]:
    """Start events merged with their end event (``exit_code``/``end_time``; None while still running)."""
    merged: list[dict] = []
    open_by_pid: dict[int | None, dict] = {}
    for e in read_invocations(log_path):
        if e.get("event") == "start":
            run = dict(e, exit_code=None, end_time=None)
            merged.append(run)
            open_by_pid[e["pid"]] = run
        elif e.get("event") == "end":
            ended = open_by_pid.pop(e.get("pid"), None)
            if ended is not None:
                ended["exit_code"] = e.get("exit_code")
                ended["end_time"] = e.get("time")
    return merged


def peak_concurrency(log_path: str | os.PathLike[str]) -> int:
    """Maximum number of simultaneously running invocations.

    Uses the append order of the log (appends are serialised by a lock, so the order is real).
    """
    running: set[int | None] = set()
    peak = 0
    for e in read_invocations(log_path):
        pid = e.get("pid")
        if e.get("event") == "start":
            running.add(pid)
            peak = max(peak, len(running))
        elif e.get("event") == "end":
            running.discard(pid)
    return peak
