"""Per-call state: what one generate_content call saw, turned into telemetry exactly once.

Sync, async and both stream flavours feed the same object: ``with call:`` around the SDK's
own call, ``on_response`` for the response or each chunk, ``on_attempt_ok`` /
``on_attempt_error`` for each HTTP attempt (from the SDK's retry loop), and ``finish``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from ..bounds import MAX_CONTENT_PART
from .content import keep_output
from .operations import GENERATE_CONTENT

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ..billing.units import UnitUsage
    from ..quota.errors import RateLimitInfo
    from .recorder import Recorder
    from .usage import Usage

# What an adapter's reader makes of an answer other than generate_content's: (usage, response
# model, response id, span attributes of its own). Pure, and never called on the hot path of
# generate_content.
Answer = tuple["Usage | None", "str | None", "str | None", "dict[str, Any] | None"]
Reader = Callable[[Any], Answer]
_NO_ANSWER: Answer = (None, None, None, None)

_logger = logging.getLogger(__name__)


class InFlight:
    """The call whose HTTP attempts are in flight on one thread."""

    __slots__ = ("call",)

    def __init__(self) -> None:
        self.call: Call | None = None


class _PerThread(threading.local):
    def __init__(self) -> None:  # runs once in each thread that reads it
        self.in_flight = InFlight()


# The call whose HTTP attempts are in flight, read by the per-attempt and request hooks. Sync
# SDK paths: per thread, since a sync stream marks itself around every chunk it pulls and a
# thread-local costs a third of a context variable there; read once per mark as
# ``SYNC_CALL.in_flight``, a plain object whose field costs a quarter of a thread-local's.
# Async paths: per context, as tasks interleave on one thread. Each marker is saved and
# restored, so nested calls (a call made by a tool inside another call's automatic function
# calling) are attributed to the innermost.
SYNC_CALL = _PerThread()
ASYNC_CALL: ContextVar[Call | None] = ContextVar("gemini_current_call", default=None)


class Attempt:
    __slots__ = ("error_type", "rate_limit", "status")

    def __init__(
        self, status: int | None, error_type: str | None, rate_limit: RateLimitInfo | None
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.rate_limit = rate_limit


OK_ATTEMPT = Attempt(200, None, None)  # shared: most attempts succeed and carry nothing else


# Work left by code that may be running inside garbage collection: a dropped stream is noticed
# in a weakref callback, and a dropped coroutine is closed (GeneratorExit thrown at its await)
# wherever the collector runs, on any thread, while that thread holds a lock (the OTel SDK's,
# the price loader's, ours). There we only append here (deque.append takes no lock and never
# waits); ``drain_abandoned`` does the work from ordinary code: the next call, the next metrics
# collection (on a thread of its own: ``drain_abandoned_aside``), uninstrument() and exit.
# First in, first done: a call's attempts before the call.
_ABANDONED: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()


def defer(work: Callable[..., Any], *args: Any) -> None:
    """Leave ``work(*args)`` to ``drain_abandoned``. Takes no lock: safe inside GC."""
    _ABANDONED.append((work, args))


def _after_fork_in_child() -> None:
    _ABANDONED.clear()  # the parent's calls: recorded (and exported) by the parent


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def drain_abandoned() -> None:
    """Do the work left from garbage-collection contexts. Safe from any thread; each piece is
    taken by one drainer."""
    while _ABANDONED:
        try:
            work, args = _ABANDONED.popleft()
        except IndexError:  # another thread took the last one
            return
        try:
            work(*args)
        except Exception:
            _logger.debug("gemini instrumentation: could not record late", exc_info=True)


# How long a metrics collection waits for the abandoned work it hands to a thread (normally a
# few milliseconds): beyond it, the collection goes on and the next one counts that work.
COLLECTION_DRAIN_WAIT = 1.0
_aside: threading.Thread | None = None  # the thread draining for a collection, if one still is


def drain_abandoned_aside(timeout: float = COLLECTION_DRAIN_WAIT) -> None:
    """``drain_abandoned`` for a metrics collection: on a thread of its own, waited for at most
    ``timeout`` seconds. The work ends spans and emits events through the app's processors,
    and the collecting thread holds the OTel SDK's collection lock: a processor that collects
    metrics itself (a flush on span end) would deadlock on it there, and one whose exporter is
    stuck would stall every reader's collections. Without us a collection never waits on the
    span pipeline. One such thread at a time: a stuck one drains the rest once it is free."""
    global _aside
    if not _ABANDONED:
        return
    thread = _aside
    if thread is None or not thread.is_alive():
        thread = threading.Thread(target=drain_abandoned, name="gemini-drain", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no new thread at interpreter shutdown: drain here, as before
            drain_abandoned()
            return
        _aside = thread
    elif thread is threading.current_thread():
        return  # a collection its own work started (a processor's flush): it drains on after
    thread.join(timeout)


class Call:
    __slots__ = (
        "_context_token",
        "_outer",
        "attempts",
        "captured",
        "chunks",
        "end_ns",
        "end_perf",
        "ended",
        "first_chunk_at",
        "host",
        "is_async",
        "last",
        "model",
        "operation",
        "prev",
        "project",
        "provider",
        "reader",
        "recorder",
        "request_usages",
        "requested_tier",
        "round_ends",
        "span",
        "start",
        "stream",
        "texts",
        "tools",
        "units",
        "usage_chunk",
    )

    def __init__(
        self,
        recorder: Recorder,
        span: Span,
        model: str,
        stream: bool,
        provider: str,
        host: str | None,
        is_async: bool = False,
    ) -> None:
        self.recorder = recorder
        self.span = span
        self.model = model
        self.stream = stream
        self.is_async = is_async
        self.start = time.perf_counter()
        self.provider = provider
        self.host = host
        self.last: Any = None
        self.prev: Any = None  # the chunk before the last: a last chunk may carry usage only
        self.usage_chunk: Any = None
        # Automatic function calling runs several billed requests inside one call, and the
        # caller only sees the last one's usage: each request's (a stream's: each round's),
        # filled by the SDK hooks; empty when the SDK has none of them.
        self.request_usages: list[Any] = []
        # When each of them answered (epoch ns), for the round events: a list once there is one.
        self.round_ends: list[int] | tuple[()] = ()
        self.first_chunk_at: float | None = None
        self.chunks = 0
        self.attempts: list[Attempt] = []
        # Content capture: the output's SDK parts as they come, and what was captured of the
        # request (record/capture.py).
        self.texts: list[Any] | None = [] if recorder.settings.capture_content else None
        self.captured: Any = None
        self.ended = False
        # When the call ended, if it is recorded later than that (abandon): else None, "now".
        self.end_perf: float | None = None
        self.end_ns: int | None = None
        self.operation = GENERATE_CONTENT  # others: set by Recorder.start with their reader
        self.reader: Reader | None = None
        self.requested_tier: str | None = None  # config.service_tier, when the caller set one
        self.project: str | None = None  # a Vertex client's project (else the recorder's)
        # What the call bills by unit (images, video seconds): set by a media adapter.
        self.units: UnitUsage | None = None
        self.tools = False  # the config carries tools: the answer may report grounding

    def __enter__(self) -> None:
        """While the SDK's own call runs: the span is current, so HTTP spans below parent to
        it (not for a stream: that call only builds the stream, and the span is never current
        across the caller's loop, see _stream), and the call is visible to the per-attempt hook.
        """
        self._context_token = (
            None if self.stream else otel_context.attach(trace.set_span_in_context(self.span))
        )
        if self.is_async:
            self._outer = ASYNC_CALL.set(self)
        else:
            in_flight = SYNC_CALL.in_flight
            self._outer = in_flight.call
            in_flight.call = self

    def __exit__(self, _type: Any, error: BaseException | None, _tb: Any) -> None:
        """Restore the caller's context; an exception finishes the call, then propagates
        unchanged."""
        if self.is_async:
            try:
                ASYNC_CALL.reset(self._outer)
            except ValueError:
                # Left in another context than it entered: the coroutine is being closed from
                # outside its task, by the garbage collector (the SDK's cleanup there may raise
                # something else than GeneratorExit). Not our context to detach; record later.
                self.abandon(None, error)
                return
        else:
            SYNC_CALL.in_flight.call = self._outer
        if self._context_token is not None:
            otel_context.detach(self._context_token)
        if error is not None:
            if isinstance(error, GeneratorExit):  # close(): by the GC, as far as we can tell
                self.abandon(None, error)
            else:
                self.finish(error)

    def on_response(self, response: Any) -> None:
        """Take a whole response or one stream chunk.

        Runs once per chunk, so it only keeps references: the latest chunk and the latest that
        carries usage (usage is cumulative: the latest wins, never a sum). ``settle`` reads them
        once when the call ends.
        """
        try:
            if self.chunks == 0:
                self.first_chunk_at = time.perf_counter()
            self.chunks += 1
            self.prev = self.last
            self.last = response
            if response.usage_metadata is not None:
                self.usage_chunk = response
            if self.texts is not None:
                self.on_text(response)
        except Exception:  # never let telemetry break the user's call
            _logger.debug("gemini instrumentation: could not read a response", exc_info=True)

    def on_text(self, response: Any) -> None:
        """Keep the response's parts (content capture is on): text, thoughts, calls... Text
        is kept as runs capped at what telemetry records (whole for a content uploader): a
        long stream must not keep every chunk's parts alive."""
        try:
            parts = _parts_of(response)
            if parts and self.texts is not None:
                content = self.recorder.content
                cap = MAX_CONTENT_PART if content is None or content.uploads is None else None
                keep_output(self.texts, parts, cap)
        except Exception:
            _logger.debug("gemini instrumentation: could not read a text", exc_info=True)

    def settle(self) -> tuple[Any, str | None, str | None, list[str]]:
        """The response fields, read once from the kept chunks when the call ends: (usage
        metadata, model version, response id, finish reasons in lower case as semconv has
        them). The last chunk wins (the SDK clears intermediate finish reasons itself); a
        stream's last chunk may lack what the latest chunk with usage carried, and may carry
        usage only, after the chunk with the finish reasons. Safe on any look-alike object."""
        last, with_usage = self.last, self.usage_chunk
        meta = None if with_usage is None else getattr(with_usage, "usage_metadata", None)
        if self.stream and self.request_usages:
            self.on_stream_round(next_round=False)  # the last round ends with the stream
        version = getattr(last, "model_version", None)
        rid = getattr(last, "response_id", None)
        if with_usage is not last and with_usage is not None:
            if not (isinstance(version, str) and version):
                version = getattr(with_usage, "model_version", None)
            if not (isinstance(rid, str) and rid):
                rid = getattr(with_usage, "response_id", None)
        reasons = _finish_reasons(last)
        if not reasons and self.prev is not None:
            reasons = _finish_reasons(self.prev)
        return (
            meta,
            version if isinstance(version, str) and version else None,
            rid if isinstance(rid, str) and rid else None,
            reasons,
        )

    def read(self) -> Answer:
        """The answer of an operation other than generate_content, through its reader."""
        if self.reader is None or self.last is None:
            return _NO_ANSWER
        try:
            return self.reader(self.last)
        except Exception:
            _logger.debug("gemini instrumentation: could not read an answer", exc_info=True)
            return _NO_ANSWER

    def complete(self, response: Any) -> None:
        """A whole (non-stream) response arrived: take it and finish."""
        self.chunks = 1
        self.last = self.usage_chunk = response
        if self.texts is not None:
            self.on_text(response)
        self.finish()

    def on_request_response(self, response: Any) -> None:
        """One of the SDK's requests inside this call answered (see request_usages)."""
        try:
            meta = getattr(response, "usage_metadata", None)
            if meta is not None:
                self.request_usages.append(meta)
                self._round_ended()
        except Exception:
            _logger.debug("gemini instrumentation: could not read a request", exc_info=True)

    def on_stream_round(self, next_round: bool = True) -> None:
        """A stream's round ends (the next starts, or the stream ends): bank its usage, as
        the next round's chunks count from zero."""
        try:
            if next_round and self.texts:
                self.texts.clear()  # captured output is the last round's: earlier ones called tools
            if self.usage_chunk is not None:
                self.request_usages.append(self.usage_chunk.usage_metadata)
                self._round_ended()
                self.usage_chunk = None
        except Exception:
            _logger.debug("gemini instrumentation: could not start a round", exc_info=True)

    def _round_ended(self) -> None:
        if self.round_ends:
            self.round_ends.append(time.time_ns())  # type: ignore[union-attr]
        else:
            self.round_ends = [time.time_ns()]

    def on_attempt_ok(self) -> None:
        """An HTTP attempt succeeded: the common case, kept cheap; it is counted with its call
        when the call ends (``Recorder.record``), in one update."""
        self.attempts.append(OK_ATTEMPT)

    def on_attempt_error(self, error: BaseException) -> None:
        """An HTTP attempt raised: a status (429, 500...) or a transport error. An async
        attempt whose coroutine is being closed (see ``__exit__``) is counted later."""
        if self.is_async and (isinstance(error, GeneratorExit) or ASYNC_CALL.get() is not self):
            defer(self.attempt_error, error)
        else:
            self.attempt_error(error)

    def attempt_error(self, error: BaseException) -> None:
        try:
            code = error_code(error)
            self.recorder.attempt(self, code if isinstance(code, int) else None, error)
        except Exception:
            _logger.debug("gemini instrumentation: could not record an attempt", exc_info=True)

    def finish(self, error: BaseException | None = None, stream_end: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        self.record_once(error, stream_end)

    def abandon(self, stream_end: str | None, error: BaseException | None = None) -> None:
        """End the call from a context that must not take a lock or wait (a weakref callback,
        a coroutine's close, perhaps inside garbage collection): note when, and leave the
        recording to ``drain_abandoned``. Plain stores and one deque append: nothing here can
        block."""
        if self.ended:
            return
        self.ended = True
        self.end_perf = time.perf_counter()
        self.end_ns = time.time_ns()
        defer(self.record_once, error, stream_end)

    def record_once(self, error: BaseException | None, stream_end: str | None) -> None:
        """Turn the call into telemetry; never leaves the span open, and raises only what a
        signal handler raised while it ran (KeyboardInterrupt, a SystemExit on SIGTERM): the
        app's, to stop it, as it would have a moment later in its own code."""
        try:
            self.recorder.record(self, error, stream_end)
        except Exception:
            _logger.debug("gemini instrumentation: could not record a call", exc_info=True)
            self._end_span()
        except BaseException:
            self._end_span()
            raise

    def _end_span(self) -> None:
        with contextlib.suppress(Exception):
            if self.span.is_recording():  # not ended yet
                self.span.end(self.end_ns)


def error_code(error: BaseException) -> Any:
    """``error.code``; None when the app's exception has a property there that raises. For
    websockets' ``ConnectionClosed`` (a Live session's send or close after the server closed):
    the code of the close frame it received, 1006 without one, as its ``code`` property has it
    without reading that property, which warns (DeprecationWarning, websockets >= 13.1): the app
    would see the warning from us, not bare."""
    try:
        closed = websocket_closed(error)
        if closed is not None:
            rcvd = closed["rcvd"]
            return 1006 if rcvd is None else getattr(rcvd, "code", None)
        return getattr(error, "code", None)
    except Exception:
        return None


def websocket_closed(error: BaseException) -> dict[str, Any] | None:
    """The fields of websockets' ``ConnectionClosed`` (``rcvd``, ``sent``, ``rcvd_then_sent``),
    read from its ``__dict__``: its properties warn (DeprecationWarning). None for any other
    error."""
    fields = getattr(error, "__dict__", None)
    return fields if isinstance(fields, dict) and "rcvd" in fields else None


def _finish_reasons(response: Any) -> list[str]:
    """Each candidate's finish reason, in lower case as semconv has them."""
    reasons: list[str] = []
    try:
        for candidate in getattr(response, "candidates", None) or ():
            reason = getattr(candidate, "finish_reason", None)
            if reason is not None:
                # The SDK's reasons are str enums: lower() reads their text without the (slow)
                # Enum.value property.
                text = reason if isinstance(reason, str) else str(getattr(reason, "value", reason))
                reasons.append(text.lower())
    except Exception:
        _logger.debug("gemini instrumentation: could not read finish reasons", exc_info=True)
    return reasons


def _parts_of(response: Any) -> list[Any]:
    candidates = getattr(response, "candidates", None)
    if not candidates:
        return []
    parts = getattr(getattr(candidates[0], "content", None), "parts", None)
    return list(parts) if isinstance(parts, list) else []
