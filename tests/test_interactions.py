"""The Interactions API through the real client against the fake server: spans with usage and
cost for create (plain, streamed, background) and get, sync and async; each HTTP attempt of
its own HTTP stack counted, 429s parsed; a finished interaction priced once."""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any

import pytest
from google.genai import types

from conftest import Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini import quota_status
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"
USAGE = {
    "total_input_tokens": 1_000,
    "total_cached_tokens": 400,
    "total_output_tokens": 200,
    "total_thought_tokens": 50,
}
# gemini-2.5-flash, USD per token (reference: $0.30 in, $0.03 cached, $2.50 out per 1M).
IN, CACHED, OUT = 0.30e-6, 0.03e-6, 2.50e-6
EXPECTED = 600 * IN + 400 * CACHED + 250 * OUT
NO_RETRY = types.HttpRetryOptions(attempts=1)
FAST_RETRY = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)


@pytest.fixture
def client(fake: FakeGemini) -> Any:
    # The Interactions stack retries 5 times by default, with backoff: tests choose.
    return make_client(fake, retry=NO_RETRY)


def _create(client: Any, mode: str, **kwargs: Any) -> Any:
    """One create through the entry point; a stream is read to its end (events returned)."""
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("input", "hello")
    if mode == "sync":
        result = client.interactions.create(**kwargs)
        return list(result) if kwargs.get("stream") else result

    async def run() -> Any:
        result = await client.aio.interactions.create(**kwargs)
        if kwargs.get("stream"):
            return [event async for event in result]
        return result

    return run_async(run())


def _get(client: Any, mode: str, interaction_id: str) -> Any:
    if mode == "sync":
        return client.interactions.get(interaction_id)

    async def run() -> Any:
        return await client.aio.interactions.get(interaction_id)

    return run_async(run())


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_create_has_a_span_with_usage_and_cost(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str, stream: bool
) -> None:
    fake.enqueue(None, Reply(usage=USAGE, text="one two three four five six"))
    result = _create(client, mode, stream=stream)
    if stream:  # the app's events, as the SDK gives them
        kinds = [e.event_type for e in result]
        assert kinds[0] == "interaction.created" and kinds[-1] == "interaction.completed"
        assert kinds.count("step.delta") == 3
    else:
        assert result.status == "completed" and result.usage.total_input_tokens == 1_000
    span = telemetry.span()
    assert span.name == f"interactions {MODEL}"
    a = span.attributes
    assert a["gen_ai.operation.name"] == "interactions"
    assert a["gcp.gemini.interaction.method"] == "create"
    assert a["gcp.gemini.interaction.status"] == "completed"
    assert a["gen_ai.response.model"] == MODEL
    assert a["gen_ai.response.id"].startswith("interaction-")
    assert a["gen_ai.usage.input_tokens"] == 1_000
    assert a["gen_ai.usage.output_tokens"] == 250  # output + thoughts
    assert a["gen_ai.usage.cache_read.input_tokens"] == 400
    assert a["gen_ai.usage.reasoning.output_tokens"] == 50
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(EXPECTED)
    if stream:
        assert a["gen_ai.request.stream"] is True
        assert a["gcp.gemini.stream.end"] == "exhausted"
        assert a["gcp.gemini.stream.chunks"] == 7
    else:
        assert "gcp.gemini.stream.end" not in a
    assert telemetry.total("gcp.gemini.cost", gen_ai__operation__name="interactions") == (
        pytest.approx(EXPECTED)
    )
    assert (
        telemetry.total(
            "gcp.gemini.requests",
            gen_ai__operation__name="interactions",
            http__response__status_code=200,
        )
        == 1
    )
    # Like generate_content, it counts against the model's quota.
    status = quota_status(MODEL)
    assert status is not None and status.usage["rpm"] == 1 and status.usage["tpm"] == 1_000


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_background_interaction_is_priced_once_by_the_get_that_sees_it_done(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    fake.enqueue(None, Reply(usage=USAGE))
    started = _create(client, mode, background=True)
    assert started.status == "in_progress"
    done = _get(client, mode, started.id)
    again = _get(client, mode, started.id)
    assert done.status == again.status == "completed"
    create, first, second = telemetry.spans()
    assert create.attributes["gcp.gemini.interaction.background"] is True
    assert create.attributes["gcp.gemini.interaction.status"] == "in_progress"
    assert create.attributes["gen_ai.usage.cost.amount"] == 0.0  # nothing to price yet
    assert first.name == f"get_interaction {MODEL}"  # the model the create named
    assert first.attributes["gen_ai.usage.cost.amount"] == pytest.approx(EXPECTED)
    assert second.attributes["gcp.gemini.interaction.priced"] is False
    assert second.attributes["gen_ai.usage.cost.amount"] == 0.0
    assert telemetry.total("gcp.gemini.cost") == pytest.approx(EXPECTED)


def test_a_completed_create_is_not_priced_again_by_a_get(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, Reply(usage=USAGE))
    done = client.interactions.create(model=MODEL, input="x")
    client.interactions.get(done.id)
    assert telemetry.total("gcp.gemini.cost") == pytest.approx(EXPECTED)
    assert telemetry.spans()[1].attributes["gcp.gemini.interaction.priced"] is False


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_attempt_of_the_interactions_stack_is_counted(
    fake: FakeGemini, telemetry: Telemetry, mode: str
) -> None:
    """The SDK retries 429 and 5xx inside its second HTTP stack: each attempt counts, and the
    429's quota details are read, as on the main stack."""
    client = make_client(fake, retry=FAST_RETRY)
    fake.enqueue(None, Reply(status=429, error_body=quota_error_body(model=MODEL)))
    fake.enqueue(None, Reply(status=503), Reply(usage=USAGE))
    _create(client, mode)
    span = telemetry.span()
    assert span.attributes["gcp.gemini.attempts"] == 3
    assert [e.name for e in span.events] == [
        "gcp.gemini.attempt",
        "gcp.gemini.quota.exceeded",
        "gcp.gemini.attempt",
    ]
    by_status = {
        p.attributes.get("http.response.status_code"): p.value
        for p in telemetry.points("gcp.gemini.requests")
    }
    assert by_status == {429: 1, 503: 1, 200: 1}
    assert telemetry.total("gcp.gemini.quota.exceeded", gen_ai__request__model=MODEL) == 1
    # The 429 named a free-tier quota: the tier is learned, and the call bills 0 there.
    assert span.attributes["gcp.gemini.tier"] == "free"
    assert span.attributes["gcp.gemini.cost.list_amount"] == pytest.approx(EXPECTED)


def test_a_429_the_caller_sees_fails_the_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    # 429s for every attempt: google-genai 2.x's Interactions client retries on its own.
    fake.enqueue(None, *[Reply(status=429, error_body=quota_error_body(model=MODEL))] * 4)
    # The Interactions API raises its own error classes (status_code, not code).
    with pytest.raises(Exception) as raised:
        client.interactions.create(model=MODEL, input="x")
    assert raised.value.status_code == 429
    span = telemetry.span()
    assert span.attributes["error.type"] == "429"
    assert span.attributes["gen_ai.usage.cost.amount"] == 0.0
    assert span.end_time is not None
    assert telemetry.total("gcp.gemini.quota.exceeded") == len(fake.requests)  # each attempt


def test_cancel_and_delete_have_spans(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    started = client.interactions.create(model=MODEL, input="x", background=True)
    client.interactions.cancel(started.id)
    client.interactions.delete(started.id)
    names = [s.attributes["gcp.gemini.interaction.method"] for s in telemetry.spans()]
    assert names == ["create", "cancel", "delete"]
    cancel = telemetry.spans()[1]
    assert cancel.attributes["gen_ai.operation.name"] == "cancel_interaction"
    assert cancel.attributes["gen_ai.response.id"] == started.id
    assert cancel.attributes["gcp.gemini.interaction.status"] == "cancelled"


def test_a_stream_dropped_unfinished_ends_its_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    stream = client.interactions.create(model=MODEL, input="x", stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    client.models.count_tokens(model=MODEL, contents="x")  # a next call records the drop
    span = next(s for s in telemetry.spans() if s.name.startswith("interactions"))
    assert span.attributes["gcp.gemini.stream.end"] == "abandoned"
    assert span.attributes["gcp.gemini.stream.chunks"] == 1


def test_requests_outside_any_span_are_still_counted(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """with_raw_response goes below the methods we wrap: its attempts still count."""
    client = make_client(fake, retry=NO_RETRY)
    fake.enqueue(None, *[Reply(status=429)] * 4)  # google-genai 2.x retries on its own
    with pytest.raises(Exception) as raised:
        client.interactions.with_raw_response.create(model=MODEL, input="x")
    assert raised.value.status_code == 429
    assert telemetry.total(
        "gcp.gemini.requests",
        gen_ai__operation__name="interactions",
        http__response__status_code=429,
    ) == len(fake.requests)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_closed_early_ends_its_span_at_once(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    """Stream.close() (and leaving its ``with``) closes only the HTTP response: the span still
    ends then, not when the stream is collected."""
    if mode == "sync":
        with client.interactions.create(model=MODEL, input="x", stream=True) as stream:
            next(iter(stream))
        held = stream  # still referenced: only the close can have ended the span
    else:

        async def run() -> Any:
            stream = await client.aio.interactions.create(model=MODEL, input="x", stream=True)
            await stream.__anext__()
            await stream.close()
            return stream

        held = run_async(run())
    span = telemetry.span()
    assert span.attributes["gcp.gemini.stream.end"] == "closed"
    assert span.attributes["gcp.gemini.stream.chunks"] == 1
    assert held is not None


_FRESH_PROCESS = """
import sys
from google import genai
from google.genai import types
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.sdk.interactions import GAOS_MODULE
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

finders = list(sys.meta_path)
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
GeminiInstrumentor().instrument(tracer_provider=provider)
assert GAOS_MODULE not in sys.modules, "the Interactions stack was imported by instrument()"
assert sys.meta_path == finders, "instrument() added an import hook"
with FakeGemini(max_lifetime=60) as fake:
    fake.enqueue(None, Reply(text="hi"))
    options = types.HttpOptions(base_url=fake.url)
    client = genai.Client(api_key="fake-key", http_options=options)
    client.interactions.create(model="gemini-3-flash-preview", input="hi")
print(sorted(span.name for span in exporter.get_finished_spans()))
"""


def test_the_interactions_stack_is_hooked_at_first_use_without_an_import_hook() -> None:
    # A fresh process: the SDK has not imported its second stack when instrument() runs. An
    # import hook would tax every import the app makes; the first read of client.interactions
    # hooks it instead, before the app's first call through it.
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "interactions gemini-3-flash-preview" in out.stdout, out.stdout


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_of_several_hops_adds_their_usage(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    """Each ``interaction.completed`` event carries its own hop's usage: a stream of three
    hops used (and costs) three times one hop."""
    fake.enqueue(None, Reply(usage=USAGE, text="one two", extra={"hops": 3}))
    events = _create(client, mode, stream=True)
    assert [e.event_type for e in events].count("interaction.completed") == 3
    a = telemetry.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 3_000
    assert a["gen_ai.usage.output_tokens"] == 750
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(3 * EXPECTED)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_request_of_the_second_stack_no_adapter_holds_is_counted(
    fake: FakeGemini, telemetry: Telemetry, mode: str
) -> None:
    """A method of the Interactions API's HTTP stack we have no adapter for (webhooks): its
    attempt is still counted, by its path."""
    client = make_client(fake, retry=NO_RETRY)
    if mode == "sync":
        client.webhooks.list()
    else:
        run_async(client.aio.webhooks.list())
    assert len(fake.requests) == 1
    assert (
        telemetry.total(
            "gcp.gemini.requests", gen_ai__operation__name="other", http__response__status_code=200
        )
        == 1
    )
