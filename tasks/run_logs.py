"""The project's own log lines in the run's log (the UI's Logs tab), not only on a terminal.

Prefect sends to the API only what its run loggers emit (``get_run_logger()``, ``log_prints``).
Our modules log with plain ``logging.getLogger(__name__)`` (``experiment`` and ``operations``
never import Prefect), so their lines (a retry after a 429, a slot freed from a dead process, an
agent that failed) reached the worker's terminal at best and the UI never. Prefect's own answer,
``PREFECT_LOGGING_EXTRA_LOGGERS``, must be set in every process's environment before Prefect is
imported; this does the same from the code that runs the flows, whatever the environment.

Records logged outside a flow or task run (the CLI's scan before the flow starts, background
threads) have no run to belong to: they are skipped here instead of raising Prefect's
"attempted to send logs to the API without a flow run id" warning.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_LOGGING_LEVEL

PROJECT_LOGGERS = ("experiment", "operations", "tasks", "flows")
"""Top-level loggers of the project's packages; every module logger is a child of one."""


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, for records logged while a flow or task run is active."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "flow_run_id", None) or FlowRunContext.get() or TaskRunContext.get():
            super().emit(record)


def send_project_logs_to_runs() -> None:
    """Attach :class:`RunLogHandler` to the project's loggers at ``PREFECT_LOGGING_LEVEL`` (once).

    Without a level of their own the project's loggers inherit the root's (WARNING by default)
    and their INFO lines would never be emitted; a lower level already set (on them, or on the
    root by ``-v``) is kept.
    """
    level = logging.getLevelName(str(PREFECT_LOGGING_LEVEL.value()).upper())
    level = level if isinstance(level, int) else logging.INFO
    level = min(level, logging.getLogger().getEffectiveLevel())
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
            logger.addHandler(RunLogHandler())
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
