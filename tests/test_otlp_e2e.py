"""OTLP end to end: the real opentelemetry-exporter-otlp (HTTP/protobuf and gRPC) carries our
spans and metrics to a receiver on 127.0.0.1; the assertions read what crossed the wire.

Also the zero-code path: ``opentelemetry-instrument`` runs examples/auto/app.py configured by
environment variables only, and its telemetry must arrive the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from conftest import FAKE_KEY, call_gemini, make_client
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    DEFAULT_USAGE,
    FakeGemini,
    Reply,
    quota_error_body,
)
from otlp_receiver import PROTOCOLS, OtlpReceiver, ReceivedSpan

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gemini-2.5-flash"
PAID_RPM_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel-PaidTier"
PAID_429 = quota_error_body(
    quota_id=PAID_RPM_QUOTA,
    metric="generativelanguage.googleapis.com/generate_content_paid_tier_requests",
    model=MODEL,
    limit=1000,
    retry_delay="26s",
)
SPAN_NAME = f"generate_content {MODEL}"


@dataclass
class Pipeline:
    """Instrumented providers exporting over OTLP to ``receiver``."""

    receiver: OtlpReceiver
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def flush(self) -> OtlpReceiver:
        """Export now, then read what arrived."""
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()
        return self.receiver


@pytest.fixture(params=PROTOCOLS)
def otlp(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    protocol: str = request.param
    with OtlpReceiver(protocol) as receiver:
        if protocol == "grpc":
            span_exporter: Any = GrpcSpanExporter(endpoint=receiver.endpoint, insecure=True)
            metric_exporter: Any = GrpcMetricExporter(endpoint=receiver.endpoint, insecure=True)
        else:
            span_exporter = HttpSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
            metric_exporter = HttpMetricExporter(endpoint=f"{receiver.endpoint}/v1/metrics")
        resource = Resource.create({"service.name": "otlp-e2e"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        # Exported on demand (force_flush), never on a timer: the test decides when.
        reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
        meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
        instrumentor = GeminiInstrumentor()
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, tier="tier_1"
        )
        try:
            yield Pipeline(receiver, tracer_provider, meter_provider)
        finally:
            instrumentor.uninstrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()


def _traffic(fake: FakeGemini) -> None:
    """A call retried by the SDK (429, 429, 200), a stream, and a 429 the caller sees."""
    retrying = make_client(
        fake,
        retry=types.HttpRetryOptions(
            attempts=3, initial_delay=0.01, max_delay=0.02, http_status_codes=[429]
        ),
    )
    fake.enqueue(
        MODEL,
        Reply(status=429, error_body=PAID_429),
        Reply(status=429, error_body=PAID_429),
        Reply(),
    )
    call_gemini(retrying, "sync", MODEL)
    call_gemini(make_client(fake), "sync_stream", MODEL)
    fake.enqueue(MODEL, Reply(status=429, error_body=PAID_429))
    with pytest.raises(errors.ClientError):
        call_gemini(make_client(fake), "async", MODEL)


def _by_outcome(spans: list[ReceivedSpan]) -> tuple[ReceivedSpan, ReceivedSpan, ReceivedSpan]:
    retried = [s for s in spans if s.attributes.get("gcp.gemini.attempts") == 3]
    streamed = [s for s in spans if s.attributes.get("gen_ai.request.stream") is True]
    failed = [s for s in spans if s.status_code == Status.STATUS_CODE_ERROR]
    assert (len(retried), len(streamed), len(failed)) == (1, 1, 1), spans
    return retried[0], streamed[0], failed[0]


def test_spans_arrive_with_attributes_and_quota_events(fake: FakeGemini, otlp: Pipeline) -> None:
    _traffic(fake)
    exported = otlp.flush()
    assert exported.wait_for(lambda: len(exported.spans()) >= 3)

    spans = exported.spans()
    assert [s.name for s in spans] == [SPAN_NAME] * 3
    assert {s.kind for s in spans} == {Span.SPAN_KIND_CLIENT}
    assert {s.scope for s in spans} == {"opentelemetry.instrumentation.gemini"}
    assert {s.resource["service.name"] for s in spans} == {"otlp-e2e"}
    retried, streamed, failed = _by_outcome(spans)

    for span in (retried, streamed):
        attrs = span.attributes
        assert attrs["gen_ai.provider.name"] == "gcp.gemini"
        assert attrs["gen_ai.request.model"] == MODEL
        assert attrs["gcp.gemini.tier"] == "tier_1"
        assert attrs["gen_ai.usage.input_tokens"] == DEFAULT_USAGE["promptTokenCount"]
        assert attrs["gen_ai.usage.output_tokens"] == DEFAULT_USAGE["candidatesTokenCount"]
        assert attrs["gen_ai.usage.cost.currency"] == "USD"
        assert attrs["gen_ai.usage.cost.amount"] > 0
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert streamed.attributes["gcp.gemini.stream.chunks"] == 3
    assert streamed.attributes["gcp.gemini.stream.end"] == "exhausted"
    assert streamed.attributes["gen_ai.response.time_to_first_chunk"] > 0

    quota_events = [a for name, a in retried.events if name == "gcp.gemini.quota.exceeded"]
    attempt_events = [a for name, a in retried.events if name == "gcp.gemini.attempt"]
    assert len(quota_events) == 2
    for event in quota_events:
        assert event["gcp.gemini.quota.id"] == PAID_RPM_QUOTA
        assert event["gcp.gemini.quota.limit"] == 1000
        assert event["gcp.gemini.quota.window"] == "minute"
        assert event["gcp.gemini.quota.model"] == MODEL
        assert event["gcp.gemini.retry_delay"] == 26.0
    assert [e["http.response.status_code"] for e in attempt_events] == [429, 429]
    assert [e["gcp.gemini.attempt.number"] for e in attempt_events] == [1, 2]

    assert failed.attributes["error.type"] == "429"
    assert failed.attributes["gen_ai.usage.cost.amount"] == 0.0
    [event] = [a for n, a in failed.events if n == "gcp.gemini.quota.exceeded"]
    assert event["gcp.gemini.quota.id"] == PAID_RPM_QUOTA


def test_metric_points_arrive_with_their_values(fake: FakeGemini, otlp: Pipeline) -> None:
    _traffic(fake)
    exported = otlp.flush()
    assert exported.wait_for(lambda: bool(exported.points("gcp.gemini.requests")))

    def total(metric: str, **attrs: Any) -> float:
        return sum(p.value or 0 for p in exported.points(metric, **attrs))

    # Every HTTP attempt, retries included: 2 + 1 answered 429 by the server, 2 answered 200.
    assert total("gcp.gemini.requests", http__response__status_code=429) == 3
    assert total("gcp.gemini.requests", http__response__status_code=200) == 2
    for point in exported.points("gcp.gemini.requests"):
        assert point.kind == "sum"
        assert point.monotonic is True
        assert point.temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        assert point.attributes["gcp.gemini.tier"] == "tier_1"
        assert point.resource["service.name"] == "otlp-e2e"
    assert total("gcp.gemini.quota.exceeded", gcp__gemini__quota__id=PAID_RPM_QUOTA) == 3
    assert total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 2 * 12
    assert total("gcp.gemini.tokens", gcp__gemini__token__type="output") == 2 * 8

    # Metric cost and span cost are one number seen twice.
    exported.wait_for(lambda: len(exported.spans()) >= 3)
    span_cost = sum(s.attributes.get("gen_ai.usage.cost.amount", 0) for s in exported.spans())
    assert total("gcp.gemini.cost") == pytest.approx(span_cost, rel=1e-9)
    assert {p.unit for p in exported.points("gcp.gemini.cost")} == {"USD"}

    durations = exported.points("gen_ai.client.operation.duration")
    assert {p.kind for p in durations} == {"histogram"}
    assert sum(p.count or 0 for p in durations) == 3
    assert sum(p.count or 0 for p in durations if p.attributes.get("error.type") == "429") == 1
    assert {p.unit for p in durations} == {"s"}
    [ttfc] = exported.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.count == 1
    tokens = exported.points("gen_ai.client.token.usage", gen_ai__token__type="input")
    assert sum(p.count or 0 for p in tokens) == 2
    assert sum(p.sum or 0 for p in tokens) == 24
    [delay] = exported.points("gcp.gemini.retry_delay")
    assert (delay.count, delay.sum) == (3, 78.0)

    # The quota gauges: usage in this process's windows, set beside the tier_1 limit.
    assert total("gcp.gemini.quota.usage", gcp__gemini__quota__dimension="rpm") == 5
    [limit] = exported.points("gcp.gemini.quota.limit", gcp__gemini__quota__dimension="rpm")
    [ratio] = exported.points("gcp.gemini.quota.utilization", gcp__gemini__quota__dimension="rpm")
    assert limit.kind == ratio.kind == "gauge"
    assert ratio.value == pytest.approx(5 / (limit.value or 1))


def test_the_api_key_never_crosses_the_wire(fake: FakeGemini, otlp: Pipeline) -> None:
    _traffic(fake)
    exported = otlp.flush()
    assert exported.wait_for(lambda: len(exported.payloads) >= 2)
    blob = b"".join(exported.payloads)
    assert FAKE_KEY.encode() not in blob
    assert b"x-goog-api-key" not in blob.lower()


def test_a_lone_surrogate_from_the_server_crosses_the_wire_replaced(
    fake: FakeGemini, otlp: Pipeline
) -> None:
    """A JSON escape such as ``\\ud800`` decodes to a lone surrogate, which UTF-8 cannot
    encode: the OTLP encoder dropped the attribute that held one (an answer's modelVersion,
    its responseId), with an error logged on every export. Such text crosses with U+FFFD in
    its place; the app's response is left as the SDK made it."""
    fake.enqueue(MODEL, Reply(model_version=f"{MODEL}-\udc00", response_id="id-\ud801"))
    response = call_gemini(make_client(fake), "sync", MODEL)
    assert response.model_version == f"{MODEL}-\udc00"
    exported = otlp.flush()
    assert exported.wait_for(lambda: len(exported.spans()) >= 1)
    [span] = exported.spans()
    assert span.attributes["gen_ai.response.model"] == f"{MODEL}-\ufffd"
    assert span.attributes["gen_ai.response.id"] == "id-\ufffd"
    assert exported.wait_for(lambda: bool(exported.points("gen_ai.client.operation.duration")))
    [point] = exported.points("gen_ai.client.operation.duration")
    assert point.attributes["gen_ai.response.model"] == f"{MODEL}-\ufffd"


def test_opentelemetry_instrument_with_env_config_only(fake: FakeGemini) -> None:
    """examples/auto/app.py has no OpenTelemetry code; the distro wires everything from env."""
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    if not launcher.exists():
        found = shutil.which("opentelemetry-instrument")
        if found is None:
            pytest.skip("opentelemetry-instrument is not installed")
        launcher = Path(found)
    with OtlpReceiver("http/protobuf") as receiver:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "OTEL_SERVICE_NAME": "gemini-auto-example",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_INSTRUMENTATION_GEMINI_TIER": "tier_1",
            "GEMINI_API_KEY": FAKE_KEY,
            "GOOGLE_GEMINI_BASE_URL": fake.url,
        }
        env.pop("GOOGLE_API_KEY", None)
        done = subprocess.run(
            [str(launcher), sys.executable, str(ROOT / "examples" / "auto" / "app.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # Spans and the last metric export are sent at interpreter exit, before run() returns.
        spans = receiver.spans()
        metric_names = receiver.metric_names()
    assert spans, done.stderr
    assert {s.resource["service.name"] for s in spans} == {"gemini-auto-example"}
    assert {s.attributes["gcp.gemini.tier"] for s in spans} == {"tier_1"}
    assert all(s.attributes.get("gen_ai.usage.cost.amount", 0) > 0 for s in spans)
    assert {"gcp.gemini.requests", "gcp.gemini.cost", "gen_ai.client.operation.duration"} <= (
        metric_names
    )
