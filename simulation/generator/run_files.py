"""Writing one run's files in the shape its status calls for (agent, judges, results, reports).

A :class:`RunWriter` holds the experiment's rng and the rotation counters, so the shapes of one
status take turns (crash, rate limit, timeout, ...) and the same seed always writes the same bytes.
Every JSON file is built with the models of ``experiment.models``; reports come from
``experiment.aggregate`` so they match what regeneration writes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from pathlib import Path

from experiment.aggregate import run_report
from experiment.models import (
    AgentResult,
    AgentTiming,
    ClaudeOutput,
    CommandLog,
    CommandLogEntry,
    ExperimentConfig,
    JudgeConsensus,
    JudgeSummary,
    JudgeTiming,
    Judgment,
    RunResult,
    TokenStats,
    grade_for_score,
)
from simulation.generator.content import AGENT_MODEL, JUDGE_PROMPT, PROMPT, RATE_LIMIT_TEXT, REASONS
from simulation.generator.files import ExperimentLayout, write_json, write_text


class RunWriter:
    """Writes the runs of one experiment; holds the rng, the config and the rotating variant counters."""

    def __init__(
        self, layout: ExperimentLayout, rng: random.Random, config: ExperimentConfig, now: str
    ) -> None:
        self.layout = layout
        self.rng = rng
        self.config = config
        self.now = now
        self.rotation: Counter[str] = Counter()

    def variant(self, status: str, n: int) -> int:
        """The next of ``n`` shapes for ``status`` (round robin per status)."""
        index = self.rotation[status] % n
        self.rotation[status] += 1
        return index

    # -- the agent ----------------------------------------------------------------------------
    def write_command_log(self, agent: Path, entry: CommandLogEntry) -> None:
        """The agent's ``command_log.json`` holding its one command."""
        write_json(
            agent / "command_log.json", CommandLog(generated_at=self.now, total_commands=1, commands=[entry])
        )

    def claude_output(self, *, rate_limited: bool = False) -> ClaudeOutput:
        """Claude Code's ``--output-format json`` result: a normal finish, or the rate-limit answer."""
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
                modelUsage={},
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
            modelUsage={
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
        write_text(agent / "prompt.md", PROMPT)
        write_text(agent / "output.txt", stdout)
        write_text(agent / "stdout.log", stdout)
        write_text(agent / "cmd_0000_stdout.log", stdout)
        if with_stderr:
            write_text(agent / "stderr.log", stderr)
            write_text(agent / "cmd_0000_stderr.log", stderr)
        self.write_command_log(
            agent,
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
            ),
        )
        write_json(agent / "timing.json", AgentTiming(agent_duration_seconds=duration, measured_at=self.now))
        write_text(
            agent / "MODEL.md",
            f"# Agent Model Information\n\n**Model**: {AGENT_MODEL}\n"
            f"**Claude Code Version**: 2.1.12 (Claude Code)\n**Timestamp**: {self.now}\n",
        )
        write_text(
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
            write_json(agent / "result.json", result)
        return result, duration

    def write_run_prelude(self, rd: Path, tier: str, subtest: str, run: int) -> None:
        """The files every started run has: worktree creation script and log, task prompt."""
        rd.mkdir(parents=True, exist_ok=True)
        branch = f"{tier}_{subtest}_run_{run:02d}"
        write_text(
            rd / "worktree_create.sh",
            f"#!/bin/bash\n# Worktree: {branch} @ {rd / 'workspace'}\n"
            f"git -C {self.layout.exp / 'repo'} worktree add -b {branch} {rd / 'workspace'} {self.config.task_commit}\n",
        )
        write_text(
            rd / "cmd_0000_stdout.log", f"HEAD is now at {self.config.task_commit[:7]} Initial commit\n"
        )
        write_text(rd / "cmd_0000_stderr.log", f"Preparing worktree (new branch '{branch}')\n")
        write_text(rd / "task_prompt.md", PROMPT)

    # -- the judges ---------------------------------------------------------------------------
    def write_judges(self, rd: Path) -> tuple[JudgeConsensus, list[JudgeSummary], float]:
        """One judge slot per configured judge model and their consensus; returns it with the duration."""
        rng = self.rng
        judge = rd / "judge"
        write_text(rd / "judge_prompt.md", JUDGE_PROMPT)
        base = rng.choice([0.95, 0.9, 0.8, 0.6, 0.3])
        summaries: list[JudgeSummary] = []
        scores: list[float] = []
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
            write_json(slot / "judgment.json", judgment)
            response = "Evaluation:\n\n```json\n" + json.dumps(judgment.to_json_dict(), indent=2) + "\n```\n"
            write_text(slot / "response.txt", response)
            write_text(slot / "stdout.log", response)
            write_text(
                slot / "MODEL.md",
                f"# Judge Model Information\n\n**Model**: {model}\n"
                f"**Claude Code Version**: 2.1.12 (Claude Code)\n**Timestamp**: {self.now}\n",
            )
            write_text(
                slot / "replay.sh",
                f"#!/usr/bin/env bash\nset -euo pipefail\nclaude --model {model} "
                '--prompt "$(dirname "$0")/../../judge_prompt.md"\n',
            )
            duration = round(rng.uniform(15.0, 80.0), 6)
            total += duration
            write_json(
                slot / "timing.json", JudgeTiming(judge_duration_seconds=duration, measured_at=self.now)
            )
            scores.append(score)
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
        mean = sum(scores) / len(scores)
        closest = min(zip(scores, summaries, strict=True), key=lambda pair: abs(pair[0] - mean))[1]
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
        write_json(judge / "result.json", consensus)
        total = round(total + rng.uniform(5.0, 30.0), 6)
        write_json(judge / "timing.json", JudgeTiming(judge_duration_seconds=total, measured_at=self.now))
        return consensus, summaries, total

    # -- one run ------------------------------------------------------------------------------
    def write_run(self, tier: str, subtest: str, run: int, status: str) -> tuple[str, RunResult | None]:
        """Write one run in the shape of ``status``; returns the variant used and, if judged, its result."""
        rd = self.layout.run_dir(tier, subtest, run, status)
        if status == "missing":
            if self.layout.kind == "flat" and self.variant(status, 2) == 1:
                rd.mkdir(parents=True, exist_ok=True)
                return "empty_dir", None
            return "no_dir", None
        self.write_run_prelude(rd, tier, subtest, run)
        if status == "partial":
            agent = rd / "agent"
            agent.mkdir(parents=True, exist_ok=True)
            write_text(agent / "prompt.md", PROMPT)
            if self.variant(status, 2) == 1:
                self.write_command_log(
                    agent,
                    CommandLogEntry(
                        timestamp=self.now,
                        command=["claude", "--model", AGENT_MODEL],
                        exit_code=0,
                        duration_seconds=0.0,
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
        write_text(ws / "hello.py", 'print("Hello, World!")\n')
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
            write_json(rd / "run_result.json", run_result)
        write_json(rd / "report.json", run_report(run_result, self.now))
        write_text(
            rd / "report.md",
            f"# Run Report: {tier}/{subtest}/run_{run:02d}\n\n| Metric | Value |\n"
            f"|--------|-------|\n| Score | {consensus.score:.3f} |\n| Grade | {consensus.grade} |\n"
            f"| Cost | ${run_result.cost_usd:.4f} |\n",
        )
        return variant, run_result
