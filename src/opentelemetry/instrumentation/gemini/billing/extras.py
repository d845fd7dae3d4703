"""Our dated price data beyond genai-prices (data/gemini_prices.json): free tier, traffic
classes (flex, priority, provisioned throughput, batch fallback), cache storage per token-hour,
grounding allowances. Each entry carries its date and source in the file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from .lookup import _lookup_key
from .overrides import PricesFileError

_PER_MTOK = 1e-6

# --- bundled extras ----------------------------------------------------------------------------

_EXTRAS_NAME = "data/gemini_prices.json"


class _Extras:
    __slots__ = ("classes", "grounding", "models", "tiers_billed", "traffic_types", "version")

    def __init__(
        self,
        version: str,
        traffic_types: Mapping[str, str],
        classes: Mapping[str, Mapping[str, Any]],
        tiers_billed: Mapping[str, bool],
        models: Mapping[str, Mapping[str, Any]],
        grounding: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.version = version
        self.traffic_types = traffic_types
        self.classes = classes
        self.tiers_billed = tiers_billed
        self.models = models
        self.grounding = grounding

    def model(self, name: str) -> Mapping[str, Any]:
        key = _lookup_key(name, self.models, same_variant=True)
        return self.models[key] if key is not None else {}

    def priority_multiplier(self, name: str) -> float:
        value = self.model(name).get("priority_multiplier")
        if value is None:
            value = self.classes["priority"]["default_multiplier"]
        return float(value)


@cache
def _bundled_extras() -> _Extras:
    where = f"{__package__}/{_EXTRAS_NAME}"
    try:
        text = resources.files(__package__).joinpath(_EXTRAS_NAME).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        raise PricesFileError(f"{where}: cannot load bundled prices: {exc}") from exc
    try:
        classes = doc["traffic_classes"]
        extras = _Extras(
            version=str(doc["version"]),
            traffic_types=dict(doc["traffic_types"]),
            classes=classes,
            tiers_billed={k: bool(v["billed"]) for k, v in doc["tiers"].items()},
            models=doc["models"],
            grounding=doc["grounding"],
        )
        for target in extras.traffic_types.values():
            classes[target]  # every traffic type names a known class (KeyError if not)
        float(classes["priority"]["default_multiplier"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PricesFileError(f"{where}: malformed bundled prices: {exc!r}") from exc
    return extras


def tier_billed(tier: str | None) -> bool:
    """Whether ``tier`` pays (the free tier does not; an unknown tier, or None, is taken to pay)."""
    return _bundled_extras().tiers_billed.get(tier, True)
