"""Test-wide setup: a private PREFECT_HOME, and copies of the real fixture experiment.

Prefect is configured through the environment before anything imports it, so no test touches
``~/.prefect`` and nothing ever talks to a non-loopback address.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import pytest

from operations.judge.pipeline import PIPELINE_TOOLS_ENV
from simulation import TOOLCHAIN_DIR

_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="scylla-repair-prefect-home-"))
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Prefect's temporary server waits 20 s for itself by default: too short on 2 busy cores with
# 4 xdist workers (every subprocess inherits this).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
os.environ.pop("PREFECT_API_URL", None)
# Prefect's temporary per-process server, not the background one `rerun-agents` starts for users
# (cli/local_server.py): no test leaves a server behind. A test that wants a real server takes
# the ``prefect_server_url`` fixture below (one for the whole run).
os.environ["SCYLLA_REPAIR_EPHEMERAL"] = "1"
# The judges' build/lint/test pipeline runs the simulated toolchain (a few ms per run instead of
# ~1 s of CPU; simulation/toolchain/README.md), in this process and every process a test starts.
# The tests of the pipeline itself, the judge-fidelity tests and the demo take ``real_pipeline_tools``.
os.environ[PIPELINE_TOOLS_ENV] = str(TOOLCHAIN_DIR)

FIXTURES = Path(__file__).parent / "fixtures"
DRYRUN_FIXTURE = FIXTURES / "scylla-test001-dryrun"
TIERS_FIXTURE = FIXTURES / "scylla-tiers"


def make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def copy_fixture_experiment(dest: Path) -> Path:
    """A writable copy of the real dry-run experiment at ``dest``."""
    shutil.copytree(DRYRUN_FIXTURE, dest, symlinks=True)
    make_writable(dest)
    return dest


FAKE_JUDGE_SYSTEM_PROMPT = "You are the test checkout's judge. Score with care.\n"
"""Test text standing in for ProjectScylla's config/judge/system_prompt.md (not ours to copy)."""


def make_fake_checkout(root: Path, system_prompt: str = FAKE_JUDGE_SYSTEM_PROMPT) -> Path:
    """A small fake ProjectScylla checkout: the BSD-3 tiers fixture plus a judge system prompt."""
    shutil.copytree(TIERS_FIXTURE, root)
    prompt = root / "config" / "judge" / "system_prompt.md"
    prompt.parent.mkdir(parents=True)
    prompt.write_text(system_prompt)
    return root


def strip_judgments(experiment: Path, runs: list[str]) -> dict[str, str]:
    """Remove what judging produced in completed ``runs`` (T0/00/run_01, ...): the judges, the
    judge prompt, the pipeline scripts and the run's results. Returns the stored judge prompts."""
    stored = {}
    for run in runs:
        run_dir = experiment / run
        stored[run] = (run_dir / "judge_prompt.md").read_text()
        for name in ("judge", "commands"):
            shutil.rmtree(run_dir / name)
        for name in ("judge_prompt.md", "run_result.json", "report.json", "report.md"):
            (run_dir / name).unlink(missing_ok=True)
    return stored


@pytest.fixture
def real_pipeline_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The judges' pipeline runs the real pytest, ruff, pre-commit and python, as for users."""
    monkeypatch.delenv(PIPELINE_TOOLS_ENV, raising=False)


@pytest.fixture
def fixture_experiment(tmp_path: Path) -> Path:
    """A writable copy of the real experiment, placed where no tiers dir can be auto-detected."""
    return copy_fixture_experiment(tmp_path / "exp" / "2026-01-20T06-13-07-test-001")


# --------------------------------------------------------------------------------------------------
# One real Prefect server for the whole test run (every xdist worker), started on first use.
# --------------------------------------------------------------------------------------------------

_SHARED_HOME_ENV = "SCYLLA_TEST_SHARED_PREFECT_HOME"


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or the only process) picks the shared server's PREFECT_HOME; xdist
    workers, spawned after this, inherit it through the environment."""
    if not hasattr(config, "workerinput"):
        if _SHARED_HOME_ENV not in os.environ:
            os.environ[_SHARED_HOME_ENV] = tempfile.mkdtemp(prefix="scylla-repair-shared-prefect-")
        compile_project_once()


def compile_project_once() -> None:
    """Byte-compile the project's packages when Python is told not to cache byte code.

    Why: with ``PYTHONDONTWRITEBYTECODE=1`` (this development container sets it) no process ever
    caches our modules, so each of the suite's ~100 CLI, worker and fake-agent processes compiled
    them again: ~0.1 s of CPU each (``import flows.rerun_agents``: our modules 0.36 s -> 0.26 s).
    The installed dependencies are compiled at install (``[tool.uv] compile-bytecode``); this
    does the same for the checkout, once per test run (~1 s), into the ignored ``__pycache__``."""
    if not sys.dont_write_bytecode:
        return  # Python caches them itself
    import compileall
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    for package in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:  # the wheel's
        compileall.compile_dir(root / package, quiet=1, workers=0)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller stops the shared server once every worker is done (if one was started)."""
    home = os.environ.get(_SHARED_HOME_ENV)
    if not hasattr(config, "workerinput") and home:
        from cli.local_server import stop_server

        stop_server(Path(home))
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# A migrated Prefect database, made once per test run and copied wherever a server starts.
# --------------------------------------------------------------------------------------------------

_DB_TEMPLATE = "prefect-template.db"


def seed_prefect_database(target: Path) -> Path:
    """Put a copy of an already migrated Prefect SQLite database at ``target`` (unless one is
    there) and return ``target``.

    Why: a Prefect server that starts on a fresh database runs every migration first, ~14 s of
    CPU here, and a test run starts about ten servers (one test harness per xdist worker, the
    shared server, the integration modules' own). The first caller migrates a template under a
    file lock, in the shared temporary dir; every server then starts on a copy."""
    if target.exists():
        return target
    shared = Path(os.environ[_SHARED_HOME_ENV])
    template = shared / _DB_TEMPLATE
    with (shared / "prefect-template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            scratch = Path(tempfile.mkdtemp(prefix="scylla-repair-db-template-"))
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
            env.update(
                PREFECT_HOME=str(scratch),
                PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{scratch / 'prefect.db'}",
            )
            subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env=env,
                check=True,
                capture_output=True,
                timeout=600,
            )
            os.replace(scratch / "prefect.db", template)  # the upgrade closed it: no -wal left
            shutil.rmtree(scratch, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return target


def services_off(*names: str) -> dict[str, str]:
    """The environment of a Prefect server that does not run the services ``names``."""
    return {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in names}


QUIET_SERVER_SERVICES = services_off(
    "EVENT_PERSISTER", "TRIGGERS", "SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS"
)
"""Server services a test server runs without a reader: no test reads stored events or has an
automation (the scale-out module's zombie automation runs on its own server), schedules or
watches workers. Task runs are still recorded (the task-run recorder is another service), and
leases still expire. Measured on a 12-run CLI repair: the server's CPU 6.8/5.7 s -> 4.8/3.9 s
(the event persister and the triggers); idle, 3.9 % of a core -> 1.3 % (the loops)."""


@pytest.fixture(scope="session")
def prefect_server_url() -> str:
    """The API URL (``http://127.0.0.1:PORT/api``) of one real ``prefect server start`` shared by
    every test of the run, in every xdist worker: the first test that asks starts it (10-30 s,
    under a file lock, so only one starts), the others reuse it, and the pytest controller stops
    it at the end. Give it to subprocesses as ``PREFECT_API_URL``: each then connects in ~1 s
    instead of starting Prefect's temporary server (6-13 s). Its state is shared: use unique
    names (flow runs, limits, pools) per test. In-process flows keep using the test harness."""
    from cli.local_server import ensure_server

    home = Path(os.environ[_SHARED_HOME_ENV])
    seed_prefect_database(home / "prefect.db")
    with mock.patch.dict(os.environ, QUIET_SERVER_SERVICES):  # the server's environment only
        url, _ = ensure_server(home, preferred_port=0)  # not 4200: yours
    return url


_FIRST = (
    "tests/integration/test_sigkill_resume.py",  # the longest test (~150-200 s)
    "tests/integration/test_truthful_states.py",  # one worker, its own server (~70-100 s)
    "tests/integration/test_scale_out.py",  # one worker, PostgreSQL and a server (~150 s)
    "tests/flows/test_rate_limits.py",  # the rate-limit acceptance (~100 s)
    "tests/integration/",
    "tests/flows/",
)
"""Tests that start first, longest first: they are the slow ones (seconds to minutes, mostly
waiting on subprocesses and sleeps), so under ``-n 4`` each worker takes one of them at once
and the fast unit tests fill the gaps, instead of a long test starting last and the run
waiting for it alone."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.replace("\\", "/")
        return next((i for i, prefix in enumerate(_FIRST) if path.startswith(prefix)), len(_FIRST))

    items.sort(key=rank)  # stable: the order within each directory is kept


ONE_WORKER_MODULES = frozenset(
    {
        "tests/integration/test_scale_out.py",  # PostgreSQL, a server, the deployments: made once
        "tests/integration/test_truthful_states.py",  # its own Prefect server: started once
    }
)
"""Modules whose tests all run on one xdist worker, one after the other, so their module-scoped
services are made once."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's load scheduling, except that each module of :data:`ONE_WORKER_MODULES` is one unit
    of work. Why not ``--dist loadgroup`` and ``xdist_group`` marks: with pytest 9.2 the mark no
    longer groups anything (xdist sets the group through the node id, which pytest no longer lets
    it change: pytest-xdist issue #1386), and each of those modules set its services up on two or
    three workers, ~30 s of CPU each time."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return ModuleGroups(config, log)  # type: ignore[arg-type]  # xdist's Producer
