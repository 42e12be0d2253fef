"""Benchmark: what a real repair costs before its first agent starts, and a results-only repair.

    uv run python bench/bench_repair_start.py [--repeats 3] [--json out.json]

Part 1, time to the first agent: ``rerun-agents EXP`` as a user types it (the console script, a
fresh process) on a generated experiment of 3 failed runs, with the fake ``claude`` on PATH and
the local Messages server answering the judges. The figure is the time from starting the
command to the fake agent's first ``start`` record in its log. Three back-ends:

* ``ephemeral``: ``SCYLLA_REPAIR_EPHEMERAL=1``, Prefect's temporary server (what every command
  paid before the background server existed);
* ``background, first``: no server yet; the command starts the local background server;
* ``background, reused``: the server is up; later commands reuse it.

Part 2, ``--status results`` on 3 results runs (no agent; judges present, so nothing to judge):
the whole ``rerun-agents EXP --status results`` command next to ``regenerate-results EXP``.

Every server started here lives under a temporary PREFECT_HOME and is stopped by its pid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TIERS = REPO / "tests" / "fixtures" / "scylla-tiers"
BIN = Path(sys.executable).parent


def _env(home: Path, log: Path, judge_url: str, *, ephemeral: bool) -> dict[str, str]:
    from simulation.claude_log import fake_claude_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env = fake_claude_env(log=log, delay=0.5, base=env)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        ANTHROPIC_BASE_URL=judge_url,
        ANTHROPIC_API_KEY="bench-key-not-a-secret",
    )
    if ephemeral:
        env["SCYLLA_REPAIR_EPHEMERAL"] = "1"
    return env


def _experiment(dest: Path, mix: dict[str, float]) -> Path:
    from simulation.generator import generate_experiment

    return generate_experiment(
        dest, tiers=["T0"], subtests_per_tier=1, runs_per_subtest=3, mix=mix, seed=5, tiers_dir=TIERS
    ).path


def first_agent(exp: Path, env: dict[str, str], log: Path) -> tuple[float, float]:
    """(seconds to the first agent start, seconds for the whole command)."""
    from simulation.claude_log import starts

    started = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "rerun-agents"), str(exp), "--tiers-dir", str(TIERS)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = None
    while proc.poll() is None:
        if first is None and starts(log):
            first = time.monotonic() - started
        time.sleep(0.02)
    out, err = proc.communicate()
    total = time.monotonic() - started
    if first is None and starts(log):
        first = total
    if proc.returncode != 0 or first is None:
        raise SystemExit(f"rerun-agents failed (exit {proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    return first, total


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def start_background(home: Path, env: dict[str, str]) -> None:
    """Start (or find) the background server of ``home``, outside the timed command."""
    done = subprocess.run(
        [sys.executable, "-m", "cli.local_server", "start"], env=env, cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"cannot start the background server:\n{done.stdout}\n{done.stderr}")


def stop_background(home: Path) -> None:
    from cli.local_server import stop_server

    stop_server(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from simulation.messages_server import MessagesServer, ServerBehavior

    rows: dict[str, list[tuple[float, float]]] = {
        "ephemeral": [],
        "background, first": [],
        "background, reused": [],
    }
    results: dict[str, list[float]] = {"rerun-agents --status results": [], "regenerate-results": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-repair-start-") as tmp,
        MessagesServer(ServerBehavior()) as judge,
    ):
        root = Path(tmp)
        pristine = _experiment(root / "pristine" / "2026-01-20T06-13-07-start", {"failed": 1.0})
        pristine_results = _experiment(root / "pristine-r" / "2026-01-20T06-13-07-results", {"results": 1.0})
        for i in range(args.repeats):
            for k, kind in enumerate(rows):
                home = root / f"home-{kind.split(',')[0]}" if kind != "background, first" else root / f"h{i}"
                exp = root / f"{i}-{k}" / pristine.name
                shutil.copytree(pristine, exp, symlinks=True)
                log = root / f"{i}-{k}.log"
                env = _env(home, log, judge.url, ephemeral=kind == "ephemeral")
                if kind == "background, reused":
                    start_background(home, env)
                try:
                    rows[kind].append(first_agent(exp, env, log))
                finally:
                    if kind == "background, first":
                        stop_background(home)
                print(kind, rows[kind][-1], flush=True)
            for kind in results:
                exp = root / f"{i}-r-{kind[:4]}" / pristine_results.name
                shutil.copytree(pristine_results, exp, symlinks=True)
                env = _env(root / "home-background", root / "r.log", judge.url, ephemeral=False)
                argv = (
                    [str(BIN / "rerun-agents"), str(exp), "--status", "results", "--tiers-dir", str(TIERS)]
                    if kind.startswith("rerun")
                    else [str(BIN / "regenerate-results"), str(exp), "--tiers-dir", str(TIERS)]
                )
                results[kind].append(timed(argv, env))
                print(kind, results[kind][-1], flush=True)
        stop_background(root / "home-background")
    report = {
        "first_agent_seconds": {k: round(statistics.median(f for f, _ in v), 2) for k, v in rows.items()},
        "command_seconds": {k: round(statistics.median(t for _, t in v), 2) for k, v in rows.items()},
        "results_only_seconds": {k: round(statistics.median(v), 2) for k, v in results.items()},
        "load_average": os.getloadavg(),
    }
    print("| back-end | first agent after | whole command (3 runs) |\n|---|---:|---:|")
    for kind in rows:
        print(f"| {kind} | {report['first_agent_seconds'][kind]} s | {report['command_seconds'][kind]} s |")
    print("\n| command (3 results runs) | wall |\n|---|---:|")
    for kind in results:
        print(f"| `{kind}` | {report['results_only_seconds'][kind]} s |")
    print(f"\nload average: {report['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
