"""``python -m operations.judge --model M --prompt FILE``: one judge call, the answer on stdout.

This is what a slot's ``replay.sh`` runs (see :mod:`operations.judge.slot`), so it sends the same
system prompt as the slot did.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed
from operations.judge.client import JudgeSettings, call_judge
from operations.judge.system_prompt import JUDGE_SYSTEM_PROMPT

DESCRIPTION = "``python -m operations.judge --model M --prompt FILE``: one judge call, the answer on stdout"


def main(argv: list[str] | None = None) -> int:
    """Call the judge once with the prompt file as the user message; 1 on any failure."""
    parser = argparse.ArgumentParser(prog="python -m operations.judge", description=DESCRIPTION)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        call = call_judge(JudgeSettings.from_env(), args.model, JUDGE_SYSTEM_PROMPT, args.prompt.read_text())
    except (AttemptFailed, RepairBlocked, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(call.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
