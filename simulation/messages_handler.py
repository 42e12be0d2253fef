"""The HTTP request handler of the local Messages server: routes, admission, answers.

Request admission, in order: auth (401) -> body validation (400) -> ``max_concurrent`` (429) ->
``rpm`` window (429); see :mod:`simulation.messages_server` for the whole protocol.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler

from simulation.messages_answers import (
    ERROR_MESSAGES,
    ERROR_TYPES,
    MALFORMED_TEXT,
    judgment_text,
    prompt_chars,
    validate_request,
)
from simulation.messages_state import ServerState


class MessagesHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 keep-alive connection; the shared state is ``self.server.state``."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are dropped after this
    wbufsize = -1  # buffer headers + body into one write (avoids Nagle/delayed-ACK stalls)
    disable_nagle_algorithm = True

    # -- plumbing -----------------------------------------------------------
    @property
    def state(self) -> ServerState:
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
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        }
        self._send_json(status, payload, headers)

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
            self.state.count(401)
            self._send_error(401, "invalid x-api-key")
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.state.count(400)
            self._send_error(400, "There was an issue with the body of your request: invalid JSON")
            return
        problem = validate_request(body)
        if problem:
            self.state.count(400)
            self._send_error(400, problem)
            return
        model = body["model"]
        with st.lock:
            if body.get("system") not in st.systems:
                st.systems.append(body.get("system"))

        # Admission: concurrency, then the rpm window.
        reject, fault = st.admit(behavior)
        if reject is not None:
            self.state.count(429, model)
            kind, retry_after = reject
            message = (
                "Number of concurrent connections has exceeded your rate limit."
                if kind == "concurrency"
                else ERROR_MESSAGES[429]
            )
            self._send_error(
                429, message, {"retry-after": str(retry_after), **st.ratelimit_headers(behavior)}
            )
            return

        try:
            if behavior.latency > 0:
                time.sleep(behavior.latency)
            if fault in ("429", "529", "500"):
                status = int(fault)
                self.state.count(status, model)
                headers = st.ratelimit_headers(behavior)
                if status == 429:
                    headers["retry-after"] = str(behavior.retry_after)
                self._send_error(status, ERROR_MESSAGES[status], headers)
                return
            if fault == "malformed":
                text = MALFORMED_TEXT
            elif behavior.text is not None:
                text = behavior.text
            else:
                text = judgment_text(body, behavior.score_range)
            self.state.count(200, model)
            usage = {"input_tokens": max(1, prompt_chars(body) // 4), "output_tokens": max(1, len(text) // 4)}
            st.count_tokens(usage["input_tokens"], usage["output_tokens"])
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
                    "usage": usage,
                },
                st.ratelimit_headers(behavior),
            )
        finally:
            st.release()
