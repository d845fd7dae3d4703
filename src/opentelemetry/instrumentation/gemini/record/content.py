"""Opt-in prompt/response capture, in the GenAI semconv message shape, serialised as JSON.

Only called when the user enabled content capture; never on the default path. Reads the
request without consuming it: only lists and tuples are walked (a generator or ``map()`` of
parts is the SDK's to read, once), and each text part is capped at MAX_CONTENT_PART characters.
"""

from __future__ import annotations

import json
from typing import Any

from ..bounds import MAX_CONTENT_PART


def _text(text: str) -> dict[str, Any]:
    if len(text) > MAX_CONTENT_PART:
        text = f"{text[:MAX_CONTENT_PART]}...[{len(text) - MAX_CONTENT_PART} more characters]"
    return {"type": "text", "content": text}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [_text(content)]
    parts = content.get("parts") if isinstance(content, dict) else getattr(content, "parts", None)
    out: list[dict[str, Any]] = []
    if not isinstance(parts, (list, tuple)):
        return out  # None, or an iterator we must not consume
    for part in parts:
        if isinstance(part, str):
            out.append(_text(part))
            continue
        text = part.get("text") if isinstance(part, dict) else getattr(part, "text", None)
        if isinstance(text, str):
            out.append(_text(text))
            continue
        call = (
            part.get("function_call")
            if isinstance(part, dict)
            else getattr(part, "function_call", None)
        )
        if call is not None:
            name = call.get("name") if isinstance(call, dict) else getattr(call, "name", None)
            out.append({"type": "tool_call", "name": name})
        else:
            out.append({"type": "blob"})
    return out


def _role(content: Any, default: str) -> str:
    role = content.get("role") if isinstance(content, dict) else getattr(content, "role", None)
    return role if isinstance(role, str) else default


def input_messages(contents: Any) -> str:
    """The request's ``contents`` (str, Content, dicts or a list of them) as semconv JSON."""
    items = list(contents) if isinstance(contents, (list, tuple)) else [contents]
    # A list of plain strings/parts is one user turn, as the SDK treats it.
    if items and all(isinstance(i, str) for i in items):
        messages = [{"role": "user", "parts": [_text(i) for i in items]}]
    else:
        messages = [{"role": _role(i, "user"), "parts": _parts(i)} for i in items]
    return json.dumps(messages, ensure_ascii=False, default=str)


def system_instructions(config: Any) -> str | None:
    if config is None:
        return None
    value = (
        config.get("system_instruction")
        if isinstance(config, dict)
        else getattr(config, "system_instruction", None)
    )
    if value is None:
        return None
    return json.dumps(_parts(value), ensure_ascii=False, default=str)


def output_messages(texts: list[str], finish_reasons: list[str]) -> str:
    """Model output gathered by the call (whole response, or the stream's chunks joined)."""
    message: dict[str, Any] = {"role": "model", "parts": [_text("".join(texts))]}
    if finish_reasons:
        message["finish_reason"] = finish_reasons[-1].lower()
    return json.dumps([message], ensure_ascii=False)
