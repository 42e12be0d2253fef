"""Flow runs whose worker died end Crashed: an automation on the flow runs' heartbeats.

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    uv run python -m deployments.zombies [--within 90]

A worker (or its machine) killed mid-repair leaves its flow run Running for ever: nothing is left
to report the end, and a self-hosted Prefect server has no built-in rule for it (Prefect Cloud's
"unresponsive run detection" is this automation, managed). Every flow run sends a heartbeat
event every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (30 in ``prefect.yaml``'s work pool
environment; Prefect's default is 180); this proactive automation marks a flow run of this
project Crashed when ``--within`` seconds pass after a heartbeat with neither another heartbeat
nor a final state. Crashed frees the deployment's concurrency slot, so the queued repairs go on,
and re-running the deployment resumes the experiment from its files.

Idempotent: the automation is found by name and updated, never duplicated. Run it once per
server, after ``prefect deploy --all`` (or from any machine pointed at the server).
"""

from __future__ import annotations

import argparse
from datetime import timedelta

NAME = "scylla-repair: crash flow runs that stopped sending heartbeats"
TAG = "scylla-repair"
"""The tag every deployment of ``prefect.yaml`` gives its flow runs; the automation watches those."""
DEFAULT_WITHIN = 90.0
"""Three heartbeats of 30 s: one late heartbeat on a loaded machine is not a crash."""


def zombie_automation(within_seconds: float = DEFAULT_WITHIN):
    """The automation, unsaved."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=NAME,
        description=(
            f"Marks a flow run tagged {TAG!r} Crashed when no heartbeat and no final state follows "
            f"its last heartbeat within {within_seconds:g} s (its worker or machine died)."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                force=False,  # through the orchestration rules: a run that just ended keeps its state
                name="Crashed",
                message=f"No heartbeat for {within_seconds:g} s: the worker running this flow run died. "
                "Run the deployment again to resume the experiment.",
            )
        ],
    )


def ensure_zombie_automation(within_seconds: float = DEFAULT_WITHIN):
    """Create the automation, or update the existing one of that name; returns it."""
    from prefect.exceptions import ObjectNotFound

    wanted = zombie_automation(within_seconds)
    try:
        existing = type(wanted).read(name=NAME)
    except (ObjectNotFound, ValueError):
        return wanted.create()
    for field in ("description", "trigger", "actions", "enabled"):
        setattr(existing, field, getattr(wanted, field))
    existing.update()
    return existing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--within",
        type=float,
        default=DEFAULT_WITHIN,
        help=f"Seconds without a heartbeat before a flow run is marked Crashed (default {DEFAULT_WITHIN:g}).",
    )
    args = parser.parse_args(argv)
    automation = ensure_zombie_automation(args.within)
    print(
        f"automation {automation.name!r} ({automation.id}): crash after {args.within:g} s without heartbeat"
    )


if __name__ == "__main__":
    main()
