"""``generate_experiment``: a whole synthetic experiment from a seed (see the package docstring).

This module wires the parts together in a fixed order, which is what keeps output byte-identical
for a seed: base repo and config, then the plan (which draws from the rng first), then every run in
plan order, then the aggregates and the checkpoint.
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from experiment.models import Checkpoint, ExperimentConfig, RunResult, utc_now_iso
from simulation.generator.aggregates import write_aggregates, write_manifest
from simulation.generator.content import AGENT_MODEL, CRITERIA, DEFAULT_JUDGES, PROMPT, RUBRIC
from simulation.generator.files import ExperimentLayout, write_json
from simulation.generator.plan import DEFAULT_MIX, plan_runs
from simulation.generator.run_files import RunWriter


@dataclass
class GeneratedExperiment:
    """What ``generate_experiment`` wrote."""

    path: Path
    """The experiment directory."""
    truth: dict[str, str]
    """``"T0/00/run_01"`` -> status (completed, results, failed, partial, missing)."""
    variants: dict[str, str] = field(default_factory=dict)
    """``"T0/00/run_01"`` -> the shape used for that status (e.g. ``no_run_result``, ``rate_limit``)."""
    task_commit: str | None = None
    """HEAD of the generated base repo (None without one)."""

    def counts(self) -> Counter[str]:
        """Number of runs per status."""
        return Counter(self.truth.values())


def git_base_repo(repo: Path) -> str:
    """A real one-commit git repository; returns its HEAD sha."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "README").write_text("# Hello-World\n\nA synthetic task repository.\n")
    (repo / "hello.py").write_text("# TODO\n")
    ident = ["-c", "user.name=Scylla Generator", "-c", "user.email=generator@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "README", "hello.py"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), *ident, "commit", "-q", "-m", "Initial commit", "--no-gpg-sign"], check=True
    )
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def generate_experiment(
    dest: Path,
    *,
    tiers: list[str] | None = None,
    subtests_per_tier: int | dict[str, int] = 2,
    runs_per_subtest: int = 3,
    mix: dict[str, float] | None = None,
    seed: int = 0,
    tiers_dir: Path | None = None,
    judge_models: list[str] | None = None,
    with_base_repo: bool = True,
    with_aggregates: bool = True,
    layout: str = "flat",
) -> GeneratedExperiment:
    """Write a synthetic experiment into ``dest`` (created; must not hold an experiment already).

    ``tiers`` defaults to ``["T0", "T1"]``, ``mix`` to 70% completed and 10/10/5/5% results,
    failed, partial, missing; ``judge_models`` to the sample's three judges. Per-status counts are
    exact (largest remainder) and their placement is shuffled with ``seed``.
    """
    if layout not in ("flat", "phased"):
        raise ValueError(f"layout must be 'flat' or 'phased', not {layout!r}")
    tiers = list(tiers or ["T0", "T1"])
    judge_models = list(judge_models or DEFAULT_JUDGES)
    rng = random.Random(seed)
    exp = Path(dest)
    exp.mkdir(parents=True, exist_ok=True)
    if (exp / "config" / "experiment.json").exists():
        raise FileExistsError(f"an experiment already exists in {exp}")

    task_commit = git_base_repo(exp / "repo") if with_base_repo else "0" * 40
    config = ExperimentConfig(
        experiment_id=f"synthetic-{seed}",
        task_repo="https://github.com/mvillmow/Hello-World",
        task_commit=task_commit,
        task_prompt_file="tests/fixtures/tests/test-001/prompt.md",
        language="python",
        models=[AGENT_MODEL],
        runs_per_subtest=runs_per_subtest,
        tiers_to_run=tiers,
        judge_models=judge_models,
        timeout_seconds=300,
        max_turns=None,
        max_subtests=None,
        thinking_mode="None",
        skip_agent_teams=False,
    )
    (exp / "config").mkdir(exist_ok=True)
    write_json(exp / "config" / "experiment.json", config)
    for name, content in (
        ("prompt.md", PROMPT),
        ("rubric.yaml", RUBRIC),
        ("criteria.md", CRITERIA),
        ("judge_prompt.md", "# Judge prompt stub\n\nSee prompt.md, criteria.md, rubric.yaml.\n"),
    ):
        (exp / name).write_text(content, encoding="utf-8")

    layout_dir = ExperimentLayout(exp, layout)
    plan = plan_runs(tiers, subtests_per_tier, runs_per_subtest, tiers_dir, mix or DEFAULT_MIX, rng)
    now = utc_now_iso()
    writer = RunWriter(layout_dir, rng, config, now)
    checkpoint = Checkpoint.fresh(config, exp)
    checkpoint.status = "running"
    truth: dict[str, str] = {}
    variants: dict[str, str] = {}
    results: dict[str, dict[str, list[RunResult]]] = {}
    for planned in plan:
        tier, subtest, run, status = planned.tier, planned.subtest, planned.run, planned.status
        if subtest not in results.setdefault(tier, {}):
            write_manifest(layout_dir, tier, subtest, planned.yaml_path, now)
            results[tier][subtest] = []
        variant, run_result = writer.write_run(tier, subtest, run, status)
        truth[planned.key] = status
        variants[planned.key] = variant
        if status == "completed" and run_result is not None:
            checkpoint.mark_run(tier, subtest, run, "passed" if run_result.judge_passed else "failed")
            results[tier][subtest].append(run_result)

    write_aggregates(layout_dir, config, results, now, with_aggregates=with_aggregates)
    checkpoint.save(exp / "checkpoint.json")
    return GeneratedExperiment(
        path=exp, truth=truth, variants=variants, task_commit=task_commit if with_base_repo else None
    )
