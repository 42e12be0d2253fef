"""The files above the runs: subtest manifests and reports, tier results, the experiment result.

Statistics, best subtests and reports are computed by ``experiment.aggregate``, the very code
regeneration uses, so a generated experiment's aggregates are what a regeneration would write.
"""

from __future__ import annotations

from experiment.aggregate import (
    build_experiment,
    build_tier,
    subtest_report,
    summarize_subtest,
    tier_report,
)
from experiment.models import ConfigManifest, ExperimentConfig, RunResult, SubtestResult, TierResult
from simulation.generator.files import ExperimentLayout, write_json


def write_manifest(
    layout: ExperimentLayout, tier: str, subtest: str, yaml_path: str | None, now: str
) -> None:
    """The subtest's ``config_manifest.json`` (created with its directory before its first run)."""
    sd = layout.subtest_dir(tier, subtest)
    sd.mkdir(parents=True, exist_ok=True)
    write_json(
        sd / "config_manifest.json",
        ConfigManifest(
            tier_id=tier,
            subtest_id=subtest,
            fixture_config_path=yaml_path
            or f"tests/claude-code/shared/subtests/{tier.lower()}/{subtest}-synthetic.yaml",
            resources={"claude_md": {"blocks": []}} if tier == "T0" else {},
            composed_at=now,
            claude_md_hash=None,
            inherited_from=None,
        ),
    )


def _write_tier(layout: ExperimentLayout, tier: str, subs: dict[str, SubtestResult], now: str) -> TierResult:
    """Tier result, best subtest and report."""
    total_duration = sum(r.duration_seconds for s in subs.values() for r in s.runs)
    result, best = build_tier(tier, subs, total_duration=total_duration)
    td = layout.tier_dir(tier)
    td.mkdir(parents=True, exist_ok=True)
    write_json(td / "result.json", result)
    write_json(td / "best_subtest.json", best)
    write_json(td / "report.json", tier_report(result, now))
    return result


def write_aggregates(
    layout: ExperimentLayout,
    config: ExperimentConfig,
    results: dict[str, dict[str, list[RunResult]]],
    now: str,
    *,
    with_aggregates: bool,
) -> None:
    """Every subtest's report; with ``with_aggregates`` also the tiers' files and ``result.json``.

    ``results`` holds the completed runs of every subtest (an empty list for a subtest without one).
    """
    tier_results: dict[str, TierResult] = {}
    for tier, subs in results.items():
        sub_results = {s: summarize_subtest(tier, s, runs) for s, runs in subs.items()}
        for s, sub in sub_results.items():
            sd = layout.subtest_dir(tier, s)
            sd.mkdir(parents=True, exist_ok=True)
            write_json(sd / "report.json", subtest_report(sub, now))
        if with_aggregates:
            tier_results[tier] = _write_tier(layout, tier, sub_results, now)
    if with_aggregates:
        result = build_experiment(
            config.to_json_dict(),
            tier_results,
            started_at=now,
            completed_at=now,
            total_duration_seconds=sum(r.total_duration for r in tier_results.values()),
        )
        write_json(layout.exp / "result.json", result)
