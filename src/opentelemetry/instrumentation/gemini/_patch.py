"""The only module that touches google-genai: what we wrap, and the adapters that wrap it.

Public seams: ``Models``/``AsyncModels`` ``generate_content`` and ``generate_content_stream``
(chats go through them). Private seam: the SDK retries 408/429/5xx below the public methods, in
``BaseApiClient._request_once`` / ``_async_request_once``; wrapping those is the only way to see
every HTTP attempt. Reads of the SDK's objects live here too (``_start``); each adapter is
control flow only, and the recording lives in ``Call`` and ``Recorder``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from opentelemetry import context as otel_context
from opentelemetry import trace

from ._call import CURRENT_CALL, Call
from ._stream import wrap_async, wrap_sync
from .telemetry import Recorder

_logger = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _start(recorder: Recorder, instance: Any, kwargs: dict[str, Any], stream: bool) -> Call | None:
    """Read what the span needs from the SDK's objects (its private client: host, Vertex mode)
    and open the call; None lets the SDK call run untouched."""
    try:
        api = getattr(instance, "_api_client", None)
        vertex = bool(getattr(api, "vertexai", False))
        base_url = getattr(getattr(api, "_http_options", None), "base_url", None)
    except Exception:
        _logger.debug("gemini instrumentation: unexpected SDK client", exc_info=True)
        return None
    return recorder.start(
        kwargs.get("model"),
        kwargs.get("config"),
        kwargs.get("contents"),
        vertex=vertex,
        base_url=base_url,
        stream=stream,
    )


class _InFlight:
    """While the SDK runs: the call's span is current (HTTP spans below parent to it) unless
    ``current_span`` is off, the call is visible to the per-attempt hook, and an exception
    finishes the call before it propagates unchanged. One helper for sync and async adapters."""

    __slots__ = ("_call", "_call_token", "_ctx_token", "_current_span")

    def __init__(self, call: Call, current_span: bool = True) -> None:
        self._call = call
        self._current_span = current_span

    def __enter__(self) -> None:
        self._ctx_token = (
            otel_context.attach(trace.set_span_in_context(self._call.span))
            if self._current_span
            else None
        )
        self._call_token = CURRENT_CALL.set(self._call)

    def __exit__(self, _type: Any, error: BaseException | None, _tb: Any) -> None:
        CURRENT_CALL.reset(self._call_token)
        if self._ctx_token is not None:
            otel_context.detach(self._ctx_token)
        if error is not None:
            self._call.finish(error)


def _sync_call(recorder: Recorder) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(recorder, instance, kwargs, stream=False)
        if call is None:
            return wrapped(*args, **kwargs)
        with _InFlight(call):
            response = wrapped(*args, **kwargs)
        call.complete(response)
        return response

    return wrapper


def _async_call(recorder: Recorder) -> Wrapper:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(recorder, instance, kwargs, stream=False)
        if call is None:
            return await wrapped(*args, **kwargs)
        with _InFlight(call):
            response = await wrapped(*args, **kwargs)
        call.complete(response)
        return response

    return wrapper


def _sync_stream(recorder: Recorder) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(recorder, instance, kwargs, stream=True)
        if call is None:
            return wrapped(*args, **kwargs)
        # The span is not made current across the caller's loop: see _stream.
        with _InFlight(call, current_span=False):
            stream = wrapped(*args, **kwargs)
        return wrap_sync(stream, call)

    return wrapper


def _async_stream(recorder: Recorder) -> Wrapper:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(recorder, instance, kwargs, stream=True)
        if call is None:
            return await wrapped(*args, **kwargs)
        with _InFlight(call, current_span=False):
            stream = await wrapped(*args, **kwargs)
        return wrap_async(stream, call)

    return wrapper


def _sync_attempt(_recorder: Recorder) -> Wrapper:
    # One HTTP attempt of the call in flight: its outcome is counted, the SDK's result or
    # exception passes through untouched. No context manager: this runs per attempt.
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = CURRENT_CALL.get()
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            call.on_attempt_error(error)
            raise
        call.on_attempt_ok()
        return result

    return wrapper


def _async_attempt(_recorder: Recorder) -> Wrapper:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = CURRENT_CALL.get()
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            call.on_attempt_error(error)
            raise
        call.on_attempt_ok()
        return result

    return wrapper


def _sync_request(_recorder: Recorder) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        response = wrapped(*args, **kwargs)
        call = CURRENT_CALL.get()
        if call is not None:
            call.on_request_response(response)
        return response

    return wrapper


def _async_request(_recorder: Recorder) -> Wrapper:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        response = await wrapped(*args, **kwargs)
        call = CURRENT_CALL.get()
        if call is not None:
            call.on_request_response(response)
        return response

    return wrapper


def _stream_round(_recorder: Recorder) -> Wrapper:
    # Sync and async alike: the round starts when the SDK calls this (it returns a generator).
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = CURRENT_CALL.get()
        if call is not None:
            call.on_stream_round()
        return wrapped(*args, **kwargs)

    return wrapper


# (module, "Class.method", adapter factory); "A|B": the first of A, B the SDK has.
CALL_TARGETS: tuple[tuple[str, str, Callable[[Recorder], Wrapper]], ...] = (
    ("google.genai.models", "Models.generate_content", _sync_call),
    ("google.genai.models", "Models.generate_content_stream", _sync_stream),
    ("google.genai.models", "AsyncModels.generate_content", _async_call),
    ("google.genai.models", "AsyncModels.generate_content_stream", _async_stream),
)
ATTEMPT_TARGETS: tuple[tuple[str, str, Callable[[Recorder], Wrapper]], ...] = (
    ("google.genai._api_client", "BaseApiClient._request_once", _sync_attempt),
    ("google.genai._api_client", "BaseApiClient._async_request_once", _async_attempt),
)
# One billed request of a non-stream call: automatic function calling runs several of them
# inside one generate_content, whose response only carries the last one's usage.
# A stream's rounds: one per request before google-genai 3.6; from 3.6 a round can span
# continuation hops, whose usage the SDK already adds up in its chunks.
REQUEST_TARGETS: tuple[tuple[str, str, Callable[[Recorder], Wrapper]], ...] = (
    ("google.genai.models", "Models._generate_content", _sync_request),
    ("google.genai.models", "AsyncModels._generate_content", _async_request),
    (
        "google.genai.models",
        "Models._generate_content_stream_with_continuation|Models._generate_content_stream",
        _stream_round,
    ),
    (
        "google.genai.models",
        "AsyncModels._generate_content_stream_with_continuation"
        "|AsyncModels._generate_content_stream",
        _stream_round,
    ),
)


def sdk_version() -> str:
    try:
        return version("google-genai")
    except PackageNotFoundError:
        return "unknown"


def _resolve(module_name: str, dotted: str) -> tuple[Any, str, str] | None:
    """(owning class, method, its dotted name) for the first of ``dotted``'s alternatives the
    SDK has, or None."""
    try:
        module: Any = import_module(module_name)
    except ImportError:
        return None
    for alternative in dotted.split("|"):
        cls_name, method = alternative.split(".")
        owner = getattr(module, cls_name, None)
        if owner is not None and callable(getattr(owner, method, None)):
            return owner, method, alternative
    return None


def patch(recorder: Recorder) -> list[tuple[Any, str]]:
    """Wrap every target that exists; warn, naming the SDK version, about any that does not.

    Returns what was wrapped, for ``unpatch``. Sets ``recorder.per_attempt`` to whether the
    per-attempt seam is in place (without it each call counts as one attempt).
    """
    patched: list[tuple[Any, str]] = []
    missing: list[str] = []
    for targets in (CALL_TARGETS, ATTEMPT_TARGETS, REQUEST_TARGETS):
        for module_name, dotted, factory in targets:
            found = _resolve(module_name, dotted)
            if found is None:
                missing.append(f"{module_name}.{dotted}")
                continue
            owner, method, name = found
            wrap_function_wrapper(module_name, name, factory(recorder))
            patched.append((owner, method))
    attempt_names = {f"{m}.{d}" for m, d, _ in ATTEMPT_TARGETS}
    recorder.per_attempt = not attempt_names.intersection(missing)
    if missing:
        _logger.warning(
            "opentelemetry-instrumentation-gemini: google-genai %s does not have %s; "
            "those calls are not instrumented%s. Please report this SDK version.",
            sdk_version(),
            ", ".join(missing),
            "" if recorder.per_attempt else " (and SDK retries are not counted per attempt)",
        )
    return patched


def unpatch(patched: list[tuple[Any, str]]) -> None:
    for owner, method in patched:
        unwrap(owner, method)
