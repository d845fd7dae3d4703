"""Per-model, per-tier Gemini API rate limits, loaded from dated data.

The table lives in ``data/limits.json`` (source URL, checked date and notes beside the numbers).
Limits change without notice, so a user can override any field per model and tier, from a JSON
file or a mapping, without touching code. ``None`` always means "no published limit" (the
page's ``*``), never zero.

``LimitTable.lookup`` sits on the hot path (once per call): after the first call for a given
(model, tier) it is one dict hit.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from ..bounds import bounded_message, read_user_file

TIERS: Final = ("free", "tier_1", "tier_2", "tier_3")
FIELDS: Final = ("rpm", "tpm", "rpd", "batch_enqueued_tokens")
# Fields a tier may lack in our data (null when absent): concurrent Live API sessions, which
# the data file keeps per family beside "limits" ("live_sessions": {tier: n}).
OPTIONAL_FIELDS: Final = ("live_sessions",)
_ALL_FIELDS: Final = FIELDS + OPTIONAL_FIELDS

_DATA_PACKAGE: Final = __name__.rpartition(".")[0]  # this package: data/ sits beside us
_DATA_DIR: Final = "data"
_DATA_NAME: Final = "limits.json"
_DATA_FILE: Final = f"{_DATA_DIR}/{_DATA_NAME}"
# Keys that may sit beside the numbers of one tier (our file documents changes in place).
_TIER_EXTRA_KEYS: Final = frozenset({"note"})
_OVERRIDE_FILE_KEYS: Final = frozenset(
    {"version", "models", "checked", "source", "notes", "spend_limit_10m_usd"}
)
# Stop memoising model names past this many distinct ones (junk names must not grow memory).
_CACHE_MAX: Final = 4096
_INT64_MAX: Final = 2**63 - 1  # what a gauge can export
# A dash-separated part of a version suffix: 001, 09, 2025, preview, exp, latest, it, 27b, e4b.
_VERSION_PART: Final = re.compile(r"\d+|preview|exp|latest|it|e?\d+b")


class LimitsFileError(ValueError):
    """The limits data or a user override is unreadable or malformed."""

    def __init__(self, message: str) -> None:
        # Bounded: the message repeats the path and names from the file, and is logged.
        super().__init__(bounded_message(message))


@dataclass(frozen=True, slots=True)
class TierLimits:
    """Limits of one model family in one tier; ``None`` = no published limit."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    batch_enqueued_tokens: int | None = None
    live_sessions: int | None = None  # concurrent Live API sessions


def normalize_model(model: str) -> str:
    """``models/x``, ``publishers/google/models/x`` and full Vertex resource names -> ``x``."""
    name = model.strip().lower()
    if "/" in name:
        head, _, tail = name.rpartition("/")
        if head == "models" or head.endswith("/models"):
            name = tail
    return name


def _is_version_suffix(suffix: str) -> bool:
    return all(_VERSION_PART.fullmatch(part) for part in suffix.split("-"))


def _check_limit(value: Any, where: str) -> int | None:
    if value is None or value == "*":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
        raise LimitsFileError(
            f"{where}: expected a non-negative integer below 2**63, null or '*', got {value!r}"
        )
    return value


def _check_tier(tier: Any, where: str) -> str:
    if tier not in TIERS:
        raise LimitsFileError(f"{where}: unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
    return tier


def _fields(raw: Any, where: str, *, complete: bool) -> dict[str, int | None]:
    """Validate one tier's mapping of limit fields; ``complete`` demands all four."""
    if not isinstance(raw, Mapping):
        raise LimitsFileError(f"{where}: expected an object of {', '.join(FIELDS)}, got {raw!r}")
    out: dict[str, int | None] = {}
    for key, value in raw.items():
        if key in _TIER_EXTRA_KEYS:
            continue
        if key not in _ALL_FIELDS:
            raise LimitsFileError(
                f"{where}: unknown field {key!r}; expected one of {', '.join(_ALL_FIELDS)}"
            )
        out[key] = _check_limit(value, f"{where}.{key}")
    if complete and not all(f in out for f in FIELDS):
        missing = [f for f in FIELDS if f not in out]
        raise LimitsFileError(f"{where}: missing {', '.join(missing)} (use null for '*')")
    return out


@cache
def _packaged() -> dict[str, Any]:
    """Our data file, parsed once per process (callers must not mutate it)."""
    ref = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR).joinpath(_DATA_NAME)
    try:
        data = json.loads(ref.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LimitsFileError(f"cannot read packaged {_DATA_FILE}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("families"), dict):
        raise LimitsFileError(f"packaged {_DATA_FILE}: no 'families' object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number limits can take")


def _read_overrides_file(path: str | os.PathLike[str]) -> tuple[str | None, Any, Any]:
    """Return (version, models mapping, spend limits) from a user's overrides file."""
    shown = os.fspath(path)
    try:
        data = json.loads(read_user_file(path), parse_constant=_no_constant)
    except FileNotFoundError:
        raise LimitsFileError(f"limits overrides file {shown!r} not found") from None
    except OSError as exc:
        raise LimitsFileError(
            f"cannot read limits overrides file {shown!r}: {exc.strerror or exc}"
        ) from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: nested beyond the parser
        raise LimitsFileError(f"limits overrides file {shown!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise LimitsFileError(
            f"limits overrides file {shown!r}: expected a JSON object "
            '{model: {tier: {"rpm": ...}}} or {"version": ..., "models": {...}}'
        )
    if "models" not in data and "version" not in data:
        return None, data, None
    unknown = sorted(set(data) - _OVERRIDE_FILE_KEYS)
    if unknown:
        raise LimitsFileError(
            f"limits overrides file {shown!r}: unknown top-level key(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(_OVERRIDE_FILE_KEYS))}"
        )
    version = data.get("version")
    if version is not None and not isinstance(version, str):
        raise LimitsFileError(f"limits overrides file {shown!r}: 'version' must be a string")
    return version, data.get("models", {}), data.get("spend_limit_10m_usd")


class LimitTable:
    """Model family x tier -> TierLimits, plus the per-project rolling 10-minute spend limit."""

    __slots__ = (
        "_by_tier",
        "_families",
        "_family_cache",
        "_match",
        "_spend",
        "checked",
        "source",
        "version",
    )

    def __init__(
        self,
        *,
        version: str,
        checked: str,
        source: str,
        families: Mapping[str, Mapping[str, TierLimits]],
        match: Mapping[str, str],
        spend_limit_10m: Mapping[str, float],
    ) -> None:
        self.version = version
        self.checked = checked
        self.source = source
        self._families = {fam: dict(tiers) for fam, tiers in families.items()}
        self._match = dict(match)
        self._spend = dict(spend_limit_10m)
        self._family_cache: dict[str, str | None] = {}
        self._by_tier: dict[str, dict[str, TierLimits | None]] = {tier: {} for tier in TIERS}

    # --- construction -------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        overrides_file: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Mapping[str, Mapping[str, int | None]]] | None = None,
    ) -> LimitTable:
        """Our packaged table, then the file's overrides, then ``overrides`` (last wins).

        Overrides are ``{model: {tier: {"rpm": 5, "tpm": ..., "rpd": ...}}}``; a field given
        replaces ours, the others are kept. A model key naming one of our families edits that
        family; any other key becomes a new, more specific row that starts from the limits its
        name maps to today. ``null`` or ``"*"`` = no published limit.
        """
        data = _packaged()
        families: dict[str, dict[str, TierLimits]] = {}
        match: dict[str, str] = {}
        for fam, entry in data["families"].items():
            where = f"{_DATA_FILE}: families[{fam!r}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("limits"), Mapping):
                raise LimitsFileError(f"{where}: no 'limits' object")
            families[fam] = {
                _check_tier(tier, where): TierLimits(
                    **_fields(raw, f"{where}.{tier}", complete=True),
                    **_live_sessions(entry, tier, where),
                )
                for tier, raw in entry["limits"].items()
            }
            for model_id in entry.get("match") or (fam,):
                match[normalize_model(model_id)] = fam
        spend_raw = data.get("spend_limit_10m_usd", {}).get("limits", {})
        spend = {_check_tier(t, "spend_limit_10m_usd"): float(v) for t, v in spend_raw.items()}
        version = str(data["version"])

        layers: list[tuple[str, Any]] = []
        if overrides_file is not None:
            file_version, models, spend_over = _read_overrides_file(overrides_file)
            shown = f"limits overrides file {os.fspath(overrides_file)!r}"
            layers.append((shown, models))
            if spend_over is not None:
                _apply_spend(spend, spend_over, shown)
            version += f"+{file_version or 'file'}"
        if overrides is not None:
            layers.append(("overrides", overrides))
            version += "+overrides"
        for origin, models in layers:
            _apply_overrides(families, match, models, origin)

        return cls(
            version=version,
            checked=str(data["checked"]),
            source=str(data["source"]),
            families=families,
            match=match,
            spend_limit_10m=spend,
        )

    # --- queries ------------------------------------------------------------------------
    def family(self, model: str) -> str | None:
        """The table row a model id or version maps to, or None when unknown."""
        try:
            return self._family_cache[model]
        except KeyError:
            pass
        fam = _resolve(self._match, model) if isinstance(model, str) else None
        if len(self._family_cache) < _CACHE_MAX:
            self._family_cache[model] = fam
        return fam

    def lookup(self, model: str, tier: str | None) -> TierLimits | None:
        """Limits of ``model`` in ``tier``; None when the tier or model is unknown/untabled."""
        memo = self._by_tier.get(tier) if tier is not None else None
        if memo is None:
            return None
        try:
            return memo[model]
        except KeyError:
            pass
        fam = self.family(model)
        limits = self._families[fam].get(tier) if fam is not None else None
        if len(memo) < _CACHE_MAX:
            memo[model] = limits
        return limits

    def spend_limit_10m(self, tier: str | None) -> float | None:
        """Per-project spend limit (USD) over a rolling 10 minutes; None for free/unknown."""
        return self._spend.get(tier) if tier is not None else None

    def rows(self) -> Iterable[tuple[str, str, TierLimits]]:
        """(family, tier, limits) for every tabled pair, e.g. to export limit gauges."""
        return list(self._iter_rows())

    def _iter_rows(self) -> Iterator[tuple[str, str, TierLimits]]:
        for fam, tiers in self._families.items():
            for tier in TIERS:
                limits = tiers.get(tier)
                if limits is not None:
                    yield fam, tier, limits

    def __repr__(self) -> str:
        return f"LimitTable(version={self.version!r}, families={len(self._families)})"


def _resolve(match: Mapping[str, str], model: str) -> str | None:
    """Longest match id equal to the name, or to the name minus a version-like suffix."""
    name = normalize_model(model)
    if not name:
        return None
    fam = match.get(name)
    if fam is not None:
        return fam
    cut = len(name)
    while (cut := name.rfind("-", 0, cut)) > 0:
        fam = match.get(name[:cut])
        if fam is not None and _is_version_suffix(name[cut + 1 :]):
            return fam
    return None


def _apply_overrides(
    families: dict[str, dict[str, TierLimits]],
    match: dict[str, str],
    models: Any,
    origin: str,
) -> None:
    if not isinstance(models, Mapping):
        raise LimitsFileError(f"{origin}: expected {{model: {{tier: {{field: value}}}}}}")
    for model, tiers in models.items():
        where = f"{origin}: [{model!r}]"
        if not isinstance(model, str) or not normalize_model(model):
            raise LimitsFileError(f"{where}: model names must be non-empty strings")
        if not isinstance(tiers, Mapping):
            raise LimitsFileError(f"{where}: expected {{tier: {{field: value}}}}, got {tiers!r}")
        fam = normalize_model(model)
        if fam not in families:
            # A new, more specific row (it wins the longest match), starting from the limits
            # this name maps to today; rows it shares a family with are left alone.
            base = _resolve(match, fam)
            families[fam] = dict(families[base]) if base is not None else {}
            match[fam] = fam
        row = families[fam]
        for tier, raw in tiers.items():
            _check_tier(tier, where)
            given = _fields(raw, f"{where}[{tier!r}]", complete=False)
            current = row.get(tier, TierLimits())
            row[tier] = TierLimits(**{f: given.get(f, getattr(current, f)) for f in _ALL_FIELDS})


def _live_sessions(entry: Mapping[str, Any], tier: str, where: str) -> dict[str, int | None]:
    """A family's concurrent Live session limit in ``tier`` ("live_sessions": {tier: n})."""
    sessions = entry.get("live_sessions")
    if sessions is None:
        return {}
    if not isinstance(sessions, Mapping):
        raise LimitsFileError(f"{where}.live_sessions: expected {{tier: n}}, got {sessions!r}")
    return {"live_sessions": _check_limit(sessions.get(tier), f"{where}.live_sessions.{tier}")}


# A 10-minute spend limit is exported as the denominator of a utilization gauge: one below a
# micro-dollar (5e-324 was accepted) made any spend's ratio inf, and an integer beyond a float
# (10**400) raised OverflowError instead of LimitsFileError.
_MIN_SPEND: Final = 1e-6
_MAX_SPEND: Final = 1e15


def _apply_spend(spend: dict[str, float], raw: Any, origin: str) -> None:
    where = f"{origin}: spend_limit_10m_usd"
    if not isinstance(raw, Mapping):
        raise LimitsFileError(f"{where}: expected {{tier: USD}}")
    for tier, value in raw.items():
        _check_tier(tier, where)
        if value is None:
            spend.pop(tier, None)
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (value == 0 or _MIN_SPEND <= value <= _MAX_SPEND)  # NaN fails both
        ):
            raise LimitsFileError(
                f"{where}[{tier!r}]: expected a non-negative number (USD: 0, or from "
                f"{_MIN_SPEND:g} to {_MAX_SPEND:g}) or null"
            )
        else:
            spend[tier] = float(value)
