"""Traces people can read: automatic function calling's tool runs as ``execute_tool`` child
spans and its rounds as events, content as the semconv event (logs API) and/or span attributes
by capture mode, in the semconv message schema, and a content uploader that keeps content out
of telemetry. All through the real client against the fake server."""

# No `from __future__ import annotations` here: google-genai 2.x reads the tools' annotations
# as types to declare them to the model, and cannot read them as strings.
import json
import time
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.trace import SpanKind, StatusCode

from conftest import Telemetry, call_gemini, run_async
from opentelemetry.instrumentation.gemini import FileSystemUploader
from opentelemetry.instrumentation.gemini.config import Settings
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

MODEL = "gemini-2.5-flash"
ROUND_1 = {"promptTokenCount": 1_000, "candidatesTokenCount": 20}
ROUND_2 = {"promptTokenCount": 1_300, "candidatesTokenCount": 50}


def get_weather(city: str) -> str:
    """Returns the weather in a city."""
    return f"Sunny in {city}"


def get_time(city: str) -> str:
    """Returns the local time in a city."""
    return f"12:00 in {city}"


def broken_tool(city: str) -> str:
    """Always fails."""
    raise ValueError(f"no data for {city}")


def _calls(*names: str) -> dict[str, Any]:
    parts = [
        {"functionCall": {"name": n, "args": {"city": "Paris"}, "id": f"call-{i}"}}
        for i, n in enumerate(names, 1)
    ]
    return {
        "candidates": [
            {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
        ]
    }


def _afc(fake: FakeGemini, *names: str) -> None:
    fake.enqueue(
        MODEL,
        Reply(usage=ROUND_1, model_version=MODEL, extra=_calls(*names)),
        Reply(usage=ROUND_2, model_version=MODEL, text="Sunny, and noon, in Paris."),
    )


def _logs() -> tuple[LoggerProvider, InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def _events(exporter: InMemoryLogRecordExporter) -> list[Any]:
    return [
        r.log_record
        for r in exporter.get_finished_logs()
        if r.log_record.event_name == "gen_ai.client.inference.operation.details"
    ]


def _generate_span(telemetry: Telemetry) -> Any:
    [span] = [s for s in telemetry.all_spans() if s.name.startswith("generate_content")]
    return span


# --- tool executions and rounds ---------------------------------------------------------------
def test_afc_with_two_tools_shows_two_execute_tool_children_and_each_rounds_usage(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    _afc(fake, "get_weather", "get_time")
    response = call_gemini(client, entrypoint, MODEL, config={"tools": [get_weather, get_time]})
    text = "".join(c.text or "" for c in response) if isinstance(response, list) else response.text
    assert text.strip() == "Sunny, and noon, in Paris."  # the app's answer, unchanged

    parent = _generate_span(telemetry)
    tools = [s for s in telemetry.all_spans() if s.name.startswith("execute_tool")]
    assert len(telemetry.all_spans()) == 3
    assert [s.name for s in tools] == ["execute_tool get_weather", "execute_tool get_time"]
    expected = zip(tools, ("call-1", "call-2"), ("get_weather", "get_time"), strict=True)
    for span, call_id, tool in expected:
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None and span.parent.span_id == parent.context.span_id
        assert span.context.trace_id == parent.context.trace_id
        assert dict(span.attributes) == {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        }  # no arguments, no result: content capture is off
        assert span.status.status_code is StatusCode.UNSET

    rounds = [e for e in parent.events if e.name == "gcp.gemini.round"]
    assert [dict(e.attributes) for e in rounds] == [
        {
            "gcp.gemini.round.number": 1,
            "gen_ai.usage.input_tokens": 1_000,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cost.amount": pytest.approx((1_000 * 0.30 + 20 * 2.50) / 1e6),
            "gen_ai.usage.cost.currency": "USD",
        },
        {
            "gcp.gemini.round.number": 2,
            "gen_ai.usage.input_tokens": 1_300,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.cost.amount": pytest.approx((1_300 * 0.30 + 50 * 2.50) / 1e6),
            "gen_ai.usage.cost.currency": "USD",
        },
    ]
    # The rounds add up to the span's own usage and cost; each sits between the tool runs.
    assert parent.attributes["gen_ai.usage.input_tokens"] == 2_300
    assert sum(e.attributes["gen_ai.usage.cost.amount"] for e in rounds) == pytest.approx(
        parent.attributes["gen_ai.usage.cost.amount"]
    )
    assert tools[1].end_time <= rounds[1].timestamp
    if "stream" not in entrypoint:  # a stream's round is noted when the next one starts
        assert rounds[0].timestamp <= tools[0].start_time


def test_a_tool_that_raises_is_recorded_and_the_sdk_goes_on(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    _afc(fake, "broken_tool")
    call_gemini(client, entrypoint, MODEL, config={"tools": [broken_tool]})
    # The SDK answered the model with the error, as it does uninstrumented.
    sent = fake.requests[-1]["body"]["contents"][-1]["parts"][0]["functionResponse"]
    assert "no data for Paris" in sent["response"]["error"]
    [tool] = [s for s in telemetry.all_spans() if s.name == "execute_tool broken_tool"]
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.attributes["error.type"] == "ValueError"
    [event] = [e for e in tool.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no data for Paris"
    assert "broken_tool" in event.attributes["exception.stacktrace"]
    assert _generate_span(telemetry).status.status_code is StatusCode.UNSET


def test_tool_arguments_and_result_only_with_content_on_spans(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    telemetry = instrument(capture_content="SPAN_ONLY")
    _afc(fake, "get_weather")
    call_gemini(client, "sync", MODEL, config={"tools": [get_weather]})
    [tool] = [s for s in telemetry.all_spans() if s.name == "execute_tool get_weather"]
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"city": "Paris"}
    assert json.loads(tool.attributes["gen_ai.tool.call.result"]) == "Sunny in Paris"


def test_a_tool_calling_gemini_nests_its_call_under_the_tool(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    def ask_expert(city: str) -> str:
        """Asks another model."""
        return client.models.generate_content(model=MODEL, contents=city).text

    fake.enqueue(
        MODEL,
        Reply(usage=ROUND_1, extra=_calls("ask_expert")),
        Reply(text="inner"),
        Reply(usage=ROUND_2, text="outer"),
    )
    client.models.generate_content(model=MODEL, contents="x", config={"tools": [ask_expert]})
    by_name = {s.name: s for s in telemetry.all_spans()}
    tool = by_name["execute_tool ask_expert"]
    inner, outer = sorted(
        (s for s in telemetry.all_spans() if s.name.startswith("generate_content")),
        key=lambda s: s.start_time,
        reverse=True,
    )
    assert inner.parent.span_id == tool.context.span_id
    assert tool.parent.span_id == outer.context.span_id
    assert outer.attributes["gen_ai.usage.input_tokens"] == 2_300  # not the inner call's


# --- capture modes ------------------------------------------------------------------------------
# The semconv message schema (gen-ai-input-messages / gen-ai-output-messages /
# gen-ai-system-instructions JSON schemas), checked by hand: required fields per part type.
_PART_REQUIRED = {
    "text": {"content"},
    "reasoning": {"content"},
    "tool_call": {"name"},
    "tool_call_response": {"response"},
    "blob": {"modality", "content"},
    "uri": {"modality", "uri"},
    "file": {"modality", "file_id"},
}
_ROLES = {"system", "user", "assistant", "tool"}


def _check_parts(parts: Any) -> None:
    assert isinstance(parts, list)
    for part in parts:
        assert isinstance(part, dict) and isinstance(part.get("type"), str), part
        missing = _PART_REQUIRED.get(part["type"], set()) - part.keys()
        assert not missing, (part, missing)
        if part["type"] in ("text", "reasoning"):
            assert isinstance(part["content"], str)


def check_messages(messages: Any, *, output: bool = False) -> None:
    assert isinstance(messages, list) and messages
    for message in messages:
        assert message["role"] in _ROLES, message
        _check_parts(message["parts"])
        if output:
            assert isinstance(message["finish_reason"], str)


CAPTURE_MODES = [
    # (setting, content on the span, an event)
    ("NO_CONTENT", False, False),
    ("SPAN_ONLY", True, False),
    ("EVENT_ONLY", False, True),
    ("SPAN_AND_EVENT", True, True),
    ("span_and_event", True, True),
    ("true", True, False),
    ("false", False, False),
]
CONTENT_ATTRIBUTES = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
}


@pytest.mark.parametrize(("mode", "on_span", "in_event"), CAPTURE_MODES)
def test_capture_modes_put_content_where_semconv_says(
    fake: FakeGemini,
    client: Any,
    instrument: Any,
    entrypoint: str,
    mode: str,
    on_span: bool,
    in_event: bool,
) -> None:
    provider, exporter = _logs()
    telemetry = instrument(capture_content=mode, logger_provider=provider)
    fake.enqueue(None, Reply(text="the answer is 42", chunks=2, usage=ROUND_1))
    call_gemini(
        client, entrypoint, contents="what is it?", config={"system_instruction": "be brief"}
    )
    span = telemetry.span()
    present = CONTENT_ATTRIBUTES & set(span.attributes)
    assert present == (CONTENT_ATTRIBUTES if on_span else set())
    events = _events(exporter)
    assert len(events) == (1 if in_event else 0)
    if on_span:
        check_messages(json.loads(span.attributes["gen_ai.input.messages"]))
        check_messages(json.loads(span.attributes["gen_ai.output.messages"]), output=True)
        _check_parts(json.loads(span.attributes["gen_ai.system_instructions"]))
    if in_event:
        [event] = events
        a = event.attributes
        # The event's messages are structured values, not JSON strings.
        assert a["gen_ai.input.messages"] == (
            {"role": "user", "parts": ({"type": "text", "content": "what is it?"},)},
        ) or _plain(a["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "what is it?"}]}
        ]
        output = _plain(a["gen_ai.output.messages"])
        check_messages(output, output=True)
        assert output == [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "the answer is 42"}],
                "finish_reason": "stop",
            }
        ]
        assert _plain(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
        assert a["gen_ai.operation.name"] == "generate_content"
        assert a["gen_ai.request.model"] == MODEL
        assert a["gen_ai.usage.input_tokens"] == 1_000
        assert event.span_id == span.context.span_id  # correlated with the call's span
        assert event.trace_id == span.context.trace_id


def _plain(value: Any) -> Any:
    """An attribute value as plain lists and dicts (the SDK may store tuples)."""
    return json.loads(json.dumps(value, default=list))


def test_capture_setting_parses_modes_and_booleans() -> None:
    env = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
    for value, expected in [
        ("EVENT_ONLY", (False, True)),
        ("span_only", (True, False)),
        ("SPAN_AND_EVENT", (True, True)),
        ("NO_CONTENT", (False, False)),
        ("1", (True, False)),
        ("junk", (False, False)),
    ]:
        s = Settings.resolve({env: value}, {})
        assert (s.content_on_span, s.content_in_event) == expected, value
        assert s.capture_content is any(expected)
    s = Settings.resolve({env: "EVENT_ONLY"}, {"capture_content": True})
    assert (s.content_on_span, s.content_in_event) == (True, False)  # the kwarg wins
    assert Settings.resolve({}, {}).capture_content is False  # off by default


def test_every_part_kind_maps_to_the_semconv_schema(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    provider, exporter = _logs()
    instrument(capture_content="EVENT_ONLY", logger_provider=provider)
    thought_and_call = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"text": "Done."},
                    ],
                },
                "finishReason": "MAX_TOKENS",
                "index": 0,
            }
        ]
    }
    fake.enqueue(None, Reply(extra=thought_and_call))
    contents = [
        types.Content(
            role="user",
            parts=[
                types.Part.from_text(text="look"),
                types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
                types.Part.from_uri(file_uri="gs://b/v.mp4", mime_type="video/mp4"),
            ],
        ),
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(id="c1", name="f", args={"a": 1}))],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id="c1", name="f", response={"result": 2}
                    )
                )
            ],
        ),
    ]
    client.models.generate_content(model=MODEL, contents=contents)
    [event] = _events(exporter)
    inputs = _plain(event.attributes["gen_ai.input.messages"])
    check_messages(inputs)
    assert inputs == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "look"},
                {
                    "type": "blob",
                    "mime_type": "image/png",
                    "modality": "image",
                    "content": "iVBORw==",
                },
                {
                    "type": "uri",
                    "mime_type": "video/mp4",
                    "modality": "video",
                    "uri": "gs://b/v.mp4",
                },
            ],
        },
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "name": "f", "id": "c1", "arguments": {"a": 1}}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": {"result": 2}}],
        },
    ]
    output = _plain(event.attributes["gen_ai.output.messages"])
    check_messages(output, output=True)
    assert output == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "thinking..."},
                {"type": "text", "content": "Done."},
            ],
            "finish_reason": "length",
        }
    ]


def test_large_inline_data_is_recorded_without_its_bytes(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    telemetry = instrument(capture_content=True)
    image = types.Part.from_bytes(data=b"x" * 100_000, mime_type="image/png")
    client.models.generate_content(model=MODEL, contents=[image])
    captured = telemetry.span().attributes["gen_ai.input.messages"]
    assert len(captured) < 1_000
    [message] = json.loads(captured)
    assert message["parts"] == [
        {
            "type": "blob",
            "mime_type": "image/png",
            "modality": "image",
            "content": "",
            "size": 100_000,
        }
    ]


def test_nothing_is_emitted_by_default(fake: FakeGemini, client: Any, instrument: Any) -> None:
    provider, exporter = _logs()
    telemetry = instrument(logger_provider=provider)
    _afc(fake, "get_weather")
    call_gemini(client, "sync", MODEL, contents="secret prompt", config={"tools": [get_weather]})
    assert exporter.get_finished_logs() == ()
    for span in telemetry.all_spans():
        assert "secret prompt" not in span.to_json()
        assert "Paris" not in span.to_json()
        assert not CONTENT_ATTRIBUTES & set(span.attributes)


# --- the upload hook --------------------------------------------------------------------------
def _wait_for(path: Path, count: int) -> list[Path]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        files = sorted(path.glob("*.json"))
        if len(files) >= count:
            return files
        time.sleep(0.01)
    raise AssertionError(f"{count} uploads expected in {path}")


@pytest.mark.parametrize("mode", ["SPAN_ONLY", "EVENT_ONLY", None])
def test_uploader_stores_content_and_telemetry_carries_only_references(
    fake: FakeGemini, client: Any, instrument: Any, tmp_path: Path, mode: str | None
) -> None:
    provider, exporter = _logs()
    telemetry = instrument(
        capture_content=mode,
        logger_provider=provider,
        content_uploader=FileSystemUploader(tmp_path),
    )
    fake.enqueue(None, Reply(text="uploaded answer"))
    call_gemini(client, "sync", contents="a long document", config={"system_instruction": "sys"})
    [stored] = _wait_for(tmp_path, 1)
    document = json.loads(stored.read_text())
    assert document["input_messages"] == [
        {"role": "user", "parts": [{"type": "text", "content": "a long document"}]}
    ]
    assert document["output_messages"][0]["parts"] == [
        {"type": "text", "content": "uploaded answer"}
    ]
    assert document["system_instructions"] == [{"type": "text", "content": "sys"}]
    check_messages(document["input_messages"])
    check_messages(document["output_messages"], output=True)

    ref = stored.as_uri()
    span = telemetry.span()
    holders = [span.attributes] if mode != "EVENT_ONLY" else []
    events = _events(exporter)
    assert len(events) == (1 if mode == "EVENT_ONLY" else 0)
    holders += [e.attributes for e in events]
    assert holders
    for attrs in holders:
        assert attrs["gen_ai.input.messages_ref"] == ref
        assert attrs["gen_ai.output.messages_ref"] == ref
        assert attrs["gen_ai.system_instructions_ref"] == ref
        assert not CONTENT_ATTRIBUTES & set(attrs)
    dumped = span.to_json() + "".join(str(e.attributes) for e in events)
    assert "a long document" not in dumped and "uploaded answer" not in dumped


class _Failing:
    def __init__(self, where: str) -> None:
        self.where = where

    def reference(self) -> str:
        if self.where == "reference":
            raise RuntimeError("no")
        if self.where == "long reference":  # it would go on every span as it is
            return "mem://" + "x" * 1_000_000
        return "mem://1"

    def upload(self, reference: str, content: dict[str, Any]) -> None:
        raise RuntimeError("storage down")


@pytest.mark.parametrize("where", ["reference", "long reference", "upload"])
def test_a_failing_uploader_never_reaches_the_app(client: Any, instrument: Any, where: str) -> None:
    telemetry = instrument(content_uploader=_Failing(where))
    response = client.models.generate_content(model=MODEL, contents="x")
    assert response.text
    a = telemetry.span().attributes
    assert not CONTENT_ATTRIBUTES & set(a)
    if where != "upload":
        assert a["gcp.gemini.content.upload"] == "error"
        assert "gen_ai.input.messages_ref" not in a
    else:
        assert a["gen_ai.input.messages_ref"] == "mem://1"


def test_a_stuck_uploader_drops_content_instead_of_blocking(client: Any, instrument: Any) -> None:
    import threading

    from opentelemetry.instrumentation.gemini.record.upload import MAX_PENDING

    release = threading.Event()

    class Stuck:
        def reference(self) -> str:
            return "mem://x"

        def upload(self, reference: str, content: dict[str, Any]) -> None:
            release.wait(10)

    telemetry = instrument(content_uploader=Stuck())
    try:
        started = time.perf_counter()
        for _ in range(MAX_PENDING + 3):
            client.models.generate_content(model=MODEL, contents="x")
        assert time.perf_counter() - started < 10
        outcomes = [s.attributes.get("gcp.gemini.content.upload") for s in telemetry.all_spans()]
        assert outcomes.count("dropped") >= 2  # one may be in the thread, MAX_PENDING queued
    finally:
        release.set()


def test_a_coroutine_tool_of_an_async_call_gets_its_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    async def lookup(city: str) -> str:
        """Looks a city up."""
        return f"found {city}"

    async def run() -> Any:
        return await client.aio.models.generate_content(
            model=MODEL, contents="x", config={"tools": [lookup]}
        )

    fake.enqueue(
        MODEL, Reply(usage=ROUND_1, extra=_calls("lookup")), Reply(usage=ROUND_2, text="ok")
    )
    assert run_async(run()).text == "ok"
    [tool] = [s for s in telemetry.all_spans() if s.name == "execute_tool lookup"]
    assert tool.attributes["gen_ai.tool.call.id"] == "call-1"
    assert tool.parent.span_id == telemetry.span().context.span_id
    sent = fake.requests[-1]["body"]["contents"][-1]["parts"][0]["functionResponse"]
    assert sent["response"] == {"result": "found Paris"}


def test_a_chat_with_tools_shows_its_tool_runs(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    """google-genai 3.6's chats run automatic function calling themselves: one generate_content
    call per round, the tools between them (children of the app's current span, here none)."""
    _afc(fake, "get_weather")
    chat = client.chats.create(model=MODEL, config={"tools": [get_weather]})
    chat.send_message("weather?")
    first, second = telemetry.spans()
    [tool] = [s for s in telemetry.all_spans() if s.name == "execute_tool get_weather"]
    assert tool.parent is None
    assert tool.attributes["gen_ai.tool.call.id"] == "call-1"
    assert first.end_time <= tool.start_time and tool.end_time <= second.start_time


def test_file_system_uploader_round_trips_any_directory_name(tmp_path: Path) -> None:
    uploader = FileSystemUploader(tmp_path / "with space%")
    ref = uploader.reference()
    uploader.upload(ref, {"input_messages": []})
    [stored] = (tmp_path / "with space%").glob("*.json")
    assert stored.as_uri() == ref and json.loads(stored.read_text()) == {"input_messages": []}
