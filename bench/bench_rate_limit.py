"""Benchmark: how much of a provider's request budget a rate-limited repair uses.

    uv run python bench/bench_rate_limit.py [--rpm 75] [--runs-per-subtest 9] [--agents 8]
                                            [--wakeup-only] [--json out.json]
    uv run python bench/bench_rate_limit.py --no-wakeup --no-judge-rpm --rpm 20 --window 15 \
                                            --faults 529=0.15 --runs-per-subtest 3

The second form is the "not told" case: ``--judge-rpm`` is not given, so the repair must find the
budget itself (from the ``anthropic-ratelimit-*`` headers the local server sends like the real
API), against a provider allowing 20 requests per 15 s window with 15 % 529 answers. A window
shorter than a minute (``--window``, also given to the repair as SCYLLA_RATE_WINDOW_SECONDS)
keeps the run short; the ratio is what matters. ``--judges-only`` makes every run need only its
three judges (agents finished, judges deleted), so all the demand is there from the start and
the figure is the pacing's alone, not the agents' pace.

Part 1, wake-up delay: tasks under a Prefect global concurrency limit of 1, each holding the
slot 0.5 s; the gap between one task's release and the next task's acquisition, with Prefect's
``concurrency()`` (which sleeps the server's Retry-After) and with the acquire loop of
``tasks/limits/acquire.py`` (which asks again after at most ``POLL_CAP`` s).

Part 2, utilisation: a full ``rerun-agents`` repair (fake claude, Prefect's temporary server)
of a generated experiment whose every run needs an agent and 3 judges, against the local
Messages server allowing R requests per 60 s sliding window (plus 2% each of injected
429/529/500). The judge requests far exceed R per minute, so the limiter is the bottleneck.

Utilisation is accepted requests / R over the *complete* windows: windows of 60 s from the
first accepted request, counting a window only if requests were still accepted after it ended
(the last window is partial by construction). A stricter figure is printed too: accepted /
(R x (span + 60 s) / 60 s), the most a sliding-window server can accept between the first and
the last request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-rate-limit-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")  # 2 busy cores

TIERS = REPO / "tests" / "fixtures" / "scylla-tiers"
WINDOW = 60.0


def wakeup(n: int = 6, hold: float = 0.5) -> dict:
    """Release-to-acquire gaps under a limit of 1: Prefect's helper vs tasks/limits/acquire.py."""
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.task_runners import ThreadPoolTaskRunner

    from tasks import limits

    events: list[tuple[str, float]] = []
    lock = threading.Lock()

    def note(kind: str) -> None:
        with lock:
            events.append((kind, time.monotonic()))

    @task
    def prefect_holder(i: int) -> None:
        with concurrency("bench-wakeup-prefect", occupy=1, strict=True):
            note("acq")
            time.sleep(hold)
            note("rel")

    @task
    def ours_holder(i: int) -> None:
        lease = limits.increment(["bench-wakeup-ours"], "concurrency", lease=True, timeout=600)
        note("acq")
        time.sleep(hold)
        note("rel")
        with get_client(sync_client=True) as client:
            from uuid import UUID

            client.release_concurrency_slots_with_lease(UUID(lease))

    def gaps() -> list[float]:
        out, last_rel = [], None
        for kind, t in sorted(events, key=lambda e: e[1]):
            if kind == "acq" and last_rel is not None:
                out.append(round(t - last_rel, 3))
            if kind == "rel":
                last_rel = t
        return out

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=n))
    def measure() -> dict:
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name("bench-wakeup-prefect", 1)
            client.upsert_global_concurrency_limit_by_name("bench-wakeup-ours", 1)
        result = {}
        for name, holder in (("prefect_concurrency", prefect_holder), ("scylla_limits", ours_holder)):
            events.clear()
            started = time.monotonic()
            for future in holder.map(range(n)):
                future.result()
            result[name] = {
                "total_seconds": round(time.monotonic() - started, 2),
                "ideal_seconds": n * hold,
                "gaps_seconds": gaps(),
            }
            g = result[name]["gaps_seconds"]
            result[name]["mean_gap_seconds"] = round(sum(g) / len(g), 3) if g else None
        return result

    return measure()


def utilisation(accepted: list[float], rpm: int, window: float = WINDOW) -> dict:
    times = sorted(accepted)
    first, last = times[0], times[-1]
    per_window: list[int] = []
    for t in times:
        index = int((t - first) // window)
        per_window.extend([0] * (index + 1 - len(per_window)))
        per_window[index] += 1
    complete = [c for i, c in enumerate(per_window) if first + (i + 1) * window <= last]
    peak = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        peak = max(peak, i - j + 1)
    span = last - first
    return {
        "requests_accepted": len(times),
        "per_window": per_window,
        "complete_windows": len(complete),
        "utilisation_complete_windows": round(sum(complete) / (rpm * len(complete)), 4) if complete else None,
        "utilisation_strict": round(len(times) / (rpm * (span + window) / window), 4),
        "span_seconds": round(span, 1),
        "max_in_any_window": peak,
    }


def repair(
    rpm: int,
    runs_per_subtest: int,
    agents: int,
    workdir: Path,
    *,
    window: float = WINDOW,
    judge_rpm_given: bool = True,
    faults: dict[str, float] | None = None,
    judges_only: bool = False,
) -> dict:
    from simulation.claude_log import fake_claude_bin
    from simulation.generator import generate_experiment
    from simulation.messages_server import MessagesServer, ServerBehavior
    from tasks import limits, retry

    os.environ["PATH"] = f"{fake_claude_bin()}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["ANTHROPIC_API_KEY"] = "bench-key-not-a-secret"
    os.environ["SCYLLA_RATE_WINDOW_SECONDS"] = str(window)
    exp = generate_experiment(
        workdir / "2026-01-20T06-13-07-bench",
        tiers=["T0", "T1", "T2"],
        subtests_per_tier=2,
        runs_per_subtest=runs_per_subtest,
        mix={"completed": 1.0} if judges_only else {"failed": 0.6, "partial": 0.2, "missing": 0.2},
        seed=9,
        tiers_dir=TIERS,
    ).path
    if judges_only:  # every run's agent finished but its judges are gone: all judge demand at once
        import shutil

        for run_dir in exp.glob("T*/*/run_*"):
            shutil.rmtree(run_dir / "judge", ignore_errors=True)
            for name in ("run_result.json", "report.json", "report.md"):
                (run_dir / name).unlink(missing_ok=True)
    from flows.rerun_agents import rerun_agents, summary_of

    behavior = ServerBehavior(
        rpm=rpm,
        window_seconds=window,
        max_concurrent=max(agents, 8),
        latency=0.2,
        fault_rates={"429": 0.02, "529": 0.02, "500": 0.02} if faults is None else faults,
        retry_after=1,
        seed=3,
    )
    retry.RETRY_COUNTS.clear()
    with MessagesServer(behavior) as server:
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        started = time.monotonic()
        summary = summary_of(
            rerun_agents(
                experiment_dir=str(exp),
                tiers_dir=str(TIERS),
                max_concurrent=agents,
                judge_rpm=rpm if judge_rpm_given else None,
                max_in_flight=max(agents, 8),
                return_state=True,
            )
        )
        elapsed = time.monotonic() - started
        stats = server.stats()
    result = {
        "rpm": rpm,
        "window_seconds": window,
        "judge_rpm_given": judge_rpm_given,
        "runs": len(summary.runs),
        "outcomes": dict(summary.counts),
        "repair_seconds": round(elapsed, 1),
        "server_by_status": stats["by_status"],
        "peak_concurrency": stats["peak_concurrency"],
        "max_concurrent_violations": stats["max_concurrent_violations"],
        "rpm_rejections": stats["rpm_violations_rejected"],
        "retries_by_class": dict(retry.RETRY_COUNTS),
        "prefect_acquisitions": limits.STATS.acquisitions,
        "prefect_refusals": limits.STATS.refusals,
        "limits": {
            "max_concurrent": agents,
            "judge_rpm": rpm if judge_rpm_given else None,
            "max_in_flight": max(agents, 8),
        },
    }
    result.update(utilisation(stats["accepted_times"], rpm, window))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpm", type=int, default=75)
    parser.add_argument("--runs-per-subtest", type=int, default=9)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--wakeup-only", action="store_true")
    parser.add_argument("--no-wakeup", action="store_true", help="Skip part 1.")
    parser.add_argument("--window", type=float, default=WINDOW, help="The provider's rate window (s).")
    parser.add_argument("--no-judge-rpm", action="store_true", help="Do not tell the repair the budget.")
    parser.add_argument(
        "--judges-only", action="store_true", help="Runs need only their 3 judges (no agent): pacing alone."
    )
    parser.add_argument(
        "--faults", nargs="*", default=None, metavar="KIND=RATE", help="Injected faults, e.g. 529=0.15."
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = {} if args.no_wakeup else {"wakeup": wakeup()}
    if "wakeup" in report:
        print(json.dumps(report["wakeup"], indent=2), flush=True)
    faults = None if args.faults is None else {k: float(v) for k, v in (f.split("=") for f in args.faults)}
    if not args.wakeup_only:
        with tempfile.TemporaryDirectory(prefix="bench-rate-limit-") as tmp:
            report["repair"] = repair(
                args.rpm,
                args.runs_per_subtest,
                args.agents,
                Path(tmp),
                window=args.window,
                judge_rpm_given=not args.no_judge_rpm,
                faults=faults,
                judges_only=args.judges_only,
            )
        print(json.dumps(report["repair"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
