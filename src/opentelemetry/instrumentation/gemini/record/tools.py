"""Tool execution spans: ``execute_tool {name}`` (INTERNAL), a child of the generate_content
span whose automatic function calling runs the tool, current while the tool runs (so what the
tool itself calls, another Gemini call included, nests under it). A chat (google-genai >= 3.6)
runs automatic function calling itself, one generate_content call per round: its tools run
between those calls, and their spans are children of whatever span is current there.

Semconv attributes: ``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name``,
``gen_ai.tool.call.id`` (when the model gave one), ``gen_ai.tool.type=function``; the arguments
and the result only when content goes on spans (capped, keys redacted). A tool that raises:
status ERROR, ``error.type`` the tool's own exception class and an exception event, while the
SDK goes on as it always does (it answers the model with the error).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry.trace import SpanKind

from opentelemetry import context as otel_context
from opentelemetry import trace

from .. import attributes as A
from ..bounds import MAX_CONTENT_PART, name
from .call import defer
from .content import unserializable
from .recorder import error_class

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .call import Call
    from .recorder import Recorder

_logger = logging.getLogger(__name__)


class ToolCall(NamedTuple):
    """A function call the model asked for: its name, id and arguments as the model sent them."""

    name: str | None
    id: str | None
    args: Any


class ToolRun(NamedTuple):
    span: Span
    token: object  # the context token: the span is current while the tool runs


def start_tool(
    recorder: Recorder, call: Call | None, tool_call: ToolCall, args: Any
) -> ToolRun | None:
    """Open the tool's span under ``call``'s (None: under the current span, as when a chat
    runs the functions between its calls) and make it current; None if anything is off."""
    try:
        tool = name(tool_call.name) if isinstance(tool_call.name, str) else "unknown"
        attrs: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: A.OPERATION_EXECUTE_TOOL,
            A.GEN_AI_TOOL_NAME: tool,
            A.GEN_AI_TOOL_TYPE: A.TOOL_TYPE_FUNCTION,
        }
        if isinstance(tool_call.id, str) and tool_call.id:
            attrs[A.GEN_AI_TOOL_CALL_ID] = name(tool_call.id)
        if recorder.settings.content_on_span:
            given = tool_call.args if tool_call.args is not None else args
            attrs[A.GEN_AI_TOOL_CALL_ARGUMENTS] = _json(recorder, given)
        span = recorder.tracer.start_span(
            f"{A.OPERATION_EXECUTE_TOOL} {tool}",
            context=None if call is None else trace.set_span_in_context(call.span),
            kind=SpanKind.INTERNAL,
            attributes=attrs,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return ToolRun(span, token)
    except Exception:
        _logger.debug("gemini instrumentation: could not start a tool span", exc_info=True)
        return None


def end_tool(
    recorder: Recorder, run: ToolRun | None, result: Any, error: BaseException | None
) -> None:
    """End the tool's span with its result or its error. Never raises."""
    if run is None:
        return
    _detach(run)
    _end_span(recorder, run.span, result, error)


def end_async_tool(recorder: Recorder, run: ToolRun | None, error: BaseException) -> None:
    """An async tool's await raised. When its coroutine is being closed (GeneratorExit, or a
    context other than the tool's: the garbage collector's, perhaps on another thread), nothing
    here may take a lock: the span ends later (``drain_abandoned``), and the tool's context is
    detached only where it is the current one."""
    if run is None:
        return
    own_context = trace.get_current_span() is run.span
    if own_context and not isinstance(error, GeneratorExit):
        end_tool(recorder, run, None, error)
        return
    if own_context:
        _detach(run)
    defer(_end_span, recorder, run.span, None, error)


def _detach(run: ToolRun) -> None:
    try:
        otel_context.detach(run.token)  # type: ignore[arg-type]
    except Exception:
        _logger.debug("gemini instrumentation: could not detach a tool span", exc_info=True)


def _end_span(recorder: Recorder, span: Span, result: Any, error: BaseException | None) -> None:
    try:
        if error is not None:
            # The SDK wraps the tool's exception in FunctionInvocationError (raised inside its
            # except block): the tool's own is its context, and the one a user looks for.
            own = error.__context__ if type(error).__name__ == "FunctionInvocationError" else None
            failure = own if own is not None else error
            span.set_attribute(A.ERROR_TYPE, error_class(failure))
            recorder._record_error(span, failure)
        elif recorder.settings.content_on_span:
            span.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, _json(recorder, result))
    except Exception:
        _logger.debug("gemini instrumentation: could not record a tool", exc_info=True)
    finally:
        try:
            span.end()
        except Exception:
            _logger.debug("gemini instrumentation: could not end a tool span", exc_info=True)


def _json(recorder: Recorder, value: Any) -> str:
    """``value`` as JSON (anything else as its text), capped and without keys."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except Exception:  # RecursionError (nesting), a __str__ that raises
        text = unserializable(value)  # as content capture says it
    return str(recorder.secrets.clean(text, MAX_CONTENT_PART))
