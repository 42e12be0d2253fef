"""Regeneration: rebuild every derived file of an experiment from its logs, without any agent or judge.

Three entry points, all Prefect-free (the ``regenerate-results`` flow and CLI, and the rerun flow
after an agent and its judges finish, call exactly these):

* :func:`regenerate_run` (:mod:`~experiment.regenerate.run`) repairs **one run in one pass**:
  agent result, judges' consensus, ``run_result.json`` and the run's reports.
* :func:`rebuild_aggregates` (:mod:`~experiment.regenerate.aggregates`) rebuilds subtest reports,
  tier results/reports/summaries and the experiment result, report, summary and tier comparison
  (statistics in :mod:`experiment.aggregate`, markdown in :mod:`experiment.reports`, wall-clock
  fields in :mod:`~experiment.regenerate.clock`).
* :func:`rebuild_checkpoint` (:mod:`~experiment.regenerate.checkpoint`) rebuilds ``checkpoint.json``
  from the ``run_result.json`` files.

:func:`regenerate_in_process` (:mod:`~experiment.regenerate.in_process`) chains them for the CLI.
Every write follows the rules of :mod:`~experiment.regenerate.files`: written only on a real
change, the previous version backed up under ``<exp>/.backups/<UTC stamp>/``, atomically, and made
durable one batch at a time (a chunk of runs, the aggregate rebuild: one sync per batch instead of
one fsync per file, see :mod:`experiment.durable` for why a crash at any instant is still safe).
The aggregates are folded one tier at a time and the experiment ``result.json``, which embeds
every run, is streamed (:mod:`~experiment.regenerate.spill`), so memory does not grow with the
number of runs. A pass with nothing to change writes no byte and backs nothing up.
"""

from experiment.backups import backup_file, backup_stamp
from experiment.regenerate.aggregates import AggregateRebuild, rebuild_aggregates
from experiment.regenerate.checkpoint import apply_to_checkpoint, rebuild_checkpoint
from experiment.regenerate.clock import run_interval
from experiment.regenerate.files import VOLATILE_KEYS, Writer, write_if_changed
from experiment.regenerate.in_process import (
    NOTHING_WRITTEN,
    RegenerateSummary,
    regenerate_in_process,
)
from experiment.regenerate.run import (
    Outcome,
    RunRegeneration,
    agent_result_from_logs,
    regenerate_chunk,
    regenerate_run,
    valid_agent_result,
    workspace_changes,
)

__all__ = [
    "NOTHING_WRITTEN",
    "VOLATILE_KEYS",
    "AggregateRebuild",
    "Outcome",
    "RegenerateSummary",
    "RunRegeneration",
    "Writer",
    "agent_result_from_logs",
    "apply_to_checkpoint",
    "backup_file",
    "backup_stamp",
    "rebuild_aggregates",
    "rebuild_checkpoint",
    "regenerate_chunk",
    "regenerate_in_process",
    "regenerate_run",
    "run_interval",
    "valid_agent_result",
    "workspace_changes",
    "write_if_changed",
]
