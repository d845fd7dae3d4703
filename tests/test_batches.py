"""Batch API jobs through the real client against the fake server: a span per SDK call, results
priced once at batch rates, a results file priced by the public helper, enqueued tokens against
the tier's limit, and batch spend apart from online spend on the counters."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini import (
    GeminiInstrumentor,
    quota_status,
    record_batch_results,
)
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"
EMBED = "gemini-embedding-001"
USAGE = {"promptTokenCount": 1_000, "candidatesTokenCount": 200, "thoughtsTokenCount": 50}
# gemini-2.5-flash standard rates, USD per token (reference: $0.30 in, $2.50 out per 1M).
IN, OUT = 0.30e-6, 2.50e-6


def batch_cost(prompt: int, output: int, n: int = 1) -> float:
    """Independent of the code under test: half the standard price of n responses."""
    return 0.5 * n * (prompt * IN + output * OUT)


def _run(client: Any, mode: str, method: str, **kwargs: Any) -> Any:
    if mode == "sync":
        return getattr(client.batches, method)(**kwargs)

    async def run() -> Any:
        result = await getattr(client.aio.batches, method)(**kwargs)
        if method == "list":  # an async pager: the first page is what the call fetched
            return list(result.page)
        return result

    return run_async(run())


def _requests(*texts: str) -> list[dict[str, Any]]:
    return [{"contents": [{"parts": [{"text": t}], "role": "user"}]} for t in texts]


def _batch_spans(telemetry: Telemetry, method: str) -> list[Any]:
    return [s for s in telemetry.spans() if s.attributes.get("gcp.gemini.batch.method") == method]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_inline_job_results_are_priced_once_at_batch_rates(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    fake.enqueue(MODEL, Reply(usage=USAGE))
    job = _run(client, mode, "create", model=MODEL, src=_requests("Tell me a joke", "Why?"))
    assert job.name.startswith("batches/") and job.state.name == "JOB_STATE_PENDING"
    states = [_run(client, mode, "get", name=job.name).state.name for _ in range(3)]
    assert states == ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_SUCCEEDED"]

    create = _batch_spans(telemetry, "create")[0]
    assert create.name == f"batches {MODEL}"
    a = create.attributes
    assert a["gen_ai.operation.name"] == "batches"
    assert a["gcp.gemini.batch.job.name"] == job.name
    assert a["gcp.gemini.batch.job.state"] == "JOB_STATE_PENDING"
    assert a["gcp.gemini.batch.request_count"] == 2
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.usage.cost.amount"] == 0.0  # creating a job costs nothing by itself

    running, first, again = _batch_spans(telemetry, "get")
    for span in (running, first, again):
        assert span.name == f"batches {MODEL}"  # the model of a job this process created
        assert span.attributes["gcp.gemini.batch.job.name"] == job.name
    assert running.attributes["gen_ai.usage.cost.amount"] == 0.0
    assert "gcp.gemini.batch.results.priced" not in running.attributes

    expected = batch_cost(1_000, 250, n=2)
    f = first.attributes
    assert f["gcp.gemini.batch.results.priced"] is True
    assert f["gcp.gemini.batch.responses"] == 2
    assert f["gen_ai.usage.input_tokens"] == 2_000
    assert f["gen_ai.usage.output_tokens"] == 500
    assert f["gcp.gemini.traffic_type"] == "batch"
    assert f["gcp.gemini.cost.processing"] == "batch"
    assert f["gen_ai.usage.cost.amount"] == pytest.approx(expected)

    assert again.attributes["gcp.gemini.batch.results.priced"] is False
    assert again.attributes["gen_ai.usage.cost.amount"] == 0.0
    assert "gen_ai.usage.input_tokens" not in again.attributes

    # Counted once on the spend counters, apart from online spend.
    assert telemetry.total("gcp.gemini.cost", gcp__gemini__cost__processing="batch") == (
        pytest.approx(expected)
    )
    assert telemetry.total("gcp.gemini.cost", gcp__gemini__cost__processing="online") == 0
    assert (
        telemetry.total(
            "gcp.gemini.tokens", gen_ai__operation__name="batches", gcp__gemini__token__type="input"
        )
        == 2_000
    )
    # Every HTTP attempt counted under the batches operation.
    assert telemetry.total("gcp.gemini.requests", gen_ai__operation__name="batches") == 4


def test_online_spend_carries_processing_online(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(MODEL, Reply(usage={"promptTokenCount": 1_000, "candidatesTokenCount": 100}))
    client.models.generate_content(model=MODEL, contents="hi")
    points = telemetry.points("gcp.gemini.cost")
    assert points and {p.attributes["gcp.gemini.cost.processing"] for p in points} == {"online"}
    assert {
        p.attributes["gcp.gemini.cost.processing"] for p in telemetry.points("gcp.gemini.cost.list")
    } == {"online"}
    for p in telemetry.points("gcp.gemini.tokens"):  # spend counters only
        assert "gcp.gemini.cost.processing" not in p.attributes


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embeddings_job_is_priced_at_batch_rates(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    fake.enqueue(EMBED, Reply(usage={"promptTokenCount": 700}))
    with pytest.warns(Warning):  # the SDK marks create_embeddings experimental
        job = _run(
            client,
            mode,
            "create_embeddings",
            model=EMBED,
            src={"inlined_requests": {"contents": ["first text", "second text", "third"]}},
        )
    for _ in range(2):
        done = _run(client, mode, "get", name=job.name)
    assert len(done.dest.inlined_embed_content_responses) == 3  # the app's answer, untouched
    create = _batch_spans(telemetry, "create_embeddings")[0]
    assert create.attributes["gcp.gemini.batch.request_count"] == 3
    priced = _batch_spans(telemetry, "get")[-1].attributes
    assert priced["gen_ai.usage.input_tokens"] == 2_100
    assert priced["gen_ai.usage.output_tokens"] == 0
    assert priced["gen_ai.usage.cost.amount"] == pytest.approx(0.5 * 2_100 * 0.15e-6)


def test_enqueued_tokens_gauge_against_the_tier_limit(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    telemetry = instrument(tier="tier_1")
    texts = ("a" * 401, "b" * 399)  # 800 characters: 200 tokens at 4 characters a token
    job = client.batches.create(model=MODEL, src=_requests(*texts))
    assert _batch_spans(telemetry, "create")[0].attributes["gcp.gemini.batch.enqueued_tokens"] == (
        math.ceil(800 / 4)
    )

    def gauge(name: str) -> float:
        points = telemetry.points(
            name,
            gcp__gemini__quota__dimension="batch_enqueued_tokens",
            gen_ai__request__model=MODEL,
        )
        assert len(points) == 1, points
        return points[0].value

    assert gauge("gcp.gemini.quota.usage") == 200
    assert gauge("gcp.gemini.quota.limit") == 3_000_000  # limits.json, tier_1 gemini-2.5-flash
    assert gauge("gcp.gemini.quota.utilization") == pytest.approx(200 / 3_000_000)
    status = quota_status(MODEL)  # the in-process read says what the gauges say
    assert status is not None
    assert status.usage["batch_enqueued_tokens"] == 200
    assert status.limits["batch_enqueued_tokens"] == 3_000_000
    assert status.utilization["batch_enqueued_tokens"] == pytest.approx(200 / 3_000_000)
    client.batches.get(name=job.name)  # running: still enqueued
    assert gauge("gcp.gemini.quota.usage") == 200
    client.batches.get(name=job.name)  # succeeded: done
    assert gauge("gcp.gemini.quota.usage") == 0
    assert quota_status(MODEL).usage["batch_enqueued_tokens"] == 0  # type: ignore[union-attr]

    other = client.batches.create(model=MODEL, src=_requests("c" * 40))
    assert gauge("gcp.gemini.quota.usage") == 10
    client.batches.delete(name=other.name)  # a deleted job never finishes: it leaves too
    assert gauge("gcp.gemini.quota.usage") == 0


def test_list_cancel_and_delete_have_spans(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    job = client.batches.create(model=MODEL, src=_requests("x"))
    assert [j.name for j in client.batches.list()] == [job.name]
    assert _run(client, "async", "list") and True
    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state.name == "JOB_STATE_CANCELLED"
    client.batches.delete(name=job.name)
    for method in ("list", "cancel", "delete"):
        spans = _batch_spans(telemetry, method)
        assert spans, method
        assert all(s.attributes["gen_ai.operation.name"] == "batches" for s in spans)
    assert _batch_spans(telemetry, "list")[0].name == "batches"  # a list names no model
    assert _batch_spans(telemetry, "list")[0].attributes["gcp.gemini.batch.job_count"] == 1
    cancel = _batch_spans(telemetry, "cancel")[0]
    assert cancel.name == f"batches {MODEL}"
    assert cancel.attributes["gcp.gemini.batch.job.name"] == job.name
    cancelled = _batch_spans(telemetry, "get")[0].attributes
    assert cancelled["gcp.gemini.batch.job.state"] == "JOB_STATE_CANCELLED"
    assert "gcp.gemini.batch.results.priced" not in cancelled


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_429s_on_batch_calls_are_counted_and_parsed(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    fake.enqueue(MODEL, Reply(status=429, error_body=quota_error_body(model=MODEL)))
    with pytest.raises(errors.ClientError):
        _run(client, mode, "create", model=MODEL, src=_requests("x"))
    span = _batch_spans(telemetry, "create")[0]
    assert span.attributes["error.type"] == "429"
    assert [e.name for e in span.events].count("gcp.gemini.quota.exceeded") == 1
    job = _run(client, mode, "create", model=MODEL, src=_requests("x"))
    fake.enqueue(None, Reply(status=429))
    with pytest.raises(errors.ClientError):
        _run(client, mode, "get", name=job.name)
    assert (
        telemetry.total(
            "gcp.gemini.requests",
            gen_ai__operation__name="batches",
            http__response__status_code=429,
        )
        == 2
    )
    assert telemetry.total("gcp.gemini.quota.exceeded") == 2
    failed_get = _batch_spans(telemetry, "get")[0]
    assert failed_get.attributes["error.type"] == "429"
    assert failed_get.end_time is not None


def test_failed_responses_are_counted_and_not_priced(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(MODEL, Reply(usage=USAGE))
    job = client.batches.create(model=MODEL, src=_requests("a", "b", "c"))
    fake.batches.job(job.name).failed.add(1)
    for _ in range(2):
        client.batches.get(name=job.name)
    a = _batch_spans(telemetry, "get")[-1].attributes
    assert a["gcp.gemini.batch.responses"] == 3
    assert a["gcp.gemini.batch.failed_responses"] == 1
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(batch_cost(1_000, 250, n=2))


def test_results_file_is_priced_by_the_helper_once(
    fake: FakeGemini, client: Any, telemetry: Telemetry, tmp_path: Path
) -> None:
    fake.enqueue(MODEL, Reply(usage=USAGE))
    job = client.batches.create(model=MODEL, src="files/input-123")
    assert _batch_spans(telemetry, "create")[0].attributes["gcp.gemini.batch.source.file"] == (
        "files/input-123"
    )
    fake.batches.job(job.name).requests = 4  # the input file held four requests
    fake.batches.job(job.name).failed.add(3)
    for _ in range(2):
        done = client.batches.get(name=job.name)
    assert done.dest.file_name
    get = _batch_spans(telemetry, "get")[-1].attributes
    assert get["gcp.gemini.batch.results.file"] == done.dest.file_name
    assert get["gen_ai.usage.cost.amount"] == 0.0  # the results are in a file: not seen here

    path = tmp_path / "results.jsonl"
    path.write_text(fake.batches.results_jsonl(job.name) + "\n")
    summary = record_batch_results(path, job=job.name, model=done.model)
    expected = batch_cost(1_000, 250, n=3)
    assert summary is not None and summary.recorded
    assert (summary.responses, summary.failed) == (4, 1)
    assert (summary.input_tokens, summary.output_tokens) == (3_000, 750)
    assert summary.cost_usd == pytest.approx(expected)
    span = _batch_spans(telemetry, "record_results")[0]
    assert span.name == f"batches {MODEL}"
    assert span.attributes["gen_ai.usage.cost.amount"] == pytest.approx(expected)
    assert span.attributes["gcp.gemini.batch.job.name"] == job.name
    assert telemetry.total("gcp.gemini.cost", gcp__gemini__cost__processing="batch") == (
        pytest.approx(expected)
    )

    # The same job again (bytes this time): nothing recorded twice.
    again = record_batch_results(path.read_bytes(), job=job.name, model=done.model)
    assert again is not None and not again.recorded and again.cost_usd is None
    assert len(_batch_spans(telemetry, "record_results")) == 1
    assert telemetry.total("gcp.gemini.cost", gcp__gemini__cost__processing="batch") == (
        pytest.approx(expected)
    )


def test_results_file_model_from_the_responses_and_unknown_models_unpriced(
    telemetry: Telemetry,
) -> None:
    lines = [
        {"key": "1", "response": {"usageMetadata": USAGE, "modelVersion": MODEL}},
        '{"key": "2", "error": {"code": 400, "message": "bad"}}',
        "not json",
    ]
    summary = record_batch_results(lines)
    assert summary is not None and summary.model == MODEL
    assert (summary.responses, summary.failed) == (3, 2)
    assert summary.cost_usd == pytest.approx(batch_cost(1_000, 250))
    unknown = record_batch_results(
        [{"response": {"usageMetadata": USAGE}}], model="gemini-9-ultra-nonexistent"
    )
    assert unknown is not None and unknown.cost_usd is None
    span = telemetry.spans()[-1]
    assert span.attributes["gcp.gemini.cost.unpriced_reason"] == "unknown_model"
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_helper_without_instrumentation_returns_none() -> None:
    assert record_batch_results([{"response": {"usageMetadata": USAGE}}]) is None


def test_a_job_priced_before_reinstrumentation_is_not_priced_again(fake: FakeGemini) -> None:
    """The seen jobs live with the meter provider's instruments: uninstrument() and a later
    instrument() on the same providers keep them."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = GeminiInstrumentor()
    client = make_client(fake)
    fake.enqueue(MODEL, Reply(usage=USAGE))
    try:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        job = client.batches.create(model=MODEL, src=_requests("x"))
        client.batches.get(name=job.name)
        client.batches.get(name=job.name)
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        client.batches.get(name=job.name)
    finally:
        instrumentor.uninstrument()
    telemetry = Telemetry(spans, reader)
    priced = [
        s.attributes.get("gcp.gemini.batch.results.priced") for s in _batch_spans(telemetry, "get")
    ]
    assert priced == [None, True, False]
    assert telemetry.total("gcp.gemini.cost", gcp__gemini__cost__processing="batch") == (
        pytest.approx(batch_cost(1_000, 250))
    )


def test_job_memories_are_bounded() -> None:
    """Job names come from the server, one per job: a process that runs jobs forever keeps the
    latest ones only (an old enqueued job leaves the gauge; an old priced one is forgotten)."""
    from opentelemetry.instrumentation.gemini.record.batches import BatchJobs

    jobs = BatchJobs(max_jobs=3)
    for i in range(5):
        jobs.enqueue(f"batches/{i}", MODEL, 10)
        assert jobs.claim(f"batches/{i}")
    assert jobs.enqueued_by_model() == {MODEL: 30}
    assert jobs.model_of("batches/0") is None and jobs.model_of("batches/4") == MODEL
    assert not jobs.claim("batches/4")  # remembered
    assert jobs.claim("batches/0")  # forgotten: the bound is documented in README
    jobs.finished("batches/4")
    assert jobs.enqueued_by_model() == {MODEL: 20}


def test_content_capture_puts_no_empty_messages_on_batch_spans(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    telemetry = instrument(capture_content=True)
    job = client.batches.create(model=MODEL, src=_requests("a prompt"))
    client.batches.get(name=job.name)
    for span in telemetry.spans():
        assert "gen_ai.input.messages" not in span.attributes
        assert "gen_ai.output.messages" not in span.attributes
