"""Serve every deployment of prefect.yaml from one process on this machine, without a work pool.

    export PREFECT_API_URL=http://127.0.0.1:4200/api     # a running `prefect server start`
    uv run python -m deployments.serve [--limit 2]
    uv run prefect deployment run 'rerun-agents/rerun-agents' --param experiment_dir='"/data/exp"'

The deployments' names, descriptions, tags, default parameters, schedules and concurrency limits
are read from ``prefect.yaml``, so the served deployments and the work-pool ones never drift
apart. Only what a process on this machine cannot use is ignored: the pool, the build and pull
steps (the code is here). The nightly schedule's timezone is ``$SCYLLA_REPAIR_TZ`` (default UTC),
read when this script starts. Flow runs execute in subprocesses of this process and inherit its
environment (PATH with ``claude``, ANTHROPIC_API_KEY, SCYLLA_EXPERIMENTS_ROOT, ...).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

PROJECT = Path(__file__).resolve().parents[1]


def load_deployments(prefect_yaml: Path = PROJECT / "prefect.yaml") -> list[RunnerDeployment]:
    """``RunnerDeployment`` objects for every deployment in ``prefect.yaml``."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.flows import Flow, load_flow_from_entrypoint
    from prefect.schedules import Cron

    spec = yaml.safe_load(prefect_yaml.read_text())
    timezone = os.environ.get("SCYLLA_REPAIR_TZ") or "UTC"
    deployments: list[RunnerDeployment] = []
    for item in spec["deployments"]:
        flow: Flow[..., Any] = load_flow_from_entrypoint(str(PROJECT / item["entrypoint"]))
        limit = item.get("concurrency_limit")
        deployments.append(  # a sync call: the deployment itself, never the coroutine the stubs allow
            cast(
                "RunnerDeployment",
                flow.to_deployment(
                    name=item["name"],
                    description=item.get("description"),
                    tags=item.get("tags"),
                    parameters=item.get("parameters") or {},
                    schedules=[
                        Cron(s["cron"], timezone=timezone, active=s.get("active", True))
                        for s in item.get("schedules") or []
                    ],
                    concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
                ),
            )
        )
    return deployments


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="Flow runs at once (default: no limit).")
    args = parser.parse_args(argv)
    from prefect import serve

    os.chdir(PROJECT)  # flow runs load their entrypoints relative to the project
    serve(*load_deployments(), limit=args.limit)


if __name__ == "__main__":
    main()
