"""Adapters for the Interactions API (``client.interactions``, ``client.aio.interactions``):
create (plain, streamed, background), get, cancel, delete. One span per SDK call, operation
``interactions``; usage from ``Interaction.usage``, priced and counted against the model's quota
as generate_content is.

The Interactions API runs on a second HTTP stack inside google-genai (the generated ``_gaos``
client), with its own retry loop: ``_gaos.utils.retry`` / ``retry_async`` call the SDK's
per-attempt function once per attempt, so that is where we count attempts and read 429s, as
sdk/attempts.py does for the main stack.

Importing that stack costs ~300 ms, so nothing here imports it: the hooks are put in place by a
post-import hook when the SDK first imports it (the first use of ``client.interactions``), or at
once when it is already imported.

Priced once: a finished interaction's usage is recorded by the call that first sees it (the
create, or for ``background=True`` the first ``get`` that sees it completed); a later ``get`` of
the same id in this process records no cost (record/batches.py remembers the last ids seen).
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..bounds import MAX_NAME, count
from ..record import operations as ops
from ..record.batches import BatchJobs
from ..record.call import ASYNC_CALL, SYNC_CALL, Answer, Call
from ..record.streams import _watch, async_items, sync_items
from ..record.usage import Usage, enum_name, modality_key, sum_usages
from .attempts import _count, enter_unowned, leave_unowned, unowned_failed
from .hooks import HookFactory, answered_once
from .models import _start

if TYPE_CHECKING:
    from .seams import Method, Patches, Targets

_logger = logging.getLogger(__name__)

GAOS_MODULE = "google.genai._gaos.google_genai"  # imported by the SDK on first use
_PRICED_KEY = "interactions/"  # ids are remembered beside batch jobs, under this prefix
# create runs the model (the model's quota, priced); the others act on an interaction by id.
_OPERATIONS = {
    "create": ops.INTERACTIONS,
    "get": ops.GET_INTERACTION,
    "cancel": ops.CANCEL_INTERACTION,
    "delete": ops.DELETE_INTERACTION,
}


# --- usage: pure readers --------------------------------------------------------------------
def _modalities(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items or ():
        key = modality_key(getattr(item, "modality", None))
        n = count(getattr(item, "tokens", None))
        if key and n:
            out[key] = out.get(key, 0) + n
    return out


def interaction_usage(usage: Any, service_tier: Any = None) -> Usage | None:
    """``Interaction.usage`` as our Usage. The Interactions API counts as usageMetadata does:
    ``total_input_tokens`` (cached included) is the prompt, ``total_output_tokens`` the
    responses without thoughts (``total_thought_tokens``), ``total_tool_use_tokens`` the tool-use
    prompts; ``total_tokens`` beyond their sum is billed as output (PriceBook's rule)."""
    if usage is None:
        return None
    return Usage(
        prompt_tokens=count(getattr(usage, "total_input_tokens", None)),
        cached_tokens=count(getattr(usage, "total_cached_tokens", None)),
        candidates_tokens=count(getattr(usage, "total_output_tokens", None)),
        thoughts_tokens=count(getattr(usage, "total_thought_tokens", None)),
        tool_use_prompt_tokens=count(getattr(usage, "total_tool_use_tokens", None)),
        total_tokens=count(getattr(usage, "total_tokens", None)),
        # The served tier (standard, flex, priority) prices it, as a Developer API header does.
        traffic_type=enum_name(service_tier),
        prompt_by_modality=_modalities(getattr(usage, "input_tokens_by_modality", None)),
        cached_by_modality=_modalities(getattr(usage, "cached_tokens_by_modality", None)),
        candidates_by_modality=_modalities(getattr(usage, "output_tokens_by_modality", None)),
        tool_use_by_modality=_modalities(getattr(usage, "tool_use_tokens_by_modality", None)),
    )


def _name(value: Any) -> str | None:
    return value[:MAX_NAME] if isinstance(value, str) and value else None


class _State:
    """One call's view: what the request said, and a stream's hops (each
    ``interaction.completed`` event carries its own hop's usage: they add up, as they come, so a
    stream of any length holds one record)."""

    __slots__ = ("hop_usage", "id", "last", "method")

    def __init__(self, method: str, interaction_id: str | None) -> None:
        self.method = method
        self.id = interaction_id
        self.hop_usage: Usage | None = None
        self.last: Any = None  # the latest interaction a stream event carried


def _reader(jobs: BatchJobs, state: _State) -> Callable[[Any], Answer]:
    """Runs once, when the call is recorded. Claims a finished interaction's id so it is priced
    by one call only."""

    def read(answer: Any) -> Answer:
        # A stream's answer is ``state`` itself: its interaction came with the events.
        interaction = state.last if answer is state else answer
        attrs: dict[str, Any] = {A.GEMINI_INTERACTION_METHOD: state.method}
        if state.method == "delete" or interaction is None:
            return None, None, None, attrs
        rid = _name(getattr(interaction, "id", None)) or state.id
        status = enum_name(getattr(interaction, "status", None))
        model = _name(getattr(interaction, "model", None))
        if status:
            attrs[A.GEMINI_INTERACTION_STATUS] = status
        tier = getattr(interaction, "service_tier", None)
        usage = state.hop_usage
        if usage is None:
            usage = interaction_usage(getattr(interaction, "usage", None), tier)
        if rid is not None and model is not None and state.method == "create":
            jobs.remember(_PRICED_KEY + rid, model)  # a later get names only the id
        if usage is not None and rid is not None and not jobs.claim(_PRICED_KEY + rid):
            attrs[A.GEMINI_INTERACTION_PRICED] = False  # an earlier call recorded its usage
            usage = None
        return usage, model, rid, attrs

    return read


# --- streams: the SDK's Stream keeps its identity; its generator is ours -------------------
def _on_event(call: Call, state: _State, event: Any) -> None:
    """Per streamed event: count it; keep the interaction a created/completed event carries.
    Never raises into the app's iteration."""
    try:
        if call.chunks == 0:
            call.first_chunk_at = time.perf_counter()
        call.chunks += 1
        # Most events are step deltas: tell them by their type, a plain attribute, rather than
        # by a missing one (a pydantic miss raises inside, several times slower).
        kind = event.event_type if hasattr(type(event), "model_fields") else None
        if not (isinstance(kind, str) and kind.startswith("interaction.")):
            return
        interaction = getattr(event, "interaction", None)
        if interaction is None:
            return
        state.last = interaction
        usage = getattr(interaction, "usage", None)
        if usage is not None:
            found = interaction_usage(usage, getattr(interaction, "service_tier", None))
            if found is not None:
                before = state.hop_usage
                state.hop_usage = found if before is None else sum_usages([before, found])
    except Exception:
        _logger.debug("gemini instrumentation: could not read an event", exc_info=True)


# Streams whose generator is ours, to their call: ``Stream.close()`` (and leaving its ``with``)
# only closes the HTTP response, never the generator, so the close hook ends the call.
_OPEN_STREAMS: weakref.WeakKeyDictionary[Any, Call] = weakref.WeakKeyDictionary()


def _take_stream(result: Any, call: Call, state: _State, is_async: bool) -> bool:
    """Put our generator in a returned Stream's place (as the SDK's own wrappers do: same object
    for the caller); whether ``result`` was a stream. The call then ends with the stream, or as
    abandoned when the caller drops it unfinished."""
    generator = getattr(result, "generator", None)
    if generator is None:
        return False
    items = async_items if is_async else sync_items
    _watch(result, call)  # first: should it fail, the stream is left as it is
    _OPEN_STREAMS[result] = call
    call.stream = True
    # The reader reads the stream's interaction from ``state`` (never the stream itself: the
    # call must not keep alive the stream whose drop ends it).
    call.last = state
    result.generator = items(
        generator, call, functools.partial(_on_event, call, state), primed=False
    )
    return True


def _streamed(result: Any, call: Call, state: _State, is_async: bool) -> bool:
    """_take_stream, never raising into the app (a stream we could not take is left alone)."""
    try:
        return _take_stream(result, call, state, is_async)
    except Exception:
        _logger.debug("gemini instrumentation: could not follow a stream", exc_info=True)
        return False


def _sync_close(_patches: Patches, original: Method) -> Method:
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _OPEN_STREAMS.pop(self, None) if _OPEN_STREAMS else None
        if call is not None:
            call.finish(None, A.STREAM_END_CLOSED)
        return original(self, *args, **kwargs)

    return hook


def _async_close(_patches: Patches, original: Method) -> Method:
    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _OPEN_STREAMS.pop(self, None) if _OPEN_STREAMS else None
        if call is not None:
            call.finish(None, A.STREAM_END_CLOSED)
        return await original(self, *args, **kwargs)

    return hook


# --- hooks --------------------------------------------------------------------------------
# One stand-in per resource, so that its calls read as one client's (``client_of`` caches by
# identity).
_STAND_INS: weakref.WeakKeyDictionary[Any, SimpleNamespace] = weakref.WeakKeyDictionary()


def _owner(resource: Any) -> Any:
    """What ``_start`` reads ``_api_client`` from: the resource, or, where the SDK keeps no
    client on it (google-genai 2.x), a stand-in read from the stack's own configuration, so the
    call still knows its endpoint and its key (to redact, as a client's)."""
    if getattr(resource, "_api_client", None) is not None:
        return resource
    found = _STAND_INS.get(resource)
    if found is None:
        config = getattr(resource, "sdk_configuration", None)
        key = getattr(getattr(config, "security", None), "api_key", None)
        url = getattr(config, "server_url", None)
        client = SimpleNamespace(
            api_key=key if isinstance(key, str) else None,
            vertexai=False,  # the 2.x stack serves the Developer API only
            _http_options=SimpleNamespace(base_url=url if isinstance(url, str) else None),
        )
        found = _STAND_INS[resource] = SimpleNamespace(_api_client=client)
    return found


def _open(
    patches: Patches,
    instance: Any,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    is_async: bool,
) -> tuple[Call, _State] | None:
    if patches.closed:
        return None
    try:
        interaction_id = _name(args[0] if args else kwargs.get("id"))
        state = _State(method, interaction_id)
        request = kwargs.get("request")
        model = kwargs.get("model")
        if model is None and interaction_id is not None:
            model = patches.recorder.instruments.batches.model_of(_PRICED_KEY + interaction_id)
        if model is None and request is not None:
            model = getattr(request, "model", None) or (
                request.get("model") if isinstance(request, dict) else None
            )
        call = _start(
            patches,
            _owner(instance),
            {"model": model if isinstance(model, str) else None},
            stream=False,
            is_async=is_async,
            operation=_OPERATIONS[method],
            reader=_reader(patches.recorder.instruments.batches, state),
        )
        if call is None:
            return None
        call.texts = None  # content capture does not cover the Interactions API yet (README)
        attrs: dict[str, Any] = {A.GEMINI_INTERACTION_METHOD: method}
        if interaction_id is not None:
            attrs[A.GEN_AI_RESPONSE_ID] = interaction_id
        if kwargs.get("background") is True:
            attrs[A.GEMINI_INTERACTION_BACKGROUND] = True
        if kwargs.get("stream") is True:
            attrs[A.GEN_AI_REQUEST_STREAM] = True
        call.span.set_attributes(attrs)
        return call, state
    except Exception:
        _logger.debug("gemini instrumentation: could not open an interaction call", exc_info=True)
        return None


def _hooks(method: str) -> tuple[HookFactory, HookFactory]:
    """Hook factories (sync, async) for one Interactions method: a stream's span ends with the
    stream, any other answer's at once."""

    def open_call(
        patches: Patches,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
    ) -> tuple[Call, _State] | None:
        return _open(patches, instance, method, args, kwargs, is_async=is_async)

    def close(call: Call, state: _State, result: Any, is_async: bool) -> None:
        if not _streamed(result, call, state, is_async=is_async):
            call.complete(result)

    return answered_once(open_call, close)


# --- every attempt of the second HTTP stack ----------------------------------------------
class _AttemptError:
    """What the recorder reads of a failed attempt (status and the parsed body), shaped as the
    SDK's APIError (``code``, ``details``)."""

    __slots__ = ("code", "details")

    def __init__(self, code: int, details: Any) -> None:
        self.code = code
        self.details = details


def _body(response: Any) -> Any:
    try:
        return response.json()
    except Exception:
        return None


def _outcome(patches: Patches, call: Call | None, response: Any, url: str) -> None:
    """One attempt's answer: counted with its call, or by its path. Never raises."""
    try:
        status = response.status_code
        if call is not None:
            if status < 400:
                call.on_attempt_ok()
            else:
                call.on_attempt_error(
                    _AttemptError(status, _body(response) if status == 429 else None)
                )
        else:
            error = (
                None
                if status < 400
                else _AttemptError(status, _body(response) if status == 429 else None)
            )
            _count(patches, None, url, error)
    except Exception:
        _logger.debug("gemini instrumentation: could not count an attempt", exc_info=True)


def _request_url(response: Any) -> str:
    try:
        return str(response.request.url)
    except Exception:
        return ""


def _sync_retry(patches: Patches, original: Method) -> Method:
    def hook(func: Callable[[int], Any], *args: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return original(func, *args, **kwargs)

        def attempt(number: int) -> Any:
            call = SYNC_CALL.in_flight.call
            try:
                response = func(number)
            except BaseException as error:
                if call is not None:
                    call.on_attempt_error(error)
                else:
                    _count(patches, None, "", error)
                raise
            if status_of(response) >= 400:
                response.read()  # the error body (the SDK reads it anyway): a 429's details
            _outcome(patches, call, response, _request_url(response))
            return response

        return original(attempt, *args, **kwargs)

    return hook


def _async_retry(patches: Patches, original: Method) -> Method:
    async def hook(func: Callable[[int], Any], *args: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return await original(func, *args, **kwargs)

        async def attempt(number: int) -> Any:
            call = ASYNC_CALL.get()
            token = enter_unowned() if call is None else None
            try:
                response = await func(number)
            except BaseException as error:
                if call is not None:
                    call.on_attempt_error(error)
                elif token is not None:
                    unowned_failed(token, _count, patches, None, "", error=error)
                raise
            if token is not None:
                leave_unowned(token)
            if status_of(response) >= 400:
                await response.aread()
            _outcome(patches, call, response, _request_url(response))
            return response

        return await original(attempt, *args, **kwargs)

    return hook


def status_of(response: Any) -> int:
    status = getattr(response, "status_code", 0)
    return status if isinstance(status, int) else 0


def _targets() -> Targets:
    out = []
    for method in ("create", "get", "cancel", "delete"):
        sync_factory, async_factory = _hooks(method)
        out.append((GAOS_MODULE, f"GeminiNextGenInteractions.{method}", sync_factory))
        out.append((GAOS_MODULE, f"AsyncGeminiNextGenInteractions.{method}", async_factory))
    out.append(("google.genai._gaos.utils.eventstreaming", "Stream.close", _sync_close))
    out.append(("google.genai._gaos.utils.eventstreaming", "AsyncStream.close", _async_close))
    out.append(("google.genai._gaos", "utils.retry", _sync_retry))
    out.append(("google.genai._gaos", "utils.retry_async", _async_retry))
    return tuple(out)


INTERACTION_TARGETS: Targets = _targets()


# The client properties through which the SDK imports its second HTTP stack (GAOS_MODULE) on
# first use; those this SDK lacks are skipped.
_ENTRY_PROPERTIES = (
    "interactions",
    "_nextgen_client",
    "agents",
    "webhooks",
    "triggers",
    "environments",
    "credentials",
    "voices",
    "decisions",
)


class _HookingProperty(property):
    """A client property whose getter hooks the Interactions stack the first time it is read
    (a property subclass: it can carry ``__wrapped__`` for unpatching)."""


def hook_when_used(patches: Patches) -> None:
    """Wrap the Interactions targets at once if the SDK has imported its second stack, else
    the first time the app reads a client property that imports it. Not an import hook: a
    finder in ``sys.meta_path`` taxes every import the app and its libraries make, some of them
    on each request (measured: ~20 us a generate_content call on the loopback benchmark)."""
    hooked = False
    lock = threading.Lock()  # two threads reading client.interactions first at once

    def hook_now() -> None:
        nonlocal hooked
        with lock:
            if hooked or patches.closed:  # closed: an earlier instrument()'s property
                return
            hooked = True
            missing = patches.wrap(INTERACTION_TARGETS)
        if missing:
            from .seams import sdk_version

            _logger.warning(
                "opentelemetry-instrumentation-gemini: google-genai %s does not have %s; "
                "those Interactions API calls are not instrumented. Please report this SDK "
                "version.",
                sdk_version(),
                ", ".join(missing),
            )

    if GAOS_MODULE in sys.modules:
        hook_now()
        return

    def factory(_patches: Patches, original: Any) -> Any:
        fget = original.fget

        def get(self: Any) -> Any:
            value = fget(self)  # the SDK imports its stack here
            if not hooked:
                try:
                    hook_now()
                except Exception:
                    _logger.debug("gemini instrumentation: Interactions hooks", exc_info=True)
            return value

        return _HookingProperty(get, original.fset, original.fdel, original.__doc__)

    patches.wrap(
        tuple(
            ("google.genai.client", f"{owner}.{name}", factory)
            for owner in ("Client", "AsyncClient")
            for name in _ENTRY_PROPERTIES
        )
    )


__all__ = ["INTERACTION_TARGETS", "hook_when_used", "interaction_usage"]
