"""Cost fallback: an agent reporting total_cost_usd 0 with tokens gets ProjectScylla's token price,
and the run's agent/result.json says so."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from experiment.layout import RunKey
from experiment.models import AgentResult, TokenStats
from experiment.pricing import DEFAULT_PRICE, MODEL_PRICES, price_tokens
from experiment.regenerate import valid_agent_result
from experiment.scan import load_context
from operations.agent import AgentSettings, run_agent
from operations.archive import archive_run
from operations.workspace import prepare_workspace
from simulation.generator import generate_experiment

TIERS = Path(__file__).resolve().parents[1] / "fixtures" / "scylla-tiers"


def _tokens(inp: int, out: int, created: int = 0, read: int = 0) -> TokenStats:
    return TokenStats(
        input_tokens=inp, output_tokens=out, cache_creation_tokens=created, cache_read_tokens=read
    )


def test_reported_cost_is_kept() -> None:
    assert price_tokens(0.25, _tokens(100, 100), "claude-haiku-4-5") is None
    assert price_tokens(0.0, _tokens(0, 0, created=500, read=0), "claude-haiku-4-5") is None


def test_known_model_prices_input_plus_cache_reads_at_input_price() -> None:
    priced = price_tokens(
        0.0, _tokens(1_000_000, 200_000, created=999_999, read=1_000_000), "claude-haiku-4-5"
    )
    assert priced is not None
    # (1M fresh + 1M cache read) x $1 + 0.2M output x $5; cache creation not counted.
    assert priced.cost_usd == pytest.approx(2.0 + 1.0)
    assert "claude-haiku-4-5" in priced.note and "ProjectScylla" in priced.note
    assert MODEL_PRICES["claude-opus-4-6"].input == 5.0


def test_unknown_or_dated_model_gets_the_default_price() -> None:
    priced = price_tokens(0.0, _tokens(0, 1_000_000), "claude-sonnet-4-5-20250929")
    assert priced is not None
    assert priced.cost_usd == pytest.approx(DEFAULT_PRICE.output)
    assert "default price" in priced.note


AGENT = """
import json, sys
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "num_turns": 3,
    "result": "done", "total_cost_usd": 0,
    "usage": {"input_tokens": 1000, "output_tokens": 2000, "cache_creation_input_tokens": 50,
              "cache_read_input_tokens": 9000}}))
"""


def test_run_agent_prices_a_zero_cost_result_and_records_it(tmp_path: Path) -> None:
    gen = generate_experiment(
        tmp_path / "exp", tiers=["T0"], subtests_per_tier=1, runs_per_subtest=1, tiers_dir=TIERS
    )
    ctx = load_context(gen.path, TIERS)
    key = RunKey("T0", "00", 1)
    archive_run(ctx.layout, key, gen.path / "repo")
    info = prepare_workspace(ctx, key, base_repo=gen.path / "repo")
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    settings = AgentSettings(
        command=[sys.executable, str(script), "{prompt_file}"], model="claude-haiku-4-5", timeout_seconds=30
    )

    outcome = run_agent(info.run_dir, info.workspace, settings)

    expected = (1000 + 9000) / 1e6 * 1.0 + 2000 / 1e6 * 5.0
    assert outcome.succeeded and outcome.cost_usd == pytest.approx(expected)
    data = json.loads((info.run_dir / "agent" / "result.json").read_text())
    assert data["cost_usd"] == pytest.approx(expected)
    assert data["cost_source"] == "token_pricing"
    assert "total_cost_usd 0" in data["cost_note"]
    # Still a valid agent result for us; ProjectScylla reads only its own keys of this file.
    assert valid_agent_result(data) and AgentResult.model_validate(data).cost_usd == pytest.approx(expected)
