"""Prompt and response content, and the API key, across every surface the package instruments:
without content capture none of a call's content reaches exported telemetry; with it, the key
is redacted from what is captured, whatever form the content takes."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from typing import Any

import pytest
from google.genai import types

from conftest import FAKE_KEY, Telemetry, make_client
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply
from test_faults_bounds import GOOGLE_SHAPED_KEY, _exported_text

MODEL = "gemini-2.5-flash"
MARKER = "PRIVATE-MARKER"


def _tool(city: str) -> str:
    """Answers with content of its own."""
    return f"{MARKER}-tool-result"


# --- without capture: no content from any surface -------------------------------------------
@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
def test_no_surface_exports_content_without_capture(fake: FakeGemini, telemetry: Telemetry) -> None:
    """A marker in every place a surface's request or answer carries content: prompts, system
    instructions, tool declarations, arguments and results, embedding and token-count inputs,
    cached contents, batch inline requests, Interactions input and output, image and video
    prompts (Vertex), a file's bytes and names."""
    client = make_client(fake)
    fake.enqueue(None, Reply(text=f"{MARKER}-response"))
    client.models.generate_content(
        model=MODEL,
        contents=f"{MARKER}-prompt",
        config={
            "system_instruction": f"{MARKER}-system",
            "tools": [{"function_declarations": [{"name": "f", "description": f"{MARKER}-d"}]}],
        },
    )
    call = {"functionCall": {"name": "_tool", "args": {"city": f"{MARKER}-arg"}}}
    fake.enqueue(
        None,
        Reply(candidate_fields={"content": {"role": "model", "parts": [call]}}),
        Reply(text=f"{MARKER}-final"),
    )
    client.models.generate_content(model=MODEL, contents="x", config={"tools": [_tool]})
    client.chats.create(model=MODEL).send_message(f"{MARKER}-chat")
    client.models.embed_content(model="gemini-embedding-001", contents=[f"{MARKER}-embed"])
    client.models.count_tokens(model=MODEL, contents=f"{MARKER}-count")
    client.caches.create(
        model=MODEL,
        config={"contents": [f"{MARKER}-cached"], "system_instruction": f"{MARKER}-cache-sys"},
    )
    inline = [{"contents": [{"parts": [{"text": f"{MARKER}-batch"}], "role": "user"}]}]
    client.batches.create(model=MODEL, src=inline)
    fake.enqueue(None, Reply(text=f"{MARKER}-interaction-out"))
    client.interactions.create(model=MODEL, input=f"{MARKER}-interaction-in")
    # The fake has no upload protocol (the SDK raises, bare too): what the attempt exports.
    with contextlib.suppress(KeyError):
        client.files.upload(file=io.BytesIO(MARKER.encode()), config={"mime_type": "text/plain"})
    vertex = make_client(fake, vertexai=True)
    vertex.models.generate_images(model="imagen-4.0-generate-001", prompt=f"{MARKER}-image")
    vertex.models.generate_videos(model="veo-3.0-generate-001", source={"prompt": f"{MARKER}-v"})
    vertex.models.compute_tokens(model=MODEL, contents=f"{MARKER}-compute")

    exported = _exported_text(telemetry)
    assert len(telemetry.all_spans()) >= 12
    assert MARKER not in exported


# --- with capture: the key redacted whatever form the content takes --------------------------
def test_a_key_inside_inline_data_is_redacted_from_captured_content(
    fake: FakeGemini, instrument: Any
) -> None:
    """Inline data is captured base64-encoded: a key in its bytes (a config file, a document
    the app sends) would pass a search of the text for the key, and decode back to it."""
    telemetry = instrument(capture_content="SPAN_ONLY")
    data = f"config: key={FAKE_KEY} other={GOOGLE_SHAPED_KEY}\n".encode()
    part = types.Part.from_bytes(data=data, mime_type="text/plain")
    client = make_client(fake)
    answer = client.models.generate_content(model=MODEL, contents=[part, "What is this?"])
    assert answer.text  # the call itself is untouched

    (message,) = json.loads(telemetry.span().attributes["gen_ai.input.messages"])
    blob = message["parts"][0]
    assert blob["type"] == "blob"
    decoded = base64.b64decode(blob["content"])
    assert FAKE_KEY.encode() not in decoded
    assert GOOGLE_SHAPED_KEY.encode() not in decoded
    assert decoded == b"config: key=[REDACTED] other=[REDACTED]\n"
    # The request still carried the bytes as the app gave them.
    sent = fake.requests[-1]["body"]["contents"][0]["parts"][0]["inlineData"]["data"]
    assert base64.b64decode(sent) == data


# --- a server's error that repeats the prompt: its message, once --------------------------
def test_an_interactions_error_answer_has_no_stack_repeating_its_body(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """The server's answers get no stack trace (README: the SDK's HTTP path, and costly). The
    Interactions API's errors carry their status as ``status_code``, not ``code``: they got
    one, whose chained exceptions repeat the error body (which may echo the prompt) twice more,
    and pydantic's validation of it."""
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": f"bad: {MARKER}"}}
    fake.enqueue(None, Reply(status=400, error_body=body))
    client = make_client(fake)
    with pytest.raises(Exception) as caught:
        client.interactions.create(model=MODEL, input=f"{MARKER}-interaction-in")
    assert caught.value.status_code == 400  # type: ignore[attr-defined]
    span = telemetry.span()
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.message"] == str(caught.value)
    assert "exception.stacktrace" not in event.attributes
    assert span.attributes["error.type"] == "400"
