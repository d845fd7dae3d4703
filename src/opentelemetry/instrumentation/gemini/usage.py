"""One usage record per call, built by a pure function from the SDK's usage metadata.

Span attributes, token metrics, cost and quota windows all read this one record, so they can
never disagree about how many tokens a call used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_EMPTY: dict[str, int] = {}


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


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _enum_text(value: Any) -> str | None:
    if value is None:
        return None
    text = getattr(value, "value", value)
    return text if isinstance(text, str) else None


def _by_modality(details: Any) -> dict[str, int]:
    if not details:
        return _EMPTY
    out: dict[str, int] = {}
    for item in details:
        modality = _enum_text(getattr(item, "modality", None))
        count = _int(getattr(item, "token_count", None))
        if modality and count:
            key = modality.lower()
            out[key] = out.get(key, 0) + count
    return out


def usage_from_metadata(meta: Any) -> Usage | None:
    """Turn ``GenerateContentResponseUsageMetadata`` (or any look-alike) into a Usage.

    Returns None when there is no metadata at all, so callers can tell "no usage reported"
    from "zero tokens".
    """
    if meta is None:
        return None
    return Usage(
        prompt_tokens=_int(getattr(meta, "prompt_token_count", None)),
        cached_tokens=_int(getattr(meta, "cached_content_token_count", None)),
        candidates_tokens=_int(getattr(meta, "candidates_token_count", None)),
        thoughts_tokens=_int(getattr(meta, "thoughts_token_count", None)),
        tool_use_prompt_tokens=_int(getattr(meta, "tool_use_prompt_token_count", None)),
        total_tokens=_int(getattr(meta, "total_token_count", None)),
        traffic_type=_enum_text(getattr(meta, "traffic_type", None)),
        prompt_by_modality=_by_modality(getattr(meta, "prompt_tokens_details", None)),
        cached_by_modality=_by_modality(getattr(meta, "cache_tokens_details", None)),
        candidates_by_modality=_by_modality(getattr(meta, "candidates_tokens_details", None)),
        tool_use_by_modality=_by_modality(getattr(meta, "tool_use_prompt_tokens_details", None)),
    )


def _merge(maps: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in maps:
        for key, count in counts.items():
            out[key] = out.get(key, 0) + count
    return out


def sum_usages(usages: list[Usage]) -> Usage:
    """One call's usage when it made several billed requests (automatic function calling
    rounds, continuation hops): each request is billed on its own, so counts add up."""
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        cached_tokens=sum(u.cached_tokens for u in usages),
        candidates_tokens=sum(u.candidates_tokens for u in usages),
        thoughts_tokens=sum(u.thoughts_tokens for u in usages),
        tool_use_prompt_tokens=sum(u.tool_use_prompt_tokens for u in usages),
        total_tokens=sum(u.total_tokens for u in usages),
        traffic_type=usages[-1].traffic_type if usages else None,
        prompt_by_modality=_merge([u.prompt_by_modality for u in usages]),
        cached_by_modality=_merge([u.cached_by_modality for u in usages]),
        candidates_by_modality=_merge([u.candidates_by_modality for u in usages]),
        tool_use_by_modality=_merge([u.tool_use_by_modality for u in usages]),
    )
