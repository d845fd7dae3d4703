"""Every request counted, and the surfaces beyond generate_content: embeddings, count_tokens,
compute_tokens, requests no adapter knows, and the service tier that served a Developer API
call. All through the real client against the fake server."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import errors, types

from conftest import Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini import quota_status
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

EMBED = "gemini-embedding-001"
REQUESTS = "gcp.gemini.requests"


def _embed(client: Any, mode: str, contents: Any) -> Any:
    if mode == "sync":
        return client.models.embed_content(model=EMBED, contents=contents)

    async def run() -> Any:
        return await client.aio.models.embed_content(model=EMBED, contents=contents)

    return run_async(run())


# Embedding answers carry usageMetadata in the SDK's types from google-genai 3.x.
EMBED_USAGE = "usage_metadata" in types.EmbedContentResponse.model_fields


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embed_content_span_usage_cost_and_quota(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    fake.enqueue(EMBED, Reply(usage={"promptTokenCount": 2_000}))
    response = _embed(client, mode, ["first document", "second document"])
    assert len(response.embeddings) == 2  # the app's answer, as the SDK gives it
    span = telemetry.span()
    assert span.name == f"embeddings {EMBED}"
    a = span.attributes
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.embeddings.dimension.count"] == 8
    assert a["gcp.gemini.embeddings.count"] == 2
    assert telemetry.total(REQUESTS, gen_ai__operation__name="embeddings") == 1
    if not EMBED_USAGE:  # google-genai 2.x drops usageMetadata: no tokens, so no price
        assert "gen_ai.usage.input_tokens" not in a
        assert a["gcp.gemini.cost.unpriced_reason"] == "no_usage"
        return
    assert a["gen_ai.usage.input_tokens"] == 2_000
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(2_000 * 0.15e-6)
    assert (
        telemetry.total(
            "gcp.gemini.tokens",
            gen_ai__operation__name="embeddings",
            gcp__gemini__token__type="input",
        )
        == 2_000
    )
    assert telemetry.total("gcp.gemini.cost", gen_ai__operation__name="embeddings") == (
        pytest.approx(2_000 * 0.15e-6)
    )
    histogram = telemetry.points("gen_ai.client.token.usage", gen_ai__operation__name="embeddings")
    assert [(p.attributes["gen_ai.token.type"], p.sum) for p in histogram] == [("input", 2_000)]
    status = quota_status(EMBED)
    assert status is not None and status.usage["rpm"] == 1 and status.usage["tpm"] == 2_000


def test_embed_content_on_vertex_reads_each_embeddings_statistics(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    fake.enqueue(None, Reply(usage={"promptTokenCount": 7}))
    client = make_client(fake, vertexai=True)
    client.models.embed_content(model="text-embedding-005", contents=["a", "b", "c"])
    a = telemetry.span().attributes
    assert a["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert a["gen_ai.usage.input_tokens"] == 21  # 3 x 7, summed from the statistics
    assert a["gcp.gemini.usage.billable_characters"] == 33
    assert a["gcp.gemini.cost.unpriced_reason"] == "unknown_model"  # no trustworthy price


def test_embed_content_429_is_counted_and_parsed(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(EMBED, Reply(status=429, error_body=quota_error_body(model=EMBED)))
    with pytest.raises(errors.ClientError):
        client.models.embed_content(model=EMBED, contents="x")
    span = telemetry.span()
    assert span.attributes["error.type"] == "429"
    assert [e.name for e in span.events].count("gcp.gemini.quota.exceeded") == 1
    assert (
        telemetry.total(
            REQUESTS, gen_ai__operation__name="embeddings", http__response__status_code=429
        )
        == 1
    )
    assert telemetry.total("gcp.gemini.quota.exceeded", gen_ai__request__model=EMBED) == 1


def test_sdk_retries_of_an_embedding_are_each_counted(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)
    client = make_client(fake, retry=retry)
    fake.enqueue(EMBED, Reply(status=429), Reply(status=503), Reply())
    client.models.embed_content(model=EMBED, contents="x")
    assert telemetry.span().attributes["gcp.gemini.attempts"] == 3
    by_status = {
        p.attributes.get("http.response.status_code"): p.value for p in telemetry.points(REQUESTS)
    }
    assert by_status == {429: 1, 503: 1, 200: 1}


def test_count_tokens_is_traced_free_and_out_of_inference_quota(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    async def run() -> Any:
        return await client.aio.models.count_tokens(model="gemini-2.5-flash", contents="x")

    assert client.models.count_tokens(model="gemini-2.5-flash", contents="x").total_tokens == 12
    assert run_async(run()).total_tokens == 12
    spans = telemetry.spans()
    assert [s.name for s in spans] == ["count_tokens gemini-2.5-flash"] * 2
    assert all(s.attributes["gen_ai.usage.cost.amount"] == 0.0 for s in spans)
    assert telemetry.total(REQUESTS, gen_ai__operation__name="count_tokens") == 2
    status = quota_status("gemini-2.5-flash")
    assert status is not None and status.usage["rpm"] == 0  # not the model's inference quota


def test_compute_tokens_on_vertex(fake: FakeGemini, telemetry: Telemetry) -> None:
    client = make_client(fake, vertexai=True)
    client.models.compute_tokens(model="gemini-2.5-flash", contents="abc")
    a = telemetry.span().attributes
    assert a["gen_ai.operation.name"] == "compute_tokens"
    assert a["gcp.gemini.counted_tokens"] == 3
    assert telemetry.total(REQUESTS, gen_ai__operation__name="compute_tokens") == 1


def test_a_request_no_adapter_knows_still_counts(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    """files.list has no adapter yet: its attempts (a 429 among them) are counted under the
    operation its path names, and the 429 is parsed, with no span of ours."""
    fake.enqueue(None, Reply(status=429))
    with pytest.raises(errors.ClientError):
        client.files.list()
    client.files.list()
    assert telemetry.spans() == ()
    assert telemetry.total(REQUESTS, gen_ai__operation__name="files") == 2
    assert (
        telemetry.total(REQUESTS, gen_ai__operation__name="files", http__response__status_code=429)
        == 1
    )
    assert telemetry.total("gcp.gemini.quota.exceeded") == 1
    for point in telemetry.points(REQUESTS):
        assert "gen_ai.request.model" not in point.attributes  # the path names no model


# --- the service tier that served a Developer API call prices it ----------------------------
USAGE = {"promptTokenCount": 1_000_000, "candidatesTokenCount": 1_000_000}
STANDARD = 0.30 + 2.50  # gemini-2.5-flash, USD for 1M in + 1M out


@pytest.mark.parametrize(
    ("header", "requested", "expected_factor", "served"),
    [
        ("flex", None, 0.5, "flex"),
        ("priority", None, 1.8, "priority"),
        ("standard", "flex", 1.0, "standard"),  # the answer wins over the request
        (None, "flex", 0.5, None),  # the answer says nothing: the request's tier
        (None, None, 1.0, None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_developer_api_calls_are_priced_by_the_tier_that_served_them(
    fake: FakeGemini,
    client: Any,
    telemetry: Telemetry,
    header: str | None,
    requested: str | None,
    expected_factor: float,
    served: str | None,
    stream: bool,
) -> None:
    headers = {"x-gemini-service-tier": header} if header else {}
    fake.enqueue(None, Reply(usage=USAGE, headers=headers))
    config = types.GenerateContentConfig(service_tier=requested) if requested else None
    if stream:
        list(
            client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="x", config=config
            )
        )
    else:
        client.models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
    a = telemetry.span().attributes
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(STANDARD * expected_factor)
    assert a.get("gcp.gemini.service_tier") == served
    assert a["gcp.gemini.cost.list_amount"] == pytest.approx(STANDARD * expected_factor)
