"""Pure functions that turn a generate_content request into span attributes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from .. import attributes as A
from ..bounds import MAX_NAME, encodable, fits_int64, warn_once

# (config field, attribute, accepted python types) for the semconv request parameters.
_REQUEST_PARAMS: tuple[tuple[str, str, tuple[type, ...]], ...] = (
    ("temperature", A.GEN_AI_REQUEST_TEMPERATURE, (int, float)),
    ("top_p", A.GEN_AI_REQUEST_TOP_P, (int, float)),
    ("top_k", A.GEN_AI_REQUEST_TOP_K, (int, float)),
    ("max_output_tokens", A.GEN_AI_REQUEST_MAX_TOKENS, (int,)),
    ("seed", A.GEN_AI_REQUEST_SEED, (int,)),
    ("candidate_count", A.GEN_AI_REQUEST_CHOICE_COUNT, (int,)),
    ("frequency_penalty", A.GEN_AI_REQUEST_FREQUENCY_PENALTY, (int, float)),
    ("presence_penalty", A.GEN_AI_REQUEST_PRESENCE_PENALTY, (int, float)),
)

_DEFAULT_HOSTS = {
    False: ("generativelanguage.googleapis.com", 443),
    True: ("aiplatform.googleapis.com", 443),
}


def normalize_model(model: object) -> str:
    """'models/gemini-2.5-flash' -> 'gemini-2.5-flash'; Vertex resource names keep their tail.
    At most MAX_NAME characters: the name is a span and a metric attribute."""
    if type(model) is not str:
        # A str subclass (the app's own, whose __hash__ or __eq__ may raise) becomes a plain
        # str: the name is kept in our caches and compared by later calls' lookups there.
        if isinstance(model, str):
            model = str.__str__(model)
        else:
            model = "unknown" if model is None else str(model)
    if len(model) > MAX_NAME:
        model = model[: MAX_NAME * 4]  # what rsplit reads of a huge name, then the cap
    if "/" in model:
        model = model.rsplit("/", 1)[-1] or model
    return encodable(model if len(model) <= MAX_NAME else model[:MAX_NAME])


@lru_cache(maxsize=64)
def server_address(base_url: str | None, vertex: bool) -> tuple[str, int]:
    """Host and port the SDK talks to; cached because base URLs are few and parsing is not free."""
    if not base_url:
        return _DEFAULT_HOSTS[vertex]
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or _DEFAULT_HOSTS[vertex][0]
        port = parts.port or (80 if parts.scheme == "http" else 443)
        return host, port
    except ValueError:
        return _DEFAULT_HOSTS[vertex]


def config_field(obj: Any, name: str) -> Any:
    """A field of the app's config (or content): a dict's item as the SDK's validation reads
    it (a dict subclass's own ``get``, which may raise, is not called), else its attribute;
    None when absent."""
    if isinstance(obj, dict):
        return dict.get(obj, name)
    return getattr(obj, name, None)


def has_tools(config: Any) -> bool:
    """Whether the app's config carries tools: the call may run automatic function calling
    (several billed requests) and report grounding."""
    return bool(config_field(config, "tools"))


def base_attributes(
    model: str,
    *,
    vertex: bool,
    base_url: str | None,
    stream: bool,
    operation: str = A.OPERATION_GENERATE_CONTENT,
) -> dict[str, Any]:
    """The attributes every call to ``model`` on this client shares (cacheable per client)."""
    host, port = server_address(base_url, vertex)
    attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION_NAME: operation,
        A.GEN_AI_PROVIDER_NAME: A.PROVIDER_VERTEX_AI if vertex else A.PROVIDER_GEMINI,
        A.GEN_AI_REQUEST_MODEL: model,
        A.SERVER_ADDRESS: host,
        A.SERVER_PORT: port,
    }
    if stream:
        attrs[A.GEN_AI_REQUEST_STREAM] = True
    if not model:  # a request that names no model (caches.list): no model attribute
        del attrs[A.GEN_AI_REQUEST_MODEL]
    return attrs


def config_attributes(config: Any) -> dict[str, Any]:
    """Semconv request parameters from the caller's config, read without mutating it."""
    attrs: dict[str, Any] = {}
    for field, key, types in _REQUEST_PARAMS:
        value = config_field(config, field)
        if isinstance(value, types) and not isinstance(value, bool):
            if isinstance(value, int) and not fits_int64(value):
                # An OTLP int is 64 bits: one such value would fail the whole export.
                warn_once("int64", "dropped %s=%d: out of the int64 range", key, value)
                continue
            attrs[key] = value
    stops = config_field(config, "stop_sequences")
    if isinstance(stops, (list, tuple)) and stops:
        attrs[A.GEN_AI_REQUEST_STOP_SEQUENCES] = [str(s)[:MAX_NAME] for s in stops[:16]]
    mime = config_field(config, "response_mime_type")
    if isinstance(mime, str):
        attrs[A.GEN_AI_OUTPUT_TYPE] = "json" if "json" in mime else "text"
    tier = config_field(config, "service_tier")
    if tier is not None:
        tier_text = getattr(tier, "value", tier)
        if isinstance(tier_text, str):
            attrs[A.GEMINI_REQUEST_SERVICE_TIER] = tier_text[:MAX_NAME]
    return attrs
