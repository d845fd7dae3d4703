"""Context cache storage prices per token-hour, read from our dated data
(data/gemini_prices.json, ``cache_storage_usd_per_mtok_hour`` with ``as_of`` and ``source`` beside
each figure). Pure: no SDK, no OpenTelemetry."""

from __future__ import annotations

from functools import lru_cache

from .extras import _bundled_extras
from .lookup import _normalize

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


def cache_storage_cost(model: str, tokens: int, hours: float) -> float | None:
    """List USD to keep ``tokens`` in an explicit context cache for ``hours`` (its TTL).
    None when we have no storage price for the model (unknown, or no caching)."""
    if tokens < 0 or hours < 0:
        raise ValueError("tokens and hours must be >= 0")
    rate = storage_rate(model)
    return None if rate is None else tokens * rate * hours
