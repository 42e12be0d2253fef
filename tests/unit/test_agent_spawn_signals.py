"""A Ctrl+C while an agent is being forked (``operations.agent.process.start``).

Between fork and exec the child is a copy of the repair running Python (the ``preexec_fn`` that
ties the agent's life to the repair's). A SIGINT to the terminal's process group landing there ran
the CLI's own handler in the child; it waited forever on a lock the parent held at the fork, and
the parent, waiting for the child's exec, hung with it (a Ctrl+C test hang, about 1 run in 10
under load). Each test runs in its own interpreter: it installs signal handlers.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

PROJECT = Path(__file__).resolve().parents[2]


def run_script(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading
        sys.path.insert(0, {str(PROJECT)!r})
        from pathlib import Path
        from operations.agent import process
        tmp = Path({str(tmp_path)!r})
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)


def test_a_sigint_during_the_fork_never_runs_the_repairs_handler_in_the_child(tmp_path: Path) -> None:
    result = run_script(
        """
        parent = os.getpid()

        def handler(signum, frame):  # the CLI's: it takes the lock the forking thread holds
            (tmp / f"handler-{os.getpid()}").write_text("ran")
            with process._LIVE_LOCK:
                pass

        signal.signal(signal.SIGINT, handler)
        real = process._die_with_parent_fn

        def interrupted_fork():  # the Ctrl+C lands in the child before its preexec ran
            preexec = real()

            def child():
                os.kill(os.getpid(), signal.SIGINT)
                preexec()

            return child

        process._die_with_parent_fn = interrupted_fork
        started = process.start(["true"], tmp, dict(os.environ), tmp / "out", tmp / "err")
        print("exit", started.wait(timeout=20))
        print("handlers", sorted(p.name for p in tmp.glob("handler-*")))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "handlers []" in result.stdout, result.stdout  # not in the child, not in the parent
    assert "exit -2" in result.stdout, result.stdout  # the child got the Ctrl+C's default action


def test_the_agent_gets_sigint_and_sigterm_unblocked_with_their_default_action(tmp_path: Path) -> None:
    result = run_script(
        """
        signal.signal(signal.SIGINT, lambda *a: None)
        started = process.start(
            ["grep", "-E", "^Sig(Blk|Ign|Cgt)", "/proc/self/status"], tmp, dict(os.environ), tmp / "out", tmp / "err"
        )
        started.wait(timeout=20)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        print("parent blocks", sorted(int(s) for s in blocked))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parent blocks []" in result.stdout, result.stdout  # the forking thread's mask restored
    masks = dict(line.split(":\t") for line in (tmp_path / "out").read_text().splitlines())
    bits = (1 << (2 - 1)) | (1 << (15 - 1))  # SIGINT, SIGTERM
    for name in ("SigBlk", "SigIgn", "SigCgt"):
        assert int(masks[name], 16) & bits == 0, (name, masks[name])


def test_a_stop_that_blocks_still_ends_the_process_within_the_grace_period(tmp_path: Path) -> None:
    """``cli.common.interruptible`` arms its watchdog before it stops the agents: a stop stuck on
    a lock (the hang above) must not keep the process alive after a Ctrl+C."""
    result = run_script(
        """
        import time
        from cli.common import interruptible

        stuck = threading.Lock()
        stuck.acquire()
        with interruptible(lambda: stuck.acquire(), grace_seconds=1):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(20)
        """,
        tmp_path,
    )
    assert result.returncode == 130, (result.returncode, result.stderr[-2000:])
    assert "interrupted; run the same command again to resume" in result.stderr
