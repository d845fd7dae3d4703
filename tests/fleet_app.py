"""One instrumented process of a fleet, run as a subprocess by test_fleet.py.

Configured as a deployed app is, by environment only: OTEL_INSTRUMENTATION_GEMINI_TIER /
_PROJECT / _DAILY_BUDGET_USD / _MONTHLY_BUDGET_USD / _LIMITS_FILE and OTEL_RESOURCE_ATTRIBUTES
(service.name, deployment.environment). Its own fake Gemini, the real google-genai client,
GeminiInstrumentor, and opentelemetry-exporter-prometheus serving /metrics on loopback.

Protocol, one JSON object per line on stdout:
  start      -> FLEET_CALLS calls, THEN serves /metrics:
                {"cost": USD billed, "per_call": USD of one call, "metrics_port": N}
  "run\\n"   -> FLEET_CALLS calls more: {"cost": USD billed}
  EOF        -> exits. A watchdog ends the process after FLEET_APP_LIFETIME seconds anyway.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from google import genai
from google.genai import types
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import start_http_server

from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

MODEL = "gemini-2.5-flash"


def run_phase(client: genai.Client, calls: int, spans: InMemorySpanExporter) -> list[float]:
    """``calls`` calls; the billed USD of each, read back from the spans."""
    for _ in range(calls):
        client.models.generate_content(model=MODEL, contents="hello")
    costs = [
        float((span.attributes or {}).get("gen_ai.usage.cost.amount", 0.0))  # type: ignore[arg-type]
        for span in spans.get_finished_spans()
    ]
    spans.clear()
    return costs


def main() -> None:
    lifetime = float(os.environ.get("FLEET_APP_LIFETIME", "60"))
    watchdog = threading.Timer(lifetime, os._exit, args=(3,))
    watchdog.daemon = True
    watchdog.start()
    calls = int(os.environ["FLEET_CALLS"])

    fake = FakeGemini(max_lifetime=lifetime).start()
    spans = InMemorySpanExporter()
    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, as deployed
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()], resource=resource)
    GeminiInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    client = genai.Client(api_key="fake-key", http_options=types.HttpOptions(base_url=fake.url))

    costs = run_phase(client, calls, spans)
    server, _ = start_http_server(0, addr="127.0.0.1")
    first = {"cost": sum(costs), "per_call": costs[0], "metrics_port": server.server_port}
    print(json.dumps(first), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps({"cost": sum(run_phase(client, calls, spans))}), flush=True)
    server.shutdown()
    fake.stop()


if __name__ == "__main__":
    main()
