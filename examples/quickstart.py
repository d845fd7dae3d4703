"""Quick start: instrument google-genai, make a few Gemini calls, print the telemetry.

Runs against the bundled fake Gemini server on 127.0.0.1 (no API key, no network). With
``GEMINI_API_KEY`` set and ``--real`` it talks to the real API instead. With ``--otlp`` the
telemetry also goes to an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4317).

    python examples/quickstart.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from google import genai
from google.genai import errors, types
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.gemini import GeminiInstrumentor, quota_status
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

MODEL = "gemini-2.5-flash"


def setup_otel(otlp: bool) -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    resource = Resource.create({"service.name": "gemini-quickstart"})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    readers: list[Any] = [reader]
    if otlp:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    return spans, reader


def make_calls(client: genai.Client) -> None:
    # 1. A plain call, with thinking and cached tokens in its usage.
    response = client.models.generate_content(
        model=MODEL, contents="Name a flower.", config=types.GenerateContentConfig(temperature=0.3)
    )
    print(f"sync   -> {response.text!r}")

    # 2. A stream: the span ends when the stream does; usage comes from the last chunk.
    text = "".join(
        c.text or ""
        for c in client.models.generate_content_stream(model=MODEL, contents="Count to five.")
    )
    print(f"stream -> {text!r}")

    # 3. The async client.
    async def run_async() -> str | None:
        result = await client.aio.models.generate_content(model="gemini-2.5-pro", contents="Hi")
        return result.text

    print(f"async  -> {asyncio.run(run_async())!r}")

    # 4. A 429: the span explains which quota tripped and how long the server asked to wait.
    try:
        client.models.generate_content(model=MODEL, contents="One more?")
    except errors.ClientError as error:
        print(f"429    -> {error.code} {error.status}")


def shown(key: str, value: Any) -> str:
    """A value as a reader wants it: USD rounded, other floats to four significant digits."""
    if isinstance(value, float):
        if key in USD_ATTRIBUTES:
            return usd(value)
        return f"{value:.4g}"
    return str(value)


# Attributes in USD; the exported values stay full floats, only this printout rounds them.
USD_ATTRIBUTES = frozenset({"gen_ai.usage.cost.amount", "gcp.gemini.cost.list_amount"})


def usd(value: float) -> str:
    return f"${value:.6f}".rstrip("0").rstrip(".") if value else "$0"


def print_summary(spans: InMemorySpanExporter) -> None:
    finished = spans.get_finished_spans()
    billed = sum(float((s.attributes or {}).get("gen_ai.usage.cost.amount", 0.0)) for s in finished)
    listed = sum(
        float((s.attributes or {}).get("gcp.gemini.cost.list_amount", 0.0)) for s in finished
    )
    print("\n=== summary ===")
    print(
        f"cost (USD): {usd(billed)} billed for {len(finished)} calls "
        f"({usd(listed)} at pay-as-you-go prices)"
    )
    status = quota_status(MODEL)
    if status is None:
        return
    why = {
        "config": "configured (instrument(tier=...) or OTEL_INSTRUMENTATION_GEMINI_TIER)",
        "quota_id": "learned from the 429's quota id (calls before it recorded tier=unknown); "
        "set OTEL_INSTRUMENTATION_GEMINI_TIER to have it from the first call",
        "default": "not configured and no 429 has named it yet: calls are priced pay-as-you-go",
    }.get(status.tier_source, status.tier_source)
    print(f"tier: {status.tier}, {why}")


def print_telemetry(spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
    print("\n=== spans ===")
    for span in spans.get_finished_spans():
        print(f"{span.name}  [{span.status.status_code.name}]")
        for key, value in sorted((span.attributes or {}).items()):
            print(f"    {key} = {shown(key, value)}")
        for event in span.events:
            if event.name != "exception":
                print(f"    event {event.name}: {dict(event.attributes or {})}")
    print("\n=== metrics ===")
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                print(f"{metric.name} ({metric.unit})")
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = f"count={point.count} sum={point.sum:.4g}"
                    elif isinstance(value, float):
                        value = usd(value) if metric.unit == "USD" else f"{value:.4g}"
                    labels = ", ".join(f"{k}={v}" for k, v in sorted(point.attributes.items()))
                    print(f"    {value}  {{{labels}}}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", action="store_true", help="use the real API (GEMINI_API_KEY)")
    parser.add_argument("--otlp", action="store_true", help="also export over OTLP/gRPC")
    args = parser.parse_args()

    spans, reader = setup_otel(args.otlp)
    # Tier and content capture can also come from OTEL_INSTRUMENTATION_GEMINI_TIER and
    # OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.
    GeminiInstrumentor().instrument()

    if args.real:
        make_calls(genai.Client(api_key=os.environ["GEMINI_API_KEY"]))
    else:
        with FakeGemini() as fake:
            fake.enqueue(
                MODEL,
                Reply(
                    text="A peony.",
                    usage={
                        "promptTokenCount": 1200,
                        "cachedContentTokenCount": 1000,
                        "candidatesTokenCount": 4,
                        "thoughtsTokenCount": 120,
                    },
                    model_version="gemini-2.5-flash",
                ),
                Reply(text="one two three four five", chunks=3),
                Reply(status=429),
            )
            client = genai.Client(
                api_key="fake-key", http_options=types.HttpOptions(base_url=fake.url)
            )
            make_calls(client)
    print_telemetry(spans, reader)
    print_summary(spans)
    trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    metrics.get_meter_provider().shutdown()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
