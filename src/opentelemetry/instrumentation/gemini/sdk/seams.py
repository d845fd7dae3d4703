"""The only module that touches google-genai: what we wrap, and the adapters that wrap it.

Public seams: ``Models``/``AsyncModels`` ``generate_content`` and ``generate_content_stream``
(chats go through them). Private seams: the SDK retries 408/429/5xx below the public methods, in
``BaseApiClient._request_once`` / ``_async_request_once``; wrapping those is the only way to see
every HTTP attempt. Automatic function calling runs several billed requests inside one call;
their hooks (``REQUEST_TARGETS``) are wrapped the first time a call carries tools, so calls
without tools never pay for them. Reads of the SDK's objects live here too (``_start``); each
adapter is control flow only, and the recording lives in ``Call`` and ``Recorder``.

Each hook is a plain function put in the method's place (its ``__wrapped__`` is the original,
which ``Patches.unpatch`` puts back): a wrapt ``FunctionWrapper`` on a method builds a bound
wrapper object on every call: ~10-15k instructions for each of the two hooks every call passes
(benchmarks/README).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..record.call import ASYNC_CALL, SYNC_CALL, Call
from ..record.recorder import Recorder
from ..record.streams import wrap_async, wrap_sync

_logger = logging.getLogger(__name__)

Method = Callable[..., Any]  # called as the SDK calls it: (self, *args, **kwargs)
# (module, "Class.method", hook factory(patches, original)); "A|B": the first of A, B the SDK has.
Targets = tuple[tuple[str, str, Callable[["Patches", Method], Method]], ...]


def _start(
    patches: Patches, instance: Any, kwargs: dict[str, Any], *, stream: bool, is_async: bool
) -> Call | None:
    """Read what the span needs from the SDK's objects (its private client: host, Vertex mode)
    and open the call; None lets the SDK call run untouched (as it does once uninstrumented,
    should another library's hook still hold ours)."""
    if patches.closed:
        return None
    config = kwargs.get("config")
    if config is not None and not patches.request_hooks:
        patches.add_request_hooks_for(config)  # before the SDK runs: this call's rounds count
    try:
        api = getattr(instance, "_api_client", None)
        if api is not patches.last_client:  # a client's first call: learn its key to redact
            patches.last_client = api
            patches.recorder.secrets.add(getattr(api, "api_key", None))
        vertex = bool(getattr(api, "vertexai", False))
        base_url = getattr(getattr(api, "_http_options", None), "base_url", None)
    except Exception:
        _logger.debug("gemini instrumentation: unexpected SDK client", exc_info=True)
        return None
    return patches.recorder.start(
        kwargs.get("model"),
        config,
        kwargs.get("contents"),
        vertex=vertex,
        base_url=base_url,
        stream=stream,
        is_async=is_async,
    )


def _sync_call(patches: Patches, original: Method) -> Method:
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start(patches, self, kwargs, stream=False, is_async=False)
        if call is None:
            return original(self, *args, **kwargs)
        with call:
            response = original(self, *args, **kwargs)
        call.complete(response)
        return response

    return hook


def _async_call(patches: Patches, original: Method) -> Method:
    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _start(patches, self, kwargs, stream=False, is_async=True)
        if call is None:
            return await original(self, *args, **kwargs)
        with call:
            response = await original(self, *args, **kwargs)
        call.complete(response)
        return response

    return hook


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


def _sync_attempt(_patches: Patches, original: Method) -> Method:
    # One HTTP attempt of the call in flight: its outcome is counted, the SDK's result or
    # exception passes through untouched. No context manager: this runs per attempt.
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = SYNC_CALL.in_flight.call
        if call is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as error:
            call.on_attempt_error(error)
            raise
        call.on_attempt_ok()
        return result

    return hook


def _async_attempt(_patches: Patches, original: Method) -> Method:
    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = ASYNC_CALL.get()
        if call is None:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as error:
            call.on_attempt_error(error)
            raise
        call.on_attempt_ok()
        return result

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


CALL_TARGETS: Targets = (
    ("google.genai.models", "Models.generate_content", _sync_call),
    ("google.genai.models", "Models.generate_content_stream", _sync_stream),
    ("google.genai.models", "AsyncModels.generate_content", _async_call),
    ("google.genai.models", "AsyncModels.generate_content_stream", _async_stream),
)
ATTEMPT_TARGETS: Targets = (
    ("google.genai._api_client", "BaseApiClient._request_once", _sync_attempt),
    ("google.genai._api_client", "BaseApiClient._async_request_once", _async_attempt),
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


def sdk_version() -> str:
    try:
        return version("google-genai")
    except PackageNotFoundError:
        return "unknown"


def _resolve(module_name: str, dotted: str) -> tuple[Any, str] | None:
    """(owning class, method name) for the first of ``dotted``'s alternatives the SDK has, or
    None."""
    try:
        module: Any = import_module(module_name)
    except ImportError:
        return None
    for alternative in dotted.split("|"):
        cls_name, method = alternative.split(".")
        owner = getattr(module, cls_name, None)
        if owner is not None and callable(getattr(owner, method, None)):
            return owner, method
    return None


_ABSENT = object()  # the class inherited the method: unpatching deletes our hook


class Patches:
    """What this instrumentation hooked in the SDK: the call and attempt hooks from
    ``instrument()``, the request hooks from the first call that carries tools."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.request_hooks = False  # read without the lock on every call: set once, never reset
        self.closed = False  # set by unpatch: a hook still reachable then passes calls through
        self.last_client: Any = None  # the SDK client of the latest call (see _start)
        # (owner, method, what the class held before, our hook)
        self._hooked: list[tuple[Any, str, Any, Method]] = []
        self._lock = threading.Lock()

    def wrap(self, targets: Targets) -> list[str]:
        """Hook every target the SDK has; the names of those it does not have."""
        missing: list[str] = []
        for module_name, dotted, factory in targets:
            found = _resolve(module_name, dotted)
            if found is None:
                missing.append(f"{module_name}.{dotted}")
                continue
            owner, method = found
            before = vars(owner).get(method, _ABSENT)
            # As the class gives it: the function, or another library's wrapper bound to the
            # class (which then takes the instance from the first argument, as we pass it).
            original = getattr(owner, method)
            hook = functools.wraps(original)(factory(self, original))
            setattr(owner, method, hook)
            self._hooked.append((owner, method, before, hook))
        return missing

    def add_request_hooks_for(self, config: Any) -> None:
        """Hook the request seams if ``config`` may run automatic function calling (it has
        tools). Never raises: the call goes on, instrumented, whatever happens here."""
        try:
            tools = (
                config.get("tools") if isinstance(config, dict) else getattr(config, "tools", None)
            )
            if not tools:
                return
            with self._lock:
                if self.request_hooks or self.closed:
                    return
                self.request_hooks = True  # once: a target that failed to hook is not retried
                self.wrap(REQUEST_TARGETS)
        except Exception:
            _logger.debug("gemini instrumentation: could not add the request hooks", exc_info=True)

    def unpatch(self) -> None:
        """Put back what each class held. A hook another library has since wrapped stays
        where it is (removing it would remove theirs too) and passes calls through."""
        with self._lock:
            self.closed = True  # an adapter still running must not hook anything again
            for owner, method, before, hook in reversed(self._hooked):
                if vars(owner).get(method) is not hook:
                    _logger.debug("gemini instrumentation: %s.%s was rewrapped", owner, method)
                elif before is _ABSENT:
                    delattr(owner, method)
                else:
                    setattr(owner, method, before)
            self._hooked.clear()


def patch(recorder: Recorder) -> Patches:
    """Wrap the call and attempt targets that exist; warn, naming the SDK version, about any
    target that does not (request targets included, though they are wrapped later).

    Sets ``recorder.per_attempt`` to whether the per-attempt seam is in place (without it each
    call counts as one attempt).
    """
    patches = Patches(recorder)
    missing = patches.wrap(CALL_TARGETS + ATTEMPT_TARGETS)
    missing += [f"{m}.{d}" for m, d, _ in REQUEST_TARGETS if _resolve(m, d) is None]
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
    return patches
