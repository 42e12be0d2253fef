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

Modules: ``messages_behavior`` (ServerBehavior, fault names), ``messages_answers`` (validation,
judgments, error bodies), ``messages_state`` (counters and admission), ``messages_handler`` (the
HTTP handler); this one holds the server's lifecycle and the CLI. It also runs as a script, so it
puts the project root on ``sys.path`` first when it has no package.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

if not __package__:  # run as a script: make the ``simulation`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation.messages_behavior import FAULTS, ServerBehavior
from simulation.messages_handler import MessagesHandler
from simulation.messages_state import ServerState

__all__ = ["FAULTS", "MessagesServer", "ServerBehavior", "behavior_from_args", "main"]


class _Server(ThreadingHTTPServer):
    """The threading HTTP server holding the shared :class:`ServerState` for its handlers."""

    daemon_threads = True
    block_on_close = False  # never wait for idle keep-alive connections on close
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], behavior: ServerBehavior, verbose: bool = False) -> None:
        self.state = ServerState(behavior)
        self.verbose = verbose
        super().__init__(address, MessagesHandler)

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
