"""What must hold before a repair moves anything: checked first, reported in one line.

Both the CLI (before it starts Prefect, so the user gets one line and no traceback) and the flow
(for deployments) call :func:`check_can_repair`.
"""

from __future__ import annotations

import os

from experiment.errors import RepairBlocked
from experiment.scan import ExperimentContext


def check_can_repair(context: ExperimentContext, *, needs_agents: bool) -> None:
    """Base repository, tiers dir and judge API key; raises RepairBlocked naming what is missing."""
    if not needs_agents:
        return
    context.layout.find_base_repo(context.config.task_repo)
    context.require_tiers_dir()
    if not os.environ.get("ANTHROPIC_API_KEY", "").strip():
        raise RepairBlocked(
            "ANTHROPIC_API_KEY is not set",
            None,
            "export ANTHROPIC_API_KEY=... (judges call the Anthropic Messages API; "
            "ANTHROPIC_BASE_URL selects a compatible server)",
        )
