"""Seeded synthetic ProjectScylla experiments for tests, benchmarks and the demo.

``generate_experiment(dest, ...)`` writes an experiment that looks like the real dry-run sample
(``tests/fixtures/scylla-test001-dryrun``): the same per-run file set as ``T0/00/run_01``, subtest
manifests and reports, a v3.1 checkpoint, optional tier/experiment aggregates and a real git base
repo. Each run gets a status drawn from ``mix`` with ``seed``; the exact status of every run is
returned as ``truth`` so a classifier can be checked against it. The on-disk shapes per status:

* ``completed``: every file, valid.
* ``results``: the agent finished (valid ``output.txt``, timing, command log, stderr, judge files)
  but ``run_result.json``, ``agent/result.json`` or both are missing (variants rotate).
* ``failed``: rotating: crash (``stderr.log`` + empty ``output.txt``, exit 1); rate limit
  (``output.txt`` is the "You've hit your limit" JSON, ``agent/result.json`` exit 1); timeout
  (timing + command log, empty ``output.txt``, no ``stderr.log``).
* ``partial``: ``agent/prompt.md`` (and every other time ``command_log.json``) only.
* ``missing``: rotating: no run dir, or an empty run dir (phased layout: never a dir).

Every JSON file is built with the models of ``experiment.models`` and serialised by
``experiment.jsonio.dumps``; files are written directly (not atomically) because a generator writes
into a fresh directory and speed matters. Measured: 10,000 runs (5 tiers x 20 subtests x 100 runs, 335,668 files) in 19.4 s on the
development container (overlay fs); 100 runs (3,416 files) in 0.2 s.

CLI: ``python -m simulation.generator DEST --tiers T0 T1 --subtests 5 --runs 10
--mix completed=0.8,failed=0.1,results=0.1 --seed 1``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from experiment.aggregate import (
    build_experiment,
    build_tier,
    run_report,
    subtest_report,
    summarize_subtest,
    tier_report,
)
from experiment.jsonio import dumps
from experiment.models import (
    AgentResult,
    AgentTiming,
    Checkpoint,
    ClaudeOutput,
    CommandLog,
    CommandLogEntry,
    ConfigManifest,
    ExperimentConfig,
    JudgeConsensus,
    JudgeSummary,
    JudgeTiming,
    Judgment,
    RunResult,
    SubtestResult,
    TierResult,
    TokenStats,
    grade_for_score,
    utc_now_iso,
)

STATUSES = ("completed", "results", "failed", "partial", "missing")
"""The five run statuses, as the classifier names them."""

DEFAULT_JUDGES = ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5"]
AGENT_MODEL = "claude-sonnet-4-5-20250929"
DEFAULT_MIX = {"completed": 0.7, "results": 0.1, "failed": 0.1, "partial": 0.05, "missing": 0.05}
RATE_LIMIT_TEXT = "You've hit your limit · resets 4pm (America/Los_Angeles)"

PROMPT = """# Task: Create a Hello World Script

Create a simple Python script called `hello.py` that prints "Hello, World!" to stdout.

## Requirements

1. Create a file named `hello.py` in the current working directory
2. The script should print exactly: `Hello, World!`
3. The script should exit with code 0
"""
RUBRIC = """categories:
  functional:
    weight: 0.5
    items:
      - id: F1
        check: hello.py exists
        points: 1.0
  code_quality:
    weight: 0.5
    items:
      - id: Q1
        check: valid Python syntax
        points: 1.0
"""
CRITERIA = "# Criteria\n\n- hello.py exists\n- prints exactly Hello, World!\n- exits 0\n"
JUDGE_PROMPT = "# Judge prompt\n\n## Task\n\n" + PROMPT + "\n## Rubric\n\n" + RUBRIC
REASONS = [
    "The agent created a minimal, idiomatic hello.py that meets all requirements.",
    "The script works but the agent also created unnecessary files.",
    "Output is correct; the code is clean and the task was completed efficiently.",
    "The script prints the wrong text, so the core requirement is not met.",
    "The file exists and runs, but the exit code handling is questionable.",
]


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


def _allocate(mix: dict[str, float], total: int) -> list[str]:
    """Exact per-status counts for ``total`` runs (largest remainder), as a flat list."""
    unknown = set(mix) - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown status in mix: {sorted(unknown)}; statuses are {', '.join(STATUSES)}")
    weight = sum(mix.values())
    if weight <= 0:
        raise ValueError("mix fractions must add up to more than 0")
    shares = {s: mix.get(s, 0.0) / weight * total for s in STATUSES}
    counts = {s: int(shares[s]) for s in STATUSES}
    rest = total - sum(counts.values())
    for s in sorted(STATUSES, key=lambda s: (-(shares[s] - counts[s]), STATUSES.index(s)))[:rest]:
        counts[s] += 1
    return [s for s in STATUSES for _ in range(counts[s])]


def _subtest_ids(tier: str, n: int, tiers_dir: Path | None) -> list[tuple[str, str | None]]:
    """(id, fixture yaml path) of the first ``n`` subtests of a tier."""
    if tiers_dir is not None:
        yamls = sorted(
            (Path(tiers_dir) / "tests/claude-code/shared/subtests" / tier.lower()).glob("[0-9][0-9]-*.yaml")
        )
        if yamls:
            return [
                (p.name[:2], f"tests/claude-code/shared/subtests/{tier.lower()}/{p.name}") for p in yamls[:n]
            ]
    start = 0 if tier == "T0" else 1
    return [(f"{i:02d}", None) for i in range(start, start + n)]


def _git_base_repo(repo: Path) -> str:
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


class _Writer:
    """Writes one experiment; holds the rng, the config and the rotating variant counters."""

    def __init__(self, exp: Path, rng: random.Random, config: ExperimentConfig, layout: str) -> None:
        self.exp = exp
        self.rng = rng
        self.config = config
        self.layout = layout
        self.rotation: Counter[str] = Counter()
        self.now = utc_now_iso()

    # -- small helpers ------------------------------------------------------------------------
    @staticmethod
    def text(path: Path, content: str) -> None:
        path.write_text(content, encoding="utf-8")

    @staticmethod
    def json(path: Path, model) -> None:
        path.write_text(dumps(model.to_json_dict()), encoding="utf-8")

    def variant(self, status: str, n: int) -> int:
        index = self.rotation[status] % n
        self.rotation[status] += 1
        return index

    def run_dir(self, tier: str, subtest: str, run: int, status: str) -> Path:
        name = f"{tier}/{subtest}/run_{run:02d}"
        if self.layout == "phased":
            phase = "completed" if status in ("completed", "results") else "in_progress"
            return self.exp / phase / name
        return self.exp / name

    def subtest_dir(self, tier: str, subtest: str) -> Path:
        base = self.exp / "completed" if self.layout == "phased" else self.exp
        return base / tier / subtest

    # -- the agent ----------------------------------------------------------------------------
    def claude_output(self, *, rate_limited: bool = False) -> ClaudeOutput:
        rng = self.rng
        if rate_limited:
            return ClaudeOutput(
                type="result",
                subtype="success",
                is_error=True,
                duration_ms=rng.randint(200, 900),
                duration_api_ms=0,
                num_turns=1,
                result=RATE_LIMIT_TEXT,
                session_id=str(uuid.UUID(int=rng.getrandbits(128))),
                total_cost_usd=0.0,
                usage={
                    "input_tokens": 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 0,
                },
                model_usage={},
                permission_denials=[],
                uuid=str(uuid.UUID(int=rng.getrandbits(128))),
            )
        usage = {
            "input_tokens": rng.randint(10, 60),
            "cache_creation_input_tokens": rng.randint(8000, 30000),
            "cache_read_input_tokens": rng.randint(40000, 200000),
            "output_tokens": rng.randint(300, 2500),
            "service_tier": "standard",
        }
        cost = round(rng.uniform(0.05, 0.3), 7)
        return ClaudeOutput(
            type="result",
            subtype="success",
            is_error=False,
            duration_ms=rng.randint(15000, 90000),
            duration_api_ms=rng.randint(15000, 90000),
            num_turns=rng.randint(3, 12),
            result="Task completed successfully! I created hello.py, which prints Hello, World!",
            session_id=str(uuid.UUID(int=rng.getrandbits(128))),
            total_cost_usd=cost,
            usage=usage,
            model_usage={
                AGENT_MODEL: {
                    "inputTokens": usage["input_tokens"],
                    "outputTokens": usage["output_tokens"],
                    "costUSD": cost,
                }
            },
            permission_denials=[],
            uuid=str(uuid.UUID(int=rng.getrandbits(128))),
        )

    def write_agent(
        self,
        rd: Path,
        *,
        out: ClaudeOutput | None,
        exit_code: int,
        stderr_extra: str = "",
        with_stderr: bool = True,
        with_result: bool = True,
    ) -> tuple[AgentResult, float]:
        """The agent dir of a run that executed; ``out=None`` means empty output (crash/timeout)."""
        agent = rd / "agent"
        agent.mkdir(parents=True, exist_ok=True)
        ws = rd / "workspace"
        xtrace = (
            f"+ cd {ws}\n+ claude --model {AGENT_MODEL} --print --output-format json "
            f"--dangerously-skip-permissions {agent / 'prompt.md'}\n"
        )
        stderr = xtrace + stderr_extra
        stdout = (out.model_dump_json(by_alias=True) + "\n") if out is not None else ""
        duration = round(self.rng.uniform(20.0, 240.0), 6)
        self.text(agent / "prompt.md", PROMPT)
        self.text(agent / "output.txt", stdout)
        self.text(agent / "stdout.log", stdout)
        self.text(agent / "cmd_0000_stdout.log", stdout)
        if with_stderr:
            self.text(agent / "stderr.log", stderr)
            self.text(agent / "cmd_0000_stderr.log", stderr)
        self.json(
            agent / "command_log.json",
            CommandLog(
                generated_at=self.now,
                total_commands=1,
                commands=[
                    CommandLogEntry(
                        timestamp=self.now,
                        command=[
                            "claude",
                            "--model",
                            AGENT_MODEL,
                            "--print",
                            "--output-format",
                            "json",
                            "--dangerously-skip-permissions",
                            str(agent / "prompt.md"),
                        ],
                        cwd=str(ws),
                        env_vars={
                            "PATH": "/usr/bin:/bin",
                            "HOME": "/home/scylla",
                            "USER": "scylla",
                            "SHELL": "/bin/bash",
                            "LANG": "C.UTF-8",
                            "ANTHROPIC_API_KEY": "[REDACTED]",
                        },
                        exit_code=exit_code,
                        stdout_file="cmd_0000_stdout.log",
                        stderr_file="cmd_0000_stderr.log",
                        duration_seconds=duration,
                    )
                ],
            ),
        )
        self.json(agent / "timing.json", AgentTiming(agent_duration_seconds=duration, measured_at=self.now))
        self.text(
            agent / "MODEL.md",
            f"# Agent Model Information\n\n**Model**: {AGENT_MODEL}\n"
            f"**Claude Code Version**: 2.1.12 (Claude Code)\n**Timestamp**: {self.now}\n",
        )
        self.text(
            agent / "replay.sh",
            f"#!/bin/bash\nset -e\nset -x\ncd {ws}\n"
            f"claude --model {AGENT_MODEL} --print --output-format json --dangerously-skip-permissions "
            f"{agent / 'prompt.md'}\n",
        )
        tokens = out.token_stats if out is not None else TokenStats.sum([])
        result = AgentResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            token_stats=tokens,
            cost_usd=out.total_cost_usd if out is not None else 0.0,
            api_calls=out.num_turns if out is not None else 0,
        )
        if with_result:
            self.json(agent / "result.json", result)
        return result, duration

    def write_run_prelude(self, rd: Path, tier: str, subtest: str, run: int) -> None:
        rd.mkdir(parents=True, exist_ok=True)
        branch = f"{tier}_{subtest}_run_{run:02d}"
        self.text(
            rd / "worktree_create.sh",
            f"#!/bin/bash\n# Worktree: {branch} @ {rd / 'workspace'}\n"
            f"git -C {self.exp / 'repo'} worktree add -b {branch} {rd / 'workspace'} {self.config.task_commit}\n",
        )
        self.text(
            rd / "cmd_0000_stdout.log", f"HEAD is now at {self.config.task_commit[:7]} Initial commit\n"
        )
        self.text(rd / "cmd_0000_stderr.log", f"Preparing worktree (new branch '{branch}')\n")
        self.text(rd / "task_prompt.md", PROMPT)

    # -- the judges ---------------------------------------------------------------------------
    def write_judges(self, rd: Path) -> tuple[JudgeConsensus, list[JudgeSummary], float]:
        rng = self.rng
        judge = rd / "judge"
        self.text(rd / "judge_prompt.md", JUDGE_PROMPT)
        base = rng.choice([0.95, 0.9, 0.8, 0.6, 0.3])
        summaries: list[JudgeSummary] = []
        total = 0.0
        for n, model in enumerate(self.config.judge_models, start=1):
            slot = judge / f"judge_{n:02d}"
            slot.mkdir(parents=True, exist_ok=True)
            score = round(min(1.0, max(0.0, base + rng.uniform(-0.08, 0.08))), 2)
            reasoning = rng.choice(REASONS)
            judgment = Judgment(
                score=score,
                passed=score >= 0.5,
                grade=grade_for_score(score),
                reasoning=reasoning,
                is_valid=True,
                criteria_scores={
                    "functional": {"achieved": score * 3.5, "max": 3.5, "score": score, "items": {}}
                },
            )
            self.json(slot / "judgment.json", judgment)
            response = "Evaluation:\n\n```json\n" + json.dumps(judgment.to_json_dict(), indent=2) + "\n```\n"
            self.text(slot / "response.txt", response)
            self.text(slot / "stdout.log", response)
            self.text(
                slot / "MODEL.md",
                f"# Judge Model Information\n\n**Model**: {model}\n"
                f"**Claude Code Version**: 2.1.12 (Claude Code)\n**Timestamp**: {self.now}\n",
            )
            self.text(
                slot / "replay.sh",
                f"#!/usr/bin/env bash\nset -euo pipefail\nclaude --model {model} "
                '--prompt "$(dirname "$0")/../../judge_prompt.md"\n',
            )
            duration = round(rng.uniform(15.0, 80.0), 6)
            total += duration
            self.json(
                slot / "timing.json", JudgeTiming(judge_duration_seconds=duration, measured_at=self.now)
            )
            summaries.append(
                JudgeSummary(
                    model=model,
                    score=score,
                    passed=judgment.passed,
                    grade=judgment.grade,
                    reasoning=reasoning,
                    judge_number=n,
                )
            )
        mean = sum(s.score for s in summaries) / len(summaries)
        closest = min(summaries, key=lambda s: abs(s.score - mean))
        consensus = JudgeConsensus(
            score=mean,
            passed=sum(bool(s.passed) for s in summaries) * 2 > len(summaries),
            grade=grade_for_score(mean),
            reasoning=closest.reasoning,
            is_valid=True,
            criteria_scores=None,
            valid_judges=len(summaries),
            total_judges=len(summaries),
        )
        self.json(judge / "result.json", consensus)
        total = round(total + rng.uniform(5.0, 30.0), 6)
        self.json(judge / "timing.json", JudgeTiming(judge_duration_seconds=total, measured_at=self.now))
        return consensus, summaries, total

    # -- one run ------------------------------------------------------------------------------
    def write_run(self, tier: str, subtest: str, run: int, status: str) -> tuple[str, RunResult | None]:
        rd = self.run_dir(tier, subtest, run, status)
        if status == "missing":
            if self.layout == "flat" and self.variant(status, 2) == 1:
                rd.mkdir(parents=True, exist_ok=True)
                return "empty_dir", None
            return "no_dir", None
        self.write_run_prelude(rd, tier, subtest, run)
        if status == "partial":
            agent = rd / "agent"
            agent.mkdir(parents=True, exist_ok=True)
            self.text(agent / "prompt.md", PROMPT)
            if self.variant(status, 2) == 1:
                self.json(
                    agent / "command_log.json",
                    CommandLog(
                        generated_at=self.now,
                        total_commands=1,
                        commands=[
                            CommandLogEntry(
                                timestamp=self.now,
                                command=["claude", "--model", AGENT_MODEL],
                                exit_code=0,
                                duration_seconds=0.0,
                            )
                        ],
                    ),
                )
                return "prompt_and_command_log", None
            return "prompt_only", None
        if status == "failed":
            which = self.variant(status, 3)
            if which == 0:
                self.write_agent(
                    rd,
                    out=None,
                    exit_code=1,
                    stderr_extra="Error: claude exited unexpectedly (code 1): connection reset\n",
                )
                return "crash", None
            if which == 1:
                self.write_agent(rd, out=self.claude_output(rate_limited=True), exit_code=1)
                return "rate_limit", None
            self.write_agent(rd, out=None, exit_code=-1, with_stderr=False, with_result=False)
            return "timeout", None
        # completed / results: the agent finished and the judges ran
        out = self.claude_output()
        variant = "complete"
        with_agent_result, with_run_result = True, True
        if status == "results":
            variant = ("no_run_result", "no_agent_result", "no_agent_or_run_result")[self.variant(status, 3)]
            with_agent_result = variant == "no_run_result"
            with_run_result = variant == "no_agent_result"
        agent_result, agent_duration = self.write_agent(
            rd, out=out, exit_code=0, with_result=with_agent_result
        )
        consensus, summaries, judge_duration = self.write_judges(rd)
        ws = rd / "workspace"
        ws.mkdir(exist_ok=True)
        self.text(ws / "hello.py", 'print("Hello, World!")\n')
        tokens = agent_result.token_stats
        run_result = RunResult(
            run_number=run,
            exit_code=0,
            token_stats=tokens,
            tokens_input=tokens.tokens_input,
            tokens_output=tokens.output_tokens,
            cost_usd=agent_result.cost_usd,
            duration_seconds=round(agent_duration + judge_duration, 6),
            agent_duration_seconds=agent_duration,
            judge_duration_seconds=judge_duration,
            judge_score=consensus.score,
            judge_passed=consensus.passed,
            judge_grade=consensus.grade,
            judge_reasoning=consensus.reasoning,
            judges=summaries,
            workspace_path=str(ws),
            logs_path=str(rd / "agent"),
            command_log_path=str(rd / "agent" / "command_log.json"),
            criteria_scores={},
        )
        if with_run_result:
            self.json(rd / "run_result.json", run_result)
        self.json(rd / "report.json", run_report(run_result, self.now))
        self.text(
            rd / "report.md",
            f"# Run Report: {tier}/{subtest}/run_{run:02d}\n\n| Metric | Value |\n"
            f"|--------|-------|\n| Score | {consensus.score:.3f} |\n| Grade | {consensus.grade} |\n"
            f"| Cost | ${run_result.cost_usd:.4f} |\n",
        )
        return variant, run_result

    # -- subtests and tiers -------------------------------------------------------------------
    def subtest_result(self, tier: str, subtest: str, runs: list[RunResult]) -> SubtestResult:
        """The subtest's statistics, by the very code regeneration uses."""
        return summarize_subtest(tier, subtest, runs)

    def write_subtest_report(self, tier: str, subtest: str, sub: SubtestResult) -> None:
        sd = self.subtest_dir(tier, subtest)
        sd.mkdir(parents=True, exist_ok=True)
        self.json(sd / "report.json", subtest_report(sub, self.now))

    def write_tier(self, tier: str, subs: dict[str, SubtestResult]) -> TierResult:
        """Tier result, best subtest and report, by the very code regeneration uses."""
        total_duration = sum(r.duration_seconds for s in subs.values() for r in s.runs)
        result, best = build_tier(tier, subs, total_duration=total_duration)
        td = (self.exp / "completed" if self.layout == "phased" else self.exp) / tier
        td.mkdir(parents=True, exist_ok=True)
        self.json(td / "result.json", result)
        self.json(td / "best_subtest.json", best)
        self.json(td / "report.json", tier_report(result, self.now))
        return result


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

    task_commit = _git_base_repo(exp / "repo") if with_base_repo else "0" * 40
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
    _Writer.json(exp / "config" / "experiment.json", config)
    for name, content in (
        ("prompt.md", PROMPT),
        ("rubric.yaml", RUBRIC),
        ("criteria.md", CRITERIA),
        ("judge_prompt.md", "# Judge prompt stub\n\nSee prompt.md, criteria.md, rubric.yaml.\n"),
    ):
        (exp / name).write_text(content, encoding="utf-8")

    plan: list[tuple[str, str, str | None, int]] = []
    for tier in tiers:
        n = subtests_per_tier.get(tier, 0) if isinstance(subtests_per_tier, dict) else subtests_per_tier
        for subtest, yaml_path in _subtest_ids(tier, n, tiers_dir):
            for run in range(1, runs_per_subtest + 1):
                plan.append((tier, subtest, yaml_path, run))
    statuses = _allocate(mix or DEFAULT_MIX, len(plan))
    rng.shuffle(statuses)

    writer = _Writer(exp, rng, config, layout)
    checkpoint = Checkpoint.fresh(config, exp)
    checkpoint.status = "running"
    truth: dict[str, str] = {}
    variants: dict[str, str] = {}
    results: dict[str, dict[str, list[RunResult]]] = {}
    manifests_done: set[tuple[str, str]] = set()
    for (tier, subtest, yaml_path, run), status in zip(plan, statuses, strict=True):
        if (tier, subtest) not in manifests_done:
            manifests_done.add((tier, subtest))
            sd = writer.subtest_dir(tier, subtest)
            sd.mkdir(parents=True, exist_ok=True)
            _Writer.json(
                sd / "config_manifest.json",
                ConfigManifest(
                    tier_id=tier,
                    subtest_id=subtest,
                    fixture_config_path=yaml_path
                    or f"tests/claude-code/shared/subtests/{tier.lower()}/{subtest}-synthetic.yaml",
                    resources={"claude_md": {"blocks": []}} if tier == "T0" else {},
                    composed_at=writer.now,
                    claude_md_hash=None,
                    inherited_from=None,
                ),
            )
            results.setdefault(tier, {})[subtest] = []
        key = f"{tier}/{subtest}/run_{run:02d}"
        variant, run_result = writer.write_run(tier, subtest, run, status)
        truth[key] = status
        variants[key] = variant
        if status == "completed" and run_result is not None:
            checkpoint.mark_run(tier, subtest, run, "passed" if run_result.judge_passed else "failed")
            results[tier][subtest].append(run_result)

    tier_results: dict[str, TierResult] = {}
    for tier, subs in results.items():
        sub_results = {s: writer.subtest_result(tier, s, runs) for s, runs in subs.items()}
        for s, sub in sub_results.items():
            writer.write_subtest_report(tier, s, sub)
        if with_aggregates:
            tier_results[tier] = writer.write_tier(tier, sub_results)
    if with_aggregates:
        result = build_experiment(
            config.to_json_dict(),
            tier_results,
            started_at=writer.now,
            completed_at=writer.now,
            total_duration_seconds=sum(r.total_duration for r in tier_results.values()),
        )
        _Writer.json(exp / "result.json", result)
    checkpoint.save(exp / "checkpoint.json")
    return GeneratedExperiment(
        path=exp, truth=truth, variants=variants, task_commit=task_commit if with_base_repo else None
    )


def _parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        try:
            mix[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad mix entry {part!r}; use status=fraction") from None
    return mix


def main(argv: list[str] | None = None) -> int:
    """``python -m simulation.generator DEST ...``: generate and print a one-line summary."""
    parser = argparse.ArgumentParser(
        prog="python -m simulation.generator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dest", type=Path)
    parser.add_argument("--tiers", nargs="+", default=["T0", "T1"])
    parser.add_argument("--subtests", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--mix", type=_parse_mix, default=None, help="e.g. completed=0.8,failed=0.1,results=0.1"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiers-dir", type=Path, default=None)
    parser.add_argument("--layout", choices=["flat", "phased"], default="flat")
    parser.add_argument("--no-base-repo", action="store_true")
    parser.add_argument("--no-aggregates", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        gen = generate_experiment(
            args.dest,
            tiers=args.tiers,
            subtests_per_tier=args.subtests,
            runs_per_subtest=args.runs,
            mix=args.mix,
            seed=args.seed,
            tiers_dir=args.tiers_dir,
            with_base_repo=not args.no_base_repo,
            with_aggregates=not args.no_aggregates,
            layout=args.layout,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = gen.counts()
    detail = ", ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES)
    print(f"Generated {len(gen.truth)} runs in {gen.path} ({detail}) in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
