"""Scan flow: classify every expected run of an experiment, chunked across Prefect tasks.

Run it alone with ``python -m flows.scan EXPERIMENT_DIR`` or as the first step of the
``rerun-agents`` flow. It publishes a table artifact of the classification and returns a
:class:`~experiment.scan.ScanReport` with one entry per run. It never writes to the experiment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import flow, unmapped

from experiment.scan import ScanFilters, ScanReport, build_report, chunked, expected_keys, load_context
from experiment.status import RunStatus
from tasks.artifacts import publish_classification
from tasks.classify import classify_runs


@flow(name="scan-experiment", flow_run_name="scan {experiment_dir}", log_prints=True)
def scan_experiment(
    experiment_dir: str,
    tiers: list[str] | None = None,
    subtests: list[str] | None = None,
    runs: list[int] | None = None,
    statuses: list[RunStatus] | None = None,
    tiers_dir: str | None = None,
) -> ScanReport:
    """Classify the experiment's runs (filters as in the CLI) and publish the table artifact."""
    context = load_context(Path(experiment_dir), Path(tiers_dir) if tiers_dir else None)
    filters = ScanFilters(tuple(tiers or ()), tuple(subtests or ()), tuple(runs or ()), tuple(statuses or ()))
    keys, skipped = expected_keys(context, filters)
    chunks = chunked(keys)
    futures = classify_runs.map(unmapped(str(context.root)), chunks, [len(c) - 1 for c in chunks])
    entries = [entry for future in futures for entry in future.result()]
    report = build_report(context, filters, entries, skipped)
    publish_classification(report)
    return report


if __name__ == "__main__":
    result = scan_experiment(sys.argv[1])
    print(result.counts)
