"""``python -m operations.judge --model M --prompt FILE [--system-prompt FILE]``: one judge call.

This is what a slot's ``replay.sh`` runs (see :mod:`operations.judge.slot`), with the slot's
system prompt file, ``max_tokens`` and ``temperature``, so it sends the request the slot sent.
Without ``--system-prompt`` it sends our fallback prompt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiment.errors import RepairBlocked
from experiment.failures import AttemptFailed
from operations.judge.client import JudgeSettings, call_judge
from operations.judge.system_prompt import resolve_system_prompt

DESCRIPTION = "``python -m operations.judge --model M --prompt FILE``: one judge call, the answer on stdout"


def main(argv: list[str] | None = None) -> int:
    """Call the judge once with the prompt file as the user message; 1 on any failure."""
    parser = argparse.ArgumentParser(prog="python -m operations.judge", description=DESCRIPTION)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", required=True, type=Path)
    parser.add_argument("--system-prompt", type=Path, default=None, help="The judge system prompt file.")
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    args = parser.parse_args(argv)
    overrides = {
        key: value
        for key, value in (("max_tokens", args.max_tokens), ("temperature", args.temperature))
        if value is not None
    }
    try:
        system = resolve_system_prompt(args.system_prompt)
        call = call_judge(
            JudgeSettings.from_env(**overrides), args.model, system.text, args.prompt.read_text()
        )
    except (AttemptFailed, RepairBlocked, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(call.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
