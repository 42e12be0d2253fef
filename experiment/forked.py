"""Forked worker processes for the CLI's in-process passes over a large experiment.

The scan, the regeneration of runs and the folds of an aggregate rebuild are CPU-bound Python
(JSON, small files, pydantic) on 10,000 runs: threads share one core through the GIL (and sixteen
of them spent more time handing it over than working), one forked process per core uses them all.

Only for a process with no other thread at work, such as the ``regenerate-results`` and dry-run
CLIs: a fork copies only the forking thread, so a lock another thread held at that instant (a
Prefect client's, a logging handler's) stays locked in the child forever. Inside a flow the same
work runs in-process (``processes=1``).

Why our own workers and not ``multiprocessing.Pool``: a Ctrl+C must end a pass at once, every
time. The pool's workers share its queues, their locks and its handler threads; about one
interrupted pass in forty hung in the pool's ``terminate()``, waiting on a lock that a stopped
worker held. Here each worker has a pipe for its tasks and one for its answers, and shares
nothing else with the parent or the other workers: leaving the block (done, or a Ctrl+C in the
parent) kills the workers (``SIGKILL``; they have nothing to clean up, the temp files of a stopped
task are swept by its caller, see
:meth:`experiment.regenerate.pipeline.RegenerationPipeline.sweep_temp_files`), closes the pipes
and reaps them, with no lock to wait on. A worker that dies in a task (the OOM killer)
is an error in the parent, not a pass that waits forever.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import select
import signal
import struct
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from experiment.jsonio import write_all

T = TypeVar("T")
R = TypeVar("R")

MapFunction = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]
"""``map_(fn, items)``: ``fn(item)`` of each item, in order, as they come (the workers run a few
tasks ahead of the consumer; consume inside the ``forked_map`` block); ``fn`` must be picklable (a
module-level function or a ``functools.partial`` of one)."""


class Workers(Protocol):
    """Runs ``fn(item)`` tasks; :meth:`next` hands back the answers as the tasks finish."""

    pids: frozenset[int]
    """The processes that run the tasks (this one included: a task may run here)."""

    def submit(self, fn: Callable[[Any], Any], item: Any) -> int:
        """Queue ``fn(item)``; returns its ticket."""
        ...

    def next(self) -> tuple[int, Any]:
        """(ticket, result) of the next task to finish; raises the task's exception instead."""
        ...


class _Here:
    """:class:`Workers` in this process: a task runs when it is submitted."""

    def __init__(self) -> None:
        self.pids = frozenset({os.getpid()})
        self._tickets = itertools.count()
        self._answers: deque[tuple[int, bool, Any]] = deque()

    def submit(self, fn: Callable[[Any], Any], item: Any) -> int:
        ticket = next(self._tickets)
        try:
            self._answers.append((ticket, True, fn(item)))
        except Exception as error:  # noqa: BLE001 - raised by next(), as a worker's would be
            self._answers.append((ticket, False, error))
        return ticket

    def next(self) -> tuple[int, Any]:
        ticket, ok, value = self._answers.popleft()
        if not ok:
            raise value
        return ticket, value


class WorkerDied(RuntimeError):
    """A forked worker ended in the middle of a task (killed, or out of memory)."""


_HEADER = struct.Struct("!Q")
_EOF = object()


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None at end of file before the first byte."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            if left == size:
                return None
            raise EOFError("a forked worker's pipe ended mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    write_all(fd, _HEADER.pack(len(data)) + data)


def _receive(fd: int) -> Any:
    """The next message on ``fd``, or :data:`_EOF` when the other end closed it."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return _EOF
    (size,) = _HEADER.unpack(header)
    return pickle.loads(_read_exactly(fd, size) or b"")


def _reply(result_fd: int, fn: Callable[[Any], Any], item: Any) -> None:
    """In a worker: run one task and send its answer (an error when the answer cannot be sent)."""
    try:
        answer: tuple[bool, Any] = (True, fn(item))
    except Exception as error:  # noqa: BLE001 - the parent raises it
        answer = (False, error)
    try:
        _send(result_fd, answer)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        _send(result_fd, (False, RuntimeError(f"a forked task's answer cannot be sent back: {error!r}")))


def _serve(task_fd: int, result_fd: int) -> None:
    """A worker's life: tasks until the parent closes the task pipe."""
    while (task := _receive(task_fd)) is not _EOF:
        fn, item = task
        _reply(result_fd, fn, item)


_INTERRUPTING = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM})
"""Signals whose Python handlers may raise (a Ctrl+C's KeyboardInterrupt, a CLI's own handlers)."""


@contextmanager
def _signals_held() -> Iterator[set[int | signal.Signals]]:
    """Hold back :data:`_INTERRUPTING` for the block (they arrive after it); yields the mask to
    restore.

    ``pthread_sigmask`` runs the Python handlers of signals already pending once it has changed
    the mask, so the block's entry may raise (a Ctrl+C that came just before): the mask is read
    first with a call that changes nothing, so it is always restored."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTING)
        yield mask
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@dataclass
class _Worker:
    pid: int
    tasks: int
    """The parent's end of the worker's task pipe (-1 once closed)."""
    answers: int
    """The parent's end of the worker's answer pipe (-1 once closed)."""
    killed: bool = False

    def end(self) -> None:
        """Kill, close and reap; safe to call again after an interruption at any point (a pid is
        only signalled before it is reaped, a descriptor only closed once)."""
        if not self.killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.killed = True
        tasks, answers, self.tasks, self.answers = self.tasks, self.answers, -1, -1
        for fd in (tasks, answers):
            if fd >= 0:
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class _Forked:
    """:class:`Workers` in ``processes`` forked children (see the module docstring)."""

    def __init__(self) -> None:
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._busy: dict[int, tuple[_Worker, int]] = {}  # answer fd -> (worker, ticket)
        self._pending: deque[tuple[int, Callable[[Any], Any], Any]] = deque()
        self._tickets = itertools.count()
        self.pids = frozenset({os.getpid()})

    def start(self, processes: int) -> None:
        """Fork the workers (:meth:`close` ends those started if this is interrupted)."""
        for stream in (sys.stdout, sys.stderr):  # a child must not write the parent's buffers again
            with contextlib.suppress(Exception):
                stream.flush()
        for _ in range(processes):
            self._start()
        self._idle = list(self._workers)
        self.pids = frozenset({os.getpid(), *(w.pid for w in self._workers)})

    def _start(self) -> None:
        """Fork one worker and put it on record, with the interrupting signals held back meanwhile:
        a Ctrl+C then reaches the parent once the worker is on record (so it is killed and
        reaped), and the child ignores it before it can arrive."""
        task_read, task_write = os.pipe()
        answer_read, answer_write = os.pipe()
        with _signals_held() as mask:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child (coverage does not follow a fork)
                self._child(task_read, answer_write, (task_write, answer_read), mask)
            os.close(task_read)
            os.close(answer_write)
            self._workers.append(_Worker(pid, task_write, answer_read))

    def _child(
        self, task_read: int, answer_write: int, parent_ends: tuple[int, int], mask: set[int | signal.Signals]
    ) -> None:
        """The worker's whole life; never returns into the parent's code (``os._exit``)."""
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            # The parent's ends of this worker's pipes and of its siblings': held open here, a
            # task pipe would never see its end of file.
            for fd in (*parent_ends, *(fd for w in self._workers for fd in (w.tasks, w.answers))):
                os.close(fd)
            _serve(task_read, answer_write)
            code = 0
        except BaseException:  # noqa: BLE001, S110 - the parent sees the missing answer
            pass
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def submit(self, fn: Callable[[Any], Any], item: Any) -> int:
        ticket = next(self._tickets)
        self._pending.append((ticket, fn, item))
        self._dispatch()
        return ticket

    def _dispatch(self) -> None:
        while self._pending and self._idle:
            worker = self._idle.pop()
            ticket, fn, item = self._pending.popleft()
            self._busy[worker.answers] = (worker, ticket)
            _send(worker.tasks, (fn, item))

    def next(self) -> tuple[int, Any]:
        if not self._busy:
            raise RuntimeError("no forked task is running")
        ready, _, _ = select.select(list(self._busy), [], [])
        worker, ticket = self._busy.pop(ready[0])
        try:
            answer = _receive(worker.answers)
        except EOFError:  # it ended while writing its answer
            answer = _EOF
        if answer is _EOF:
            raise WorkerDied(f"forked worker {worker.pid} ended in the middle of a task")
        self._idle.append(worker)
        self._dispatch()
        ok, value = answer
        if not ok:
            raise value
        return ticket, value

    def close(self) -> None:
        """End every worker with ``SIGKILL`` (an idle one has nothing to finish, a busy one's task
        is abandoned), close the pipes and reap them. Nothing here waits on a worker, and a
        Ctrl+C in the middle (a second one, or one that came as the pass ended) is raised only
        once every worker is reaped."""
        interrupted: BaseException | None = None
        while self._workers:
            try:
                with _signals_held():
                    self._workers[-1].end()
                    self._workers.pop()
            except BaseException as error:  # noqa: BLE001 - raised below, after the others
                interrupted = interrupted or error
        if interrupted is not None:
            raise interrupted


@contextmanager
def forked_workers(processes: int) -> Iterator[Workers]:
    """:class:`Workers` over ``processes`` forked children for the block, or in this process when
    fewer than two are asked for or the platform cannot fork. Leaving the block, normally or on an
    exception (a Ctrl+C), kills the workers at once."""
    if processes < 2 or not hasattr(os, "fork"):
        yield _Here()
        return
    workers = _Forked()
    try:
        workers.start(processes)
        yield workers
    finally:
        workers.close()


def _map_here(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    return (fn(item) for item in items)


def _map_over(workers: Workers, window: int) -> MapFunction:
    """An ordered :data:`MapFunction` with at most ``window`` tasks handed out and not yet yielded
    (the workers stay busy while the consumer works, without holding every answer at once)."""

    def map_(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        remaining = iter(items)
        outstanding: deque[int] = deque()
        answers: dict[int, Any] = {}
        for item in itertools.islice(remaining, window):
            outstanding.append(workers.submit(fn, item))
        while outstanding:
            while outstanding[0] not in answers:
                ticket, value = workers.next()
                answers[ticket] = value
            value = answers.pop(outstanding.popleft())
            for item in itertools.islice(remaining, 1):
                outstanding.append(workers.submit(fn, item))
            yield value

    return map_


@contextmanager
def forked_map(processes: int) -> Iterator[MapFunction]:
    """A :data:`MapFunction` over ``processes`` forked workers, or in this process when fewer than
    two are asked for or the platform cannot fork; the workers end with the block."""
    with forked_workers(processes) as workers:
        yield _map_here if isinstance(workers, _Here) else _map_over(workers, 2 * processes)
