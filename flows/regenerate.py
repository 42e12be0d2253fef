"""Regenerate flow: rebuild every derived result file of an experiment from its logs.

No agent and no judge is run. The flow classifies the experiment (the ``scan-experiment``
subflow), regenerates each ``results`` run in one pass (agent result with canonical token keys,
judge consensus, ``run_result.json``, run reports; chunked tasks of ~50 runs), then rebuilds the
subtest, tier and experiment aggregates with really summed totals, and publishes a markdown
artifact. Runs whose judges never ran are reported as needing judges, not given a fake result.
Every overwritten file is backed up under ``<exp>/.backups/<stamp>/``.

Run it alone with ``regenerate-results EXPERIMENT_DIR`` (in-process, same functions), as a flow
with ``python -m flows.regenerate EXPERIMENT_DIR``, through the ``regenerate`` deployment
(entrypoint ``flows/regenerate.py:regenerate_results``), or as the last step of ``rerun-agents``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow, unmapped

from experiment.regenerate import RegenerateSummary, backup_stamp
from experiment.scan import chunked, load_context
from experiment.status import RunStatus
from flows.scan import scan_experiment
from tasks.artifacts import publish_markdown
from tasks.regenerate import rebuild_aggregates_task, regenerate_runs


@flow(name="regenerate-results", flow_run_name="regenerate {experiment_dir}", log_prints=True)
def regenerate_results(
    experiment_dir: str,
    tiers: list[str] | None = None,
    subtests: list[str] | None = None,
    runs: list[int] | None = None,
    skip_aggregates: bool = False,
    tiers_dir: str | None = None,
) -> RegenerateSummary:
    """Regenerate the ``results`` runs in scope, then the aggregates (unless ``skip_aggregates``)."""
    context = load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)
    root, stamp = str(context.root), backup_stamp()
    report = scan_experiment(root, tiers, subtests, runs, [RunStatus.RESULTS], tiers_dir)
    chunks = chunked([entry.key for entry in report.to_regenerate()])
    futures = regenerate_runs.map(
        unmapped(root),
        chunks,
        unmapped(list(context.config.judge_models)),
        unmapped(stamp),
        [len(chunk) - 1 for chunk in chunks],
    )
    regenerated = [result for future in futures for result in future.result()]
    aggregates = None if skip_aggregates else rebuild_aggregates_task(root, tiers, stamp)
    summary = RegenerateSummary(experiment=root, runs=regenerated, aggregates=aggregates, backup_stamp=stamp)
    publish_markdown("regenerate", root, summary.to_markdown(), f"Regenerated results of {root}")
    print(f"Regenerated {summary.regenerated} run(s); {summary.counts}")
    return summary


if __name__ == "__main__":
    regenerate_results(sys.argv[1])
