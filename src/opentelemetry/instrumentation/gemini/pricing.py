"""Cost in USD of one Gemini call, built on genai-prices' data plus our Gemini extras.

Token prices (input, cached input, output, audio rates, the long-context cliff, date-bounded
price changes, batch variants) come from the ``genai-prices`` package, which follows Google's
pricing page. ``data/gemini_prices.json`` adds, as dated data with a source per entry, what it
lacks: the free tier, traffic types (flex, priority, provisioned throughput, a batch fallback),
cache storage per token-hour and grounding allowances. Decisions where Google's pages are silent
are written down in that file's ``notes``.

``PriceBook.cost()`` runs on every call. Each model's prices are resolved once, per normalised
model name, into plain floats together with the time window in which they hold; later calls do
a dict lookup and float arithmetic. Nothing here touches the network: genai-prices' auto-update
(``UpdatePrices``) is never started.

User prices file
----------------
Negotiated rates, or models newer than the bundled data, go in a JSON file (USD per 1M tokens)
passed to ``PriceBook.load()`` (the instrumentor takes it from ``prices_file=`` or
``OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE``)::

    {
      "version": "acme-2026-10",
      "notes": "negotiated rates, contract 2026-10",
      "models": {
        "gemini-2.5-flash": {
          "input": 0.25, "cached_input": 0.025, "output": 2.00,
          "input_audio": 0.80, "cached_input_audio": 0.08,
          "priority_multiplier": 1.75
        },
        "gemini-9-pro-preview": {
          "input": 2.00, "cached_input": 0.20, "output": 12.00,
          "long_context": {"above_prompt_tokens": 200000,
                           "input": 4.00, "cached_input": 0.40, "output": 18.00}
        }
      }
    }

- ``version`` (string, required) is reported in ``CostBreakdown.prices_version``.
- ``models`` (object, required) maps a model name to its complete standard (on-demand) price
  table, which replaces genai-prices' table for that model. Names are matched exactly after
  normalisation (``models/`` and other resource prefixes dropped, lower case; a ``-001`` style
  version suffix falls back to the alias); a name that genai-prices maps to a model (e.g.
  ``gemini-2.5-flash-preview-09-2025`` -> ``gemini-2.5-flash``) also takes that model's entry.
- Price keys: ``input`` (required), ``output``, ``cached_input``, and per modality
  ``input_<m>``, ``cached_input_<m>``, ``output_<m>`` with ``<m>`` one of text, audio, image,
  video. A modality without its own key is priced at the plain rate; without ``cached_input``
  cached tokens are billed as input.
- ``long_context``: ``above_prompt_tokens`` (integer) and any price keys; when the request's
  prompt tokens (``promptTokenCount + toolUsePromptTokenCount``) are strictly above it, every
  token of the request is priced with those keys (keys not given keep the standard rate).
- ``priority_multiplier`` (number > 0): priority traffic price as a multiple of standard.
- ``notes`` (string or list of strings): free text, ignored.

Anything else (unknown keys, negative, non-numeric or non-finite prices, unreadable file, bad
JSON) raises ``PricesFileError`` naming the file and the offending entry.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .usage import Usage

__all__ = (
    "CostBreakdown",
    "PriceBook",
    "PricesFileError",
    "cache_storage_cost",
    "grounding_cost",
)

_UTC = timezone.utc
_PER_MTOK = 1e-6
_INF = math.inf
_MODALITIES = ("text", "audio", "image", "video")
_CACHE_LIMIT = 4096  # distinct model strings remembered; cleared (not grown) beyond this
_NO_COUNTS: Mapping[str, int] = MappingProxyType({})
_FORK_WAIT_SECONDS = 10.0
# How long calls may wait, all together, for genai-prices to load in the background: after
# that, a model not resolved yet is unpriced (reason prices_loading) until the data arrives,
# rather than every call waiting on a loader that is stuck.
_LOAD_WAIT_SECONDS = 10.0

_logger = logging.getLogger(__name__)


class PricesFileError(ValueError):
    """A prices file (user overrides or our bundled extras) cannot be used."""


# The cost components, named as gcp.gemini.cost's component attribute, in CostBreakdown's order.
COST_COMPONENTS = ("input", "cached_input", "output", "tool_use_input")


class CostBreakdown:
    """Cost of one call in USD.

    ``input``, ``cached_input``, ``output`` and ``tool_use_input`` are the pay-as-you-go price of
    each component at the call's traffic type; ``billed`` says whether the call is billed at all
    (not on the free tier, not for provisioned throughput). ``total`` is the bill, ``list_total``
    the pay-as-you-go figure; ``components`` and ``list_components`` name the non-zero parts.
    Built on every call, so the views below are computed only when read.
    """

    __slots__ = (
        "_modality_inputs",
        "billed",
        "cached_input",
        "input",
        "list_total",
        "output",
        "prices_version",
        "tool_use_input",
        "total",
    )

    def __init__(
        self,
        input: float,
        cached_input: float,
        output: float,
        tool_use_input: float,
        billed: bool,
        prices_version: str,
        modality_inputs: tuple[_Band, Mapping[str, int], Mapping[str, int]] | None = None,
    ) -> None:
        self.input = input
        self.cached_input = cached_input
        self.output = output
        self.tool_use_input = tool_use_input
        self.billed = billed
        self.prices_version = prices_version
        self._modality_inputs = modality_inputs
        self.list_total = input + cached_input + output + tool_use_input
        self.total = self.list_total if billed else 0.0

    @property
    def list_components(self) -> tuple[tuple[str, float], ...]:
        parts = (self.input, self.cached_input, self.output, self.tool_use_input)
        return tuple((name, usd) for name, usd in zip(COST_COMPONENTS, parts, strict=True) if usd)

    @property
    def components(self) -> tuple[tuple[str, float], ...]:
        return self.list_components if self.billed else ()

    @property
    def by_modality(self) -> tuple[tuple[str, float], ...]:
        """Input plus cached-input USD per modality, when the usage reported modalities."""
        if self._modality_inputs is None:
            return ()
        band, prompt_mod, cached_mod = self._modality_inputs
        out = []
        for modality in sorted(prompt_mod.keys() | cached_mod.keys()):
            cached = cached_mod.get(modality, 0)
            fresh = max(0, prompt_mod.get(modality, 0) - cached)
            usd = fresh * band.input_by_modality.get(modality, band.input)
            if band.cached is not None:
                usd += cached * band.cached_by_modality.get(modality, band.cached)
            out.append((modality, usd))
        return tuple(out)

    def _values(self) -> tuple[Any, ...]:
        return (
            self.input,
            self.cached_input,
            self.output,
            self.tool_use_input,
            self.billed,
            self.prices_version,
            self.by_modality,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CostBreakdown):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not immutable

    def __repr__(self) -> str:
        return (
            f"CostBreakdown(total={self.total!r}, list_total={self.list_total!r}, "
            f"components={self.list_components!r}, billed={self.billed!r}, "
            f"prices_version={self.prices_version!r})"
        )


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


# --- model names -------------------------------------------------------------------------------

# Words that make a different model, not another version of the same one: a prefix rule for
# "gemini-2.5-flash" must never price "gemini-2.5-flash-lite" or "...-flash-image".
_VARIANT_WORDS = frozenset(
    {
        "lite",
        "image",
        "tts",
        "live",
        "audio",
        "native",
        "embedding",
        "vision",
        "computer",
        "robotics",
    }
)
_SIZE_WORD = re.compile(r"\d+b")  # "gemini-1.5-flash-8b" is not gemini-1.5-flash
_WORD_SPLIT = re.compile(r"[-_.:@]+")
_STABLE_VERSION = re.compile(r"-\d{3}$")
_EXACT = 1 << 20


def _normalize(model: str) -> str:
    """``models/x``, ``publishers/google/models/x``, ``projects/../models/x@001`` -> ``x``."""
    name = model.strip().lower()
    if "/" in name:
        _, sep, tail = name.rpartition("models/")
        name = tail if sep else name.rpartition("/")[2]
    return name.partition("@")[0]


def _candidates(name: str) -> list[str]:
    """The name itself, then the alias behind a stable version suffix (``-001``)."""
    if _STABLE_VERSION.search(name):
        return [name, name[:-4]]
    return [name]


def _adds_variant(name: str, literal: str) -> bool:
    """Whether ``name`` carries a variant word that the rule's ``literal`` does not."""
    known = set(_WORD_SPLIT.split(literal))
    gemini = name.startswith("gemini")
    for word in _WORD_SPLIT.split(name):
        if word in known:
            continue
        if word in _VARIANT_WORDS or (gemini and _SIZE_WORD.fullmatch(word)):
            return True
    return False


def _clause_score(clause: Any, name: str, model_id: str) -> int:
    """How specifically a genai-prices match clause names ``name`` (0: not at all).

    genai-prices' rules are read strictly. Equals and ends-with count only as the exact name
    (our names carry no path prefix). Starts-with and contains count only as a prefix that does
    not cross into another variant: a loose ``contains`` is how a new preview once received an
    old model's prices (genai-prices #173).
    """
    if (text := getattr(clause, "equals", None)) is not None:
        return _EXACT if name == text.lower() else 0
    if (text := getattr(clause, "ends_with", None)) is not None:
        return _EXACT if name == text.lower() else 0
    for attr in ("starts_with", "contains"):
        if (text := getattr(clause, attr, None)) is not None:
            prefix = text.lower()
            ok = name.startswith(prefix) and not _adds_variant(name, prefix)
            return len(prefix) if ok else 0
    if (text := getattr(clause, "regex", None)) is not None:
        return 1 if re.search(text, name) and not _adds_variant(name, model_id) else 0
    if (parts := getattr(clause, "or_", None)) is not None:
        return max((_clause_score(c, name, model_id) for c in parts), default=0)
    if (parts := getattr(clause, "and_", None)) is not None:
        scores = [_clause_score(c, name, model_id) for c in parts]
        return max(scores) if scores and all(scores) else 0
    return 0  # a clause kind we do not know never matches


def _lookup_key(name: str, keys: Iterable[str], *, same_variant: bool) -> str | None:
    """Exact key, else the longest key that is a prefix of ``name`` at a ``-``/``.`` boundary
    (and, with ``same_variant``, does not cross into another variant)."""
    keys = tuple(keys)
    for cand in _candidates(name):
        if cand in keys:
            return cand
        best = None
        for key in keys:
            if (
                cand.startswith(key)
                and cand[len(key) : len(key) + 1] in ("-", ".")
                and not (same_variant and _adds_variant(cand, key))
                and (best is None or len(key) > len(best))
            ):
                best = key
        if best is not None:
            return best
    return None


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


def _boundaries(constraint: Any, ts: float) -> list[float] | None:
    """Instants (epoch seconds) around ``ts`` where a genai-prices constraint flips; None for a
    constraint kind we do not know."""
    start_date = getattr(constraint, "start_date", None)
    if start_date is not None:
        # StartDateConstraint is active from UTC midnight of its date.
        return [datetime.combine(start_date, dtime(0), _UTC).timestamp()]
    start_time = getattr(constraint, "start_time", None)
    end_time = getattr(constraint, "end_time", None)
    if start_time is not None and end_time is not None:
        day = datetime.fromtimestamp(ts, _UTC).date()
        out = []
        for offset in (-1, 0, 1):
            for t in (start_time, end_time):
                t = t if t.tzinfo is not None else t.replace(tzinfo=_UTC)
                out.append(datetime.combine(day + timedelta(days=offset), t).timestamp())
        return out
    return None


def _validity(model: Any, ts: float) -> tuple[float, float]:
    constraints = []
    if isinstance(model.prices, list):
        constraints += [c.constraint for c in model.prices]
    constraints += [v.constraint for v in model.price_variants or ()]
    start, end = -_INF, _INF
    for constraint in constraints:
        if constraint is None:
            continue
        points = _boundaries(constraint, ts)
        if points is None:  # unknown kind: a zero-width window, re-resolved on every call
            return ts, ts
        for point in points:
            if point <= ts:
                start = max(start, point)
            else:
                end = min(end, point)
    return start, end


def _variant_active(model: Any, context: Mapping[str, str], at: datetime) -> bool:
    for variant in model.price_variants or ():
        if all(context.get(k) == v for k, v in variant.when.items()) and (
            variant.constraint is None or variant.constraint.active(at)
        ):
            return True
    return False


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


def cache_storage_cost(model: str, tokens: int, hours: float) -> float | None:
    """USD to keep ``tokens`` in an explicit context cache for ``hours`` (its TTL).

    None when we have no storage price for the model (unknown, or no caching).
    """
    if tokens < 0 or hours < 0:
        raise ValueError("tokens and hours must be >= 0")
    rate = _bundled_extras().model(_normalize(model)).get("cache_storage_usd_per_mtok_hour")
    if rate is None:
        return None
    return tokens * _PER_MTOK * float(rate) * hours


def grounding_cost(model_family: str, prompts: int) -> float:
    """USD for ``prompts`` Google Search grounded prompts (Gemini 3: search queries) in one
    allowance period (a day for 2.5, a month for Gemini 3), beyond its free allowance.

    ``model_family`` is ``"gemini-2.5"`` or ``"gemini-3"``, or any model name in them
    (``"gemini-2.5-flash"``, ``"models/gemini-3-pro-preview"``). Unknown family: ValueError.
    """
    if prompts < 0:
        raise ValueError("prompts must be >= 0")
    table = _bundled_extras().grounding
    key = _lookup_key(_normalize(model_family), table, same_variant=False)
    if key is None:
        raise ValueError(f"no grounding price for {model_family!r}; known: {sorted(table)}")
    rule = table[key]
    billable = max(0, prompts - int(rule["free_per_period"]))
    return billable * float(rule["usd_per_1000"]) / 1000


# --- user overrides file -----------------------------------------------------------------------

_OVERRIDE_PRICE_KEYS: dict[str, tuple[str, str | None]] = {
    "input": ("input", None),
    "cached_input": ("cache", None),
    "output": ("output", None),
    **{f"input_{m}": ("input", m) for m in _MODALITIES},
    **{f"cached_input_{m}": ("cache", m) for m in _MODALITIES},
    **{f"output_{m}": ("output", m) for m in _MODALITIES},
}
_OVERRIDE_MODEL_KEYS = {*_OVERRIDE_PRICE_KEYS, "long_context", "priority_multiplier", "notes"}
_OVERRIDE_TOP_KEYS = {"version", "models", "notes"}


class _Override:
    __slots__ = ("priority_multiplier", "table")

    def __init__(self, table: _Table, priority_multiplier: float | None) -> None:
        self.table = table
        self.priority_multiplier = priority_multiplier


class _Overrides:
    __slots__ = ("file_name", "models", "version")

    def __init__(self, version: str, file_name: str, models: Mapping[str, _Override]) -> None:
        self.version = version
        self.file_name = file_name
        self.models = models


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_notes(path: str, where: str, value: Any) -> None:
    ok = isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )
    if not ok:
        raise PricesFileError(f"{path}: {where}: must be a string or a list of strings")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a price")


def _price_value(path: str, where: str, value: Any) -> float:
    # 0 <= value < inf: no NaN, no infinity, and no int too large for a float.
    if not _is_number(value) or not 0 <= value < math.inf or value > 1e300:
        raise PricesFileError(
            f"{path}: {where}: must be a non-negative number (USD per 1M tokens), got {value!r}"
        )
    return float(value)


def _unknown_keys(path: str, where: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise PricesFileError(
            f"{path}: {where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _override_prices(path: str, where: str, spec: Mapping[str, Any]) -> dict[str, float]:
    prices = {
        key: _price_value(path, f"{where}.{key}", value)
        for key, value in spec.items()
        if key in _OVERRIDE_PRICE_KEYS
    }
    return prices


def _parse_override(path: str, name: str, spec: Any) -> _Override:
    where = f"models.{name}"
    if not isinstance(spec, dict):
        raise PricesFileError(f"{path}: {where}: must be an object of prices")
    _unknown_keys(path, where, spec, _OVERRIDE_MODEL_KEYS)
    if "input" not in spec:
        raise PricesFileError(f"{path}: {where}: 'input' (USD per 1M tokens) is required")
    if "notes" in spec:
        _check_notes(path, f"{where}.notes", spec["notes"])
    base = _override_prices(path, where, spec)
    for key in base:
        if key.startswith("cached_input_") and "cached_input" not in base:
            raise PricesFileError(f"{path}: {where}.{key}: needs 'cached_input' as well")

    multiplier = spec.get("priority_multiplier")
    if multiplier is not None and (
        not _is_number(multiplier) or not 0 < multiplier <= 1e300
    ):
        raise PricesFileError(
            f"{path}: {where}.priority_multiplier: must be a number > 0, got {multiplier!r}"
        )

    slots: dict[str, tuple[str, str | None, Any]] = {
        key: (*_OVERRIDE_PRICE_KEYS[key], value) for key, value in base.items()
    }
    long_context = spec.get("long_context")
    if long_context is not None:
        lc_where = f"{where}.long_context"
        if not isinstance(long_context, dict):
            raise PricesFileError(f"{path}: {lc_where}: must be an object")
        _unknown_keys(path, lc_where, long_context, {*_OVERRIDE_PRICE_KEYS, "above_prompt_tokens"})
        above = long_context.get("above_prompt_tokens")
        if not isinstance(above, int) or isinstance(above, bool) or above < 0:
            raise PricesFileError(
                f"{path}: {lc_where}.above_prompt_tokens: must be an integer >= 0, got {above!r}"
            )
        high = _override_prices(path, lc_where, long_context)
        if not high:
            raise PricesFileError(f"{path}: {lc_where}: gives no prices")
        for key, price in high.items():
            if key.startswith("cached_input") and "cached_input" not in base:
                raise PricesFileError(f"{path}: {lc_where}.{key}: needs 'cached_input' as well")
            slot, modality = _OVERRIDE_PRICE_KEYS[key]
            low = base.get(key)
            if low is None:  # a long-context-only key: the plain rate below the cliff
                generic = {"input": "input", "cache": "cached_input", "output": "output"}[slot]
                low = base.get(generic, 0.0)
            slots[key] = (slot, modality, (low, ((above, price),)))
    return _Override(_table_from_prices(slots), None if multiplier is None else float(multiplier))


def _load_overrides(file: str | os.PathLike[str]) -> _Overrides:
    path = os.fspath(file)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PricesFileError(f"{path}: cannot read prices file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PricesFileError(f"{path}: prices file is not UTF-8 text: {exc}") from exc
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise PricesFileError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # NaN/Infinity; nested beyond the parser
        raise PricesFileError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PricesFileError(f"{path}: top level must be a JSON object")
    _unknown_keys(path, "top level", doc, _OVERRIDE_TOP_KEYS)
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise PricesFileError(f"{path}: 'version' must be a non-empty string")
    if "notes" in doc:
        _check_notes(path, "notes", doc["notes"])
    models = doc.get("models")
    if not isinstance(models, dict):
        raise PricesFileError(f"{path}: 'models' must be an object of model name -> prices")
    parsed: dict[str, _Override] = {}
    for raw_name, spec in models.items():
        name = _normalize(raw_name)
        if not name:
            raise PricesFileError(f"{path}: models: empty model name {raw_name!r}")
        if name in parsed:
            raise PricesFileError(f"{path}: models.{raw_name}: duplicates another entry ({name})")
        try:
            parsed[name] = _parse_override(path, raw_name, spec)
        except (OverflowError, RecursionError) as exc:  # a number or nesting beyond reason
            raise PricesFileError(f"{path}: models.{raw_name}: {exc}") from exc
    return _Overrides(version.strip(), Path(path).name, parsed)


# --- the price book ----------------------------------------------------------------------------


def _timestamp(at: datetime) -> float:
    if at.tzinfo is None:  # naive: UTC, as genai-prices reads it
        at = at.replace(tzinfo=_UTC)
    return at.timestamp()


def _version(genai_prices_version: str, extras: _Extras, overrides: _Overrides | None) -> str:
    version = f"genai-prices {genai_prices_version}; gemini-extras {extras.version}"
    if overrides is not None:
        version += f"; overrides {overrides.version} ({overrides.file_name})"
    return version


def _genai_prices() -> tuple[Any, str]:
    """genai-prices' data (its bundled snapshot, or one the application set) and version.

    The slow part of loading (~25 ms with bytecode cached, far more without): importing the
    package, and its data module building every provider's price objects. data_snapshot never
    fetches; genai-prices' auto-update (``UpdatePrices``) is never started.
    """
    import genai_prices
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot(), genai_prices.__version__


class PriceBook:
    """Resolves and caches per-model prices; ``cost()`` prices one call's Usage.

    A book loaded with ``background=True`` reads genai-prices in a daemon thread; everything
    that needs it (resolving a model not seen yet, ``prices_version``) waits for that thread,
    so an early call is priced as any other, only later. The loaded path never waits.
    """

    def __init__(
        self, snapshot: Any, extras: _Extras, overrides: _Overrides | None, version: str
    ) -> None:
        self._extras = extras
        self._overrides_file = overrides
        self._overrides = overrides.models if overrides is not None else {}
        self._entries: dict[str, _Entry] = {}
        self._traffic = {
            name: self._traffic_class(target) for name, target in extras.traffic_types.items()
        }
        self._standard = self._traffic_class("standard")
        self._tier_billed = extras.tiers_billed
        self._google: list[Any] = []
        self._version = ""
        self._loaded = threading.Event()
        self._loader_lock = threading.Lock()
        self._loader_pid = os.getpid()
        self._loader_thread: int | None = None
        self._wait_until = time.monotonic() + _LOAD_WAIT_SECONDS
        if snapshot is not None:
            self._use(snapshot, version)

    @classmethod
    def load(
        cls, overrides_file: str | os.PathLike[str] | None = None, *, background: bool = False
    ) -> PriceBook:
        """Load genai-prices' data (or a snapshot the application installed itself), our
        extras and, if given, a user prices file. Bad file: PricesFileError. No network.

        The files are read and checked here either way. With ``background``, genai-prices is
        read in a daemon thread and this returns at once (see the class docstring).
        """
        overrides = _load_overrides(overrides_file) if overrides_file is not None else None
        extras = _bundled_extras()
        if not background:
            snapshot, genai_prices_version = _genai_prices()
            return cls(
                snapshot, extras, overrides, _version(genai_prices_version, extras, overrides)
            )
        book = cls(None, extras, overrides, "")
        _LOADING.add(book)
        loader = threading.Thread(target=book._load, name="otel-gemini-prices", daemon=True)
        loader.start()
        book._loader_thread = loader.ident
        return book

    def _load(self) -> None:
        with self._loader_lock:
            if self._loaded.is_set():
                return
            try:
                snapshot, genai_prices_version = _genai_prices()
            except Exception:
                # Not fatal to the user's calls: models in a prices file are still priced.
                _logger.warning(
                    "opentelemetry-instrumentation-gemini: cannot load genai-prices; only models "
                    "in a prices file will be priced",
                    exc_info=True,
                )
                snapshot, genai_prices_version = None, "unavailable"
            self._use(snapshot, _version(genai_prices_version, self._extras, self._overrides_file))
        _LOADING.discard(self)

    def _use(self, snapshot: Any, version: str) -> None:
        providers = snapshot.providers if snapshot is not None else ()
        self._google = [
            m for p in providers if p.id == "google" for m in p.models if m.id[:6] != "claude"
        ]
        self._version = version
        self._loaded.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until genai-prices is loaded (at once for a book loaded in the foreground);
        False if ``timeout`` (default: what is left of the load budget, _LOAD_WAIT_SECONDS
        from loading) ran out first. Never waits on the loader thread from that thread."""
        if self._loaded.is_set():
            return True
        if self._loader_pid != os.getpid():
            # Forked while loading (see _before_fork): the thread stayed in the parent.
            self._loader_pid = os.getpid()
            self._load()
            return self._loaded.is_set()
        if threading.get_ident() == self._loader_thread:
            return False
        if timeout is None:
            timeout = max(0.0, self._wait_until - time.monotonic())
        return self._loaded.wait(timeout)

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    @property
    def prices_version(self) -> str:
        """What the prices come from: genai-prices' version, our extras', the user file's."""
        self.wait()
        return self._version

    def can_price(self, model: str) -> bool:
        """Whether ``cost()`` would price ``model`` now."""
        return self._entry(model, time.time()).tables is not None

    def cost(
        self,
        model: str,
        usage: Usage,
        *,
        tier: str | None = None,
        traffic_type: str | None = None,
        at: datetime | None = None,
    ) -> CostBreakdown | None:
        """Price one call. None when the model cannot be priced.

        ``tier``: "free" bills 0 (the list figure stays); anything else bills pay-as-you-go.
        ``traffic_type``: usageMetadata.trafficType (defaults to ``usage.traffic_type``), or
        "batch". ``at``: request time (default now; naive means UTC) for date-bounded prices.
        """
        ts = time.time() if at is None else _timestamp(at)
        entry = self._entries.get(model)
        if entry is None or not entry.start <= ts < entry.end:
            entry = self._entry(model, ts)
        tables = entry.tables
        if tables is None:
            return None
        if traffic_type is None:
            traffic_type = usage.traffic_type
        traffic = self._standard if traffic_type is None else self._traffic.get(traffic_type)
        if traffic is None:
            traffic = self._standard
        table = tables[traffic.table]

        prompt = usage.prompt_tokens
        cached = usage.cached_tokens
        if cached > prompt:
            cached = prompt
        tool = usage.tool_use_prompt_tokens
        output = usage.candidates_tokens + usage.thoughts_tokens
        unaccounted = usage.total_tokens - prompt - tool - output
        if unaccounted > 0:
            output += unaccounted

        # The cliff is decided as genai-prices decides it for Google: on its input_tokens, i.e.
        # promptTokenCount (cached included) + toolUsePromptTokenCount, strictly above.
        band = table.bands[0]
        if table.thresholds:
            n_input = prompt + tool
            i = 0
            for threshold in table.thresholds:
                if n_input > threshold:
                    i += 1
            band = table.bands[i]

        rate_in = band.input
        in_mod = band.input_by_modality
        rate_cached = band.cached
        prompt_mod = usage.prompt_by_modality
        cached_mod = usage.cached_by_modality if rate_cached is not None else _NO_COUNTS
        fresh = prompt - cached if rate_cached is not None else prompt

        # Prompt tokens not read from cache; priced per modality where the model has a rate
        # (most prompts are text only, and text has none of its own: no loop then).
        if in_mod and prompt_mod and not in_mod.keys().isdisjoint(prompt_mod):
            input_usd = 0.0
            counted = 0
            for modality, n in prompt_mod.items():
                rate = in_mod.get(modality)
                if rate is not None:
                    n -= cached_mod.get(modality, 0)
                    if n > 0:
                        input_usd += n * rate
                        counted += n
            if fresh > counted:
                input_usd += (fresh - counted) * rate_in
        else:
            input_usd = fresh * rate_in

        cached_usd = 0.0
        if rate_cached is not None and cached:
            cache_mod = band.cached_by_modality
            if cache_mod and cached_mod:
                counted = 0
                for modality, n in cached_mod.items():
                    rate = cache_mod.get(modality)
                    if rate is not None:
                        cached_usd += n * rate
                        counted += n
                if cached > counted:
                    cached_usd += (cached - counted) * rate_cached
            else:
                cached_usd = cached * rate_cached

        tool_usd = 0.0
        if tool:
            tool_mod = usage.tool_use_by_modality
            if in_mod and tool_mod:
                counted = 0
                for modality, n in tool_mod.items():
                    rate = in_mod.get(modality)
                    if rate is not None:
                        tool_usd += n * rate
                        counted += n
                if tool > counted:
                    tool_usd += (tool - counted) * rate_in
            else:
                tool_usd = tool * rate_in

        out_mod = band.output_by_modality
        cand_mod = usage.candidates_by_modality
        if out_mod and cand_mod:
            output_usd = 0.0
            counted = 0
            for modality, n in cand_mod.items():
                rate = out_mod.get(modality)
                if rate is not None:
                    output_usd += n * rate
                    counted += n
            if output > counted:
                output_usd += (output - counted) * band.output
        else:
            output_usd = output * band.output

        return CostBreakdown(
            input_usd,
            cached_usd,
            output_usd,
            tool_usd,
            traffic.billed and self._tier_billed.get(tier, True),
            self._version,  # set: an entry exists only once prices are loaded (_resolve)
            (band, prompt_mod, cached_mod) if prompt_mod or cached_mod else None,
        )

    # --- slow path: resolve once per model and validity window --------------------------------

    def _traffic_class(self, name: str) -> _TrafficClass:
        spec = self._extras.classes[name]
        return _TrafficClass(spec.get("price_as", name), bool(spec.get("billed", True)))

    def _entry(self, model: str, ts: float) -> _Entry:
        entry = self._entries.get(model)
        if entry is not None and entry.start <= ts < entry.end:
            return entry
        entry = self._resolve(model, ts)
        if entry is _NOT_LOADED:
            return entry
        if len(self._entries) >= _CACHE_LIMIT:
            self._entries.clear()
        self._entries[model] = entry
        return entry

    def _resolve(self, model: str, ts: float) -> _Entry:
        if not self._loaded.is_set() and not self.wait():
            return _NOT_LOADED
        if not isinstance(model, str):
            return _UNPRICED
        name = _normalize(model)
        candidates = _candidates(name)
        for cand in candidates:
            if cand in self._overrides:
                return self._override_entry(cand, self._overrides[cand])
        found = self._find(candidates)
        if found is None:
            return _UNPRICED
        if found.id in self._overrides:
            return self._override_entry(found.id, self._overrides[found.id])
        return self._genai_prices_entry(found, ts)

    def _find(self, candidates: list[str]) -> Any:
        for cand in candidates:
            best, best_score = None, 0
            for info in self._google:
                score = _clause_score(info.match, cand, info.id)
                if score > best_score:
                    best, best_score = info, score
            if best is not None:
                return best
        return None

    def _tables(self, standard: _Table, name: str, priority: float | None = None) -> dict:
        tables = {}
        for cls_name, spec in self._extras.classes.items():
            if "price_as" in spec:
                continue
            factor = spec.get("multiplier", 1.0)
            if factor == "per_model":
                factor = priority or self._extras.priority_multiplier(name)
            tables[cls_name] = standard.scaled(
                float(factor), cached_too=bool(spec.get("applies_to_cached_input", True))
            )
        return tables

    def _override_entry(self, name: str, override: _Override) -> _Entry:
        return _Entry(-_INF, _INF, self._tables(override.table, name, override.priority_multiplier))

    def _genai_prices_entry(self, info: Any, ts: float) -> _Entry:
        start, end = _validity(info, ts)
        at = datetime.fromtimestamp(ts, _UTC)
        try:
            tables = self._tables(_table_from_model_price(info.get_prices(at)), info.id)
            # A genai-prices price variant for this traffic class, where one is active, wins
            # over our multiplier (e.g. its batch rates from 2026-10-14, TTS flex/priority).
            for cls_name, spec in self._extras.classes.items():
                context = spec.get("genai_prices_context")
                if context and _variant_active(info, context, at):
                    tables[cls_name] = _table_from_model_price(info.get_prices(at, context))
        except _Unpriceable:
            return _Entry(start, end, None)
        return _Entry(start, end, tables)


# Books whose genai-prices thread is still running. A fork copies the import locks that thread
# may hold, but not the thread, so a child could hang on its first import of genai-prices: the
# parent waits for its loaders before forking (bounded: a loader stuck behind an import the
# forking thread is in the middle of must not hang the fork), and a child forked mid-load gets
# fresh locks and loads for itself on first use (PriceBook.wait).
_LOADING: set[PriceBook] = set()


def _before_fork() -> None:
    deadline = time.monotonic() + _FORK_WAIT_SECONDS
    for book in list(_LOADING):
        book._loaded.wait(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    for book in list(_LOADING):
        if not book._loaded.is_set():
            book._loaded = threading.Event()
            book._loader_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _main() -> None:  # pragma: no cover - a timing print for humans: python -m ...pricing
    from .usage import Usage

    book = PriceBook.load()
    usage = Usage(
        prompt_tokens=12_000,
        cached_tokens=4_000,
        candidates_tokens=800,
        thoughts_tokens=1_200,
        total_tokens=14_000,
        prompt_by_modality={"text": 11_000, "audio": 1_000},
    )
    for model in ("gemini-2.5-flash", "models/gemini-2.5-pro", "gemini-3-flash-preview"):
        book.cost(model, usage)
        n = 200_000
        t0 = time.perf_counter()
        for _ in range(n):
            book.cost(model, usage)
        per_call = (time.perf_counter() - t0) / n * 1e6
        print(f"{model:28s} {per_call:6.2f} us/call  {book.cost(model, usage)}")
    import genai_prices

    gp_usage = genai_prices.Usage(input_tokens=12_000, cache_read_tokens=4_000, output_tokens=2_000)
    t0 = time.perf_counter()
    for _ in range(2_000):
        genai_prices.calc_price(gp_usage, "gemini-2.5-flash", provider_id="google")
    print(f"genai_prices.calc_price     {(time.perf_counter() - t0) / 2_000 * 1e6:6.2f} us/call")


if __name__ == "__main__":  # pragma: no cover
    _main()
