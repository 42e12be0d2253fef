"""Forked workers (``experiment.forked``): results in order, and a Ctrl+C ends the pass cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiment.forked import forked_map

ROOT = Path(__file__).resolve().parents[2]

_SLOW_PASS = r"""
import sys, time
from experiment.forked import forked_map
def slow(n):
    sys.stdout.write(f"working {n}\n")  # one write: the two workers share the pipe
    sys.stdout.flush()
    time.sleep(60)
with forked_map(2) as map_:
    list(map_(slow, [1, 2, 3, 4]))
"""


def test_results_come_back_in_order_in_workers_and_in_process() -> None:
    for processes in (1, 2):
        with forked_map(processes) as map_:
            assert list(map_(abs, range(-50, 50))) == [abs(n) for n in range(-50, 50)]


def test_ctrl_c_ends_a_forked_pass_at_once_without_the_workers_tracebacks() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_PASS],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: the Ctrl+C goes to it and its workers only
    )
    try:
        assert proc.stdout is not None
        started = [proc.stdout.readline(), proc.stdout.readline()]
        assert all(line.startswith("working") for line in started), started
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends to the foreground group
        began = time.monotonic()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.monotonic() - began < 10
    assert "KeyboardInterrupt" in err  # the parent's: the caller decides what to print
    assert "ForkPoolWorker" not in err, err
