"""Prices by unit beyond tokens, read from our dated data (data/gemini_prices.json): context
cache storage per token-hour, and grounding with Google Search per grounded prompt or search
query beyond a free allowance. Pure: no SDK, no OpenTelemetry.

The figures and their dates and sources live in the data file beside each entry (``as_of``,
``source``); nothing here holds a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .extras import _bundled_extras
from .lookup import _lookup_key, _normalize

_PER_MTOK = 1e-6


@lru_cache(maxsize=256)
def storage_rate(model: str) -> float | None:
    """List USD per cached token per hour of ``model``'s context caches; None when the data
    has no storage price for it (unknown model, or a model without caching)."""
    entry = _bundled_extras().model(_normalize(model))
    rate = entry.get("cache_storage_usd_per_mtok_hour")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
        return None
    return float(rate) * _PER_MTOK


def tier_billed(tier: str) -> bool:
    """Whether ``tier`` pays (the free tier does not; an unknown tier is taken to pay)."""
    return _bundled_extras().tiers_billed.get(tier, True)


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
