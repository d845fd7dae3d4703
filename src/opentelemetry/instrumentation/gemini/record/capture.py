"""Where captured content goes: span attributes (JSON strings), the semconv event
``gen_ai.client.inference.operation.details`` (structured, through the OTel logs API), or a
content uploader (only references in telemetry). Chosen once, at instrument time
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, ``capture_content=``,
``content_uploader=``); nothing here runs unless content capture is on.

``start`` runs when a call opens (input messages and system instructions), ``finish`` once when
it is recorded, before its span ends (output messages, the event, the upload).
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from .. import attributes as A
from ..bounds import warn_once
from . import content
from .upload import ContentUploader, Pending, Uploads

if TYPE_CHECKING:
    from .call import Call
    from .recorder import Recorder

_logger = logging.getLogger(__name__)

# The span attributes the event repeats (semconv: the event carries the operation's
# attributes): every gen_ai.* and server.* one, and error.type.
_EVENT_PREFIXES = ("gen_ai.", "server.")


class Captured:
    """What a call captured when it opened."""

    __slots__ = ("attributes", "config", "contents", "input", "system")

    def __init__(
        self, attributes: dict[str, Any], contents: Any, config: Any, upload: bool
    ) -> None:
        self.attributes = attributes  # the span's start attributes, for the event
        # For an upload (built off the caller's path): a list copied, as a chat appends to it.
        if upload and isinstance(contents, list):
            contents = list(contents)
        self.contents = contents if upload else None
        self.config = config
        self.input: list[Any] | None = None
        self.system: list[Any] | None = None


class Sink:
    """Where this instrumentation sends content: ``on_span``, ``in_event`` (with ``logger``),
    ``uploads``."""

    def __init__(self, on_span: bool, in_event: bool, logger: Any, uploads: Uploads | None) -> None:
        self.on_span = on_span
        self.in_event = in_event and logger is not None
        self.logger = logger
        self.uploads = uploads

    def start(
        self, recorder: Recorder, attrs: dict[str, Any], contents: Any, config: Any
    ) -> Captured:
        """Capture the request; its JSON goes on the span's start ``attrs`` when content goes on
        spans (and is not uploaded)."""
        captured = Captured(attrs, contents, config, self.uploads is not None)
        if self.uploads is not None:
            return captured  # built whole, later, on the upload thread
        clean = recorder.secrets.clean
        try:
            captured.input = _cleaned(clean, content.input_message_list(contents))
            captured.system = _cleaned(clean, content.system_instruction_parts(config))
            if self.on_span:
                attrs[A.GEN_AI_INPUT_MESSAGES] = content.dumps(captured.input)
                if captured.system:
                    attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = content.dumps(captured.system)
        except Exception:
            _logger.debug("gemini instrumentation: could not capture content", exc_info=True)
        return captured

    def finish(
        self,
        recorder: Recorder,
        call: Call,
        captured: Captured,
        attrs: dict[str, Any],
        reasons: list[str],
    ) -> None:
        """Output messages on the span, the event, or the upload and its references. Never
        raises: the call's metrics are recorded after this."""
        try:
            self._finish(recorder, call, captured, attrs, reasons)
        except Exception:
            _logger.debug("gemini instrumentation: could not record content", exc_info=True)

    def _finish(
        self,
        recorder: Recorder,
        call: Call,
        captured: Captured,
        attrs: dict[str, Any],
        reasons: list[str],
    ) -> None:
        output_parts = call.texts if call.texts is not None and call.chunks else None
        if self.uploads is not None:
            self._upload(call, captured, attrs, output_parts, reasons)
            return
        output = None
        if output_parts is not None:
            output = _cleaned(
                recorder.secrets.clean, content.output_message_list(output_parts, reasons)
            )
            if self.on_span:
                attrs[A.GEN_AI_OUTPUT_MESSAGES] = content.dumps(output)
        if self.in_event:
            messages: dict[str, Any] = {}
            if captured.input is not None:
                messages[A.GEN_AI_INPUT_MESSAGES] = captured.input
            if output is not None:
                messages[A.GEN_AI_OUTPUT_MESSAGES] = output
            if captured.system:
                messages[A.GEN_AI_SYSTEM_INSTRUCTIONS] = captured.system
            self._emit(call, captured, attrs, messages)

    def _upload(
        self,
        call: Call,
        captured: Captured,
        attrs: dict[str, Any],
        output_parts: list[Any] | None,
        reasons: list[str],
    ) -> None:
        assert self.uploads is not None
        ref = self.uploads.reference()
        if ref is None:
            attrs[A.GEMINI_CONTENT_UPLOAD] = "error"
            return
        pending = Pending(ref, captured.contents, captured.config, output_parts, reasons)
        if not self.uploads.submit(pending):
            attrs[A.GEMINI_CONTENT_UPLOAD] = "dropped"
            return
        refs = {A.GEN_AI_INPUT_MESSAGES_REF: ref}
        if output_parts is not None:
            refs[A.GEN_AI_OUTPUT_MESSAGES_REF] = ref
        if content.system_instruction_parts(captured.config, 0) is not None:
            refs[A.GEN_AI_SYSTEM_INSTRUCTIONS_REF] = ref
        if self.on_span:
            attrs.update(refs)
        if self.in_event:
            self._emit(call, captured, attrs, refs)

    def _emit(
        self, call: Call, captured: Captured, attrs: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        """The semconv event, in the call span's context, with the operation's attributes."""
        try:
            event: dict[str, Any] = {
                k: v
                for source in (captured.attributes, attrs)
                for k, v in source.items()
                if k.startswith(_EVENT_PREFIXES) or k == A.ERROR_TYPE
            }
            for key in (
                A.GEN_AI_INPUT_MESSAGES,
                A.GEN_AI_OUTPUT_MESSAGES,
                A.GEN_AI_SYSTEM_INSTRUCTIONS,
            ):
                event.pop(key, None)  # the span's JSON forms: the event has its own
            event.update(extra)
            self.logger.emit(_log_record(trace.set_span_in_context(call.span), event))
        except Exception:
            _logger.debug("gemini instrumentation: could not emit a content event", exc_info=True)


def content_sink(settings: Any, logger_provider: Any) -> Sink | None:
    """The sink the settings ask for; None when content capture is off."""
    if not settings.capture_content:
        return None
    logger = None
    if settings.content_in_event:
        from opentelemetry._logs import get_logger

        from ..version import __version__
        from .instruments import SCHEMA_URL, SCOPE

        logger = get_logger(SCOPE, __version__, logger_provider, schema_url=SCHEMA_URL)
    uploads = None
    uploader = settings.content_uploader
    if uploader is not None:
        if isinstance(uploader, ContentUploader):
            uploads = Uploads(uploader)
            atexit.register(uploads.flush)
        else:
            warn_once(
                "uploader",
                "content_uploader=%r has no reference() and upload(): content is not uploaded",
                uploader,
            )
    return Sink(settings.content_on_span, settings.content_in_event, logger, uploads)


def _log_record(context: Any, attributes: dict[str, Any]) -> Any:
    from opentelemetry._logs import LogRecord

    try:
        return LogRecord(
            context=context, event_name=A.EVENT_INFERENCE_DETAILS, attributes=attributes
        )
    except TypeError:  # an OTel API before event_name and context (< 1.35): the old spelling
        span = trace.get_current_span(context).get_span_context()
        return LogRecord(
            trace_id=span.trace_id,
            span_id=span.span_id,
            trace_flags=span.trace_flags,
            attributes={**attributes, "event.name": A.EVENT_INFERENCE_DETAILS},
        )


def _cleaned(clean: Any, value: Any) -> Any:
    """``value`` without any API key anywhere in it (a round trip through JSON: opt-in only),
    inline data's bytes included: they are captured base64-encoded, where a search of the
    text never finds the key they hold (a config file, a document the app sends)."""
    if value is None:
        return None
    text = content.dumps(value)
    cleaned = clean(text, None)
    value = value if cleaned == text else json.loads(cleaned)
    for part in content.blob_parts(value):
        part["content"] = _cleaned_base64(clean, part["content"])
    return value


def _cleaned_base64(clean: Any, data: str) -> str:
    """Base64 ``data`` with any key in the bytes it encodes redacted. Latin-1 maps each byte to
    one character and back, so bytes that are not text come back as they were."""
    try:
        raw = base64.b64decode(data, validate=True).decode("latin-1")
    except ValueError:  # not base64 (a caller's dict may say anything): no bytes to search
        return data
    cleaned = clean(raw, None)
    return data if cleaned == raw else base64.b64encode(cleaned.encode("latin-1")).decode("ascii")
