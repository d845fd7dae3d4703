"""The OpenTelemetry side and the package's lifecycle under faults: calls that outlive
``uninstrument()``, a global meter provider set after ``instrument()``, and ``uninstrument()``
while a metrics collection runs our callbacks.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from types import FrameType
from typing import Any

import pytest
from google.genai import _api_client, models
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import FAKE_KEY, Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

MODEL = "gemini-2.5-flash"


def _requests(telemetry: Telemetry) -> float:
    return telemetry.total("gcp.gemini.requests")


# --- a call opened while instrumented, finished after uninstrument() --------------------------
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_stream_read_after_uninstrument_counts_its_request(
    fake: FakeGemini, instrument: Any, flavour: str
) -> None:
    """The stream's span was open, so the call is recorded (tokens, cost), but its request
    went out after the attempt hook was gone: it used to count no request at all while its
    tokens were counted (requests 0, tokens 20, the quota windows one request short)."""
    telemetry = instrument()
    client = make_client(fake)
    if flavour == "sync":
        stream = client.models.generate_content_stream(model=MODEL, contents="x")
        GeminiInstrumentor().uninstrument()
        chunks = list(stream)
    else:

        async def run() -> list[Any]:
            stream = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
            GeminiInstrumentor().uninstrument()
            return [chunk async for chunk in stream]

        chunks = run_async(run())
    assert len(chunks) == 3
    assert len(fake.requests) == 1
    span = telemetry.span()
    assert span.attributes["gcp.gemini.stream.end"] == "exhausted"
    assert "gcp.gemini.attempts" not in span.attributes  # one attempt, as every plain call
    assert _requests(telemetry) == 1
    assert telemetry.total("gcp.gemini.requests", http__response__status_code=200) == 1
    assert telemetry.total("gcp.gemini.tokens") == 20


def test_a_stream_closed_unread_after_uninstrument_counts_no_request(
    fake: FakeGemini, instrument: Any
) -> None:
    """The other side of the above: a stream never read sent nothing, so nothing is counted."""
    telemetry = instrument()
    client = make_client(fake)
    stream = client.models.generate_content_stream(model=MODEL, contents="x")
    GeminiInstrumentor().uninstrument()
    stream.close()
    assert fake.requests == []
    assert telemetry.span().attributes["gcp.gemini.stream.end"] == "closed"
    assert _requests(telemetry) == 0


# --- the global meter provider set after instrument() ------------------------------------------
def test_reinstrument_after_the_global_meter_provider_is_set_keeps_counting(
    fake: FakeGemini,
) -> None:
    """instrument() before the app sets its global meter provider makes our instruments on the
    API's proxy, which hands them to the provider once it is set. A later instrument() (after
    uninstrument()) made a second set on that provider, whose callbacks the SDK drops: the
    counters stayed at the first instrumentation's total and the quota gauges went missing.
    In a subprocess: the global provider can be set once per process."""
    script = textwrap.dedent(
        f"""
        from google import genai
        from google.genai import types
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.instrumentation.gemini import GeminiInstrumentor

        GeminiInstrumentor().instrument(tier="tier_1")
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        client = genai.Client(api_key={FAKE_KEY!r},
                              http_options=types.HttpOptions(base_url={fake.url!r}))
        client.models.generate_content(model={MODEL!r}, contents="x")
        GeminiInstrumentor().uninstrument()
        GeminiInstrumentor().instrument(tier="tier_1")
        client.models.generate_content(model={MODEL!r}, contents="x")
        client.models.generate_content(model={MODEL!r}, contents="x")
        points = {{}}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    points.setdefault(m.name, []).extend(m.data.data_points)
        print("requests", sum(p.value for p in points.get("gcp.gemini.requests", [])))
        rpm = [p.value for p in points.get("gcp.gemini.quota.usage", [])
               if p.attributes.get("gcp.gemini.quota.dimension") == "rpm"]
        print("rpm", rpm)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "OTEL_METRICS_EXPORTER": "none"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "requests 3\n" in out.stdout, out.stdout
    assert "rpm [3]\n" in out.stdout, out.stdout


# --- uninstrument() while a collection runs our callbacks --------------------------------------
def test_uninstrument_during_the_budget_gauge_callback_raises_nothing_into_the_sdk(
    fake: FakeGemini, instrument: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The budget gauge read the live recorder twice: an uninstrument() on another thread
    between the two reads raised AttributeError into the SDK's collection (logged as
    "Callback failed", the budget missing from that export). The thread switch is forced here
    at that point (a trace function on the collecting thread), as a scheduler may make it."""
    telemetry = instrument(daily_budget_usd=5.0)
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    fired: list[bool] = []

    def local(frame: FrameType, event: str, _arg: Any) -> Any:
        if event == "line" and not fired and "base" in frame.f_locals:
            fired.append(True)
            GeminiInstrumentor().uninstrument()
        return local

    def tracer(frame: FrameType, event: str, _arg: Any) -> Any:
        return local if event == "call" and frame.f_code.co_name == "observe_budget" else None

    caplog.set_level(logging.ERROR)
    sys.settrace(tracer)
    try:
        budget = telemetry.points("gcp.gemini.budget")
    finally:
        sys.settrace(None)
    assert fired
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [p.value for p in budget] == [5.0]  # read before the recorder went


# --- instrument() from two threads at once -----------------------------------------------------
def test_instrument_from_two_threads_at_once_patches_once(fake: FakeGemini) -> None:
    """OpenTelemetry's BaseInstrumentor checks "already instrumented" without a lock, and our
    instrument() takes a while (data files): both threads patched the SDK, so every call had
    two spans and two counts, and after uninstrument() the first thread's hooks stayed, still
    making spans."""
    hooked = {
        (owner, name): vars(owner)[name]
        for owner, name in (
            (models.Models, "generate_content"),
            (models.Models, "generate_content_stream"),
            (models.AsyncModels, "generate_content"),
            (_api_client.BaseApiClient, "_request_once"),
        )
    }
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    barrier = threading.Barrier(2)

    def instrument() -> None:
        barrier.wait(10)
        GeminiInstrumentor().instrument(tracer_provider=provider)

    threads = [threading.Thread(target=instrument) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        client = make_client(fake)
        client.models.generate_content(model=MODEL, contents="x")
        assert len(exporter.get_finished_spans()) == 1
        GeminiInstrumentor().uninstrument()
        assert {key: vars(key[0])[key[1]] for key in hooked} == hooked
        client.models.generate_content(model=MODEL, contents="x")
        assert len(exporter.get_finished_spans()) == 1
    finally:
        GeminiInstrumentor().uninstrument()
        for (owner, name), original in hooked.items():  # a hook left behind must not leak on
            setattr(owner, name, original)


# --- a signal handled while we record a call ----------------------------------------------------
class _Signalling(SpanProcessor):
    """Sends this process a signal as a span ends: its handler runs there, inside our recording
    of the call, as a Ctrl-C or an orchestrator's SIGTERM may."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def on_end(self, span: ReadableSpan) -> None:
        signal.raise_signal(self.signum)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    sys.exit(3)  # what a service's SIGTERM handler does


@pytest.mark.parametrize(
    ("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)]
)
def test_a_signal_handled_while_a_call_is_recorded_reaches_the_app(
    fake: FakeGemini, metric_reader: Any, signum: int, raised: type[BaseException]
) -> None:
    """The handler's KeyboardInterrupt or SystemExit was swallowed with our own failures: the
    app went on after Ctrl-C, a service ignored its SIGTERM until it was killed. It reaches the
    app from the call, as it would have a moment later in the app's own code, and the span is
    ended."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer_provider.add_span_processor(_Signalling(signum))
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider([metric_reader])
    )
    try:
        client = make_client(fake)
        with pytest.raises(raised):
            client.models.generate_content(model=MODEL, contents="x")
    finally:
        instrumentor.uninstrument()
        signal.signal(signal.SIGTERM, previous)
    [span] = exporter.get_finished_spans()
    assert span.attributes["gen_ai.usage.input_tokens"] > 0
