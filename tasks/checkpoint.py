"""The checkpoint settling of a repair's end as a Prefect task (the logic: :mod:`operations.settle`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from experiment.scan import ScanReport
from operations import settle as _settle
from operations.settle import settle_checkpoint

__all__ = ["settle_checkpoint", "settle_checkpoint_task", "settle_from_scan"]

settle_checkpoint_task = task(
    name="settle-checkpoint", task_run_name="settle-checkpoint", cache_policy=NO_CACHE
)(settle_checkpoint)


def settle_from_scan(experiment_dir: str, after: ScanReport, whole_experiment: bool) -> str | None:
    """Settle the checkpoint from the repair's final scan, as a task run (see :mod:`operations.settle`)."""
    return _settle.settle_from_scan(experiment_dir, after, whole_experiment, settle=settle_checkpoint_task)
