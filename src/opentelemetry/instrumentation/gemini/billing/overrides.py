"""A user's prices file (negotiated rates, newer models): parsed and checked in full at load,
any problem raised as PricesFileError naming the file and the entry. The format is documented in
book.py's module docstring and README."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from ..bounds import (
    MAX_NAME,
    bounded_message,
    encodable,
    has_secret,
    read_user_file,
    shown,
)
from .lookup import _normalize
from .tables import _MODALITIES, _Table, _table_from_prices


class PricesFileError(ValueError):
    """A prices file (user overrides or our bundled extras) cannot be used."""

    def __init__(self, message: str) -> None:
        # Bounded: the message repeats the path and names from the file, and is logged.
        super().__init__(bounded_message(message))


# The cost components, named as gcp.gemini.cost's component attribute, in CostBreakdown's order.

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


# Bounds on a price and on a multiplier, far above any real one (Gemini's are cents to tens of
# dollars per 1M tokens, priority below 2x), low enough that no cost can overflow: at most
# MAX_PRICE * MAX_MULTIPLIER * 2**53 tokens / 1M per component, ~1e22 USD. A price of 1e300
# with a long call or a priority multiplier made a cost of inf, exported on the span and added
# to the cost counter, which then read inf for the life of the process.
MAX_PRICE: Final = 1e9
MAX_MULTIPLIER: Final = 1e3


def _price_value(path: str, where: str, value: Any) -> float:
    # 0 <= value <= MAX_PRICE: no NaN, no infinity, and no int too large for a float.
    if not _is_number(value) or not 0 <= value <= MAX_PRICE:
        raise PricesFileError(
            f"{path}: {where}: must be a non-negative number (USD per 1M tokens) up to "
            f"{MAX_PRICE:,.0f}, got {shown(value)}"
        )
    return float(value) + 0.0  # -0.0 as 0.0: a cost is never exported as "-0"


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
        not _is_number(multiplier) or not 0 < multiplier <= MAX_MULTIPLIER
    ):
        raise PricesFileError(
            f"{path}: {where}.priority_multiplier: must be a number > 0 up to "
            f"{MAX_MULTIPLIER:g}, got {shown(multiplier)}"
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
        text = read_user_file(path)
    except OSError as exc:
        raise PricesFileError(f"{path}: cannot read prices file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PricesFileError(f"{path}: prices file is not UTF-8 text: {exc}") from exc
    except ValueError as exc:  # a path with a NUL byte (open() raises ValueError, not OSError)
        raise PricesFileError(f"{path}: cannot read prices file: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PricesFileError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except ValueError as exc:  # an integer of over 4,300 digits: int() refuses to parse it
        raise PricesFileError(f"{path}: invalid JSON: {exc}") from exc
    except RecursionError as exc:  # nested beyond the parser (NaN/Infinity: _price_value)
        raise PricesFileError(f"{path}: invalid JSON: nested too deeply") from exc
    if not isinstance(doc, dict):
        raise PricesFileError(f"{path}: top level must be a JSON object")
    _unknown_keys(path, "top level", doc, _OVERRIDE_TOP_KEYS)
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise PricesFileError(f"{path}: 'version' must be a non-empty string")
    # The version goes on every span (gcp.gemini.cost.prices_version): a name, not a document;
    # text OTLP can encode (a lone surrogate fails the export of a whole batch of spans), and
    # never a key.
    if len(version) > MAX_NAME or encodable(version) != version or has_secret(version):
        raise PricesFileError(
            f"{path}: 'version' must be at most {MAX_NAME} characters of text, "
            f"with no API key, got {shown(version)}"
        )
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
    # The file's name goes on every span too: a name read with surrogateescape (not UTF-8
    # on disk) must not fail the export.
    return _Overrides(version.strip(), encodable(Path(path).name), parsed)
