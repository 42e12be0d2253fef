"""The fixed texts and model names every synthetic run is made of (the sample's hello-world task).

Kept apart from the writers so that the run files, the experiment's top-level files and the
judges all quote one copy of the task, the rubric and the rate-limit message.
"""

from __future__ import annotations

DEFAULT_JUDGES = ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5"]
AGENT_MODEL = "claude-sonnet-4-5-20250929"
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
