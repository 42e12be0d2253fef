"""The build/lint/test pipeline's result and its text in the judge prompt, as ProjectScylla writes it.

The field names are those of ProjectScylla's ``pipeline_baseline.json`` (written before the
agents ran, in the experiment dir or, in older experiments, the subtest dir), so that file loads
as a :class:`PipelineResult` and its prompt section reads exactly as the experiment's own.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["STEP_OUTPUT_LIMIT", "PipelineResult", "load_pipeline_baseline"]

STEP_OUTPUT_LIMIT = 2_000
"""Characters of each step's output the prompt shows (the head; ProjectScylla's cut)."""

ALL_PASSED = "ALL PASSED ✓"
SOME_FAILED = "SOME FAILED ✗"


class PipelineResult(BaseModel):
    """Each step's verdict and output. An N/A step (tool missing, nothing to test) counts as passed."""

    model_config = ConfigDict(extra="ignore")

    language: str = Field(default="python", description="python or mojo: which steps ran.")
    build_passed: bool = Field(default=False, description="Syntax check/build (and scripts) passed.")
    build_output: str = Field(default="", description="Build step output.")
    build_na: bool = Field(default=False, description="Build step not applicable.")
    format_passed: bool = Field(default=False, description="Format/lint check passed.")
    format_output: str = Field(default="", description="Format step output.")
    format_na: bool = Field(default=False, description="Format step not applicable (tool missing).")
    test_passed: bool = Field(default=False, description="Tests passed (or none collected).")
    test_output: str = Field(default="", description="Test step output.")
    test_na: bool = Field(default=False, description="No tests collected, or no test tool.")
    precommit_passed: bool = Field(default=True, description="pre-commit hooks passed.")
    precommit_output: str = Field(default="", description="pre-commit output.")
    precommit_na: bool = Field(default=False, description="No .pre-commit-config.yaml, or no pre-commit.")
    all_passed: bool = Field(default=False, description="Every step passed (N/A counts as passed).")

    def context_string(self) -> str:
        """The four ``### <Step> (PASSED|FAILED)`` blocks, each output cut to STEP_OUTPUT_LIMIT."""
        title = self.language.title()
        steps = [
            (f"{title} Build", self.build_passed, self.build_output),
            (f"{title} Format Check", self.format_passed, self.format_output),
            (f"{title} Test", self.test_passed, self.test_output),
            ("Pre-commit Hooks", self.precommit_passed, self.precommit_output),
        ]
        return "\n\n".join(
            f"### {name} ({'PASSED' if passed else 'FAILED'})\n```\n{output[:STEP_OUTPUT_LIMIT]}\n```"
            for name, passed, output in steps
        )

    def prompt_text(self) -> str:
        """The body of a pipeline section of the judge prompt: the overall status, then the steps."""
        status = ALL_PASSED if self.all_passed else SOME_FAILED
        return f"**Overall Status**: {status}\n\n{self.context_string()}"


def load_pipeline_baseline(directory: Path) -> PipelineResult | None:
    """``directory/pipeline_baseline.json`` as a result, or None when absent or unreadable."""
    path = Path(directory) / "pipeline_baseline.json"
    try:
        return PipelineResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
