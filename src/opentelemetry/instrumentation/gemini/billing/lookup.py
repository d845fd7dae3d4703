"""Which genai-prices model a name means (aliases, version suffixes, dated variants), and when
its prices hold. Pure functions over genai-prices' data objects."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from typing import Any

_INF = math.inf
_UTC = timezone.utc

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
