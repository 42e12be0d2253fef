"""Forked workers (``experiment.forked``): results in order, a task's error or a dead worker
raised in the parent, and a Ctrl+C at any instant ends the pass at once with every worker reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiment.forked import WorkerDied, forked_map, forked_workers

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
    assert err.count("Traceback") == 1, err  # no worker's
    with pytest.raises(ProcessLookupError):  # every worker of the group is gone
        os.killpg(proc.pid, 0)


def _fails(n: int) -> int:
    if n == 3:
        raise ValueError(f"task {n} failed")
    return n


def _dies(n: int) -> int:
    if n == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return n


@pytest.mark.parametrize("processes", [1, 2])
def test_a_tasks_error_is_raised_in_the_parent(processes: int) -> None:
    with pytest.raises(ValueError, match="task 3 failed"), forked_map(processes) as map_:
        list(map_(_fails, range(6)))


def test_a_worker_that_dies_in_a_task_is_an_error_not_a_wait() -> None:
    with pytest.raises(WorkerDied), forked_workers(2) as workers:
        children = workers.pids - {os.getpid()}
        for n in range(6):
            workers.submit(_dies, n)
        for _ in range(6):
            workers.next()
    for pid in children:  # every worker was reaped (not only the dead one)
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_workers_hand_back_answers_by_ticket() -> None:
    with forked_workers(2) as workers:
        assert len(workers.pids) == 3 and os.getpid() in workers.pids
        tickets = {workers.submit(abs, -n): n for n in range(5)}
        answers = dict(workers.next() for _ in range(5))
    assert {tickets[t]: value for t, value in answers.items()} == {n: n for n in range(5)}


_INTERRUPTED_PASSES = r"""
import os, random, signal
from experiment.forked import forked_map

def big(n):
    return "x" * (1 << 20) + str(n)  # larger than a pipe: an answer is written in many pieces

def interrupt(*_):
    raise KeyboardInterrupt

signal.signal(signal.SIGALRM, interrupt)
rng = random.Random(5)
stopped = 0
for attempt in range(40):  # every other one within the workers' start
    try:  # the timer inside: a short one can fire before the next statement
        signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.0, 0.003 if attempt % 2 else 0.08))
        with forked_map(2) as map_:
            for _ in map_(big, range(60)):
                pass
        signal.setitimer(signal.ITIMER_REAL, 0)
    except KeyboardInterrupt:
        stopped += 1
try:
    os.waitpid(-1, os.WNOHANG)
    print("workers left behind")
except ChildProcessError:
    print(f"stopped {stopped}")
"""


def test_interrupts_at_any_instant_end_every_pass_and_leave_no_worker() -> None:
    """40 passes, each interrupted at a random instant (while forking, dispatching, reading a
    large answer, or closing): each ends at once, and no worker outlives its pass."""
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_PASSES], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stopped "), done.stdout
    assert int(done.stdout.split()[1]) >= 20  # most passes were stopped mid-way
