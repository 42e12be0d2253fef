"""Forked worker processes for the CLI's in-process passes over a large experiment.

The scan, the regeneration of runs and the reads of an aggregate rebuild are CPU-bound Python
(JSON, small files, pydantic) on 10,000 runs: threads share one core through the GIL (and sixteen
of them spent more time handing it over than working), one forked process per core uses them all.

Only for a process with no other thread at work, such as the ``regenerate-results`` and dry-run
CLIs: a fork copies only the forking thread, so a lock another thread held at that instant (a
Prefect client's, a logging handler's) stays locked in the child forever. Inside a flow the same
work runs in-process (``processes=1``).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.pool import Pool
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MapFunction = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]
"""``map_(fn, items)``: ``fn(item)`` of each item, in order, as they come (the workers run ahead
of the consumer; consume inside the ``forked_map`` block); ``fn`` must be picklable (a
module-level function or a ``functools.partial`` of one)."""


def _map_here(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    return (fn(item) for item in items)


@contextmanager
def forked_map(processes: int) -> Iterator[MapFunction]:
    """A :data:`MapFunction` over ``processes`` forked workers, or in this process when fewer than
    two are asked for or the platform cannot fork; the workers end with the block."""
    with _workers(processes) as pool:
        yield _map_here if pool is None else lambda fn, items: pool.imap(fn, items, chunksize=1)


@contextmanager
def _workers(processes: int) -> Iterator[Pool | None]:
    """A pool of ``processes`` forked workers for the block, or None (work in this process) when
    fewer than two are asked for or the platform cannot fork."""
    if processes < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    with multiprocessing.get_context("fork").Pool(processes, initializer=_leave_interrupts_to_parent) as pool:
        yield pool


def _leave_interrupts_to_parent() -> None:
    """In each worker: ignore SIGINT. A Ctrl+C reaches the whole process group; a worker that died
    of it mid-task printed its traceback, and could die holding the pool's queue lock, which left
    the parent's ``terminate()`` waiting forever (seen once). The parent's KeyboardInterrupt ends
    the block, and the pool's ``terminate()`` stops the workers (SIGTERM, default action: a
    SIGTERM raised as an exception instead let a worker's exit path wait on a lock the parent's
    ``terminate()`` held, and one pass hung). Temp files a stopped task leaves are swept by its
    caller (:meth:`experiment.regenerate.pipeline.RegenerationPipeline.discard_unclaimed`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


Submit = Callable[[Callable[[Any], Any], Any, Callable[[Any], None], Callable[[BaseException], None]], object]
"""``submit(fn, item, done, failed)``: run ``fn(item)``, then ``done(result)`` or ``failed(error)``;
in a worker, the callbacks run on the pool's result thread (keep them to a queue put)."""


def _submit_here(
    fn: Callable[[Any], Any], item: Any, done: Callable[[Any], None], failed: Callable[[BaseException], None]
) -> None:
    try:
        result = fn(item)
    except Exception as error:  # noqa: BLE001 - handed to the caller, as a worker's would be
        failed(error)
        return
    done(result)


@contextmanager
def forked_pool(processes: int) -> Iterator[Submit]:
    """A :data:`Submit` over ``processes`` forked workers (run at once in this process when fewer
    than two are asked for or the platform cannot fork), for work whose next task depends on what
    came back; the workers end with the block."""
    with _workers(processes) as pool:
        if pool is None:
            yield _submit_here
        else:
            yield lambda fn, item, done, failed: pool.apply_async(
                fn, (item,), callback=done, error_callback=failed
            )
