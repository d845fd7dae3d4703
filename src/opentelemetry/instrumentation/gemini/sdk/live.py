"""Adapter for the Live API (``client.aio.live.connect``): one span per session, from connect
until the session ends, however it ends. Control flow only; the session's state and its
recording are record/live.py's and the Recorder's.

google-genai 3.6 has the async variant only (``AsyncLive.connect``, an async context manager
over websockets; the sync client has no ``live``). Two seams:

- ``AsyncLive.connect``: our hook hands back a context manager around the SDK's own, which
  opens the span before the handshake and ends it when the ``async with`` is left: normally,
  by an exception (the server's close, the app's own), or by cancellation.
- ``AsyncSession._receive``: every server message passes through it (``receive()`` and the
  deprecated ``start_stream()`` alike), so each one is seen once, after the SDK parsed it. The
  session's state is found by the session's id in a plain dict: one lookup per message.

A session dropped without its context manager being left (a task garbage-collected mid-session,
``__aenter__`` called by hand and never ``__aexit__``) is noticed by a weakref on the SDK's
session object, or by a ``GeneratorExit`` thrown into the handshake or into ``__aexit__`` while
a coroutine is being closed: both may run inside garbage collection, so they only mark the
session abandoned (``Call.abandon``) and the recording waits for ``drain_abandoned``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..record import operations as ops
from ..record.call import defer, error_code, websocket_closed
from ..record.live import LiveSession
from ..record.usage import usage_reader
from .models import _start

if TYPE_CHECKING:
    from .seams import Method, Patches, Targets

_logger = logging.getLogger(__name__)

# id(SDK session) -> its state, while the session is open. Entries leave when the session ends
# (``_end``) or when the SDK's session object is collected (``_watch``).
_SESSIONS: dict[int, LiveSession] = {}
# Drop watchers: a weakref's callback only runs while the weakref itself is alive.
_WATCHERS: set[weakref.ref[Any]] = set()


# ``LiveServerMessage.usage_metadata`` (``types.UsageMetadata``) as a Usage. Its names differ
# from generate_content's: ``response_token_count`` and ``response_tokens_details`` are the
# output (candidates) counts. Runs once per usage message.
read_live_usage = usage_reader(
    (
        "prompt_token_count",
        "cached_content_token_count",
        "response_token_count",
        "thoughts_token_count",
        "tool_use_prompt_token_count",
        "total_token_count",
    ),
    (
        "prompt_tokens_details",
        "cache_tokens_details",
        "response_tokens_details",
        "tool_use_prompt_tokens_details",
    ),
)


class _Connect:
    """What our ``connect`` hook returns in place of the SDK's context manager: the same
    ``async with`` protocol, yielding the SDK's own session object untouched."""

    __slots__ = ("_args", "_inner", "_live", "_patches", "_session", "_state")

    def __init__(self, patches: Patches, live: Any, inner: Any, kwargs: dict[str, Any]) -> None:
        self._patches = patches
        self._live = live
        self._inner = inner  # the SDK's context manager
        self._args = kwargs
        self._state: LiveSession | None = None
        self._session: Any = None

    def __getattr__(self, name: str) -> Any:  # anything else the SDK's manager offers
        return getattr(self._inner, name)

    async def __aenter__(self) -> Any:
        state = _open(self._patches, self._live, self._args)
        if state is None:
            return await self._inner.__aenter__()
        self._state = state
        try:
            session = await self._inner.__aenter__()
        except GeneratorExit as error:
            # Closed mid-handshake, perhaps by the garbage collector: nothing that may take a
            # lock here. The attempt and the span are recorded at the next drain.
            defer(state.call.attempt_error, error)
            state.abandon(error)
            raise
        except BaseException as error:
            _connect_failed(state, error)
            raise
        self._session = session
        try:
            state.opened()
            setup = getattr(session, "setup_complete", None)
            session_id = getattr(setup, "session_id", None) or getattr(session, "session_id", None)
            if isinstance(session_id, str) and session_id:
                state.conversation_id = session_id
            _SESSIONS[id(session)] = state
            _watch(session, state)
        except Exception:
            _logger.debug("gemini instrumentation: could not follow a live session", exc_info=True)
        return session

    async def __aexit__(self, kind: Any, error: BaseException | None, tb: Any) -> Any:
        state = self._state
        if state is None:
            return await self._inner.__aexit__(kind, error, tb)
        if isinstance(error, GeneratorExit):
            _dropped(self._session, state)
            return await self._inner.__aexit__(kind, error, tb)
        outcome: BaseException | None = error
        try:
            return await self._inner.__aexit__(kind, error, tb)
        except BaseException as raised:  # closing failed, or was cancelled: that ends it
            outcome = raised
            raise
        finally:
            if isinstance(outcome, GeneratorExit):  # closed while the SDK closed the websocket
                _dropped(self._session, state)
            else:
                _end(self._session, state, outcome)


def _open(patches: Patches, live: Any, kwargs: dict[str, Any]) -> LiveSession | None:
    call = _start(
        patches,
        live,
        # A session has no contents at connect (turns are sent later, and not captured): with
        # content capture on, only its system instructions are recorded.
        {**kwargs, "contents": ()},
        stream=False,
        is_async=True,
        operation=ops.GENERATE_LIVE_CONTENT,
    )
    if call is None:
        return None
    try:
        return LiveSession(call, read_live_usage)
    except Exception:
        _logger.debug("gemini instrumentation: could not start a live session", exc_info=True)
        call.finish(None)
        return None


def _connect_failed(state: LiveSession, error: BaseException) -> None:
    """The handshake was refused (an HTTP status: websockets' ``InvalidStatus``), the server
    closed the connection at setup (an ``APIError`` with the close code), or the network
    failed. Never raises."""
    end = A.LIVE_END_CANCELLED if isinstance(error, asyncio.CancelledError) else A.LIVE_END_ERROR
    try:
        call = state.call
        response = getattr(error, "response", None)
        # websockets' InvalidStatus carries the response; its legacy InvalidStatusCode the code.
        status = getattr(response, "status_code", None) or getattr(error, "status_code", None)
        if isinstance(status, int):
            state.handshake_status = status
            # A 429's body, when it is Google's JSON error, names the quota (its details).
            call.recorder.attempt(call, status, _Refusal(error, response))
        elif isinstance(error_code(error), int):
            call.on_attempt_ok()  # the handshake went through; the session was refused after
            state.on_receive_error(error)
        else:
            call.recorder.attempt(call, None, error)
    except Exception:
        _logger.debug("gemini instrumentation: could not read a refusal", exc_info=True)
    state.finish(error, end)


class _Refusal:
    """A refused handshake as the recorder reads an error: its body (Google's JSON error, when
    it is one) as ``details``, as the SDK's APIError carries it."""

    __slots__ = ("details",)

    def __init__(self, error: BaseException, response: Any) -> None:
        body = getattr(response, "body", None)
        details = None
        if isinstance(body, (bytes, bytearray)) and 0 < len(body) <= 65536:
            try:
                details = json.loads(body)
            except ValueError:
                details = None
        self.details = details


def _end(session: Any, state: LiveSession, error: BaseException | None) -> None:
    """The ``async with`` was left: how, and the close code the server sent."""
    try:
        _forget(session, state)
        if state.close_code is None:
            ws = getattr(session, "_ws", None)
            code = getattr(ws, "close_code", None)
            if isinstance(code, int):
                state.close_code = code
        if error is None:
            end = A.LIVE_END_CLOSED if state.receive_error is None else _server_end(state)
        elif isinstance(error, asyncio.CancelledError):
            end = A.LIVE_END_CANCELLED
        elif error is state.receive_error or _closed_by_server(error):
            end = _server_end(state)
        else:
            end = A.LIVE_END_ERROR
    except Exception:
        _logger.debug("gemini instrumentation: could not read a session's end", exc_info=True)
        end = A.LIVE_END_ERROR
    state.finish(error, end)


def _closed_by_server(error: BaseException) -> bool:
    """websockets' ``ConnectionClosed`` from the app's send after the server closed, or after the
    connection dropped: the server's end, as a receive would have read it. Not when the app had
    closed first (``rcvd_then_sent`` False)."""
    closed = websocket_closed(error)
    return closed is not None and closed.get("rcvd_then_sent") is not False


def _server_end(state: LiveSession) -> str:
    return A.LIVE_END_GO_AWAY if state.go_away is not None else A.LIVE_END_SERVER_CLOSED


def _forget(session: Any, state: LiveSession) -> None:
    """Stop following ``session``: a dict pop, safe anywhere (no lock, no wait)."""
    if session is not None and _SESSIONS.get(id(session)) is state:
        _SESSIONS.pop(id(session), None)


def _dropped(session: Any, state: LiveSession) -> None:
    """The session's coroutine is being closed (a ``GeneratorExit``), perhaps by the garbage
    collector: nothing that may take a lock here (see the module docstring)."""
    _forget(session, state)
    state.abandon()


def _watch(session: Any, state: LiveSession) -> None:
    def dropped(ref: weakref.ref[Any]) -> None:
        _WATCHERS.discard(ref)
        if _SESSIONS.get(key) is state:
            _SESSIONS.pop(key, None)
        if not state.call.ended:
            state.abandon()

    key = id(session)
    _WATCHERS.add(weakref.ref(session, dropped))


# --- hooks ---------------------------------------------------------------------------------
def _connect_hook(patches: Patches, original: Method) -> Method:
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        inner = original(self, *args, **kwargs)
        if patches.closed or args:  # connect() is keyword-only: anything else is not ours
            return inner
        return _Connect(patches, self, inner, kwargs)

    return hook


def _receive_hook(_patches: Patches, original: Method) -> Method:
    # Per message: one dict lookup, then the SDK's own coroutine awaited in place.
    async def hook(self: Any) -> Any:
        state = _SESSIONS.get(id(self))
        if state is None:
            return await original(self)
        try:
            message = await original(self)
        except Exception as error:  # not a cancellation: that is the task's, not the server's
            state.on_receive_error(error)
            raise
        state.on_message(message)
        return message

    return hook


LIVE_TARGETS: Targets = (
    ("google.genai.live", "AsyncLive.connect", _connect_hook),
    ("google.genai.live", "AsyncSession._receive", _receive_hook),
)
