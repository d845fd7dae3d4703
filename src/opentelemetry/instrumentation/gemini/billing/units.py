"""Prices by unit other than tokens: Imagen per image, Veo per second of video.

The rates are dated data (data/unit_prices.json, each entry with its date, source and whether
it was checked against Google's own page); this module only matches a model to its entry and
multiplies. Pure: no SDK, no OpenTelemetry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from .extras import tier_billed
from .lookup import _candidates, _normalize
from .overrides import PricesFileError

_DATA_NAME = "data/unit_prices.json"

# gcp.gemini.cost.component values of unit-priced costs, in the counters' column order (after
# the token components of book.COST_COMPONENTS).
UNIT_COMPONENTS = ("image_output", "video_output")

IMAGE = "image"
VIDEO_SECOND = "video_second"

# gcp.gemini.cost.unpriced_reason values this module gives.
UNKNOWN_MODEL = "unknown_model"  # not in the data (same value as the token book's)
UNKNOWN_DURATION = "unknown_duration"  # a video whose duration we never learnt
NO_MATCHING_RATE = "no_matching_rate"  # the model has no rate for the request's options


class UnitUsage:
    """What one call (or one finished long-running operation) bills by unit."""

    __slots__ = ("bills", "conditions", "quantity", "unit", "unpriced")

    def __init__(
        self,
        unit: str,
        quantity: float,
        conditions: Mapping[str, Any] | None = None,
        unpriced: str | None = None,
        bills: str | None = None,
    ) -> None:
        self.unit = unit
        self.quantity = quantity  # images returned; video seconds x videos returned
        # What a rate may depend on: "audio" (bool), "resolution" (lower case, e.g. "1080p").
        self.conditions = conditions or {}
        # Known unpriceable before any lookup (a submit priced later, a duration never seen).
        self.unpriced = unpriced
        # The operation these units bill when it is not the call's own (a poll that finds a
        # video generation done bills generate_videos); None: the call's own.
        self.bills = bills


class UnitCost:
    """Cost of a unit-priced call in USD. Reads as a token CostBreakdown does where the
    counters and the recorder read one (its token components are zero); ``units`` holds
    (index into UNIT_COMPONENTS, list USD)."""

    __slots__ = (
        "billed",
        "component",
        "list_total",
        "operation",
        "prices_version",
        "rate",
        "total",
        "units",
        "verified",
    )
    input = cached_input = output = tool_use_input = 0.0

    def __init__(
        self,
        component: str,
        usd: float,
        rate: float,
        billed: bool,
        operation: str | None,
        prices_version: str,
        verified: bool,
    ) -> None:
        self.component = component
        self.rate = rate
        self.billed = billed
        self.operation = operation  # what the units bill if not the call's own (UnitUsage.bills)
        self.prices_version = prices_version
        self.verified = verified
        self.list_total = usd
        self.total = usd if billed else 0.0
        self.units = ((UNIT_COMPONENTS.index(component), usd),)


class UnitPrices:
    """The bundled per-unit price data, resolved by model name."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.version = str(doc["version"])
        self._units: Mapping[str, Mapping[str, str]] = doc["units"]
        self._models: dict[str, Mapping[str, Any]] = {}
        for name, entry in doc["models"].items():
            if entry["unit"] not in self._units:
                raise KeyError(f"{name}: unit {entry['unit']!r}")
            for rate in entry["rates"]:
                float(rate["usd"])
            for key in (name, *entry.get("aliases", ())):
                self._models[key] = entry
        self._unpriced: dict[str, str] = {
            name: str(text).partition(":")[0].strip() for name, text in doc["unpriced"].items()
        }

    def entry(self, model: str) -> tuple[Mapping[str, Any] | None, str]:
        """(the model's entry, "") or (None, why it has none)."""
        for name in _candidates(_normalize(model)):
            if name in self._models:
                return self._models[name], ""
            if name in self._unpriced:
                return None, self._unpriced[name]
        return None, UNKNOWN_MODEL

    def defaults(self, model: str) -> Mapping[str, Any]:
        """The model's default duration and audio (assumptions, marked in the data)."""
        found, _ = self.entry(model)
        if found is None:
            return {}
        return {k: found[k] for k in ("default_duration_seconds", "default_audio") if k in found}

    def price(self, model: str, usage: UnitUsage, tier: str | None) -> tuple[UnitCost | None, str]:
        """(cost, "") or (None, unpriced reason). ``tier`` "free" bills 0 (the list figure
        stays), as token prices do."""
        found, reason = self.entry(model)
        if found is None:
            return None, reason
        if found["unit"] != usage.unit:
            return None, NO_MATCHING_RATE
        rate = _rate(found, usage.conditions)
        if rate is None:
            return None, NO_MATCHING_RATE
        unit = self._units[usage.unit]
        return (
            UnitCost(
                unit["component"],
                usage.quantity * rate,
                rate,
                tier_billed(tier),
                usage.bills,
                f"gemini-units {self.version}",
                bool(found.get("verified", False)),
            ),
            "",
        )


def _rate(entry: Mapping[str, Any], conditions: Mapping[str, Any]) -> float | None:
    """The first rate whose every condition the request meets (the data lists the most
    specific first); a condition the request does not state takes the model's default."""
    stated = dict(conditions)
    if stated.get("audio") is None and "default_audio" in entry:
        stated["audio"] = bool(entry["default_audio"])
    for rate in entry["rates"]:
        if all(stated.get(k) == v for k, v in rate.items() if k != "usd"):
            return float(rate["usd"])
    return None


@cache
def unit_prices() -> UnitPrices:
    where = f"{__package__}/{_DATA_NAME}"
    try:
        text = resources.files(__package__).joinpath(_DATA_NAME).read_text(encoding="utf-8")
        return UnitPrices(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PricesFileError(f"{where}: cannot load unit prices: {exc!r}") from exc
