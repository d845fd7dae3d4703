"""Adapter for automatic function calling's tool runs: each of the user's Python functions the
SDK calls between rounds becomes an ``execute_tool {name}`` span, a child of the call's span.

The SDK (``google.genai._extra_utils``) reads the model's function calls in
``get_function_response_parts`` (sync and async) and runs each function through
``invoke_function_from_dict_args`` (a plain function; the async path runs it in a worker thread
with ``asyncio.to_thread``, which copies the caller's context) or, for a coroutine function,
``invoke_function_from_dict_args_async``. The invoke functions get only the arguments and the
function; the call id and the declared name are in the response, so the response hook lists
the model's calls in a context variable and each invoke takes the first one of its name.

These hooks are added with the request hooks, by the first call that carries tools (seams.py):
calls without tools never pass through them. A chat runs its rounds as separate calls and its
tools between them, outside any call: their spans then parent to the current span. Control
flow only: the span is the recorder's (record/tools.py). The SDK turns a function's exception
into a ``FunctionInvocationError`` and then into an ``{"error": ...}`` function response; we
see it pass and let it go on unchanged.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from ..record.call import ASYNC_CALL, SYNC_CALL, Call, InFlight
from ..record.tools import ToolCall, end_async_tool, end_tool, start_tool

if TYPE_CHECKING:
    from .seams import Method, Patches, Targets

_MODULE = "google.genai._extra_utils"
# The function calls of the response whose functions the SDK is running (see the docstring).
_PENDING: ContextVar[list[ToolCall] | None] = ContextVar("gemini_pending_tools", default=None)
_MAX_PENDING = 128  # a response asking for more calls than this: the rest go without an id


def _current_call() -> Call | None:
    # A sync call on this thread, else an async call (also seen from asyncio.to_thread's
    # worker thread, which runs in a copy of the caller's context).
    return SYNC_CALL.in_flight.call or ASYNC_CALL.get()


def _function_calls(response: Any) -> list[ToolCall]:
    """(name, id, arguments) of each function call in the response's first candidate, as the
    SDK walks them. Never raises."""
    out: list[ToolCall] = []
    try:
        candidates = getattr(response, "candidates", None) or ()
        parts = (
            getattr(getattr(candidates[0], "content", None), "parts", None) if candidates else None
        )
        for part in parts or ():
            fc = getattr(part, "function_call", None)
            if fc is not None and len(out) < _MAX_PENDING:
                out.append(
                    ToolCall(
                        getattr(fc, "name", None),
                        getattr(fc, "id", None),
                        getattr(fc, "args", None),
                    )
                )
    except Exception:
        return out
    return out


def _take(name: str | None) -> ToolCall:
    """The pending function call this invoke runs: the first of its name."""
    pending = _PENDING.get()
    if pending:
        for i, tool_call in enumerate(pending):
            if tool_call.name == name:
                return pending.pop(i)
    return ToolCall(name, None, None)


# While a tool runs, no call is in flight: the tool's own SDK requests (files.list, a model's
# get...) are not the call's attempts. A Gemini call the tool makes marks itself; any other
# request is counted on its own, as outside any call. A sync tool clears both markers: one of
# an async call runs in a worker thread holding a copy of the call's context, where
# ``asyncio.run`` would see the call again. An async tool clears only the context's: the
# thread's belongs to whatever sync code runs there (its close may come from the GC's thread).
def _leave_sync_call() -> tuple[InFlight, Call | None, Token[Call | None]]:
    in_flight = SYNC_CALL.in_flight
    outer = in_flight.call
    in_flight.call = None
    return in_flight, outer, ASYNC_CALL.set(None)


def _rejoin_sync_call(left: tuple[InFlight, Call | None, Token[Call | None]]) -> None:
    in_flight, outer, token = left
    in_flight.call = outer
    ASYNC_CALL.reset(token)


def _rejoin_async_call(token: Token[Call | None]) -> None:
    with contextlib.suppress(ValueError):  # closed from another context (the GC's)
        ASYNC_CALL.reset(token)


def _responses_sync(patches: Patches, original: Method) -> Method:
    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return original(response, *args, **kwargs)
        token = _PENDING.set(_function_calls(response))
        try:
            return original(response, *args, **kwargs)
        finally:
            _PENDING.reset(token)

    return hook


def _responses_async(patches: Patches, original: Method) -> Method:
    async def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return await original(response, *args, **kwargs)
        token = _PENDING.set(_function_calls(response))
        try:
            return await original(response, *args, **kwargs)
        finally:
            with contextlib.suppress(ValueError):  # closed from another context (the GC's)
                _PENDING.reset(token)

    return hook


def _invoke_sync(patches: Patches, original: Method) -> Method:
    def hook(args: Any, function: Any, *rest: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return original(args, function, *rest, **kwargs)
        recorder = patches.recorder
        tool_call = _take(getattr(function, "__name__", None))
        run = start_tool(recorder, _current_call(), tool_call, args)
        left = _leave_sync_call()
        try:
            result = original(args, function, *rest, **kwargs)
        except BaseException as error:
            _rejoin_sync_call(left)
            end_tool(recorder, run, None, error)
            raise
        _rejoin_sync_call(left)
        end_tool(recorder, run, result, None)
        return result

    return hook


def _invoke_async(patches: Patches, original: Method) -> Method:
    async def hook(args: Any, function: Any, *rest: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return await original(args, function, *rest, **kwargs)
        recorder = patches.recorder
        tool_call = _take(getattr(function, "__name__", None))
        run = start_tool(recorder, _current_call(), tool_call, args)
        token = ASYNC_CALL.set(None)
        try:
            result = await original(args, function, *rest, **kwargs)
        except BaseException as error:
            _rejoin_async_call(token)
            end_async_tool(recorder, run, error)
            raise
        _rejoin_async_call(token)
        end_tool(recorder, run, result, None)
        return result

    return hook


TOOL_TARGETS: Targets = (
    (_MODULE, "get_function_response_parts", _responses_sync),
    (_MODULE, "get_function_response_parts_async", _responses_async),
    (_MODULE, "invoke_function_from_dict_args", _invoke_sync),
    (_MODULE, "invoke_function_from_dict_args_async", _invoke_async),
)
