"""The local Prefect server a real repair reuses, started in the background on first need.

Why: without ``PREFECT_API_URL`` every Prefect-using command starts Prefect's temporary server,
6-13 s on 2 cores before anything happens, and that server has no UI and dies with the
command. Instead, the first real repair starts ``prefect server start --host 127.0.0.1`` as a
detached process (its own session, so Ctrl+C in the terminal does not reach it) and every later
command finds it and connects in well under a second; the flow run's UI link is printed.

What runs, where (all under ``PREFECT_HOME``, default ``~/.prefect``):

* the server: ``python -m prefect server start --host 127.0.0.1 --port 4200`` (another free
  port when 4200 is taken), its database ``prefect.db`` as usual;
* ``scylla-repair-server.json``: its pid, port and URL; ``scylla-repair-server.log``: its output;
* ``server.pid``: the same pid where Prefect expects it, so ``prefect server stop`` stops it too.

Stop it with ``python -m cli.local_server stop`` or ``prefect server stop``. Not used at all when
``PREFECT_API_URL`` is set (environment or the active Prefect profile): that server is used.
``SCYLLA_REPAIR_EPHEMERAL=1`` keeps Prefect's temporary per-command server (tests use it so no
server outlives them). No Prefect import here: finding a running server costs milliseconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from experiment.jsonio import atomic_write_json

STATE_FILE = "scylla-repair-server.json"
LOG_FILE = "scylla-repair-server.log"
PREFECT_PID_FILE = "server.pid"  # prefect.cli._server_utils.SERVER_PID_FILE_NAME
DEFAULT_PORT = 4200
START_TIMEOUT = float(os.environ.get("SCYLLA_REPAIR_SERVER_START_TIMEOUT", "90"))
OPT_OUT = "SCYLLA_REPAIR_EPHEMERAL"


class ServerStartError(RuntimeError):
    """The background server did not answer in time (the message names its log)."""


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def configured_api_url(home: Path) -> str | None:
    """``PREFECT_API_URL`` from the environment, else from the active profile of ``profiles.toml``."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    value = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(value) if value else None


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    """True if ``pid`` runs and is a Prefect server (guards against a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        return b"prefect" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the signal


def _read_state(home: Path) -> dict | None:
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("pid"), int) else None


def _free_port(preferred: int = DEFAULT_PORT) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One command at a time decides whether to start the server (no two servers per home)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "scylla-repair-server.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _wait_healthy(url: str, pid: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url):
            return
        if not _alive(pid):
            raise ServerStartError(f"The local Prefect server exited while starting: see {log}")
        time.sleep(0.2)
    raise ServerStartError(
        f"The local Prefect server did not answer within {timeout:.0f} s: see {log} "
        f"(or set PREFECT_API_URL, or {OPT_OUT}=1 for a temporary server)"
    )


def running_url(home: Path) -> str | None:
    """The URL of this home's background server if it is running, else None."""
    state = _read_state(home)
    if state and _alive(state["pid"]):
        return str(state["url"])
    return None


def ensure_server(
    home: Path, timeout: float = START_TIMEOUT, preferred_port: int = DEFAULT_PORT
) -> tuple[str, bool]:
    """The API URL of this home's background server, started if needed (on ``preferred_port``
    when free, else any free port; 0: any); and whether we started it."""
    with _locked(home):
        state = _read_state(home)
        if state and _alive(state["pid"]):
            _wait_healthy(state["url"], state["pid"], home / LOG_FILE, timeout)  # maybe still starting
            return str(state["url"]), False
        port = _free_port(preferred_port)
        url = f"http://127.0.0.1:{port}/api"
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", OPT_OUT)}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_UI_API_URL=url,  # the UI asks the server for its API URL (else :4200)
            PREFECT_SERVER_ANALYTICS_ENABLED=env.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        argv = [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        with (home / LOG_FILE).open("ab") as log:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # fmt: skip
            )
        atomic_write_json(home / STATE_FILE, {"pid": proc.pid, "port": port, "url": url, "argv": argv})
        with contextlib.suppress(FileExistsError), (home / PREFECT_PID_FILE).open("x") as pid_file:
            pid_file.write(str(proc.pid))
        _wait_healthy(url, proc.pid, home / LOG_FILE, timeout)
        return url, True


def stop_server(home: Path, timeout: float = 15.0) -> str:
    """Stop this home's background server (SIGTERM to its process group, SIGKILL after ``timeout``)."""
    with _locked(home):
        state = _read_state(home)
        (home / STATE_FILE).unlink(missing_ok=True)
        if not state:
            return f"No scylla-repair background server under {home}."
        pid = state["pid"]
        pid_file = home / PREFECT_PID_FILE
        with contextlib.suppress(OSError):
            if pid_file.read_text().strip() == str(pid):
                pid_file.unlink()
        if not _alive(pid):
            return f"The background server (pid {pid}) was not running any more."
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)  # the server and whatever it started
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _alive(pid):
                break
        return f"Stopped the background Prefect server (pid {pid}, {state.get('url')})."


def use_background_server(echo: Callable[[str], object] = print) -> str | None:
    """Point this process at a Prefect API before Prefect is imported; return the UI's base URL.

    ``PREFECT_API_URL`` set (environment or profile): that server, nothing started. ``SCYLLA_REPAIR_
    EPHEMERAL=1``: Prefect's temporary server (None returned). Else this home's background server,
    started now if needed (once, 6-13 s; the message says so and how to stop it)."""
    home = prefect_home()
    configured = configured_api_url(home)
    if configured:
        return configured.rstrip("/").removesuffix("/api")
    if os.environ.get(OPT_OUT, "").strip().lower() in ("1", "true", "yes"):
        # Prefect gives its temporary server 20 s to answer; on a busy 2-core machine it needed
        # up to a minute here, and the repair died with "Timed out ... ephemeral Prefect API".
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        return None
    if running_url(home) is None:
        echo(
            f"Starting a local Prefect server in the background (PREFECT_HOME={home}); later repairs reuse it."
        )
        echo("Stop it with: python -m cli.local_server stop   (or: prefect server stop)")
    url, _ = ensure_server(home)
    os.environ["PREFECT_API_URL"] = url
    return url.removesuffix("/api")


def ui_link_hook(ui_url: str | None) -> Callable[..., None]:
    """A flow ``on_running`` hook printing the flow run's page (stderr), when there is a UI."""

    def hook(flow: object, flow_run: Any, state: object) -> None:
        if ui_url:
            print(f"Prefect UI: {ui_url}/runs/flow-run/{flow_run.id}", file=sys.stderr, flush=True)

    return hook


def main(argv: list[str] | None = None) -> int:
    """``python -m cli.local_server start|stop|status``."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    home = prefect_home()
    if command == "start":
        url, started = ensure_server(home)
        print(
            f"{'Started' if started else 'Already running'}: {url.removesuffix('/api')} (PREFECT_HOME={home})"
        )
    elif command == "stop":
        print(stop_server(home))
    elif command == "status":
        running = running_url(home)
        print(
            f"Running: {running.removesuffix('/api')}" if running else f"Not running (PREFECT_HOME={home})."
        )
        return 0 if running else 3
    else:
        print("usage: python -m cli.local_server start|stop|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
