"""Per-model token prices (USD per 1M tokens) for cost accounting; users extend or override them.

Built-in values are list prices at the time of writing and only a default: pass `prices` in the config or a
YAML/JSON file with `--prices` (`{model: {input: X, output: Y}}`) for your contract. A model without a price
(e.g. a local vLLM/Ollama model) is reported with unknown cost rather than a made-up one.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from aicd.annotate.config import ModelPrice
from aicd.errors import ConfigError

DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-3.5-turbo": ModelPrice(input=0.50, output=1.50),
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "gpt-4o": ModelPrice(input=2.50, output=10.00),
    "gpt-4.1-nano": ModelPrice(input=0.10, output=0.40),
    "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
    "gpt-4.1": ModelPrice(input=2.00, output=8.00),
    "gpt-4-turbo": ModelPrice(input=10.00, output=30.00),
    "gpt-4": ModelPrice(input=30.00, output=60.00),
}


def price_for(model: str, overrides: dict[str, ModelPrice] | None = None) -> ModelPrice | None:
    """Exact name first, then the longest known prefix ("gpt-4o-mini-2024-07-18" -> "gpt-4o-mini")."""
    table = {**DEFAULT_PRICES, **(overrides or {})}
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name + "-")]
    return table[max(prefixes, key=len)] if prefixes else None


def cost_usd(
    model: str, prompt_tokens: int, completion_tokens: int, overrides: dict[str, ModelPrice] | None = None
) -> float | None:
    """Cost of the tokens, or None when the model has no price."""
    price = price_for(model, overrides)
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


def load_prices(path: str | Path) -> dict[str, ModelPrice]:
    """Read a price table file; errors name the file and the model entry."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"prices: file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"prices: cannot parse {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"prices: {path} must map model names to {{input: X, output: Y}}")
    out: dict[str, ModelPrice] = {}
    for model, entry in data.items():
        try:
            out[str(model)] = ModelPrice.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "entry"
            raise ConfigError(f"prices: {path}: model '{model}' field '{field}': {first['msg']}") from None
    return out
