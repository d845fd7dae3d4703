"""Per-call state: what one generate_content call saw, turned into telemetry exactly once.

Sync, async and both stream flavours feed the same object: ``on_response`` for the response or
each chunk, ``on_attempt`` for each HTTP attempt (from the SDK's retry loop), and ``finish``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .quota_errors import RateLimitInfo
    from .telemetry import Recorder

_logger = logging.getLogger(__name__)

# The call whose HTTP attempts are in flight in this context; read by the per-attempt hook.
CURRENT_CALL: ContextVar[Call | None] = ContextVar("gemini_current_call", default=None)


class Attempt:
    __slots__ = ("error_type", "rate_limit", "status")

    def __init__(
        self, status: int | None, error_type: str | None, rate_limit: RateLimitInfo | None
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.rate_limit = rate_limit


class Call:
    __slots__ = (
        "attempts",
        "chunks",
        "ended",
        "finish_reasons",
        "first_chunk_at",
        "host",
        "model",
        "provider",
        "recorder",
        "response_id",
        "response_model",
        "span",
        "start",
        "stream",
        "texts",
        "usage_metadata",
    )

    def __init__(
        self,
        recorder: Recorder,
        span: Span,
        model: str,
        stream: bool,
        provider: str,
        host: str | None,
    ) -> None:
        self.recorder = recorder
        self.span = span
        self.model = model
        self.stream = stream
        self.start = time.perf_counter()
        self.provider = provider
        self.host = host
        self.usage_metadata: Any = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []
        self.first_chunk_at: float | None = None
        self.chunks = 0
        self.attempts: list[Attempt] = []
        self.texts: list[str] | None = [] if recorder.settings.capture_content else None
        self.ended = False

    def on_response(self, response: Any) -> None:
        """Take a whole response or one stream chunk. Usage is cumulative: the latest wins."""
        try:
            if self.chunks == 0:
                self.first_chunk_at = time.perf_counter()
            self.chunks += 1
            meta = getattr(response, "usage_metadata", None)
            if meta is not None:
                self.usage_metadata = meta
            version = getattr(response, "model_version", None)
            if version:
                self.response_model = version
            rid = getattr(response, "response_id", None)
            if rid:
                self.response_id = rid
            for candidate in getattr(response, "candidates", None) or ():
                reason = candidate.finish_reason
                if reason is not None:
                    self.finish_reasons.append(getattr(reason, "value", str(reason)))
            if self.texts is not None:
                text = _text_of(response)
                if text:
                    self.texts.append(text)
        except Exception:  # never let telemetry break the user's call
            _logger.debug("gemini instrumentation: could not read a response", exc_info=True)

    def on_attempt(self, status: int | None, error: BaseException | None) -> None:
        try:
            self.recorder.attempt(self, status, error)
        except Exception:
            _logger.debug("gemini instrumentation: could not record an attempt", exc_info=True)

    def finish(self, error: BaseException | None = None, stream_end: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self.recorder.record(self, error, stream_end)
        except BaseException:
            _logger.debug("gemini instrumentation: could not record a call", exc_info=True)
            with contextlib.suppress(BaseException):
                self.span.end()


def _text_of(response: Any) -> str:
    candidates = getattr(response, "candidates", None)
    if not candidates:
        return ""
    parts = getattr(getattr(candidates[0], "content", None), "parts", None) or ()
    return "".join(
        part.text
        for part in parts
        if isinstance(getattr(part, "text", None), str) and not getattr(part, "thought", False)
    )
