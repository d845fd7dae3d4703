"""Sessions that outlive a call: a Live API session, recorded as one span from connect to close.

A session is a ``Call`` (its span, attempts, recording path) whose usage arrives in many
messages. A usage message costs the session a queue append (``on_message``): it is read, priced
(per turn, as Google bills it) and counted at the next drain of ``PendingUsage`` - a metric
collection, any read of the quota windows, or a session's end - stamped with the time it arrived.
So the dashboard counters (gcp.gemini.tokens, gcp.gemini.cost) and the quota windows move while a
session lasts, at the second each turn's usage arrived; the span gets the session's totals once,
when it ends, through the recorder's one path (``Recorder.record``, which neither prices nor
counts an ``ACCRUED`` operation again).

The usage rule: each usage message is the usage of one model turn (its prompt includes the
session's context so far, which Google bills again on every turn), so messages ADD UP; they
are never read as running totals of the session (see README, "Live API sessions").

Nothing here imports the SDK: the adapter (sdk/live.py) hands in the SDK's messages and a reader
that turns their usage metadata into a ``Usage``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..bounds import MAX_NAME
from .call import Answer, Call, error_code
from .usage import Usage, sum_usages

if TYPE_CHECKING:
    from ..quota.windows import QuotaWindows
    from .counters import DashboardCounters

_logger = logging.getLogger(__name__)

UsageReader = Callable[[Any], "Usage | None"]

# Usage messages waiting for the next drain, all sessions of one meter provider together. Each
# holds the SDK's UsageMetadata (about 3 KB with its per-modality details), so at most ~12 MB;
# a message that finds the queue full is priced and counted at once (the slow path: ~7 us).
MAX_PENDING = 4096


class OpenSessions:
    """Live sessions open in this process, per model: the ``live_sessions`` dimension of the
    quota gauges. Opened and closed from ordinary code only (an abandoned session is closed when
    it is recorded, ``drain_abandoned``), so the lock is never taken inside garbage collection.
    Bounded: models are capped (bounds.ModelCap) before they get here."""

    __slots__ = ("_lock", "_open")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def opened(self, model: str) -> None:
        with self._lock:
            self._open[model] = self._open.get(model, 0) + 1

    def closed(self, model: str) -> None:
        with self._lock:
            # Kept at 0 rather than dropped: the gauge then shows the session count back at 0.
            self._open[model] = max(0, self._open.get(model, 0) - 1)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._open)

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._open = {}


class PendingUsage:
    """The usage messages of Live sessions not priced and counted yet, per meter provider.

    The message path appends (arrival time, session, the SDK's usage metadata) to a deque: no
    lock, no read of the usage (reading it costs more than the 1 us a message may cost).
    ``drain`` does the rest, one record at a time in arrival order: the session's totals, the
    turn's price, the counters and the quota windows, stamped at the arrival second, so the
    windows hold the tokens of the second they arrived in whenever they are read (every reader
    drains first: ``DashboardCounters.bank``, the collection's first callback).

    Drains run in ordinary code only (a collection, a read of the windows, a session's end),
    never in garbage collection, under one lock: a session's end (``settle``) takes it, so no
    record of its own is half-counted by another thread when it reads its totals. Bounded: a
    drain handles at most what was queued when it began, and the queue at most MAX_PENDING.
    """

    __slots__ = ("_counters", "_lock", "_queue", "_windows", "clock")

    def __init__(self, counters: DashboardCounters, windows: QuotaWindows) -> None:
        self._counters = counters
        self._windows = windows
        self._lock = threading.Lock()
        self._queue: deque[tuple[float, LiveSession, Any]] = deque()
        self.clock: Callable[[], float] = time.time  # settable: tests place turns in time

    def add(self, session: LiveSession, meta: Any) -> None:
        """One usage message, from the message path: queued, or counted at once if full."""
        queue = self._queue
        if len(queue) < MAX_PENDING:
            queue.append((self.clock(), session, meta))
        else:
            with self._lock:
                session._accrue(meta, self.clock(), self._counters, self._windows)

    def drain(self, wait: bool = False) -> None:
        """Price and count the queued messages. ``wait``: also when the queue looks empty, so
        that a record another thread took is fully counted before this returns (a session's
        end). Never raises."""
        queue = self._queue
        if not queue and not wait:
            return
        counters, windows = self._counters, self._windows
        with self._lock:
            for _ in range(len(queue)):  # what is queued now; later messages wait their turn
                try:
                    at, session, meta = queue.popleft()
                except IndexError:
                    return
                try:
                    session._accrue(meta, at, counters, windows)
                except Exception:  # never let one record stop the rest
                    _logger.debug(
                        "gemini instrumentation: could not count live usage", exc_info=True
                    )

    def __len__(self) -> int:
        return len(self._queue)

    def reset_after_fork(self) -> None:
        """The child counts none of its parent's messages: the parent drains them."""
        self._lock = threading.Lock()
        self._queue.clear()  # the same deque: open sessions' state may refer to this object


class LiveSession:
    """One Live session's state, fed per server message by the adapter."""

    __slots__ = (
        "_cost",
        "_open",
        "_pending",
        "_usage",
        "call",
        "close_code",
        "conversation_id",
        "end",
        "go_away",
        "handshake_status",
        "interruptions",
        "messages",
        "read_usage",
        "receive_error",
        "tool_calls",
        "turns",
        "unpriced",
        "usage_messages",
    )

    def __init__(self, call: Call, read_usage: UsageReader) -> None:
        self.call = call
        self.read_usage = read_usage
        self.messages = 0
        self.usage_messages = 0
        self.turns = 0
        self.tool_calls = 0
        self.interruptions = 0
        self.go_away: float | None = None  # seconds left, when the server announced its end
        self.close_code: int | None = None
        self.handshake_status: int | None = None  # a refused handshake's HTTP status
        self.conversation_id: str | None = None
        self.receive_error: BaseException | None = None  # what the SDK's receive raised
        self.end = A.LIVE_END_ERROR  # until the adapter knows better
        self.unpriced: str | None = None  # why some usage of this session has no price
        # Totals of every usage message, summed in place (a Usage is built once, at the end):
        # counts in Usage's field order, then its four per-modality maps.
        self._usage: Usage | None = None  # the turns so far, summed
        # USD per component (input, cached input, output, tool use), billed, list, version.
        self._cost: list[Any] | None = None
        self._open = False
        # Where its usage messages wait to be priced and counted (one queue per meter provider).
        self._pending: PendingUsage = call.recorder.instruments.live_usage
        call.reader = _answer
        call.last = self  # what the recorder hands the reader

    # --- the session's life -----------------------------------------------------------------
    def opened(self) -> None:
        """The handshake succeeded: one successful attempt, one more open session."""
        call = self.call
        call.on_attempt_ok()
        call.recorder.instruments.live_sessions.opened(call.model)
        self._open = True

    def on_message(self, message: Any) -> None:
        """One server message the app received. The common message (audio or text of a turn)
        costs a few attribute reads; a usage message one queue append more (``PendingUsage``);
        turn ends, tool calls and goAway do the rest."""
        try:
            self.messages += 1
            meta = message.usage_metadata
            if meta is not None:
                self.usage_messages += 1
                self._pending.add(self, meta)
            content = message.server_content
            if content is not None:
                if content.turn_complete:
                    self.turns += 1
                if content.interrupted:
                    self.interruptions += 1
            if message.tool_call is not None:
                self.tool_calls += len(message.tool_call.function_calls or ())
            if message.go_away is not None:
                self._on_go_away(message.go_away)
        except Exception:  # never let telemetry break the session
            _logger.debug("gemini instrumentation: could not read a live message", exc_info=True)

    def on_receive_error(self, error: BaseException) -> None:
        """The SDK's receive raised: the server closed the connection (an ``APIError`` whose
        code is the websocket close code) or sent something it could not read."""
        self.receive_error = error
        code = error_code(error)
        if isinstance(code, int) and 1000 <= code <= 4999:
            self.close_code = code

    def finish(self, error: BaseException | None, end: str) -> None:
        if self.call.ended:  # abandoned first (a drop noticed by GC): that end stands
            return
        self.end = end
        self.call.finish(error)

    def abandon(self, error: BaseException | None = None) -> None:
        """Dropped without being closed; may run inside garbage collection: plain stores and
        ``Call.abandon`` only (the recording, and the open-session count, wait for a drain).
        ``error``: the ``GeneratorExit`` that closed a handshake (the session never opened)."""
        if self.call.ended:
            return
        self.end = A.LIVE_END_ABANDONED
        self.call.abandon(A.LIVE_END_ABANDONED, error)

    # --- per usage message, at a drain (PendingUsage holds its lock) -------------------------
    def _accrue(
        self, meta: Any, at: float, counters: DashboardCounters, windows: QuotaWindows
    ) -> None:
        """One turn's usage, which arrived at ``at`` (epoch s): into the session's totals, priced
        on its own (a turn is billed as one request: a price that depends on the prompt's size
        applies per turn, so turns are never priced summed), counted, and into the model's quota
        windows at the second it arrived."""
        usage = self.read_usage(meta)
        if usage is None:
            return
        before = self._usage
        if before is None:
            self._usage = usage
        else:
            total = sum_usages([before, usage])
            if total.traffic_type is None:  # the traffic type the last turn that named one
                total = replace(total, traffic_type=before.traffic_type)
            self._usage = total
        call = self.call
        recorder = call.recorder
        cost = None
        prices = recorder.prices
        if prices is not None:
            cost = prices.cost(
                call.model,
                usage,
                tier=recorder.tier,
                traffic_type=call.requested_tier,
                at=datetime.fromtimestamp(at, timezone.utc),  # the prices of the turn's time
            )
            if cost is None:
                self.unpriced = recorder.no_price_reason(call.model)
            else:
                c = self._cost
                if c is None:
                    self._cost = [
                        cost.input,
                        cost.cached_input,
                        cost.output,
                        cost.tool_use_input,
                        cost.total,
                        cost.list_total,
                        cost.prices_version,
                    ]
                else:
                    c[0] += cost.input
                    c[1] += cost.cached_input
                    c[2] += cost.output
                    c[3] += cost.tool_use_input
                    c[4] += cost.total
                    c[5] += cost.list_total
        # The dashboards' counters (their accrued ledger, which does not feed the windows) and
        # the windows themselves, at the turn's second rather than the drain's: the TPM window
        # is the last minute, and a collection may come a minute later.
        model = call.model
        counters.accrue(
            model,
            None,
            recorder.tier,
            0,
            usage,
            cost,
            call.operation,
            call.project or recorder.project,
        )
        windows.record(
            model,
            input_tokens=usage.input_tokens,  # prompt (cached included) and tool-use prompt
            cost_usd=cost.total if cost is not None else 0.0,  # billed: 0 on the free tier
            at=at,
        )

    def _on_go_away(self, go_away: Any) -> None:
        left = _seconds(getattr(go_away, "time_left", None))
        self.go_away = left if left is not None else 0.0
        event = {} if left is None else {A.GEMINI_LIVE_GO_AWAY_TIME_LEFT: left}
        self.call.span.add_event(A.EVENT_LIVE_GO_AWAY, event)

    # --- at the end, once (the recorder calls the reader) -----------------------------------
    def settle(self) -> Answer:
        """The session's usage and its span attributes; closes its open-session count and
        counts it unpriced when it is. Runs inside ``Recorder.record``: once, from ordinary
        code (a drain for an abandoned session)."""
        call = self.call
        recorder = call.recorder
        # Every usage message still queued, this session's among them, is counted first: its
        # totals are complete once this returns (a drain elsewhere finishes before it does).
        self._pending.drain(wait=True)
        if self._open:
            self._open = False
            recorder.instruments.live_sessions.closed(call.model)
        attrs: dict[str, Any] = {
            A.GEMINI_LIVE_END: self.end,
            A.GEMINI_LIVE_MESSAGES: self.messages,
            A.GEMINI_LIVE_TURNS: self.turns,
        }
        if self.usage_messages:
            attrs[A.GEMINI_LIVE_USAGE_MESSAGES] = self.usage_messages
        if self.tool_calls:
            attrs[A.GEMINI_LIVE_TOOL_CALLS] = self.tool_calls
        if self.interruptions:
            attrs[A.GEMINI_LIVE_INTERRUPTIONS] = self.interruptions
        if self.close_code is not None:
            attrs[A.GEMINI_LIVE_CLOSE_CODE] = self.close_code
        if self.go_away is not None:
            attrs[A.GEMINI_LIVE_GO_AWAY_TIME_LEFT] = self.go_away
        if self.handshake_status is not None:
            attrs[A.HTTP_RESPONSE_STATUS_CODE] = self.handshake_status
        if self.conversation_id:
            attrs[A.GEN_AI_CONVERSATION_ID] = recorder.secrets.clean(self.conversation_id, MAX_NAME)
        if recorder.prices is not None:
            self._cost_attributes(attrs)
        return self._usage, None, None, attrs

    def _cost_attributes(self, attrs: dict[str, Any]) -> None:
        """What the session cost, summed over its usage messages as they were priced. A session
        that reported no usage, or whose model has no price, has no cost attribute."""
        call = self.call
        c = self._cost
        reason = self.unpriced
        if reason is None and c is None:
            reason = A.UNPRICED_NO_USAGE
        if reason is not None:
            attrs[A.GEMINI_COST_UNPRICED_REASON] = reason
            # As for calls: a session that never got a message had nothing to price.
            if reason != A.UNPRICED_NO_USAGE or self.messages:
                recorder = call.recorder
                recorder.counters.unpriced.add(
                    (call.model, None, reason, call.project or recorder.project), 1
                )
        if c is not None and self.unpriced is None:
            attrs[A.GEN_AI_USAGE_COST_AMOUNT] = c[4]
            attrs[A.GEN_AI_USAGE_COST_CURRENCY] = "USD"
            attrs[A.GEN_AI_USAGE_COST_SOURCE] = "local"
            attrs[A.GEMINI_COST_LIST_AMOUNT] = c[5]
            attrs[A.GEMINI_COST_PRICES_VERSION] = c[6]


def _answer(session: LiveSession) -> Answer:
    return session.settle()


def _seconds(text: Any) -> float | None:
    """A protobuf Duration as JSON sends it ("10s", "0.5s") in seconds; None if unreadable."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str) or not text.endswith("s") or len(text) > 32:
        return None
    try:
        value = float(text[:-1])
    except ValueError:
        return None
    return value if value >= 0 and value == value else None  # NaN fails value == value
