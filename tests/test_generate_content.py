"""One behaviour suite over the four entry points: sync, async, sync stream, async stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from google.genai import errors, types
from opentelemetry.trace import SpanKind, StatusCode

from conftest import FAKE_KEY, Telemetry, call_gemini, make_client, run_async
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

STREAMS = ("sync_stream", "async_stream")
RICH_USAGE = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 200,
    "candidatesTokenCount": 300,
    "thoughtsTokenCount": 150,
    "toolUsePromptTokenCount": 40,
    "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": 1000},
        {"modality": "AUDIO", "tokenCount": 200},
    ],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 200}],
    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 300}],
    "trafficType": "ON_DEMAND",
}


def test_one_client_span_with_semconv_attributes(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    fake.enqueue(
        "gemini-2.5-flash",
        Reply(usage=RICH_USAGE, model_version="gemini-2.5-flash-001", response_id="resp-1"),
    )
    config = types.GenerateContentConfig(
        temperature=0.2,
        top_p=0.9,
        top_k=20,
        max_output_tokens=512,
        seed=7,
        stop_sequences=["END"],
        candidate_count=1,
    )
    call_gemini(client, entrypoint, config=config)

    span = telemetry.span()
    assert span.name == "generate_content gemini-2.5-flash"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    a = span.attributes
    assert a["gen_ai.operation.name"] == "generate_content"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.request.model"] == "gemini-2.5-flash"
    assert a["gen_ai.response.model"] == "gemini-2.5-flash-001"
    assert a["gen_ai.response.id"] == "resp-1"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == fake.port
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.top_k"] == 20
    assert a["gen_ai.request.max_tokens"] == 512
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["gen_ai.request.choice.count"] == 1
    # Usage: input = prompt + tool-use prompt; output = candidates + thoughts.
    assert a["gen_ai.usage.input_tokens"] == 1240
    assert a["gen_ai.usage.output_tokens"] == 450
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["gen_ai.usage.reasoning.output_tokens"] == 150
    assert a["gcp.gemini.usage.tool_use_prompt_tokens"] == 40
    assert a["gcp.gemini.usage.input_tokens.audio"] == 200
    assert a["gcp.gemini.usage.input_tokens.text"] == 1000
    assert a["gcp.gemini.usage.cache_read.input_tokens.text"] == 200
    assert a["gcp.gemini.usage.output_tokens.text"] == 300
    assert a["gcp.gemini.traffic_type"] == "ON_DEMAND"
    assert a["gcp.gemini.tier"] == "unknown"
    assert "gcp.gemini.tier.source" not in a  # an unknown tier has no source
    assert "gcp.gemini.usage.total_tokens" not in a  # totalTokenCount is input + output here
    assert ("gen_ai.request.stream" in a) == entrypoint.endswith("stream")


def test_total_tokens_only_when_the_other_counts_do_not_explain_them(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    # A totalTokenCount above prompt + tool-use prompt + candidates + thoughts: the extra
    # tokens are billed as output (pricing), and the span says they exist.
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 40, "totalTokenCount": 150}
    fake.enqueue(None, Reply(usage=usage))
    call_gemini(client, "sync")
    a = telemetry.span().attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (100, 40)
    assert a["gcp.gemini.usage.total_tokens"] == 150


def test_return_value_is_unchanged(fake: FakeGemini, instrument: Any, entrypoint: str) -> None:
    def run() -> Any:
        fake.enqueue(None, Reply(usage=RICH_USAGE, response_id="same"))
        result = call_gemini(make_client(fake), entrypoint)
        chunks = result if isinstance(result, list) else [result]
        return [c.model_dump(exclude={"sdk_http_response"}) for c in chunks], type(chunks[0])

    bare = run()
    instrument()
    assert run() == bare


@pytest.mark.parametrize("entrypoint", STREAMS)
def test_streams_use_the_last_cumulative_usage_never_the_sum(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 40, "thoughtsTokenCount": 20}
    fake.enqueue(None, Reply(usage=usage, chunks=4, text="one two three four five six seven"))
    chunks = call_gemini(client, entrypoint)
    assert len(chunks) == 4
    a = telemetry.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 100
    assert a["gen_ai.usage.output_tokens"] == 60
    assert a["gcp.gemini.stream.chunks"] == 4
    assert a["gcp.gemini.stream.end"] == "exhausted"
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    assert telemetry.points("gen_ai.client.operation.time_to_first_chunk")[0].count == 1


def test_server_error_sets_error_status_and_reraises_the_sdk_exception(
    fake: FakeGemini, instrument: Any, entrypoint: str
) -> None:
    def run() -> errors.APIError:
        fake.enqueue(None, Reply(status=500))
        with pytest.raises(errors.APIError) as caught:
            call_gemini(make_client(fake), entrypoint)
        return caught.value

    bare = run()
    telemetry = instrument()
    seen = run()
    assert type(seen) is type(bare)
    assert (seen.code, seen.status, seen.message, seen.details) == (
        bare.code,
        bare.status,
        bare.message,
        bare.details,
    )
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "500"
    assert [e.name for e in span.events][-1] == "exception"
    assert telemetry.points("gen_ai.client.operation.duration", error__type="500")


@pytest.mark.parametrize("entrypoint", STREAMS)
def test_error_inside_a_stream_ends_the_span_with_error(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    fake.enqueue(None, Reply(chunks=4, error_after_chunks=2, text="a b c d e f g h"))
    with pytest.raises(errors.APIError):
        call_gemini(client, entrypoint)
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["gcp.gemini.stream.end"] == "error"
    assert span.attributes["gcp.gemini.stream.chunks"] == 2


def test_metrics_semconv_histograms_and_dashboard_counters(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    fake.enqueue(None, Reply(usage=RICH_USAGE))
    call_gemini(client, entrypoint)

    [duration] = telemetry.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert list(duration.explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    assert duration.attributes["gen_ai.operation.name"] == "generate_content"
    assert duration.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert duration.attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    # Semconv attributes only: each one costs every record (issue 7's budget).
    assert set(duration.attributes) == {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "server.address",
    }
    [tokens_in] = telemetry.points("gen_ai.client.token.usage", gen_ai__token__type="input")
    [tokens_out] = telemetry.points("gen_ai.client.token.usage", gen_ai__token__type="output")
    assert (tokens_in.sum, tokens_out.sum) == (1240, 450)
    assert list(tokens_in.explicit_bounds)[:3] == [1, 4, 16]

    assert telemetry.total("gcp.gemini.requests", http__response__status_code=200) == 1
    by_type = {
        p.attributes["gcp.gemini.token.type"]: p.value
        for p in telemetry.points("gcp.gemini.tokens")
    }
    # Disjoint types that add up to Gemini's totalTokenCount.
    assert by_type == {
        "input": 1000,
        "cached_input": 200,
        "tool_use_input": 40,
        "output": 300,
        "reasoning": 150,
    }


def test_counters_are_cumulative_across_collections(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    call_gemini(client, "sync")
    assert telemetry.total("gcp.gemini.requests") == 1
    call_gemini(client, "sync")
    call_gemini(client, "sync")
    assert telemetry.total("gcp.gemini.requests") == 3
    assert telemetry.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 36


def test_api_key_never_reaches_telemetry(
    fake: FakeGemini, client: Any, instrument: Any, entrypoint: str
) -> None:
    telemetry = instrument(capture_content=True)
    fake.enqueue(None, Reply(status=429))
    with pytest.raises(errors.ClientError):
        call_gemini(client, entrypoint)
    call_gemini(client, entrypoint)
    dumped = (
        json.dumps([json.loads(s.to_json()) for s in telemetry.spans()])
        + telemetry.reader.get_metrics_data().to_json()
    )
    assert FAKE_KEY not in dumped
    assert "x-goog-api-key" not in dumped.lower()


def test_content_is_not_captured_by_default(client: Any, telemetry: Telemetry) -> None:
    call_gemini(client, "sync", contents="secret prompt")
    attrs = telemetry.span().attributes
    assert "gen_ai.input.messages" not in attrs
    assert "gen_ai.output.messages" not in attrs
    assert "secret prompt" not in telemetry.span().to_json()


def test_content_capture_opt_in(
    fake: FakeGemini, client: Any, instrument: Any, entrypoint: str
) -> None:
    telemetry = instrument(capture_content=True)
    fake.enqueue(None, Reply(text="the answer is 42", chunks=2))
    call_gemini(
        client,
        entrypoint,
        contents="what is the answer?",
        config={"system_instruction": "be brief"},
    )
    attrs = telemetry.span().attributes
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "what is the answer?"}]}
    ]
    assert json.loads(attrs["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "be brief"}
    ]
    [message] = json.loads(attrs["gen_ai.output.messages"])
    assert message["parts"][0]["content"] == "the answer is 42"
    assert message["finish_reason"] == "stop"


def test_chat_goes_through_the_instrumented_models(client: Any, telemetry: Telemetry) -> None:
    chat = client.chats.create(model="gemini-2.5-flash")
    chat.send_message("hi")
    list(chat.send_message_stream("again"))
    assert [s.name for s in telemetry.spans()] == ["generate_content gemini-2.5-flash"] * 2


def test_vertex_mode_reports_the_vertex_provider(fake: FakeGemini, telemetry: Telemetry) -> None:
    client = make_client(fake, vertexai=True)
    with contextlib.suppress(Exception):
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    span = telemetry.span()
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"


def test_model_prefix_is_normalised(client: Any, telemetry: Telemetry) -> None:
    client.models.generate_content(model="models/gemini-2.5-pro", contents="hi")
    assert telemetry.span().attributes["gen_ai.request.model"] == "gemini-2.5-pro"


def test_async_calls_run_concurrently_each_with_its_own_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    async def many() -> None:
        await asyncio.gather(
            *(client.aio.models.generate_content(model=f"m-{i}", contents="x") for i in range(8))
        )

    run_async(many())
    names = sorted(s.name for s in telemetry.spans())
    assert names == sorted(f"generate_content m-{i}" for i in range(8))
    assert all(s.parent is None for s in telemetry.spans())
