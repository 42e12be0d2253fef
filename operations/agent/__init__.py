"""The agent step of a run: one attempt of the agent in a prepared workspace, fully recorded.

The modules, each with one job:

* ``command`` - :class:`AgentSettings`, the agent argv, its environment and secret redaction.
* ``process`` - running the process in its own group with a timeout; :func:`stop_agents` (Ctrl+C).
* ``flags``   - the rerun's extra claude flags: its siblings' recorded ones, else the definition's.
* ``records`` - the command's files in ``agent/``: ``command_log.json``, ``replay.sh``, ``MODEL.md``.
* ``run``     - :func:`run_agent`: one attempt, its classification and every ``agent/`` file;
  :func:`finished_agent`/:func:`recover_agent`: an attempt that ended before the repair died.

This package re-exports the names callers use, so ``from operations.agent import X`` keeps working.
"""

from __future__ import annotations

from operations.agent.command import AgentSettings, build_command, redact_env
from operations.agent.flags import AgentFlags, agent_flags, settings_for_run
from operations.agent.process import AgentInterrupted, stop_agents
from operations.agent.run import (
    AGENT_COMMIT_MESSAGE,
    AgentOutcome,
    FinishedAgent,
    finished_agent,
    recover_agent,
    run_agent,
)

__all__ = [
    "AGENT_COMMIT_MESSAGE",
    "AgentFlags",
    "AgentInterrupted",
    "AgentOutcome",
    "AgentSettings",
    "agent_flags",
    "FinishedAgent",
    "build_command",
    "finished_agent",
    "recover_agent",
    "redact_env",
    "run_agent",
    "settings_for_run",
    "stop_agents",
]
