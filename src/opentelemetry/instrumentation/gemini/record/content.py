"""Opt-in prompt/response capture, in the GenAI semconv message schema.

Only called when the user enabled content capture; never on the default path. Messages are
built once per call as plain lists and dicts (the event carries them as they are, span
attributes as JSON) from the SDK's objects or the dicts a caller passed:

- roles: ``user``, ``assistant`` (Gemini's ``model``), ``tool`` (a user turn that only answers
  function calls), ``system``; any other role as given;
- parts: ``text``, ``reasoning`` (a thought), ``tool_call`` (id, name, arguments),
  ``tool_call_response`` (id, response), ``blob`` (inline data: mime_type, modality, base64
  content), ``uri`` (file data: mime_type, modality, uri); anything else a part of its own type.

Reads the request without consuming it: only lists and tuples are walked (a generator or
``map()`` of parts is the SDK's to read, once). With ``limit`` (what telemetry records), each
text is capped at that many characters and inline data larger than it is recorded without its
bytes (``content`` empty, ``size`` its length), and each list stops at about
``MAX_CONTENT_TOTAL`` characters of JSON: the parts left out are counted in an ``omitted``
part where they were (input messages keep the newest turns of a long history);
``limit=None`` is for a content uploader, which gets everything.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from ..bounds import MAX_CONTENT_PART, MAX_CONTENT_TOTAL, name
from .request import config_field

Message = dict[str, Any]
Part = dict[str, Any]
# Gemini's finish reasons as semconv's enum has them; others lower-cased as they are.
_FINISH: dict[str, str] = {
    "stop": "stop",
    "max_tokens": "length",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "image_safety": "content_filter",
    "malformed_function_call": "error",
    "other": "error",
    "finish_reason_unspecified": "error",
}


_get = config_field  # a dict subclass's own get() is not called: the app's may raise


def _cut(text: str, limit: int | None, size: int | None = None) -> str:
    """``text`` capped at ``limit``, saying how many characters were cut of the whole, whose
    length is ``size`` (by default ``text``'s own: a ``TextRun`` keeps only its head)."""
    size = len(text) if size is None else size
    if limit is not None and size > limit:
        return f"{text[:limit]}...[{size - limit} more characters]"
    return text


def _kind(part: Any) -> str:
    """A text part's kind in semconv's schema: a thought is ``reasoning``."""
    return "reasoning" if _get(part, "thought") else "text"


def _text(text: str, limit: int | None, kind: str = "text") -> Part:
    return {"type": kind, "content": _cut(text, limit)}


def _short(value: Any, limit: int | None) -> Any:
    """A name, id, role, MIME type or URI as given, a string capped like a text."""
    return _cut(value, limit) if isinstance(value, str) else value


def _structured(value: Any, limit: int | None) -> Any:
    """A tool call's arguments or a tool's response (any JSON, as the caller or the model gave
    it): kept as it is when its JSON fits in ``limit``, else that JSON capped like a text, so
    one huge or deeply nested value never makes the messages unbounded."""
    if limit is None or value is None:
        return value
    try:
        text = dumps(value)
    except Exception:  # RecursionError (nesting), a __str__ that raises
        return unserializable(value)
    return value if len(text) <= limit else _cut(text, limit)


def unserializable(value: Any) -> str:
    """What captured content says in place of a value it cannot serialize."""
    return f"[{type(value).__name__} not serializable]"


def _modality(mime_type: Any) -> str:
    """semconv's modality (image, video, audio) from a MIME type; other types as their top
    level type (text, application...)."""
    return mime_type.split("/", 1)[0] if isinstance(mime_type, str) and mime_type else ""


def _part(part: Any, limit: int | None) -> Part:
    if isinstance(part, str):
        return _text(part, limit)
    text = _get(part, "text")
    if isinstance(text, str):
        return _text(text, limit, _kind(part))
    call = _get(part, "function_call")
    if call is not None:
        out: Part = {"type": "tool_call", "name": _short(_get(call, "name"), limit)}
        call_id = _get(call, "id")
        if call_id:
            out["id"] = _short(call_id, limit)
        out["arguments"] = _structured(_get(call, "args"), limit)
        return out
    response = _get(part, "function_response")
    if response is not None:
        out = {"type": "tool_call_response"}
        response_id = _get(response, "id")
        if response_id:
            out["id"] = _short(response_id, limit)
        out["response"] = _structured(_get(response, "response"), limit)
        return out
    blob = _get(part, "inline_data")
    if blob is not None:
        mime = _short(_get(blob, "mime_type"), limit)
        data = _get(blob, "data")
        out = {"type": "blob", "mime_type": mime, "modality": _modality(mime)}
        if isinstance(data, (bytes, bytearray)):
            if limit is not None and len(data) > limit:
                out["content"] = ""
                out["size"] = len(data)
            else:
                out["content"] = base64.b64encode(data).decode("ascii")
        elif isinstance(data, str):  # base64 already, as a caller's dict may give it
            out["content"] = "" if limit is not None and len(data) > limit else data
        else:
            out["content"] = ""
        return out
    file = _get(part, "file_data")
    if file is not None:
        mime = _short(_get(file, "mime_type"), limit)
        return {
            "type": "uri",
            "mime_type": mime,
            "modality": _modality(mime),
            "uri": _short(_get(file, "file_uri"), limit),
        }
    for kind in ("executable_code", "code_execution_result"):
        if _get(part, kind) is not None:
            return {"type": kind}
    return {"type": type(part).__name__.lower()}


class _Budget:
    """What one captured list may still record, in JSON characters; None: no bound (an
    uploader's copy). The part that crosses it is kept: the list ends at most one part over."""

    __slots__ = ("left",)

    def __init__(self, limit: int | None) -> None:
        self.left = None if limit is None else max(MAX_CONTENT_TOTAL, limit)

    def spent(self) -> bool:
        return self.left is not None and self.left <= 0

    def charge(self, part: Part) -> None:
        if self.left is not None:
            self.left -= len(dumps(part))


def _omitted(count: int) -> Part:
    """Where ``count`` parts were left out of a list (MAX_CONTENT_TOTAL)."""
    return {"type": "omitted", "count": count}


def _fit(
    items: list[Any] | tuple[Any, ...], build: Callable[[Any], Part], budget: _Budget
) -> list[Part]:
    """``items`` as parts (``build`` makes each, only while ``budget`` lasts), then one
    ``omitted`` part for the rest."""
    out: list[Part] = []
    for i, item in enumerate(items):
        if budget.spent():
            out.append(_omitted(len(items) - i))
            break
        part = build(item)
        budget.charge(part)
        out.append(part)
    return out


def _parts_fit(
    items: list[Any] | tuple[Any, ...], limit: int | None, budget: _Budget
) -> list[Part]:
    """The request's ``items`` (SDK parts, dicts, strings) as parts capped at ``limit``."""
    return _fit(items, lambda item: _part(item, limit), budget)


def _built(part: Part) -> Part:
    """An output part, built (and capped) already as the output's text runs were joined."""
    return part


def _is_content(item: Any) -> bool:
    return not isinstance(item, str) and (
        _get(item, "parts") is not None or _get(item, "role") is not None
    )


def _content_parts(content: Any) -> list[Any] | tuple[Any, ...]:
    """The parts of one item of ``contents``: itself when it is no Content (a string, a bare
    part, a file, an image); none when they are None or an iterator we must not consume."""
    if not _is_content(content):
        return (content,)
    parts = _get(content, "parts")
    return parts if isinstance(parts, (list, tuple)) else ()


def _role(content: Any, parts: list[Part], default: str) -> str:
    role = None if isinstance(content, str) else _get(content, "role")
    if role == "model":
        return "assistant"
    if role in (None, "user") and {p["type"] for p in parts} - {"omitted"} == {
        "tool_call_response"
    }:
        return "tool"  # the SDK sends function results back as a user turn
    return name(role) if isinstance(role, str) and role else default


def input_message_list(contents: Any, limit: int | None = MAX_CONTENT_PART) -> list[Message]:
    """The request's ``contents`` (str, Content, dicts, parts, or a list of them)."""
    budget = _Budget(limit)
    items = list(contents) if isinstance(contents, (list, tuple)) else [contents]
    if items and not any(_is_content(i) for i in items):
        # Strings and parts with no Content around them are one user turn, as the SDK sends.
        parts = _parts_fit(items, limit, budget)
        return [{"role": _role(None, parts, "user"), "parts": parts}]
    messages = []
    earlier = 0  # parts of the older turns left out
    for item in reversed(items):  # the newest turns first: a long history gives way
        if budget.spent():
            earlier += len(_content_parts(item))
            continue
        parts = _parts_fit(_content_parts(item), limit, budget)
        messages.append({"role": _role(item, parts, "user"), "parts": parts})
    messages.reverse()
    if earlier and messages:
        messages[0]["parts"].insert(0, _omitted(earlier))
    return messages


def system_instruction_parts(
    config: Any, limit: int | None = MAX_CONTENT_PART
) -> list[Part] | None:
    if config is None:
        return None
    value = _get(config, "system_instruction")
    if value is None:
        return None
    parts = value if isinstance(value, (list, tuple)) else _content_parts(value)
    return _parts_fit(parts, limit, _Budget(limit))


def finish_reason(reason: str) -> str:
    lowered = reason.lower()
    return _FINISH.get(lowered, lowered)


class TextRun:
    """Consecutive text (or thought) pieces of an output, as a call keeps them: the first
    ``cap`` + 1 characters and the length of the whole, so that a stream of 20,000 chunks
    keeps neither 20,000 SDK parts alive nor more text than telemetry records. ``cap`` None
    (a content uploader, which stores the whole output): every piece."""

    __slots__ = ("cap", "chars", "kind", "pieces", "size")

    def __init__(self, kind: str, cap: int | None) -> None:
        self.kind = kind
        self.cap = cap
        self.pieces: list[str] = []
        self.chars = 0  # kept
        self.size = 0  # seen

    def add(self, text: str) -> None:
        self.size += len(text)
        if self.cap is None:
            self.pieces.append(text)
            self.chars += len(text)
            return
        room = self.cap + 1 - self.chars  # one more than the cap: the cut stays visible
        if room > 0:
            piece = text if len(text) <= room else text[:room]
            pieces = self.pieces
            pieces.append(piece)
            self.chars += len(piece)
            if len(pieces) >= 256:  # a stream of 1-character chunks: one string, not 16k refs
                self.pieces = ["".join(pieces)]


def keep_output(kept: list[Any], parts: list[Any], cap: int | None) -> None:
    """Add a response's (or a chunk's) SDK ``parts`` to what a call keeps of its output: text
    into the current ``TextRun`` of its kind, other parts as they are."""
    for part in parts:
        text = _get(part, "text")
        if not isinstance(text, str):
            kept.append(part)
            continue
        kind = _kind(part)
        last = kept[-1] if kept else None
        if not (isinstance(last, TextRun) and last.kind == kind):
            last = TextRun(kind, cap)
            kept.append(last)
        last.add(text)


def output_message_list(
    parts: list[Any], finish_reasons: list[str], limit: int | None = MAX_CONTENT_PART
) -> list[Message]:
    """The model's output, from the SDK parts (or ``TextRun``s) the call kept (a whole
    response's, or each stream chunk's in order): consecutive text (or thought) pieces join
    into one part."""
    out: list[Part] = []
    pending: list[str] = []
    pending_kind = "text"
    dropped = 0  # characters of the pending text a TextRun did not keep

    def flush() -> None:
        nonlocal dropped
        if pending:
            text = "".join(pending)
            out.append({"type": pending_kind, "content": _cut(text, limit, len(text) + dropped)})
            pending.clear()
            dropped = 0

    for part in parts:
        if isinstance(part, TextRun):
            if part.kind != pending_kind:
                flush()
                pending_kind = part.kind
            pending.extend(part.pieces)
            dropped += part.size - part.chars
            continue
        text = _get(part, "text")
        if isinstance(text, str):
            kind = _kind(part)
            if kind != pending_kind:
                flush()
                pending_kind = kind
            pending.append(text)
            continue
        flush()
        out.append(_part(part, limit))
    flush()
    return [
        {
            "role": "assistant",
            "parts": _fit(out, _built, _Budget(limit)),  # built (each capped): cut the count
            "finish_reason": finish_reason(finish_reasons[-1]) if finish_reasons else "",
        }
    ]


def blob_parts(value: list[Any]) -> list[Part]:
    """The inline data parts with bytes in captured messages, or in a list of parts (system
    instructions)."""
    found: list[Part] = []
    for item in value:
        parts = item.get("parts") if "role" in item else (item,)
        found.extend(p for p in parts if p.get("type") == "blob" and p.get("content"))
    return found


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# Span attribute forms (JSON strings), as recorded before events existed.
def input_messages(contents: Any) -> str:
    return dumps(input_message_list(contents))


def system_instructions(config: Any) -> str | None:
    parts = system_instruction_parts(config)
    return None if parts is None else dumps(parts)


def output_messages(parts: list[Any], finish_reasons: list[str]) -> str:
    return dumps(output_message_list(parts, finish_reasons))
