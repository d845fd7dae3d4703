"""Resolved prices: plain floats in USD per token, by band (the long-context cliff) and traffic
class, built from genai-prices' ModelPrice objects or a user's prices. Pure data and builders."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_PER_MTOK = 1e-6
_INF = math.inf
_MODALITIES = ("text", "audio", "image", "video")

# --- resolved prices: plain floats, USD per token ----------------------------------------------
# The internal records below are plain slotted classes, built once and never changed: a frozen
# dataclass costs ~0.8 ms of import time each, and import time is the application's start-up.


class _Band:
    """Per-token rates that hold for one prompt-size band of a model."""

    __slots__ = (
        "cached",
        "cached_by_modality",
        "input",
        "input_by_modality",
        "output",
        "output_by_modality",
    )

    def __init__(
        self,
        input: float,
        input_by_modality: Mapping[str, float],
        cached: float | None,  # None: no cache-read price; cached tokens bill as input
        cached_by_modality: Mapping[str, float],
        output: float,
        output_by_modality: Mapping[str, float],
    ) -> None:
        self.input = input
        self.input_by_modality = input_by_modality
        self.cached = cached
        self.cached_by_modality = cached_by_modality
        self.output = output
        self.output_by_modality = output_by_modality

    def scaled(self, factor: float, *, cached_too: bool) -> _Band:
        cached_factor = factor if cached_too else 1.0
        return _Band(
            self.input * factor,
            {m: r * factor for m, r in self.input_by_modality.items()},
            None if self.cached is None else self.cached * cached_factor,
            {m: r * cached_factor for m, r in self.cached_by_modality.items()},
            self.output * factor,
            {m: r * factor for m, r in self.output_by_modality.items()},
        )


class _Table:
    """A model's rates at one traffic class: ``bands[i]`` holds when the prompt count is above
    exactly ``i`` of ``thresholds`` (a cliff: the band prices every token of the request)."""

    __slots__ = ("bands", "thresholds")

    def __init__(self, thresholds: tuple[int, ...], bands: tuple[_Band, ...]) -> None:
        self.thresholds = thresholds
        self.bands = bands

    def scaled(self, factor: float, *, cached_too: bool) -> _Table:
        if factor == 1.0:
            return self
        return _Table(
            self.thresholds, tuple(b.scaled(factor, cached_too=cached_too) for b in self.bands)
        )


class _Entry:
    """Resolution of one model string, valid for request times in [start, end)."""

    __slots__ = ("end", "start", "tables")

    def __init__(
        self,
        start: float,
        end: float,
        tables: Mapping[str, _Table] | None,  # traffic class -> table; None: cannot be priced
    ) -> None:
        self.start = start
        self.end = end
        self.tables = tables


_UNPRICED = _Entry(-_INF, _INF, None)
_NOT_LOADED = _Entry(-_INF, _INF, None)  # never cached: resolved again once loaded


class _Unpriceable(Exception):
    """A model's price table uses a unit we cannot apply to Gemini usage faithfully."""


class _TrafficClass:
    __slots__ = ("billed", "table")

    def __init__(self, table: str, billed: bool) -> None:
        self.table = table  # key into _Entry.tables
        self.billed = billed


# --- genai-prices ModelPrice -> _Table ---------------------------------------------------------

_PRICE_KEY = re.compile(
    r"(?:(input)_mtok|(cache)_read_mtok|(output)_mtok"
    r"|(input)_(text|audio|image|video)_mtok|(cache)_(text|audio|image|video)_read_mtok"
    r"|(output)_(text|audio|image|video)_mtok)"
)


def _slot(key: str) -> tuple[str, str | None] | None:
    """genai-prices price key -> (slot, modality); None for units Gemini usage never reports."""
    match = _PRICE_KEY.fullmatch(key)
    if match is not None:
        groups = [g for g in match.groups() if g is not None]
        return groups[0], (groups[1] if len(groups) > 1 else None)
    if "reasoning" in key or "tool" in key or key == "requests_kcount":
        # We do report thoughts and tool-use tokens, and every call is a request: a separate
        # price for them would change the figure, so refuse rather than mis-price.
        raise _Unpriceable(key)
    # Cache writes, web searches (see grounding_cost), characters, seconds, pixels, pages:
    # no Gemini usageMetadata field reports these, so they add nothing per call.
    return None


def _as_float(value: Any) -> float:
    result = float(value)
    if not math.isfinite(result) or result < 0:
        raise _Unpriceable(f"bad price {value!r}")
    return result


def _table_from_prices(slots: Mapping[str, tuple[str, str | None, Any]]) -> _Table:
    """Build bands from ``{key: (slot, modality, value)}``; a value is a float or
    ``(base, ((start, price), ...))``."""
    thresholds = sorted(
        {start for _, _, v in slots.values() if isinstance(v, tuple) for start, _ in v[1]}
    )
    bands = []
    for i in range(len(thresholds) + 1):
        above = thresholds[i - 1] if i else None
        rates: dict[str, float] = {}
        mods: dict[str, dict[str, float]] = {"input": {}, "cache": {}, "output": {}}
        for slot, modality, value in slots.values():
            if isinstance(value, tuple):
                base, tiers = value
                rate = base
                for start, price in tiers:
                    if above is not None and start <= above:
                        rate = price
            else:
                rate = value
            if modality is None:
                rates[slot] = rate * _PER_MTOK
            else:
                mods[slot][modality] = rate * _PER_MTOK
        for per_modality in mods.values():
            # genai-prices' Google extractor counts DOCUMENT tokens as image tokens.
            if "image" in per_modality:
                per_modality.setdefault("document", per_modality["image"])
        bands.append(
            _Band(
                rates.get("input", 0.0),
                mods["input"],
                rates.get("cache"),
                mods["cache"] if "cache" in rates else {},
                rates.get("output", 0.0),
                mods["output"],
            )
        )
    return _Table(tuple(thresholds), tuple(bands))


def _table_from_model_price(model_price: Any) -> _Table:
    slots: dict[str, tuple[str, str | None, Any]] = {}
    ignored = 0
    for key, value in vars(model_price).items():
        if key.startswith("_") or value is None:
            continue
        slot = _slot(key)
        if slot is None:
            ignored += 1
            continue
        tiers = getattr(value, "tiers", None)
        if tiers is not None:
            value = (
                _as_float(value.base),
                tuple((int(t.start), _as_float(t.price)) for t in tiers),
            )
        else:
            value = _as_float(value)
        slots[key] = (*slot, value)
    if ignored and not any(s in ("input", "output") for s, _, _ in slots.values()):
        # Priced only in units Gemini usage never reports (per image, per second...): a zero
        # here would be a guess. A table with no prices at all is genai-prices' way of saying
        # "free of charge" (e.g. Gemma on the Gemini API) and prices as 0.
        raise _Unpriceable("no per-token input or output price")
    return _table_from_prices(slots)
