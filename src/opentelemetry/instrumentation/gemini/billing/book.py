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

import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .extras import _bundled_extras, _Extras, cache_storage_cost, grounding_cost
from .lookup import _candidates, _clause_score, _normalize, _validity, _variant_active
from .overrides import PricesFileError, _load_overrides, _Override, _Overrides
from .tables import (
    _NOT_LOADED,
    _UNPRICED,
    _Band,
    _Entry,
    _Table,
    _table_from_model_price,
    _TrafficClass,
    _Unpriceable,
)

if TYPE_CHECKING:
    from ..record.usage import Usage

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

    units: tuple[tuple[int, float], ...] = ()  # token costs have no unit-priced part (units.py)

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
    from ..record.usage import Usage

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
