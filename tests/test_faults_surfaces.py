"""Hostile answers and requests on the surfaces beyond generate_content (batch jobs, context
caches, Imagen and Veo): numbers that add up beyond int64 across a batch's responses or a
process's caches, counts asked for beyond int64, junk modality names; through the real client
and the fake server, checked on what the OTLP encoders would export."""

from __future__ import annotations

import gc
import tracemalloc
import warnings
from typing import Any

from google.genai import types
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

MODEL = "gemini-2.5-flash"
VEO = "veo-3.0-generate-001"
IMAGEN = "imagen-4.0-fast-generate-001"
INT64_MAX = 2**63 - 1
HUGE = 10**30
# Shaped like a Google API key, built at run time so no key-shaped literal is committed.
GOOGLE_SHAPED_KEY = "AIza" + "Q" * 35


def _int_attributes_fit(telemetry: Telemetry) -> None:
    """Every attribute of every span reaches the OTLP encoding: the encoder drops (and logs)
    an integer beyond int64."""
    spans = telemetry.all_spans()
    request = encode_spans(list(spans))  # type: ignore[arg-type]
    encoded = [
        {kv.key for kv in span.attributes}
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert encoded == [set(s.attributes or {}) for s in spans]


def _run_batch(client: Any, requests: int) -> Any:
    job = client.batches.create(
        model=MODEL,
        src=[{"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}] * requests,
    )
    for _ in range(2):  # running, then succeeded with its inline responses
        job = client.batches.get(name=job.name)
    return job


# --- numbers that add up beyond int64 --------------------------------------------------------
def test_a_batch_of_huge_counts_sums_within_int64(fake: FakeGemini, telemetry: Telemetry) -> None:
    """Each response's count is clamped to 2**53, but 1,100 of them summed to ~9.9e18: the
    priced get's span carried token counts the OTLP encoder could not write."""
    fake.enqueue(None, Reply(usage={"promptTokenCount": HUGE, "candidatesTokenCount": HUGE}))
    client = make_client(fake)
    job = _run_batch(client, 1_100)
    assert job.dest.inlined_responses[0].response.usage_metadata.prompt_token_count == HUGE
    priced = telemetry.spans()[-1].attributes
    assert priced["gcp.gemini.batch.results.priced"] is True
    assert priced["gcp.gemini.batch.responses"] == 1_100
    assert 0 < priced["gen_ai.usage.input_tokens"] <= INT64_MAX
    _int_attributes_fit(telemetry)
    encode_metrics(telemetry.reader.get_metrics_data())


def test_many_huge_caches_keep_the_metrics_export_working(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """The live-tokens gauge sums the process's caches per model: 1,030 caches of 2**53 tokens
    each went beyond int64, and the whole OTLP metrics export failed."""
    client = make_client(fake)
    config = types.CreateCachedContentConfig(contents=["x"], ttl="3600s")
    for _ in range(1_030):
        fake.enqueue("cachedContents", Reply(usage={"totalTokenCount": HUGE}))
        client.caches.create(model=MODEL, config=config)
    encode_metrics(telemetry.reader.get_metrics_data())  # raised EncodingException
    [live] = telemetry.points("gcp.gemini.cache.tokens", gen_ai__request__model=MODEL)
    assert live.value == INT64_MAX


# --- counts asked for beyond int64 -----------------------------------------------------------
def _quietly(call: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK's notices for these methods
        return call()


def test_huge_media_requests_stay_within_int64(fake: FakeGemini, telemetry: Telemetry) -> None:
    """A duration, a number of videos or images the SDK sends as asked (beyond int64): the
    submit's and the poll's spans carried them, and the seconds billed, as they were."""
    client = make_client(fake, vertexai=True)
    config = types.GenerateVideosConfig(duration_seconds=HUGE, number_of_videos=2)
    operation = _quietly(
        lambda: client.models.generate_videos(model=VEO, prompt="a", config=config)
    )
    while not operation.done:
        operation = client.operations.get(operation)
    assert len(operation.response.generated_videos) == 2  # the app's answer unchanged
    images = types.GenerateImagesConfig(number_of_images=HUGE)
    _quietly(lambda: client.models.generate_images(model=IMAGEN, prompt="a", config=images))
    _int_attributes_fit(telemetry)
    encode_metrics(telemetry.reader.get_metrics_data())
    priced = [s for s in telemetry.spans() if "gcp.gemini.usage.video_seconds" in s.attributes]
    assert [s.attributes["gcp.gemini.usage.video_seconds"] for s in priced] == [2**53]


# --- junk modality names ---------------------------------------------------------------------
def test_junk_modalities_do_not_grow_span_attributes(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """Each modality in a usage's details becomes an attribute key: a batch whose responses name
    40 made-up modalities of 10,000 characters gave the priced span 40 keys of that size."""
    details = [{"modality": f"{i}" + "m" * 10_000, "tokenCount": 1} for i in range(40)]
    details.append({"modality": "TEXT", "tokenCount": 5})
    fake.enqueue(None, Reply(usage={"promptTokenCount": 45, "promptTokensDetails": details}))
    client = make_client(fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns of each modality it does not know
        _run_batch(client, 3)
    priced = telemetry.spans()[-1].attributes
    modality_keys = [k for k in priced if k.startswith("gcp.gemini.usage.input_tokens.")]
    assert "gcp.gemini.usage.input_tokens.text" in modality_keys
    assert priced["gcp.gemini.usage.input_tokens.text"] == 15
    assert len(modality_keys) <= 8
    assert all(len(k) <= 64 for k in priced)
    assert priced["gen_ai.usage.input_tokens"] == 3 * 45  # no token lost


# --- what we remember is bounded in size, not only in count ----------------------------------
def test_huge_operation_names_are_not_kept_alive(fake: FakeGemini, telemetry: Telemetry) -> None:
    """A submit is remembered until its operation is seen done (up to 1,024 of them), keyed by
    the operation's name: answers naming 1 MB operations kept every such string alive after
    the app had dropped its operation (1 GB at the bound)."""
    client = make_client(fake, vertexai=True)
    prefix = f"projects/p/locations/l/publishers/google/models/{VEO}/operations/"
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20):
            fake.enqueue(None, Reply(body={"name": f"{prefix}{i}" + "x" * 1_000_000}))
            _quietly(lambda: client.models.generate_videos(model=VEO, prompt="a"))
        telemetry.exporter.clear()  # the spans hold their own (capped) copies
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 5_000_000, kept  # was over 20 MB: every name


# --- the API key, repeated in an answer's names ----------------------------------------------
def test_a_key_repeated_in_an_operation_name_is_redacted(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """Errors were cleaned of keys, but the names an adapter copies from an answer (here a
    video operation's, on the submit's and the poll's spans) went out as they were."""
    client = make_client(fake, vertexai=True)
    name = f"projects/p/locations/l/publishers/google/models/{VEO}/operations/{GOOGLE_SHAPED_KEY}"
    fake.enqueue(None, Reply(body={"name": name}), Reply(body={"name": name, "done": False}))
    operation = _quietly(lambda: client.models.generate_videos(model=VEO, prompt="a"))
    assert client.operations.get(operation).name == name  # the app's answer unchanged
    spans = telemetry.spans()
    assert [s.attributes["gcp.gemini.operation.name"].endswith("[REDACTED]") for s in spans] == [
        True,
        True,
    ]
    for span in spans:
        assert GOOGLE_SHAPED_KEY not in str(dict(span.attributes or {}))


def test_many_huge_vertex_embeddings_sum_within_int64(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """Vertex reports tokens per embedding (a float): each is clamped, but 1,100 of them summed
    beyond int64 on the span and the counters."""
    fake.enqueue(None, Reply(usage={"promptTokenCount": HUGE}))
    client = make_client(fake, vertexai=True)
    response = client.models.embed_content(model="text-embedding-005", contents=["x"] * 1_100)
    assert len(response.embeddings) == 1_100
    assert response.embeddings[0].statistics.token_count == float(HUGE)  # the answer unchanged
    assert 0 < telemetry.span().attributes["gen_ai.usage.input_tokens"] <= INT64_MAX
    _int_attributes_fit(telemetry)
    encode_metrics(telemetry.reader.get_metrics_data())
