#!/usr/bin/env python3
"""A local Anthropic-Messages-compatible HTTP server for judge tests (standard library only).

Endpoints:

- ``POST /v1/messages``: Anthropic Messages API subset. Needs a non-empty ``x-api-key``
  (else 401 ``authentication_error``). Answers with a message whose text holds a fenced ```json
  judgment; the score is deterministic from a hash of the request (``score_range``).
- ``GET /stats``: counters (see :meth:`MessagesServer.stats`).
- ``POST /reset``: clears the counters, the rpm window and the ``fail_sequence`` position.
- ``POST /configure``: JSON object of :class:`ServerBehavior` fields to change at runtime.
- ``GET /health``: ``{"ok": true}``.

Request admission, in order: auth (401) -> body validation (400) -> ``max_concurrent`` (429,
retry-after 1, counted as a violation) -> ``rpm`` sliding window over *accepted* requests (429,
retry-after = seconds until the window frees). An accepted request counts against the budget,
sleeps ``latency``, then gets the next ``fail_sequence`` entry, else a random fault drawn from
``fault_rates`` (seeded), else a normal answer.

Programmatic::

    with MessagesServer(ServerBehavior(rpm=60)) as srv:
        httpx.post(srv.url + "/v1/messages", ...)
        srv.stats()

CLI::

    python simulation/messages_server.py --port 0 --port-file /tmp/port --rpm 120
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "529", "500", "malformed")
MALFORMED_TEXT = "I cannot evaluate this."
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    429: "Number of requests has exceeded your rate limit. Please try again later.",
    500: "Internal server error",
    529: "Overloaded",
}


@dataclass
class ServerBehavior:
    rpm: int | None = None  # accepted requests per sliding window; None = unlimited
    max_concurrent: int | None = None  # in-flight limit; None = unlimited
    latency: float = 0.0  # seconds each accepted request takes
    fail_sequence: list[str] = field(default_factory=list)  # e.g. ["429", "529", "500", "malformed"]
    fault_rates: dict[str, float] = field(default_factory=dict)  # {"429": 0.1, "malformed": 0.05}
    seed: int = 0
    retry_after: int = 1  # retry-after of injected 429s
    window_seconds: float = 60.0
    score_range: tuple[float, float] = (0.7, 1.0)
    require_api_key: bool = True
    text: str | None = None  # fixed answer text instead of the generated judgment

    def __post_init__(self) -> None:
        self.fail_sequence = [_normalise_fault(f) for f in self.fail_sequence]
        self.fault_rates = {_normalise_fault(k): float(v) for k, v in self.fault_rates.items()}
        self.score_range = (float(self.score_range[0]), float(self.score_range[1]))


def _normalise_fault(value: object) -> str:
    text = str(value).strip().lower()
    if text in ("ok", "200", "success", "normal"):
        return "ok"
    if text in ("rate_limit", "rate_limit_error"):
        return "429"
    if text in ("overloaded", "overloaded_error"):
        return "529"
    if text in ("api_error", "error"):
        return "500"
    if text in FAULTS:
        return text
    raise ValueError(f"unknown fault {value!r}; expected one of {FAULTS + ('ok',)}")


# --------------------------------------------------------------------------- judgment text


def _grade(score: float) -> str:
    for threshold, grade in ((0.9, "A"), (0.8, "B"), (0.7, "C"), (0.6, "D")):
        if score >= threshold:
            return grade
    return "F"


def request_digest(body: dict) -> str:
    canonical = json.dumps(
        {"model": body.get("model"), "system": body.get("system"), "messages": body.get("messages")},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def judgment_for(body: dict, score_range: tuple[float, float]) -> dict:
    digest = request_digest(body)
    frac = int(digest[:12], 16) / float(16**12)
    lo, hi = score_range
    score = round(lo + frac * (hi - lo), 3)
    items = {}
    achieved_total = 0.0
    for i, name in enumerate(("F1", "F2", "F3"), start=1):
        # F1 always passes; the others carry the score.
        achieved = 1.0 if i == 1 else round(min(1.0, max(0.0, score)), 2)
        achieved_total += achieved
        items[name] = {"achieved": achieved, "max": 1.0, "reason": f"Requirement {name} assessed."}
    quality = round(min(1.0, max(0.0, score)) * 2.0, 2)
    return {
        "score": score,
        "passed": score >= 0.6,
        "grade": _grade(score),
        "reasoning": "The agent produced hello.py which prints the expected greeting.",
        "categories": {
            "functional": {
                "achieved": round(achieved_total, 2),
                "max": 3.0,
                "score": round(achieved_total / 3.0, 3),
                "items": items,
            },
            "code_quality": {
                "achieved": quality,
                "max": 2.0,
                "score": round(quality / 2.0, 3),
                "items": {"Q1": {"achieved": quality, "max": 2.0, "reason": "Readable and idiomatic."}},
            },
        },
    }


def judgment_text(body: dict, score_range: tuple[float, float]) -> str:
    judgment = judgment_for(body, score_range)
    return (
        "I evaluated the agent's work against the rubric.\n\n```json\n"
        + json.dumps(judgment, indent=2)
        + "\n```\n"
    )


def _prompt_chars(body: dict) -> int:
    total = 0
    system = body.get("system")
    if isinstance(system, str):
        total += len(system)
    elif isinstance(system, list):
        total += sum(len(str(b.get("text", ""))) for b in system if isinstance(b, dict))
    for msg in body.get("messages", []):
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(b.get("text", ""))) for b in content if isinstance(b, dict))
    return total


def _validate(body: object) -> str | None:
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = msg.get("content")
        if not isinstance(content, (str, list)):
            return f"messages.{i}.content: Input should be a string or a list of content blocks"
    return None


# --------------------------------------------------------------------------- state


class _State:
    def __init__(self, behavior: ServerBehavior) -> None:
        self.lock = threading.Lock()
        self.behavior = behavior
        self.rng = random.Random(behavior.seed)
        self.reset()

    def reset(self) -> None:
        self.started_at = time.time()
        self.requests = 0
        self.accepted = 0
        self.by_status: dict[str, int] = {}
        self.by_model: dict[str, int] = {}
        self.in_flight = 0
        self.peak_concurrency = 0
        self.max_concurrent_violations = 0
        self.rpm_violations_rejected = 0
        self.window: deque[float] = deque()  # monotonic times of accepted requests
        self.accepted_times: list[float] = []  # wall-clock times of accepted requests
        self.seq_index = 0
        self.rng = random.Random(self.behavior.seed)
        self.systems: list[str] = []  # distinct system prompts received, in order (for fidelity tests)

    def snapshot(self) -> dict:
        per_minute: dict[int, int] = {}
        for t in self.accepted_times:
            minute = int((t - self.started_at) // 60)
            per_minute[minute] = per_minute.get(minute, 0) + 1
        n_minutes = (max(per_minute) + 1) if per_minute else 0
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "by_status": dict(self.by_status),
            "by_model": dict(self.by_model),
            "in_flight": self.in_flight,
            "peak_concurrency": self.peak_concurrency,
            "max_concurrent_violations": self.max_concurrent_violations,
            "rpm_violations_rejected": self.rpm_violations_rejected,
            "per_minute": [per_minute.get(m, 0) for m in range(n_minutes)],
            "accepted_times": list(self.accepted_times),
            "systems": list(self.systems),
            "started_at": self.started_at,
            "behavior": dataclasses.asdict(self.behavior),
        }


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are dropped after this
    wbufsize = -1  # buffer headers + body into one write (avoids Nagle/delayed-ACK stalls)
    disable_nagle_algorithm = True

    # -- plumbing -----------------------------------------------------------
    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if getattr(self.server, "verbose", False):
            sys.stderr.write("messages_server: " + (format % args) + "\n")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        payload = {
            "type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        }
        self._send_json(status, payload, headers)

    def _count(self, status: int, model: str | None = None) -> None:
        with self.state.lock:
            key = str(status)
            self.state.by_status[key] = self.state.by_status.get(key, 0) + 1
            if model:
                self.state.by_model[model] = self.state.by_model.get(model, 0) + 1

    # -- routes -------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/stats":
            with self.state.lock:
                snap = self.state.snapshot()
            self._send_json(200, snap)
        elif path in ("/health", ""):
            self._send_json(200, {"ok": True})
        else:
            self._send_error(404, f"Not found: {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        try:
            raw = self._read_body()
        except (ConnectionError, TimeoutError, ValueError):
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/messages":
            self._messages(raw)
        elif path == "/reset":
            with self.state.lock:
                self.state.reset()
            self._send_json(200, {"ok": True})
        elif path == "/configure":
            try:
                changes = json.loads(raw or b"{}")
                self.server.configure(**changes)  # type: ignore[attr-defined]
            except (ValueError, TypeError) as exc:
                self._send_error(400, str(exc))
                return
            self._send_json(200, {"ok": True})
        else:
            self._send_error(404, f"Not found: {self.path}")

    def _messages(self, raw: bytes) -> None:
        st = self.state
        with st.lock:
            st.requests += 1
            behavior = st.behavior
        if behavior.require_api_key and not (self.headers.get("x-api-key") or "").strip():
            self._count(401)
            self._send_error(401, "invalid x-api-key")
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._count(400)
            self._send_error(400, "There was an issue with the body of your request: invalid JSON")
            return
        problem = _validate(body)
        if problem:
            self._count(400)
            self._send_error(400, problem)
            return
        model = body["model"]
        with st.lock:
            if body.get("system") not in st.systems:
                st.systems.append(body.get("system"))

        # Admission: concurrency, then the rpm window.
        with st.lock:
            now = time.monotonic()
            reject: tuple[str, int] | None = None
            if behavior.max_concurrent is not None and st.in_flight >= behavior.max_concurrent:
                st.max_concurrent_violations += 1
                reject = ("concurrency", 1)
            elif behavior.rpm is not None:
                while st.window and st.window[0] <= now - behavior.window_seconds:
                    st.window.popleft()
                if len(st.window) >= behavior.rpm:
                    st.rpm_violations_rejected += 1
                    wait = st.window[0] + behavior.window_seconds - now
                    reject = ("rpm", max(1, math.ceil(wait)))
            if reject is None:
                st.window.append(now)
                st.accepted += 1
                st.accepted_times.append(time.time())
                st.in_flight += 1
                st.peak_concurrency = max(st.peak_concurrency, st.in_flight)
                if st.seq_index < len(behavior.fail_sequence):
                    fault = behavior.fail_sequence[st.seq_index]
                    st.seq_index += 1
                else:
                    fault = "ok"
                    roll = st.rng.random()
                    acc = 0.0
                    for name in FAULTS:
                        acc += behavior.fault_rates.get(name, 0.0)
                        if roll < acc:
                            fault = name
                            break
        if reject is not None:
            self._count(429, model)
            kind, retry_after = reject
            message = (
                "Number of concurrent connections has exceeded your rate limit."
                if kind == "concurrency"
                else _ERROR_MESSAGES[429]
            )
            self._send_error(429, message, {"retry-after": str(retry_after)})
            return

        try:
            if behavior.latency > 0:
                time.sleep(behavior.latency)
            if fault in ("429", "529", "500"):
                status = int(fault)
                self._count(status, model)
                headers = {"retry-after": str(behavior.retry_after)} if status == 429 else None
                self._send_error(status, _ERROR_MESSAGES[status], headers)
                return
            if fault == "malformed":
                text = MALFORMED_TEXT
            elif behavior.text is not None:
                text = behavior.text
            else:
                text = judgment_text(body, behavior.score_range)
            self._count(200, model)
            self._send_json(
                200,
                {
                    "id": "msg_" + uuid.uuid4().hex[:24],
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": max(1, _prompt_chars(body) // 4),
                        "output_tokens": max(1, len(text) // 4),
                    },
                },
            )
        finally:
            with st.lock:
                st.in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for idle keep-alive connections on close
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], behavior: ServerBehavior, verbose: bool = False) -> None:
        self.state = _State(behavior)
        self.verbose = verbose
        super().__init__(address, _Handler)

    def configure(self, **changes) -> None:
        with self.state.lock:
            current = dataclasses.asdict(self.state.behavior)
            unknown = set(changes) - set(current)
            if unknown:
                raise TypeError(f"unknown behavior fields: {sorted(unknown)}")
            current.update(changes)
            self.state.behavior = ServerBehavior(**current)
            if "seed" in changes:
                self.state.rng = random.Random(self.state.behavior.seed)
            if "fail_sequence" in changes:
                self.state.seq_index = 0

    def handle_error(self, request, client_address) -> None:
        # Client disconnects and similar are expected under load; stay quiet unless verbose.
        if self.verbose:
            super().handle_error(request, client_address)


class MessagesServer:
    """In-process server on 127.0.0.1 (port 0 = any free port), served by a daemon thread."""

    def __init__(
        self,
        behavior: ServerBehavior | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        self.behavior_initial = behavior or ServerBehavior()
        self._host = host
        self._port = port
        self._verbose = verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> MessagesServer:
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), self.behavior_initial, self._verbose)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="messages-server",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> MessagesServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # accessors
    def _require(self) -> _Server:
        if self._server is None:
            raise RuntimeError("MessagesServer is not running")
        return self._server

    @property
    def port(self) -> int:
        return self._require().server_address[1]

    @property
    def url(self) -> str:
        """Base URL, suitable for ANTHROPIC_BASE_URL (requests go to ``url + '/v1/messages'``)."""
        return f"http://{self._host}:{self.port}"

    @property
    def behavior(self) -> ServerBehavior:
        return self._require().state.behavior

    def configure(self, **changes) -> None:
        """Change ServerBehavior fields at runtime (e.g. ``srv.configure(rpm=10)``)."""
        self._require().configure(**changes)

    def stats(self) -> dict:
        server = self._require()
        with server.state.lock:
            return server.state.snapshot()

    def reset(self) -> None:
        server = self._require()
        with server.state.lock:
            server.state.reset()


# --------------------------------------------------------------------------- CLI


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Local Anthropic Messages API double.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", help="write the chosen port here once listening")
    p.add_argument("--rpm", type=int, default=None)
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--fail-sequence", default="", help="comma-separated, e.g. 429,529,500,malformed")
    for fault in FAULTS:
        p.add_argument(f"--fault-{fault}", type=float, default=0.0, help=f"probability of {fault}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--window-seconds", type=float, default=60.0)
    p.add_argument("--score-min", type=float, default=0.7)
    p.add_argument("--score-max", type=float, default=1.0)
    p.add_argument("--no-auth", action="store_true", help="do not require x-api-key")
    p.add_argument("--text", default=None, help="fixed answer text")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def behavior_from_args(args: argparse.Namespace) -> ServerBehavior:
    rates = {f: getattr(args, f"fault_{f}") for f in FAULTS if getattr(args, f"fault_{f}")}
    return ServerBehavior(
        rpm=args.rpm,
        max_concurrent=args.max_concurrent,
        latency=args.latency,
        fail_sequence=[s for s in (x.strip() for x in args.fail_sequence.split(",")) if s],
        fault_rates=rates,
        seed=args.seed,
        retry_after=args.retry_after,
        window_seconds=args.window_seconds,
        score_range=(args.score_min, args.score_max),
        require_api_key=not args.no_auth,
        text=args.text,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    srv = MessagesServer(behavior_from_args(args), host=args.host, port=args.port, verbose=args.verbose)
    stop = threading.Event()

    def _handle(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    srv.start()
    if args.port_file:
        tmp = f"{args.port_file}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(str(srv.port))
        os.replace(tmp, args.port_file)
    if args.verbose:
        sys.stderr.write(f"messages_server: listening on {srv.url}\n")
    while not stop.wait(0.2):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
