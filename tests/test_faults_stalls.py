"""A telemetry pipeline that is slow or stuck while the app calls Gemini: a metric exporter or
another instrument's callback blocked mid-collection, span and log exporters blocked behind their
batch processors, providers flushed and shut down from another thread, a content uploader that
never returns, an OTLP receiver that never answers. The app's calls never wait on any of it: each
stuck component here waits on an Event the test holds, and the calls must complete (bounded joins)
while it does; then the counts are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import FAKE_KEY, make_client
from opentelemetry.instrumentation.gemini import GeminiInstrumentor, quota_status
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

MODEL = "gemini-2.5-flash"
WAIT = 30.0  # generous bound on every join: a stuck call fails the test instead of hanging it


class Gate:
    """What a stuck exporter or callback waits on: ``entered`` once something is stuck."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()

    def stall(self) -> None:
        self.entered.set()
        self.open.wait(WAIT * 2)


class StuckMetrics(MetricExporter):
    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **_: Any) -> Any:
        self.gate.stall()
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
        pass


class StuckSpans(SpanExporter):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.stall()
        return SpanExportResult.SUCCESS


class StuckLogs(LogRecordExporter):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def export(self, batch: Any) -> LogRecordExportResult:
        self.gate.stall()
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def _calls(fake: FakeGemini) -> None:
    """One of each: sync, sync stream, async, async stream (4 requests), and quota_status().
    A client of its own each time: google-genai 2.x binds a client's async transport to the
    first event loop that uses it, and each ``asyncio.run`` here is a new loop, on any thread."""
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    list(client.models.generate_content_stream(model=MODEL, contents="x"))

    async def aio() -> None:
        await client.aio.models.generate_content(model=MODEL, contents="x")
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
        [chunk async for chunk in stream]

    asyncio.run(aio())
    quota_status(MODEL)


def _in_threads(work: Callable[[], None], n: int = 3) -> list[BaseException]:
    """Run ``work`` in ``n`` threads at once; what they raised. Fails if one is still running
    after WAIT: it waited on the stuck telemetry."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads), "a call waited on the stuck telemetry"
    return errors


def _requests(reader: InMemoryMetricReader) -> float:
    data = reader.get_metrics_data()
    return sum(
        p.value
        for rm in (data.resource_metrics if data else ())
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "gcp.gemini.requests"
        for p in m.data.data_points
    )


@pytest.fixture
def instrumentor() -> Iterator[GeminiInstrumentor]:
    instrumentor = GeminiInstrumentor()
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def shut_down_after() -> Iterator[list[Any]]:
    """Providers a test made, shut down after it: their worker threads (a batch processor's, a
    periodic reader's, polling every few milliseconds) must not run on into later tests, whose
    memory measurements would count them."""
    providers: list[Any] = []
    yield providers
    for provider in providers:
        with contextlib.suppress(Exception):
            provider.shutdown()


# --- metrics: an export or another callback stuck mid-collection ------------------------------
@pytest.mark.parametrize("stuck", ["exporter", "other_callback"])
def test_calls_complete_while_a_metrics_collection_is_stuck(
    fake: FakeGemini, instrumentor: GeminiInstrumentor, shut_down_after: list[Any], stuck: str
) -> None:
    """A periodic reader whose exporter never returns, or a pull collection stuck in the app's
    own observable callback (the SDK holds its collection lock meanwhile): the calls and
    quota_status() do not wait for either, and every request is counted."""
    gate = Gate()
    pull = InMemoryMetricReader()
    readers: list[Any] = [pull]
    if stuck == "exporter":
        readers.append(PeriodicExportingMetricReader(StuckMetrics(gate), export_interval_millis=20))
    meter_provider = MeterProvider(metric_readers=readers)
    shut_down_after.append(meter_provider)
    # Instrumented first: creating an instrument waits for the SDK's collection lock.
    instrumentor.instrument(tracer_provider=TracerProvider(), meter_provider=meter_provider)
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")  # something to export
    if stuck == "other_callback":

        def slow(_options: CallbackOptions) -> list[Observation]:
            gate.stall()
            return []

        meter_provider.get_meter("app").create_observable_gauge("app.slow", [slow])
        collecting = threading.Thread(target=pull.collect, daemon=True)
        collecting.start()
    try:
        assert gate.entered.wait(WAIT)
        assert _in_threads(lambda: _calls(fake)) == []
    finally:
        gate.open.set()
    if stuck == "other_callback":
        collecting.join(WAIT)
    assert _requests(pull) == 1 + 3 * 4
    meter_provider.shutdown()


# --- spans and content events behind stuck batch processors ------------------------------------
@pytest.mark.parametrize("stuck", ["spans", "events"])
def test_calls_complete_while_a_batch_exporter_is_stuck(
    fake: FakeGemini, instrumentor: GeminiInstrumentor, shut_down_after: list[Any], stuck: str
) -> None:
    """A BatchSpanProcessor or BatchLogRecordProcessor (content events) whose exporter never
    returns: the calls only queue to it, and the counts do not depend on it."""
    gate = Gate()
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    shut_down_after += [tracer_provider, logger_provider]
    config: dict[str, Any] = {}
    if stuck == "spans":
        tracer_provider.add_span_processor(
            BatchSpanProcessor(StuckSpans(gate), schedule_delay_millis=5, max_export_batch_size=1)
        )
    else:
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                StuckLogs(gate), schedule_delay_millis=5, max_export_batch_size=1
            )
        )
        config = {"capture_content": "EVENT_ONLY", "logger_provider": logger_provider}
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    shut_down_after.append(meter_provider)
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, **config
    )
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    try:
        assert gate.entered.wait(WAIT)
        assert _in_threads(lambda: _calls(fake)) == []
        assert _requests(reader) == 1 + 3 * 4
    finally:
        gate.open.set()


# --- providers flushed and shut down from another thread while calls run ----------------------
def test_providers_flushed_and_shut_down_while_calls_run(
    fake: FakeGemini, instrumentor: GeminiInstrumentor
) -> None:
    """force_flush() then shutdown() of both providers from another thread, while threads call
    (every flavour) and a pull reader collects in a loop: nothing raises into the app, every
    thread finishes, and the spans that ended before the shutdown were exported whole."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=5))
    pull = InMemoryMetricReader()
    periodic = PeriodicExportingMetricReader(
        ConsoleMetricExporter(out=io.StringIO()), export_interval_millis=5
    )
    meter_provider = MeterProvider(metric_readers=[pull, periodic])
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    stop = threading.Event()

    def loop(step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not stop.is_set():
                step()

        return run

    def pull_collect() -> None:
        pull.collect()

    def shut_down() -> None:
        try:
            for step in (
                tracer_provider.force_flush,
                meter_provider.force_flush,
                tracer_provider.shutdown,
                meter_provider.shutdown,
            ):
                for _ in range(3):  # a few calls between each step and the next
                    _calls(fake)
                step()
            _calls(fake)  # after both shut down: as before, nothing raises
        finally:
            stop.set()

    errors: list[BaseException] = []
    workers = [loop(lambda: _calls(fake)), loop(pull_collect), shut_down]
    threads = [threading.Thread(target=_collecting(w, errors), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    stop.set()
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert spans.get_finished_spans()
    assert all(s.end_time is not None for s in spans.get_finished_spans())


def _collecting(work: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)

    return run


# --- the process exits with stuck components ---------------------------------------------------
_EXIT_SCRIPT = """
import socket, sys, threading
from google import genai
from google.genai import types
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.instrumentation.gemini import GeminiInstrumentor

instrumented = sys.argv[1] == "instrumented"
receiver = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
held = []
threading.Thread(target=lambda: [held.append(receiver.accept()) for _ in iter(int, 1)],
                 daemon=True).start()
otlp = "http://127.0.0.1:" + str(receiver.getsockname()[1])

class Stuck:
    def reference(self):
        return "mem://x"
    def upload(self, reference, content):
        threading.Event().wait()  # never returns

tracer_provider = TracerProvider()
tracer_provider.add_span_processor(
    BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces", timeout=2),
                       schedule_delay_millis=20))
meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=otlp + "/v1/metrics", timeout=2), export_interval_millis=50)])
if instrumented:
    GeminiInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider,
        capture_content=True, content_uploader=Stuck())
client = genai.Client(api_key=%(key)r, http_options=types.HttpOptions(base_url=%(url)r))
for _ in range(70):  # beyond the uploader's queue
    client.models.generate_content(model="gemini-2.5-flash", contents="x")
holder = {}
holder["self"] = holder  # a stream dropped in a cycle: recorded at exit
holder["stream"] = client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
next(holder["stream"])
del holder
print("calls done", flush=True)
"""


@pytest.mark.parametrize("how", ["bare", "instrumented"])
def test_the_process_exits_with_a_stuck_uploader_and_a_silent_otlp_receiver(
    fake: FakeGemini, how: str
) -> None:
    """An uploader whose upload() never returns and an OTLP receiver that accepts and never
    answers: the calls complete and the process exits, as it does bare (the exit waits are the
    SDK's export timeouts and our bounded upload flush)."""
    script = textwrap.dedent(_EXIT_SCRIPT) % {"key": FAKE_KEY, "url": fake.url}
    done = subprocess.run(
        [sys.executable, "-c", script, how], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "calls done" in done.stdout


# --- a collection records the calls abandoned since the last one --------------------------------
def _drop_streams(client: Any, n: int = 1) -> None:
    """Streams read to their first chunk, then dropped in a reference cycle and collected: their
    calls are left for the next safe point (a call, a collection, uninstrument, exit)."""
    holder: dict[str, Any] = {"self": None}
    holder["self"] = holder
    for i in range(n):
        holder[str(i)] = stream = client.models.generate_content_stream(model=MODEL, contents="x")
        next(stream)
    del holder, stream
    gc.collect()


def _until(done: Callable[[], bool]) -> bool:
    """Whether ``done()`` turns true within WAIT (polled)."""
    stop = threading.Event()
    for _ in range(int(WAIT / 0.05)):
        if done():
            return True
        stop.wait(0.05)
    return done()


def test_a_collection_never_waits_on_a_stuck_span_exporter(
    fake: FakeGemini, instrumentor: GeminiInstrumentor
) -> None:
    """A collection records the calls abandoned since the last one. It did so on the collecting
    thread, ending their spans there: a SimpleSpanProcessor whose exporter is stuck stalled the
    collection, and with it the SDK's collection lock (every reader). Without us a collection
    never waits on the span pipeline. The call is counted once the exporter is free."""
    gate = Gate()
    gate.open.set()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(StuckSpans(gate)))
    reader = InMemoryMetricReader()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    client = make_client(fake)
    _drop_streams(client)
    gate.open.clear()  # from now on the span exporter is stuck
    collecting = threading.Thread(target=reader.collect, daemon=True)
    try:
        collecting.start()
        collecting.join(WAIT)
        assert not collecting.is_alive(), "the collection waited on the span exporter"
    finally:
        gate.open.set()
    assert _until(lambda: _requests(reader) == 1)


def test_a_span_processor_that_flushes_metrics_never_deadlocks_a_collection(
    fake: FakeGemini, instrumentor: GeminiInstrumentor, caplog: pytest.LogCaptureFixture
) -> None:
    """A span processor that flushes the metrics when a span ends (a serverless app's end of
    request): ending an abandoned call's span inside a collection made it collect again
    under the SDK's collection lock, held by the same thread: a deadlock, for good. Without us
    such a processor never runs inside a collection."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    ended: list[ReadableSpan] = []

    class FlushOnEnd(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)
            meter_provider.force_flush()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(FlushOnEnd())
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    client = make_client(fake)
    _drop_streams(client, 2)  # two: the flush's collection finds the second still queued
    collecting = threading.Thread(target=reader.collect, daemon=True)
    collecting.start()
    collecting.join(WAIT)
    assert not collecting.is_alive(), "the collection deadlocked"
    assert _until(lambda: len(ended) == 2)
    assert all(s.attributes["gcp.gemini.stream.end"] == "abandoned" for s in ended)
    assert _until(lambda: _requests(reader) == 2)
    # The flush's own collection, from the thread recording the call, ran our callbacks whole.
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
