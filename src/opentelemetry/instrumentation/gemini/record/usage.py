"""One usage record per call, built by a pure function from the SDK's usage metadata.

Span attributes, token metrics, cost and quota windows all read this one record, so they can
never disagree about how many tokens a call used.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..bounds import MAX_COUNT, count

_EMPTY: dict[str, int] = {}
# Modalities are a handful of short names; each becomes a span attribute key, so an answer (or
# a batch's thousands) naming made-up ones must not grow them: Google's are always kept, other
# names (see modality_key) while fewer than _MAX_MODALITIES are. Their tokens are priced at the
# base rate.
_MAX_MODALITIES = 8


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 us a call; never mutated
class Usage:
    """Token counts of one call as Gemini reports them (usageMetadata).

    ``prompt_tokens`` includes ``cached_tokens`` (Gemini's convention); tool-use prompt tokens are
    counted separately. Per-modality maps are keyed by lower-case modality: text, image, audio,
    video, document.
    """

    prompt_tokens: int = 0
    cached_tokens: int = 0
    candidates_tokens: int = 0
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    total_tokens: int = 0
    traffic_type: str | None = None
    prompt_by_modality: dict[str, int] = field(default_factory=dict)
    cached_by_modality: dict[str, int] = field(default_factory=dict)
    candidates_by_modality: dict[str, int] = field(default_factory=dict)
    tool_use_by_modality: dict[str, int] = field(default_factory=dict)

    @property
    def input_tokens(self) -> int:
        """Semconv input tokens: everything Gemini read, tool-use prompt included."""
        return self.prompt_tokens + self.tool_use_prompt_tokens

    @property
    def output_tokens(self) -> int:
        """Semconv output tokens: candidates plus thinking, which Google bills as output."""
        return self.candidates_tokens + self.thoughts_tokens


def enum_text(value: Any) -> str | None:
    if value is None:
        return None
    text = getattr(value, "value", value)
    return text if isinstance(text, str) else None


_MAX_ENUM = 32  # the longest enum-like name we copy from an answer


def enum_name(value: Any) -> str | None:
    """An enum-like name an answer sends (a traffic type, a service tier, a status, a
    modality): its text when it is a short name of letters and underscores, else None. The
    SDK passes unknown enum values through as they came, so a hostile answer's 1 MB string, or
    one repeating the API key, would otherwise become a span attribute (or a key of one)."""
    text = enum_text(value)
    if text is None or not 0 < len(text) <= _MAX_ENUM or not text.replace("_", "").isalpha():
        return None
    return text


# The modalities the SDK knows, as our attribute keys name them: one dict lookup a detail (the
# SDK's modalities are str enums, hashed and compared as their text).
_MODALITY_KEYS = {
    m: m.lower() for m in ("TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT", "MODALITY_UNSPECIFIED")
}
_MODALITIES = frozenset(_MODALITY_KEYS.values())


def modality_key(modality: Any) -> str | None:
    """A modality as a per-modality attribute names it (``text``); None if it is no name."""
    key = _MODALITY_KEYS.get(modality) if isinstance(modality, str) else None
    return key if key is not None else _other_modality(modality)


def _other_modality(modality: Any) -> str | None:
    """A modality that is not Google's, if it is a name at all."""
    text = enum_name(modality)
    return text.lower() if text is not None else None


def _admit(out: dict[str, int], key: str, n: int) -> None:
    """Add ``n`` tokens of modality ``key``: summed, clamped; a name not Google's is a new
    attribute key only while fewer than _MAX_MODALITIES are held."""
    if key in out:
        out[key] = _capped(out[key] + n)
    elif key in _MODALITIES or len(out) < _MAX_MODALITIES:
        out[key] = n


def by_modality(details: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in details:
        modality = getattr(item, "modality", None)
        n = getattr(item, "token_count", None)
        if type(n) is not int or not 0 < n <= MAX_COUNT:
            n = count(n)
            if not n:
                continue
        # Google's modalities (always admitted) in one lookup, without a call: this runs on
        # every answer.
        key = _MODALITY_KEYS.get(modality) if isinstance(modality, str) else None
        if key is not None:
            out[key] = _capped(out[key] + n) if key in out else n
        else:
            key = _other_modality(modality)
            if key is not None:
                _admit(out, key, n)
    return out


# usageMetadata's counts, in Usage's field order; anything but a positive int reads as 0.
_COUNT_FIELDS = (
    "prompt_token_count",
    "cached_content_token_count",
    "candidates_token_count",
    "thoughts_token_count",
    "tool_use_prompt_token_count",
    "total_token_count",
)
# Its per-modality lists, in Usage's field order.
_DETAIL_FIELDS = (
    "prompt_tokens_details",
    "cache_tokens_details",
    "candidates_tokens_details",
    "tool_use_prompt_tokens_details",
)


def usage_reader(
    count_fields: tuple[str, ...], detail_fields: tuple[str, ...]
) -> Callable[[Any], Usage | None]:
    """A reader of usage metadata whose fields have these names (in Usage's field order: the
    six counts, then the four per-modality lists). generate_content's and the Live API's
    metadata differ only in the output's names (``candidates_*`` / ``response_*``)."""
    read_counts = operator.attrgetter(*count_fields)
    read_details = operator.attrgetter(*detail_fields)
    limit = MAX_COUNT

    def read(meta: Any) -> Usage | None:
        """Returns None when there is no metadata at all, so callers can tell "no usage
        reported" from "zero tokens". Runs once per call: the SDK's fields are read in one C
        call each and checked inline (comprehensions and helpers would each be a Python call).
        """
        if meta is None:
            return None
        try:
            counts, details = read_counts(meta), read_details(meta)
            traffic = meta.traffic_type
        except AttributeError:  # a look-alike without every field
            counts = tuple(getattr(meta, name, None) for name in count_fields)
            details = tuple(getattr(meta, name, None) for name in detail_fields)
            traffic = getattr(meta, "traffic_type", None)
        prompt, cached, candidates, thoughts, tool_use, total = counts
        prompt_d, cached_d, candidates_d, tool_use_d = details
        # A positive int up to MAX_COUNT as it is; None and 0 (most fields of most answers) as
        # 0 without a call; anything else (a float, a mock, beyond MAX_COUNT) through count().
        return Usage(
            (
                prompt
                if type(prompt) is int and 0 < prompt <= limit
                else count(prompt)
                if prompt
                else 0
            ),
            (
                cached
                if type(cached) is int and 0 < cached <= limit
                else count(cached)
                if cached
                else 0
            ),
            (
                candidates
                if type(candidates) is int and 0 < candidates <= limit
                else count(candidates)
                if candidates
                else 0
            ),
            (
                thoughts
                if type(thoughts) is int and 0 < thoughts <= limit
                else count(thoughts)
                if thoughts
                else 0
            ),
            (
                tool_use
                if type(tool_use) is int and 0 < tool_use <= limit
                else count(tool_use)
                if tool_use
                else 0
            ),
            (total if type(total) is int and 0 < total <= limit else count(total) if total else 0),
            None if traffic is None else enum_name(traffic),
            by_modality(prompt_d) if prompt_d else _EMPTY,
            by_modality(cached_d) if cached_d else _EMPTY,
            by_modality(candidates_d) if candidates_d else _EMPTY,
            by_modality(tool_use_d) if tool_use_d else _EMPTY,
        )

    return read


# ``GenerateContentResponseUsageMetadata`` (or any look-alike) -> Usage.
usage_from_metadata = usage_reader(_COUNT_FIELDS, _DETAIL_FIELDS)


def _capped(total: int) -> int:
    """A sum of counts, clamped as one count is (MAX_COUNT, one warning): each count is at most
    MAX_COUNT, but a Live session's thousand turns would sum beyond int64, which a span
    attribute cannot carry to OTLP."""
    return total if total <= MAX_COUNT else count(total)


def _merge(maps: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in maps:
        for key, n in counts.items():
            _admit(out, key, n)
    return out


def sum_usages(usages: list[Usage]) -> Usage:
    """One call's usage when it made several billed requests (automatic function calling
    rounds, continuation hops, a Live session's turns): each request is billed on its own, so
    counts add up (clamped at MAX_COUNT)."""
    return Usage(
        prompt_tokens=_capped(sum(u.prompt_tokens for u in usages)),
        cached_tokens=_capped(sum(u.cached_tokens for u in usages)),
        candidates_tokens=_capped(sum(u.candidates_tokens for u in usages)),
        thoughts_tokens=_capped(sum(u.thoughts_tokens for u in usages)),
        tool_use_prompt_tokens=_capped(sum(u.tool_use_prompt_tokens for u in usages)),
        total_tokens=_capped(sum(u.total_tokens for u in usages)),
        traffic_type=usages[-1].traffic_type if usages else None,
        prompt_by_modality=_merge([u.prompt_by_modality for u in usages]),
        cached_by_modality=_merge([u.cached_by_modality for u in usages]),
        candidates_by_modality=_merge([u.candidates_by_modality for u in usages]),
        tool_use_by_modality=_merge([u.tool_use_by_modality for u in usages]),
    )


_SERVICE_TIER_HEADER = "x-gemini-service-tier"


def served_tier(response: Any) -> str | None:
    """The service tier that served a Developer API answer (``standard``, ``flex``,
    ``priority``), from the ``x-gemini-service-tier`` header the SDK keeps on the response
    (google-genai 3.6 drops ``usageMetadata.serviceTier``; ``EmbedContentResponse`` keeps it).
    None when the answer does not say."""
    try:
        http = response.sdk_http_response
        headers = http.headers if http is not None else None
        tier = headers.get(_SERVICE_TIER_HEADER) if headers else None
        if tier is None:
            # google-genai 3.6's usage metadata has no service_tier field: a getattr that
            # misses runs pydantic's __getattr__ (microseconds), so look in the instance dict.
            meta = response.usage_metadata
            tier = None if meta is None else meta.__dict__.get("service_tier")
            if tier is None:
                return None
            tier = enum_text(tier)
    except AttributeError:  # a look-alike without these fields
        return None
    if isinstance(tier, str) and 0 < len(tier) <= _MAX_ENUM and tier.isalpha():
        return tier.lower()  # the common case, checked without a call
    # Else only a name (as enum_name has it): a header a proxy rewrote must carry no key.
    name = enum_name(tier)
    return None if name is None else name.lower()
