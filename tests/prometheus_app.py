"""An instrumented app that Prometheus scrapes, run as a subprocess by test_prometheus_e2e.py.

One process = one Gemini project at one tier (``OTEL_INSTRUMENTATION_GEMINI_TIER``): its own fake
Gemini server, the real google-genai client, GeminiInstrumentor, and opentelemetry-exporter-
prometheus serving /metrics on a loopback port through prometheus_client.

Protocol on stdin/stdout, one JSON object per line:
  start       -> runs the scenario once, THEN serves /metrics: {"phase": {...}, "metrics_port": N}
  "run\\n"    -> runs the scenario again: {"phase": {...}}
  EOF/"quit"  -> exits. A watchdog ends the process after ``PROM_APP_LIFETIME`` seconds anyway.

Running the first phase before /metrics exists means every series' first scrape already holds
one full phase: Prometheus' increase() then sees exactly the second phase, on every series.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
from collections import defaultdict
from typing import Any

from google import genai
from google.genai import errors, types
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import start_http_server

from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)
from opentelemetry.instrumentation.gemini.testing.fake_live import FakeLive, LiveScript

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
UNPRICED = "my-tuned-model"  # no price and no published limits: the "unpriced calls" panel
LIVE = "gemini-live-2.5-flash-preview"  # tier_1: 50 concurrent sessions; free: none published
LIVE_OPEN = 2  # Live sessions held open for the whole run: the Live panel and alert

# What one phase sends, per tier. The test derives its expectations from these constants.
# HTTP attempts per (model, status): flash sync + flash stream; pro retried 429, 429, 200 by the
# SDK then one 429 the caller sees; one call to the unpriced model.
ATTEMPTS = {(FLASH, 200): 2, (PRO, 200): 1, (PRO, 429): 3, (UNPRICED, 200): 1}
CALLS_OK = {FLASH: 2, PRO: 1, UNPRICED: 1}
STREAMS = {FLASH: 1}
RETRY_DELAY_SECONDS = 26
# Batch API, per phase: job A (two inline requests) is created, polled running, then polled
# succeeded (its results priced at batch rates); job B (BATCH_TEXT) is created and stays pending,
# its tokens enqueued. All on FLASH, under the "batches" operation: not inference quota.
BATCH_REQUESTS_OK = {FLASH: 4}  # HTTP attempts answered 200: two creates, two gets
BATCH_RESPONSES = 2  # job A's responses, each with the fake's default usage
BATCH_TEXT = "x" * 400
BATCH_ENQUEUED = 100  # job B's tokens: 400 characters at 4 characters a token
# 429 quota ids per tier: the SDK-retried pair, then the one the caller sees.
QUOTA_IDS = {
    "free": (
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    ),
    "tier_1": (
        "GenerateRequestsPerMinutePerProjectPerModel-PaidTier",
        "GenerateRequestsPerMinutePerProjectPerModel-PaidTier",
        "GenerateRequestsPerDayPerProjectPerModel-PaidTier",
    ),
}


def _quota_body(tier: str, quota_id: str) -> dict[str, Any]:
    paid = tier != "free"
    metric = (
        "generate_content_paid_tier_requests" if paid else "generate_content_free_tier_requests"
    )
    return quota_error_body(
        quota_id=quota_id,
        metric=f"generativelanguage.googleapis.com/{metric}",
        model=PRO,
        limit=150 if paid else 2,
        retry_delay=f"{RETRY_DELAY_SECONDS}s",
    )


def run_phase(fake: FakeGemini, tier: str, spans: InMemorySpanExporter) -> dict[str, Any]:
    """The scenario once; returns per-model sums read back from this phase's spans."""
    plain = genai.Client(api_key="fake-key", http_options=types.HttpOptions(base_url=fake.url))
    retrying = genai.Client(
        api_key="fake-key",
        http_options=types.HttpOptions(
            base_url=fake.url,
            retry_options=types.HttpRetryOptions(
                attempts=3, initial_delay=0.01, max_delay=0.02, http_status_codes=[429]
            ),
        ),
    )
    first, second, third = (
        Reply(status=429, error_body=_quota_body(tier, q)) for q in QUOTA_IDS[tier]
    )

    plain.models.generate_content(model=FLASH, contents="hello")
    for _ in plain.models.generate_content_stream(model=FLASH, contents="hello"):
        pass
    fake.enqueue(PRO, first, second, Reply())
    retrying.models.generate_content(model=PRO, contents="hello")
    fake.enqueue(PRO, third)
    with contextlib.suppress(errors.ClientError):
        plain.models.generate_content(model=PRO, contents="hello")
    plain.models.generate_content(model=UNPRICED, contents="hello")

    job = plain.batches.create(model=FLASH, src=[{"contents": "hello"}, {"contents": "again"}])
    plain.batches.get(name=job.name)
    plain.batches.get(name=job.name)
    plain.batches.create(model=FLASH, src=[{"contents": BATCH_TEXT}])

    # Billed and pay-as-you-go USD per priced model (a priced call carries a list amount),
    # online and batch apart.
    cost: dict[str, float] = defaultdict(float)
    list_cost: dict[str, float] = defaultdict(float)
    batch_cost: dict[str, float] = defaultdict(float)
    batch_list_cost: dict[str, float] = defaultdict(float)
    for span in spans.get_finished_spans():
        attrs = span.attributes or {}
        if "gcp.gemini.cost.list_amount" in attrs:
            model = str(attrs["gen_ai.request.model"])
            batch = attrs.get("gcp.gemini.cost.processing") == "batch"
            billed, listed = (batch_cost, batch_list_cost) if batch else (cost, list_cost)
            billed[model] += float(attrs["gen_ai.usage.cost.amount"])  # type: ignore[arg-type]
            listed[model] += float(attrs["gcp.gemini.cost.list_amount"])  # type: ignore[arg-type]
    spans.clear()
    return {
        "cost": cost,
        "list_cost": list_cost,
        "batch_cost": batch_cost,
        "batch_list_cost": batch_list_cost,
    }


def hold_live_sessions(lifetime: float) -> None:
    """Open LIVE_OPEN Live sessions (no turns: no tokens, no cost; a session's request counts
    when it ends) on a loop of their own, and keep them open until the process exits."""
    fake = FakeLive(max_lifetime=lifetime, idle_timeout=lifetime).start()
    fake.enqueue(*(LiveScript([("hold",)]) for _ in range(LIVE_OPEN)))
    client = genai.Client(
        api_key="fake-key",
        http_options=types.HttpOptions(
            base_url=fake.url, async_client_args={"ssl": fake.client_ssl}
        ),
    )
    opened = threading.Semaphore(0)

    async def hold() -> None:
        async with client.aio.live.connect(model=LIVE):
            opened.release()
            await asyncio.Event().wait()  # until the process ends

    async def run() -> None:
        await asyncio.gather(*(hold() for _ in range(LIVE_OPEN)))

    threading.Thread(target=asyncio.run, args=(run(),), daemon=True).start()
    for _ in range(LIVE_OPEN):
        if not opened.acquire(timeout=30):
            raise RuntimeError("Live sessions did not open")


def main() -> None:
    lifetime = float(os.environ.get("PROM_APP_LIFETIME", "120"))
    watchdog = threading.Timer(lifetime, os._exit, args=(3,))
    watchdog.daemon = True
    watchdog.start()
    tier = os.environ["OTEL_INSTRUMENTATION_GEMINI_TIER"]

    fake = FakeGemini(max_lifetime=lifetime).start()
    spans = InMemorySpanExporter()
    resource = Resource.create({"service.name": f"gemini-e2e-{tier}"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()], resource=resource)
    # The tier comes from OTEL_INSTRUMENTATION_GEMINI_TIER, as in a deployed app.
    GeminiInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    hold_live_sessions(lifetime)
    phase = run_phase(fake, tier, spans)
    server, _ = start_http_server(0, addr="127.0.0.1")
    print(json.dumps({"phase": phase, "metrics_port": server.server_port}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps({"phase": run_phase(fake, tier, spans)}), flush=True)
    server.shutdown()
    fake.stop()


if __name__ == "__main__":
    main()
