"""Flow-run heartbeats that stop when the flow run's body ends, not up to a second later.

Prefect 3.9 sends a flow run's heartbeat events from a thread that sleeps in 1 s steps, and a
sync flow joins that thread when its body ends: every sync flow call returns up to a second after
its work. A CLI repair pays it twice (the repair and its scan subflow: the scan of 3 runs took
1.1 s, of which ~1 s was this wait, and it sits between the command's start and the first
agent), the nightly flow once more per experiment, and the test suite at every flow call.

:func:`prompt_heartbeats` sends the same heartbeats (the first when the body starts, then one
every ``heartbeat_seconds``, none once the run's state is final, from a daemon thread with the
caller's context) from a thread that waits on its stop event, so it ends as soon as the body does.
:func:`install` puts it in place of ``prefect.flow_engine._send_heartbeats`` for the Prefect
versions whose engine we read (:data:`READ_VERSIONS`); on any other version Prefect's own stays,
and ``tests/flows/test_heartbeats.py`` fails until someone reads the new engine.

Heartbeats matter: the zombie automation (``deployments/zombies.py``) marks a deployment's run
Crashed when they stop. Nothing here changes when or what they send.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

READ_VERSIONS = ("3.9.",)
"""Prefect versions whose ``flow_engine._send_heartbeats`` and engine hooks this mirrors."""

JOIN_TIMEOUT_SECONDS = 2.0
"""As Prefect: a heartbeat stuck in the API client must not hold the flow's end for ever."""


@contextlib.contextmanager
def prompt_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Prefect's flow-run heartbeat context, with a thread that ends when the body does."""
    from prefect.flow_engine import MINIMUM_HEARTBEAT_INTERVAL

    seconds = engine.heartbeat_seconds
    if seconds is None:  # heartbeats turned off in the settings
        yield
        return
    seconds = max(seconds, MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            run = engine.flow_run
            if run is not None and run.state is not None and run.state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:  # noqa: BLE001 - a lost heartbeat must not end the flow run
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            stop.wait(seconds)

    # The caller's context: the thread must see the run's settings (its API URL), as in Prefect.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(beat,), daemon=True, name="flow-run-heartbeats"
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=JOIN_TIMEOUT_SECONDS)


def install() -> bool:
    """Use :func:`prompt_heartbeats` in Prefect's flow engine; False (and nothing changed) on a
    Prefect version this was not written against."""
    import prefect
    from prefect import flow_engine

    if not prefect.__version__.startswith(READ_VERSIONS) or not hasattr(flow_engine, "_send_heartbeats"):
        return False
    flow_engine._send_heartbeats = prompt_heartbeats
    return True
