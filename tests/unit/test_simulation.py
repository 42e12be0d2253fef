"""Real-behaviour tests of the test doubles: the fake ``claude`` CLI and the Messages API server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from simulation.claude_log import (
    count_starts,
    fake_claude_bin,
    fake_claude_env,
    peak_concurrency,
    read_invocations,
    runs,
    write_script,
)
from simulation.messages_server import MessagesServer, ServerBehavior

MODEL = "claude-sonnet-4-5-20250929"
SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "simulation" / "messages_server.py"
RESULT_KEYS = {
    "type",
    "subtype",
    "is_error",
    "duration_ms",
    "duration_api_ms",
    "num_turns",
    "result",
    "session_id",
    "total_cost_usd",
    "usage",
    "modelUsage",
    "permission_denials",
    "uuid",
}


# --------------------------------------------------------------------------- fake claude


def _workdir(tmp_path: Path, name: str = "ws") -> tuple[Path, Path]:
    cwd = tmp_path / name
    cwd.mkdir(parents=True)
    prompt = tmp_path / f"{name.replace('/', '_')}-prompt.md"
    prompt.write_text(f"# Task\nWrite hello world ({name}).\n", encoding="utf-8")
    return cwd, prompt


def _argv(prompt: Path, *, claude: str = "claude") -> list[str]:
    return [
        claude,
        "--model",
        MODEL,
        "--print",
        "--output-format",
        "json",
        "--dangerously-skip-permissions",
        "--max-turns",
        "10",
        str(prompt),
    ]


def _run_claude(cwd: Path, prompt: Path, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        _argv(prompt),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
        **kw,
    )


def test_version_on_path_and_by_absolute_path(tmp_path):
    env = fake_claude_env()
    on_path = subprocess.run(["claude", "--version"], env=env, capture_output=True, text=True, timeout=10)
    assert on_path.returncode == 0
    assert on_path.stdout.strip() == "2.1.12 (Claude Code)"
    absolute = subprocess.run(
        [str(fake_claude_bin() / "claude"), "--version"], capture_output=True, text=True, timeout=10
    )
    assert absolute.stdout.strip() == "2.1.12 (Claude Code)"
    assert fake_claude_bin().is_absolute()


def test_success_writes_file_and_result_json(tmp_path):
    cwd, prompt = _workdir(tmp_path)
    log = tmp_path / "claude.jsonl"
    proc = _run_claude(cwd, prompt, fake_claude_env(mode="success", log=log))
    assert proc.returncode == 0, proc.stderr
    assert (cwd / "hello.py").read_text() == 'print("Hello, World!")\n'
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) >= RESULT_KEYS
    assert result["type"] == "result" and result["subtype"] == "success" and result["is_error"] is False
    assert result["num_turns"] == 6
    assert result["total_cost_usd"] > 0
    usage = result["usage"]
    for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"):
        assert isinstance(usage[key], int) and usage[key] > 0
    assert usage["cache_creation"]["ephemeral_5m_input_tokens"] == usage["cache_creation_input_tokens"]
    mu = result["modelUsage"][MODEL]
    assert mu["inputTokens"] == usage["input_tokens"] and mu["costUSD"] == result["total_cost_usd"]
    assert mu["contextWindow"] == 200000 and mu["maxOutputTokens"] == 64000
    assert re.fullmatch(r"[0-9a-f-]{36}", result["session_id"])

    events = read_invocations(log)
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[0]["cwd"] == str(cwd) and events[0]["mode"] == "success"
    assert events[0]["argv"][-1] == str(prompt)
    assert events[1]["exit_code"] == 0
    assert "env" not in events[0]

    # A different workspace gives different (but deterministic) usage.
    cwd2, prompt2 = _workdir(tmp_path, "ws2")
    other = json.loads(_run_claude(cwd2, prompt2, fake_claude_env()).stdout)
    again = json.loads(_run_claude(cwd, prompt, fake_claude_env()).stdout)
    assert other["usage"] != result["usage"]
    assert again["usage"] == result["usage"] and again["session_id"] != result["session_id"]


def test_fail_mode(tmp_path):
    cwd, prompt = _workdir(tmp_path)
    proc = _run_claude(cwd, prompt, fake_claude_env(mode="fail"))
    assert proc.returncode == 1
    assert "simulated agent crash" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["subtype"] == "error_during_execution" and result["is_error"] is True
    assert result["result"] == "simulated failure"
    assert not (cwd / "hello.py").exists()


def test_rate_limit_and_overloaded_modes(tmp_path):
    cwd, prompt = _workdir(tmp_path)
    proc = _run_claude(cwd, prompt, fake_claude_env(mode="rate_limit"))
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["subtype"] == "success" and result["is_error"] is True
    assert result["result"].startswith("You've hit your limit")
    assert result["total_cost_usd"] == 0 and result["num_turns"] == 1
    assert result["usage"]["output_tokens"] == 0

    proc = _run_claude(cwd, prompt, fake_claude_env(mode="overloaded"))
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["api_error_status"] == 529
    assert "overloaded_error" in result["result"] and result["result"].startswith("API Error: 529")
    assert not (cwd / "hello.py").exists()


def test_hang_is_killed_by_process_group(tmp_path):
    cwd, prompt = _workdir(tmp_path)
    log = tmp_path / "claude.jsonl"
    proc = subprocess.Popen(
        _argv(prompt),
        cwd=cwd,
        env=fake_claude_env(mode="hang", log=log),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while count_starts(log) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_starts(log) == 1
        time.sleep(0.3)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert runs(log)[0]["exit_code"] == 128 + signal.SIGTERM
    assert not (cwd / "hello.py").exists()


def test_script_rules_per_invocation(tmp_path):
    script = write_script(
        tmp_path / "script.json",
        [("T0/00/run_01", ["rate_limit", "fail", "success"]), ("T0/00/run_02", ["overloaded"])],
        default="success",
    )
    log = tmp_path / "claude.jsonl"
    env = fake_claude_env(script=script, log=log, mode="fail")  # the script wins over FAKE_CLAUDE_MODE
    run1, p1 = _workdir(tmp_path, "exp/T0/00/run_01/workspace")
    run2, p2 = _workdir(tmp_path, "exp/T0/00/run_02/workspace")
    run3, p3 = _workdir(tmp_path, "exp/T0/00/run_03/workspace")

    codes1 = [_run_claude(run1, p1, env).returncode for _ in range(4)]
    assert codes1 == [1, 1, 0, 0]
    assert [e["mode"] for e in read_invocations(log) if e["event"] == "start"] == [
        "rate_limit",
        "fail",
        "success",
        "success",
    ]
    assert [_run_claude(run2, p2, env).returncode for _ in range(2)] == [1, 1]
    assert json.loads(_run_claude(run2, p2, env).stdout)["api_error_status"] == 529
    assert _run_claude(run3, p3, env).returncode == 0  # no rule -> default

    assert count_starts(log) == 8
    assert count_starts(log, "run_01") == 4
    assert count_starts(log, "run_02") == 3
    assert count_starts(log, "run_03") == 1


def test_script_counter_is_safe_under_concurrency(tmp_path):
    script = write_script(tmp_path / "script.json", [("run_01", ["fail", "fail", "fail", "success"])])
    log = tmp_path / "claude.jsonl"
    cwd, prompt = _workdir(tmp_path, "run_01")
    env = fake_claude_env(script=script, log=log, delay=0.3)
    procs = [
        subprocess.Popen(
            _argv(prompt),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    codes = sorted(p.wait(timeout=20) for p in procs)
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    # Exactly three get the first three modes (fail), the rest repeat the last (success).
    assert codes == [0, 0, 0, 1, 1, 1]
    assert sorted(e["n"] for e in read_invocations(log) if e["event"] == "start") == list(range(6))
    assert peak_concurrency(log) >= 2
    assert all(r["exit_code"] is not None for r in runs(log))


def test_slow_success_and_delay(tmp_path):
    cwd, prompt = _workdir(tmp_path)
    env = fake_claude_env(mode="slow_success")
    env["FAKE_CLAUDE_SLOW_DELAY"] = "0.4"
    started = time.monotonic()
    proc = _run_claude(cwd, prompt, env)
    assert proc.returncode == 0 and time.monotonic() - started >= 0.4
    assert json.loads(proc.stdout)["subtype"] == "success"


# --------------------------------------------------------------------------- messages server


def _body(text: str = "Judge this run.", model: str = "claude-opus-4-1") -> dict:
    return {
        "model": model,
        "max_tokens": 1024,
        "system": "You are a strict judge.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }


HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}


def _judgment(response: httpx.Response) -> dict:
    text = response.json()["content"][0]["text"]
    match = re.search(r"```json\s*(\{.*?\})\s*```", text, re.S)
    assert match, text
    return json.loads(match.group(1))


def test_server_success_and_auth():
    with MessagesServer() as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        assert srv.url.startswith("http://127.0.0.1:")
        r = client.post("/v1/messages", json=_body(), headers=HEADERS)
        assert r.status_code == 200
        data = r.json()
        assert (
            data["type"] == "message" and data["role"] == "assistant" and data["model"] == "claude-opus-4-1"
        )
        assert (
            data["id"].startswith("msg_")
            and data["stop_reason"] == "end_turn"
            and data["stop_sequence"] is None
        )
        assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0
        judgment = _judgment(r)
        assert 0.7 <= judgment["score"] <= 1.0 and judgment["passed"] is True
        assert judgment["grade"] in "ABCD"
        assert judgment["categories"]["functional"]["items"]["F1"]["achieved"] == 1.0
        # Deterministic per request, different across requests.
        assert _judgment(client.post("/v1/messages", json=_body(), headers=HEADERS)) == judgment
        scores = {
            _judgment(client.post("/v1/messages", json=_body(f"run {i}"), headers=HEADERS))["score"]
            for i in range(5)
        }
        assert len(scores) > 1
        # String content works too.
        plain = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/messages", json=plain, headers=HEADERS).status_code == 200

        r = client.post("/v1/messages", json=_body(), headers={"anthropic-version": "2023-06-01"})
        assert r.status_code == 401
        assert r.json() == {
            "type": "error",
            "error": {"type": "authentication_error", "message": r.json()["error"]["message"]},
        }
        assert client.post("/v1/messages", json=_body(), headers={"x-api-key": ""}).status_code == 401
        bad = client.post("/v1/messages", json={"model": "m"}, headers=HEADERS)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"

        stats = srv.stats()
        assert stats["requests"] == 11
        assert stats["by_status"] == {"200": 8, "401": 2, "400": 1}
        assert stats["accepted"] == 8 and len(stats["accepted_times"]) == 8
        assert client.get("/stats").json()["requests"] == 11
        assert client.post("/reset").status_code == 200
        assert client.get("/stats").json()["requests"] == 0


def test_server_fail_sequence_and_retry_after():
    behavior = ServerBehavior(fail_sequence=["429", "529", "500", "malformed"], retry_after=3)
    with MessagesServer(behavior) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        responses = [client.post("/v1/messages", json=_body(), headers=HEADERS) for _ in range(5)]
        assert [r.status_code for r in responses] == [429, 529, 500, 200, 200]
        assert responses[0].headers["retry-after"] == "3"
        assert responses[0].json()["error"]["type"] == "rate_limit_error"
        assert responses[1].json()["error"]["type"] == "overloaded_error"
        assert responses[2].json()["error"]["type"] == "api_error"
        malformed = responses[3].json()["content"][0]["text"]
        assert "{" not in malformed and "```" not in malformed
        _judgment(responses[4])
        assert srv.stats()["by_status"] == {"429": 1, "529": 1, "500": 1, "200": 2}


def test_server_fault_rates_are_seeded():
    def statuses(seed: int) -> list[int]:
        behavior = ServerBehavior(fault_rates={"429": 0.3, "529": 0.2, "500": 0.1}, seed=seed)
        with MessagesServer(behavior) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
            return [client.post("/v1/messages", json=_body(), headers=HEADERS).status_code for _ in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert {429, 529, 200} <= set(first)


def test_server_rpm_window():
    with (
        MessagesServer(ServerBehavior(rpm=3, window_seconds=1.5)) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as client,
    ):
        codes = [client.post("/v1/messages", json=_body(), headers=HEADERS).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        rejected = client.post("/v1/messages", json=_body(), headers=HEADERS)
        assert rejected.status_code == 429
        assert rejected.json()["error"]["type"] == "rate_limit_error"
        retry_after = int(rejected.headers["retry-after"])
        assert 1 <= retry_after <= 2
        time.sleep(1.6)
        assert client.post("/v1/messages", json=_body(), headers=HEADERS).status_code == 200
        stats = srv.stats()
        assert stats["accepted"] == 4 and stats["rpm_violations_rejected"] == 1
        assert stats["per_minute"] == [4]


def _all_at_once(call: Callable[[int], int], n: int) -> list[int]:
    """``call(0..n-1)`` from n threads released together (on a loaded machine a pool's threads
    start late enough not to overlap)."""
    together = threading.Barrier(n)

    def released(i: int) -> int:
        together.wait(timeout=30)
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(released, range(n)))


def test_server_concurrency_and_max_concurrent():
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    with (
        MessagesServer(ServerBehavior(latency=0.4)) as srv,
        httpx.Client(base_url=srv.url, timeout=10, limits=limits) as client,
    ):

        def call(i: int) -> int:
            return client.post("/v1/messages", json=_body(f"r{i}"), headers=HEADERS).status_code

        codes = _all_at_once(call, 20)
        assert codes == [200] * 20
        stats = srv.stats()
        assert stats["peak_concurrency"] >= 10
        assert stats["in_flight"] == 0

        srv.reset()
        srv.configure(max_concurrent=2)
        codes = _all_at_once(call, 6)
        assert codes.count(200) >= 2 and codes.count(429) >= 1
        stats = srv.stats()
        assert stats["peak_concurrency"] <= 2
        assert stats["max_concurrent_violations"] == codes.count(429)
        assert stats["by_status"].get("429", 0) == codes.count(429)


def test_server_survives_client_disconnect():
    with MessagesServer(ServerBehavior(latency=0.3)) as srv:
        with pytest.raises(httpx.TimeoutException), httpx.Client(timeout=0.05) as client:
            client.post(srv.url + "/v1/messages", json=_body(), headers=HEADERS)
        time.sleep(0.4)
        r = httpx.post(srv.url + "/v1/messages", json=_body(), headers=HEADERS, timeout=5)
        assert r.status_code == 200


def test_server_cli_port_file_and_sigterm(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SERVER_SCRIPT),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--rpm",
            "120",
            "--fail-sequence",
            "529",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        port = int(port_file.read_text())
        url = f"http://127.0.0.1:{port}"
        assert httpx.post(url + "/v1/messages", json=_body(), headers=HEADERS, timeout=5).status_code == 529
        assert httpx.post(url + "/v1/messages", json=_body(), headers=HEADERS, timeout=5).status_code == 200
        stats = httpx.get(url + "/stats", timeout=5).json()
        assert stats["behavior"]["rpm"] == 120 and stats["accepted"] == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_server_threads_do_not_leak_after_stop():
    before = set(threading.enumerate())  # a session fixture's server may be running: not ours
    with MessagesServer() as srv:
        httpx.post(srv.url + "/v1/messages", json=_body(), headers=HEADERS, timeout=5)
    time.sleep(0.2)
    # Only idle keep-alive handler threads (daemons) may linger briefly; the serving thread is gone.
    new = set(threading.enumerate()) - before
    assert all(t.name != "messages-server" for t in new)
    assert len(new) <= 2
