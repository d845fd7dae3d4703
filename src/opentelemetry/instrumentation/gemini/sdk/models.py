"""Adapters for ``client.models`` (and ``client.aio.models``; chats go through them): one hook
factory per kind of call, control flow only. What the span needs is read from the SDK's objects
in ``_start``; answers other than generate_content's are read by the pure readers below; all
recording is the Recorder's.

generate_content and its stream; embed_content (``embeddings {model}``: input tokens from
``usage_metadata`` or, on Vertex, each embedding's statistics); count_tokens and compute_tokens
(spans with the count, cost 0, never in inference quota). Automatic function calling runs
several billed requests inside one generate_content: their hooks (``REQUEST_TARGETS``) are added
by the first call that carries tools, so calls without tools never pay for them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..bounds import MAX_NAME, count
from ..record import operations as ops
from ..record.call import ASYNC_CALL, SYNC_CALL, Answer, Call, Reader
from ..record.streams import wrap_async, wrap_sync
from ..record.usage import Usage, by_modality, enum_name

if TYPE_CHECKING:
    from .seams import Method, Patches, Targets

_logger = logging.getLogger(__name__)


def _start(
    patches: Patches,
    instance: Any,
    kwargs: dict[str, Any],
    *,
    stream: bool,
    is_async: bool,
    operation: str = ops.GENERATE_CONTENT,
    reader: Reader | None = None,
) -> Call | None:
    """Read what the span needs from the SDK's objects (its private client: host, Vertex mode)
    and open the call; None lets the SDK call run untouched (as it does once uninstrumented,
    should another library's hook still hold ours)."""
    if patches.closed:
        return None
    config = kwargs.get("config")
    if config is not None and not patches.request_hooks:
        patches.add_request_hooks_for(config)  # before the SDK runs: this call's rounds count
    client = client_of(patches, getattr(instance, "_api_client", None))
    if client is None:
        return None
    return patches.recorder.start(
        kwargs.get("model"),
        config,
        kwargs.get("contents"),
        vertex=client[1],
        base_url=client[2],
        stream=stream,
        is_async=is_async,
        operation=operation,
        reader=reader,
        project=client[3],
    )


def client_of(patches: Patches, api: Any) -> tuple[Any, bool, str | None, str | None] | None:
    """(api, Vertex mode, base URL, Vertex project) of the SDK client ``api``; None if it is
    not one we can read."""
    client = patches.last_client
    if client is None or client[0] is not api:  # another client than the latest call's
        client = _client(patches, api)
    return client


def _client(patches: Patches, api: Any) -> tuple[Any, bool, str | None, str | None] | None:
    """What a call needs of its SDK client (Vertex mode, base URL, a Vertex project), read
    when a call comes from another client than the latest one's (which also teaches us its
    key, to redact). Kept as one tuple: threads swap it whole."""
    try:
        secrets = patches.recorder.secrets
        key = getattr(api, "api_key", None)
        secrets.add(key)
        vertex = bool(getattr(api, "vertexai", False))
        base_url = getattr(getattr(api, "_http_options", None), "base_url", None)
        project = getattr(api, "project", None) if vertex else None
        if vertex and not key:  # it sends its credentials' access token: a secret too
            secrets.watch(api)
        # The app's own string, copied to every span and metric: capped, and never a secret
        # (a token pasted there by mistake).
        project = secrets.clean(project, MAX_NAME) if isinstance(project, str) and project else None
    except Exception:
        _logger.debug("gemini instrumentation: unexpected SDK client", exc_info=True)
        return None
    client = (api, vertex, base_url, project)
    patches.last_client = client
    return client


def _calls(
    operation: str = ops.GENERATE_CONTENT, reader: Reader | None = None
) -> tuple[Callable[[Patches, Method], Method], Callable[[Patches, Method], Method]]:
    """Hook factories (sync, async) for a call that answers once: the span opens before the
    SDK runs and ends with its answer or its exception."""

    def sync_factory(patches: Patches, original: Method) -> Method:
        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = _start(
                patches,
                self,
                kwargs,
                stream=False,
                is_async=False,
                operation=operation,
                reader=reader,
            )
            if call is None:
                return original(self, *args, **kwargs)
            with call:
                response = original(self, *args, **kwargs)
            call.complete(response)
            return response

        return hook

    def async_factory(patches: Patches, original: Method) -> Method:
        async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = _start(
                patches,
                self,
                kwargs,
                stream=False,
                is_async=True,
                operation=operation,
                reader=reader,
            )
            if call is None:
                return await original(self, *args, **kwargs)
            with call:
                response = await original(self, *args, **kwargs)
            call.complete(response)
            return response

        return hook

    return sync_factory, async_factory


def _sync_stream(patches: Patches, original: Method) -> Method:
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start(patches, self, kwargs, stream=True, is_async=False)
        if call is None:
            return original(self, *args, **kwargs)
        with call:
            stream = original(self, *args, **kwargs)
        return wrap_sync(stream, call)

    return hook


def _async_stream(patches: Patches, original: Method) -> Method:
    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start(patches, self, kwargs, stream=True, is_async=True)
        if call is None:
            return await original(self, *args, **kwargs)
        with call:
            stream = await original(self, *args, **kwargs)
        return await wrap_async(stream, call)

    return hook


def _sync_request(_patches: Patches, original: Method) -> Method:
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = original(self, *args, **kwargs)
        call = SYNC_CALL.in_flight.call
        if call is not None:
            call.on_request_response(response)
        return response

    return hook


def _async_request(_patches: Patches, original: Method) -> Method:
    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = await original(self, *args, **kwargs)
        call = ASYNC_CALL.get()
        if call is not None:
            call.on_request_response(response)
        return response

    return hook


def _stream_round(is_async: bool) -> Callable[[Patches, Method], Method]:
    # A stream round starts when the SDK calls this (sync or async: it returns a generator).
    def factory(_patches: Patches, original: Method) -> Method:
        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = ASYNC_CALL.get() if is_async else SYNC_CALL.in_flight.call
            if call is not None:
                call.on_stream_round()
            return original(self, *args, **kwargs)

        return hook

    return factory


# --- readers: pure, duck-typed, called once per call ----------------------------------------
def read_embeddings(response: Any) -> Answer:
    """Input tokens (``usage_metadata``; on Vertex, the sum of each embedding's
    ``statistics.token_count``), the number of embeddings and their dimension, billable
    characters (Vertex ``metadata``)."""
    embeddings = getattr(response, "embeddings", None) or ()
    meta = getattr(response, "usage_metadata", None)
    tokens = count(getattr(meta, "prompt_token_count", None)) if meta is not None else 0
    if not tokens:  # each count clamped, and so their sum: thousands of them may pass int64
        tokens = count(
            sum(
                _whole(getattr(getattr(e, "statistics", None), "token_count", None))
                for e in embeddings
            )
        )
    attrs: dict[str, Any] = {A.GEMINI_EMBEDDINGS_COUNT: len(embeddings)}
    values = getattr(embeddings[0], "values", None) if embeddings else None
    if isinstance(values, list):
        attrs[A.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(values)
    characters = getattr(getattr(response, "metadata", None), "billable_character_count", None)
    if type(characters) is int and characters >= 0:
        attrs[A.GEMINI_BILLABLE_CHARACTERS] = count(characters)
    if meta is None and not tokens:
        return None, None, None, attrs
    details = getattr(meta, "prompt_tokens_details", None) if meta is not None else None
    usage = Usage(
        prompt_tokens=tokens,
        total_tokens=tokens,
        traffic_type=enum_name(getattr(meta, "traffic_type", None)),
        prompt_by_modality=by_modality(details) if details else {},
    )
    return usage, None, None, attrs


def _whole(value: Any) -> int:
    """A token count the SDK types as a float (Vertex embedding statistics): whole, bounded."""
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    return count(value)


def read_counted_tokens(response: Any) -> Answer:
    """count_tokens: the count is the answer, not tokens used (nothing is billed)."""
    attrs: dict[str, Any] = {A.GEMINI_COUNTED_TOKENS: count(getattr(response, "total_tokens", 0))}
    cached = count(getattr(response, "cached_content_token_count", None))
    if cached:
        attrs[A.GEMINI_COUNTED_CACHED_TOKENS] = cached
    return None, None, None, attrs


def read_computed_tokens(response: Any) -> Answer:
    """compute_tokens (Vertex): the tokens of each content, counted."""
    infos = getattr(response, "tokens_info", None) or ()
    total = sum(
        len(getattr(info, "token_ids", None) or getattr(info, "tokens", None) or ())
        for info in infos
    )
    return None, None, None, {A.GEMINI_COUNTED_TOKENS: count(total)}


_generate_sync, _generate_async = _calls()
_embed_sync, _embed_async = _calls(ops.EMBEDDINGS, read_embeddings)
_count_sync, _count_async = _calls(ops.COUNT_TOKENS, read_counted_tokens)
_compute_sync, _compute_async = _calls(ops.COMPUTE_TOKENS, read_computed_tokens)

CALL_TARGETS: Targets = (
    ("google.genai.models", "Models.generate_content", _generate_sync),
    ("google.genai.models", "Models.generate_content_stream", _sync_stream),
    ("google.genai.models", "AsyncModels.generate_content", _generate_async),
    ("google.genai.models", "AsyncModels.generate_content_stream", _async_stream),
    ("google.genai.models", "Models.embed_content", _embed_sync),
    ("google.genai.models", "AsyncModels.embed_content", _embed_async),
    ("google.genai.models", "Models.count_tokens", _count_sync),
    ("google.genai.models", "AsyncModels.count_tokens", _count_async),
    ("google.genai.models", "Models.compute_tokens", _compute_sync),
    ("google.genai.models", "AsyncModels.compute_tokens", _compute_async),
)
# One billed request of a non-stream call: automatic function calling runs several of them
# inside one generate_content, whose response only carries the last one's usage.
# A stream's rounds: one per request before google-genai 3.6; from 3.6 a round can span
# continuation hops, whose usage the SDK already adds up in its chunks.
REQUEST_TARGETS: Targets = (
    ("google.genai.models", "Models._generate_content", _sync_request),
    ("google.genai.models", "AsyncModels._generate_content", _async_request),
    (
        "google.genai.models",
        "Models._generate_content_stream_with_continuation|Models._generate_content_stream",
        _stream_round(is_async=False),
    ),
    (
        "google.genai.models",
        "AsyncModels._generate_content_stream_with_continuation"
        "|AsyncModels._generate_content_stream",
        _stream_round(is_async=True),
    ),
)
