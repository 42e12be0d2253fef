"""What an agent run cost when the agent did not say: ProjectScylla's per-model token prices.

Claude Code reports ``total_cost_usd``; when it reports 0 although tokens were used (an API key
without billing data, a proxy, an older CLI), ProjectScylla prices the tokens itself, and so must a
repaired run or the experiment's cost totals would mix two procedures. The rule, as ProjectScylla's
agent stage applies it:

* only when the reported cost is exactly 0 and input or output tokens are non-zero;
* input = fresh input tokens + cache-read tokens, both at the model's *input* price (the cached
  price of the table is not applied there), plus output tokens at the output price; cache-creation
  tokens are not counted;
* the price is looked up by the exact model id; an id not in the table (including dated ids such
  as ``claude-sonnet-4-5-20250929``) gets the default price.

The numbers are data, below; keep them in step with the ProjectScylla version the experiments were
run with.
"""

from __future__ import annotations

from typing import NamedTuple

from experiment.models import TokenStats

__all__ = ["DEFAULT_PRICE", "MODEL_PRICES", "PRICING_SOURCE", "ModelPrice", "TokenPricing", "price_tokens"]


class ModelPrice(NamedTuple):
    """USD per million tokens."""

    input: float
    output: float
    cached: float = 0.0


PRICING_SOURCE = "ProjectScylla src/scylla/config/pricing.py (prices as of March 2026)"
"""Where the prices come from (recorded in every run priced with them)."""

# USD per million tokens: input, output, cached (cache read). Source: ProjectScylla's
# src/scylla/config/pricing.py, "as of March 2026", which cites
# https://platform.claude.com/docs/en/about-claude/pricing for the Anthropic models.
MODEL_PRICES: dict[str, ModelPrice] = {
    "claude-sonnet-4-6": ModelPrice(3.0, 15.0, 0.3),
    "claude-opus-4-6": ModelPrice(5.0, 25.0, 0.5),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0, 0.1),
    "gpt-4": ModelPrice(30.0, 60.0),
    "gpt-4-turbo": ModelPrice(10.0, 30.0),
    "gpt-4o": ModelPrice(5.0, 15.0),
    "gpt-3.5-turbo": ModelPrice(0.5, 1.5),
}

DEFAULT_PRICE = ModelPrice(3.0, 15.0)
"""ProjectScylla's price for a model id not in the table."""


class TokenPricing(NamedTuple):
    """A cost computed from tokens, and the one line that says how (recorded with the run)."""

    cost_usd: float
    note: str


def price_tokens(reported_cost: float, tokens: TokenStats, model: str | None) -> TokenPricing | None:
    """The token-priced cost when ``reported_cost`` is 0 but tokens were used; None otherwise."""
    if reported_cost != 0.0 or not (tokens.input_tokens > 0 or tokens.output_tokens > 0):
        return None
    known = model is not None and model in MODEL_PRICES
    price = MODEL_PRICES[model] if known and model is not None else DEFAULT_PRICE
    billed_input = tokens.input_tokens + tokens.cache_read_tokens
    cost = billed_input / 1_000_000 * price.input + tokens.output_tokens / 1_000_000 * price.output
    which = (
        f"the price of {model}" if known else f"the default price ({model or 'no model'} is not in the table)"
    )
    note = (
        f"The agent reported total_cost_usd 0 for {billed_input} input (incl. cache reads) and "
        f"{tokens.output_tokens} output tokens; cost computed from the tokens with {which}, "
        f"${price.input:g}/${price.output:g} per million input/output tokens ({PRICING_SOURCE})."
    )
    return TokenPricing(cost, note)
