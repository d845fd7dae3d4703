"""Grounding with Google Search prices: per grounded prompt or per search query beyond a free
allowance, per model family, read from our dated data (data/gemini_prices.json, ``grounding``,
with ``as_of`` beside each rule). Pure: no SDK, no OpenTelemetry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .extras import _bundled_extras
from .lookup import _lookup_key, _normalize


@dataclass(frozen=True, slots=True)
class GroundingRule:
    """Grounding with Google Search for one model family: ``unit`` ("grounded prompt": one per
    request that searched; "search query": one per query the model ran), ``free_per_period``
    units free per ``period`` ("day" or "month"), then ``usd_per_unit``."""

    family: str
    unit: str
    free_per_period: int
    period: str
    usd_per_unit: float
    as_of: str


@lru_cache(maxsize=256)
def grounding_rule(model: str) -> GroundingRule | None:
    """The Google Search grounding rule of ``model``'s family; None when the data has none."""
    table = _bundled_extras().grounding
    key = _lookup_key(_normalize(model), table, same_variant=False)
    if key is None:
        return None
    rule = table[key]
    try:
        return GroundingRule(
            family=key,
            unit=str(rule["unit"]),
            free_per_period=int(rule["free_per_period"]),
            period=str(rule["period"]),
            usd_per_unit=float(rule["usd_per_1000"]) / 1000,
            as_of=str(rule.get("as_of", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def grounding_cost(model_family: str, prompts: int) -> float:
    """USD for ``prompts`` Google Search grounded prompts (Gemini 3: search queries) in one
    allowance period (a day for 2.5, a month for Gemini 3), beyond its free allowance.

    ``model_family`` is ``"gemini-2.5"`` or ``"gemini-3"``, or any model name in them
    (``"gemini-2.5-flash"``, ``"models/gemini-3-pro-preview"``). Unknown family: ValueError.
    """
    if prompts < 0:
        raise ValueError("prompts must be >= 0")
    rule = grounding_rule(model_family)
    if rule is None:
        known = sorted(_bundled_extras().grounding)
        raise ValueError(f"no grounding price for {model_family!r}; known: {known}")
    return max(0, prompts - rule.free_per_period) * rule.usd_per_unit
