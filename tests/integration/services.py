"""Real services for the integration tests, on 127.0.0.1, started and stopped by the tests.

* :func:`process`: a background process in its own session, stopped by its process group;
* :func:`postgres`: a throwaway PostgreSQL cluster (Debian's packages, installed with apt-get
  when missing), run by an unprivileged user in a temporary directory;
* :func:`prefect_server`: ``prefect server start`` on a free port, on SQLite or on PostgreSQL;
* :func:`prefect` / :func:`prefect_env`: the Prefect CLI against that server.

Every process started here is stopped by its pid or its own process group, even when the test
fails; nothing listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

PROJECT = Path(__file__).resolve().parents[2]
TIERS = PROJECT / "tests" / "fixtures" / "scylla-tiers"
POOL = "scylla-repair"  # the work pool named in prefect.yaml
PG_USER = "scylla-pg"
"""The unprivileged system user that runs PostgreSQL when the tests run as root."""
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop_group(proc: subprocess.Popen, steps=((signal.SIGINT, 10), (signal.SIGTERM, 5))) -> None:
    """Stop ``proc`` and its process group: the given signals in turn, then SIGKILL."""
    for sig, wait in (*steps, (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)  # the group we created: the process and its children
        except ProcessLookupError:
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their parent


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A background process in its own session; SIGINT, SIGTERM, then SIGKILL on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop_group(proc)


def prefect_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """The environment of a Prefect CLI, worker or flow process talking to ``api_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_CLI_PROMPT="false",
    )
    env.update(extra)
    return env


def prefect(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run ``prefect ARGS`` from the project root; its stdout, or a failed assertion."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# -- PostgreSQL ------------------------------------------------------------------------------


def postgres_bin_dir(install: bool = True) -> Path:
    """Where ``initdb`` and ``pg_ctl`` live; installs Debian's ``postgresql`` when they are missing."""
    found = _find_postgres()
    if found is None and install:
        if os.geteuid() != 0:
            raise AssertionError(
                "PostgreSQL is not installed and the tests do not run as root: "
                "install it with `sudo apt-get install postgresql` and run the tests again"
            )
        # No "main" cluster on port 5432 started by the package: the tests run their own.
        createcluster = Path("/etc/postgresql-common/createcluster.conf")
        if not createcluster.exists():
            createcluster.parent.mkdir(parents=True, exist_ok=True)
            createcluster.write_text("create_main_cluster = false\n")
        apt_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        keep_ours = ["-o", "Dpkg::Options::=--force-confold"]
        for args in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", *keep_ours, "postgresql"],
        ):
            done = subprocess.run(args, env=apt_env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, (
                f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        found = _find_postgres()
    assert found is not None, "initdb/pg_ctl not found, even after installing Debian's postgresql"
    return found


def _find_postgres() -> Path | None:
    """Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return Path(versions[-1]).parent if versions else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as: ``scylla-pg`` (created if needed) as root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_USER)


@dataclass
class Postgres:
    """A running throwaway cluster; ``url`` is what Prefect's server connects to."""

    port: int
    database: str
    user: str
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{self.database}"


@contextlib.contextmanager
def postgres(database: str = "prefect") -> Iterator[Postgres]:
    """initdb + pg_ctl start on 127.0.0.1:<free port>, as an unprivileged user; stopped and
    deleted on exit. Durability is switched off (fsync, synchronous commit): a test database."""
    bin_dir = postgres_bin_dir()
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="scylla-pg-"))  # not under pytest's 0700 tmp of root
    as_user: dict = {}
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    run_env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8", TZ="UTC")
    if user is not None:
        run_env["HOME"] = str(root)

    def run(*args: str) -> None:
        done = subprocess.run(
            list(args), env=run_env, cwd=root, capture_output=True, text=True, timeout=120, **as_user
        )
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    cluster = Postgres(free_port(), database, "prefect", root / "data", root / "postgres.log")
    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", cluster.user, "-A", "trust",
            "-E", "UTF8", "--no-sync")  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {cluster.port} -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        run(str(bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), "-o", options, "-l", str(cluster.log),
            "-w", "-t", "60", "start")  # fmt: skip
        started = True
        run(
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(cluster.port),
            "-U",
            cluster.user,
            database,
        )
        yield cluster
    finally:
        if started:
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "immediate", "-w", "stop"],
                env=run_env,
                cwd=root,
                capture_output=True,
                timeout=60,
                **as_user,
            )
        shutil.rmtree(root, ignore_errors=True)


# -- Prefect server --------------------------------------------------------------------------


@dataclass
class PrefectServer:
    """A running ``prefect server start``: its API URL, the env to talk to it, its log."""

    api_url: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=timeout)


def healthy(api: httpx.Client) -> bool:
    try:
        return api.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def prefect_server(
    home: Path, log: Path, database_url: str | None = None, *, startup_timeout: float = 180, **settings: str
) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1:<free port> (PostgreSQL when ``database_url``);
    ``settings`` are extra PREFECT_* variables of the server process."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(home, api_url)
    server_env = dict(env, PREFECT_UI_ENABLED="false", **settings)
    if database_url:
        server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    else:
        from tests.conftest import seed_prefect_database

        seed_prefect_database(home / "prefect.db")
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with process(args, server_env, log) as proc, httpx.Client(base_url=api_url, timeout=10) as api:
        wait_for(lambda: healthy(api) or proc.poll() is not None, startup_timeout, "the Prefect server")
        assert proc.poll() is None, log.read_text()[-5000:]
        yield PrefectServer(api_url, env, log, proc)
