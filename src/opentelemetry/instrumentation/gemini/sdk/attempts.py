"""Every HTTP attempt the SDK makes, counted once, whatever the method.

The SDK retries 408/429/5xx below its public methods, in ``BaseApiClient._request_once`` /
``_async_request_once``: hooking those is the only way to see each attempt. An attempt made
inside a call one of our adapters opened belongs to that call (its span, its events). Any other
attempt (a method we have no adapter for, or one made outside any call) is still counted, under
the operation and model its request path names (``route``): coverage of quota never waits for a
new adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..record import operations as ops
from ..record.call import ASYNC_CALL, SYNC_CALL, defer
from ..record.request import normalize_model
from .models import client_of

if TYPE_CHECKING:
    from .seams import Method, Patches, Targets


def _url(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    request = args[0] if args else kwargs.get("http_request")
    url = getattr(request, "url", None)
    return url if isinstance(url, str) else ""


@lru_cache(maxsize=512)
def route(url: str) -> tuple[str, str]:
    """(operation, model) of a request, read from its path: ``.../models/{model}:{method}``
    (Developer API and Vertex alike), or a collection (``cachedContents``, ``files``,
    ``batches``, ``operations``). The model is "" when the path names none."""
    try:
        segments = urlsplit(url).path.strip("/").split("/")
    except ValueError:
        return ops.OTHER, ""
    tail = segments[-1] if segments else ""
    method = tail.rpartition(":")[2] if ":" in tail else ""
    model = ""
    for i in range(len(segments) - 2, -1, -1):
        if segments[i] in ("models", "tunedModels"):
            model = normalize_model(segments[i + 1].partition(":")[0])
            break
    if method:
        operation = ops.BY_METHOD.get(method)
        if operation is None and method == "predict":  # Vertex: Imagen, or older embeddings
            operation = ops.EMBEDDINGS if "embedding" in model else ops.GENERATE_IMAGES
        return operation or ops.OTHER, model
    for segment in segments:
        operation = ops.BY_COLLECTION.get(segment)
        if operation is not None:
            return operation, model
    return ops.OTHER, model


def _count(patches: Patches, api: Any, url: str, error: BaseException | None) -> None:
    """An attempt no call of ours holds, made by the SDK client ``api`` (its Vertex project,
    as a call's; None: a stack without one, the Interactions API's). Never raises."""
    try:
        operation, model = route(url)
        code = getattr(error, "code", None) if error is not None else 200
        status = code if isinstance(code, int) else None
        client = client_of(patches, api) if api is not None else None
        vertex, project = (client[1], client[3]) if client is not None else (False, None)
        patches.recorder.request_attempt(operation, model, status, error, vertex, project)
    except Exception:
        pass  # never let counting break the user's request


# Set around an async attempt no call holds: its failure seen from another context is its
# coroutine being closed from outside its task, by the garbage collector (see Call.__exit__).
_UNOWNED: ContextVar[bool] = ContextVar("gemini_unowned_attempt", default=False)


def enter_unowned() -> Token[bool]:
    return _UNOWNED.set(True)


def leave_unowned(token: Token[bool]) -> None:
    _UNOWNED.reset(token)


def unowned_failed(
    token: Token[bool], count: Callable[..., None], *args: Any, error: BaseException
) -> None:
    """An async attempt no call holds raised ``error``: ``count(*args, error)`` now or, when
    its coroutine is being closed (perhaps inside GC, where no lock may be taken), later."""
    try:
        _UNOWNED.reset(token)
        closing = isinstance(error, GeneratorExit)
    except ValueError:  # left in another context than it entered
        closing = True
    if closing:
        defer(count, *args, error)
    else:
        count(*args, error)


def _sync_attempt(patches: Patches, original: Method) -> Method:
    # The SDK's result or exception passes through untouched. No context manager: this runs
    # per attempt.
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = SYNC_CALL.in_flight.call
        if call is None:
            if patches.closed:
                return original(self, *args, **kwargs)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as error:
                _count(patches, self, _url(args, kwargs), error)
                raise
            _count(patches, self, _url(args, kwargs), None)
            return result
        try:
            result = original(self, *args, **kwargs)
        except BaseException as error:
            call.on_attempt_error(error)
            raise
        call.on_attempt_ok()
        return result

    return hook


def _async_attempt(patches: Patches, original: Method) -> Method:
    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = ASYNC_CALL.get()
        if call is None:
            if patches.closed:
                return await original(self, *args, **kwargs)
            token = enter_unowned()
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as error:
                unowned_failed(token, _count, patches, self, _url(args, kwargs), error=error)
                raise
            leave_unowned(token)
            _count(patches, self, _url(args, kwargs), None)
            return result
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as error:
            call.on_attempt_error(error)
            raise
        call.on_attempt_ok()
        return result

    return hook


ATTEMPT_TARGETS: Targets = (
    ("google.genai._api_client", "BaseApiClient._request_once", _sync_attempt),
    ("google.genai._api_client", "BaseApiClient._async_request_once", _async_attempt),
)
