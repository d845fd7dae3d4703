"""Garbage collection, closing and forking: a dropped stream is recorded off the collector's
path, a stream closed before its first chunk ends its span, a forked child counts from zero.

A stream dropped in a reference cycle is noticed by a weakref callback that runs wherever the
collector runs: on a thread holding the OTel SDK's lock, the price loader's, or ours. The
callback must take no lock and wait for nothing; the call is recorded at the next safe point.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import Telemetry, in_forked_child, make_client
from opentelemetry.instrumentation.gemini import GeminiInstrumentor, quota_status
from opentelemetry.instrumentation.gemini.record.instruments import instruments_for
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply
from test_faults_lifecycle import exit_script, spans_at_exit

MODEL = "gemini-2.5-flash"
LONG = Reply(chunks=4, text="a b c d e f g h")


def _drop_in_cycle(client: Any, read_one: bool = True) -> None:
    holder: dict[str, Any] = {}
    holder["self"] = holder
    holder["stream"] = client.models.generate_content_stream(model=MODEL, contents="x")
    if read_one:
        next(holder["stream"])


def _collect_in_thread(timeout: float = 10.0) -> bool:
    """gc.collect() on another thread; whether it returned within ``timeout``."""
    done = threading.Event()

    def run() -> None:
        gc.collect()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(timeout)


class _BlockingExporter(SpanExporter):
    """A span pipeline that blocks (a slow or locked exporter) until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.release.wait(30)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_collection_while_the_recording_path_is_blocked_never_waits(fake: FakeGemini) -> None:
    """The old failure: the callback recorded the call at once, so a collector running while
    the span pipeline, the counters or the histograms were busy waited for them (forever, when
    the collector's own thread held them). Here both are held by other threads."""
    fake.enqueue(None, LONG)
    exporter = _BlockingExporter()
    exporter.release.set()  # the first span (none yet) would pass
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        client = make_client(fake)
        exporter.release.clear()  # from now on, ending a span blocks
        _drop_in_cycle(client)
        # The dashboard counters busy too, as while a collection banks them (fault injection:
        # the lock itself is what a collector running there would have found held).
        ledger_lock = instruments_for(meter_provider).counters._calls._lock
        held, release_ledger = threading.Event(), threading.Event()

        def hold_ledger() -> None:
            with ledger_lock:
                held.set()
                release_ledger.wait(30)

        threading.Thread(target=hold_ledger, daemon=True).start()
        assert held.wait(10)
        assert _collect_in_thread(), "gc.collect() blocked on the instrumentation"
        release_ledger.set()
        exporter.release.set()
        reader.get_metrics_data()  # a collection: the dropped stream is recorded now
        ends = [s.attributes["gcp.gemini.stream.end"] for s in exporter.spans]
        assert ends == ["abandoned"]
    finally:
        exporter.release.set()
        instrumentor.uninstrument()


class _Blocked:
    """Instrumented with the recording path blocked on demand: ending a span waits on the
    exporter and the dashboard counters' locks are held by another thread, as a collector running
    on a thread that holds them would find them."""

    def __init__(self) -> None:
        self.exporter = _BlockingExporter()
        self.exporter.release.set()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.instrumentor = GeminiInstrumentor()
        self.instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=self.meter_provider
        )
        self._release_ledger = threading.Event()

    def block(self) -> None:
        self.exporter.release.clear()
        counters = instruments_for(self.meter_provider).counters
        held = threading.Event()

        def hold_ledger() -> None:
            with counters._calls._lock, counters._attempts._lock:
                held.set()
                self._release_ledger.wait(30)

        threading.Thread(target=hold_ledger, daemon=True).start()
        assert held.wait(10)

    def release(self) -> None:
        self._release_ledger.set()
        self.exporter.release.set()

    def requests(self) -> float:
        data = self.reader.get_metrics_data()  # a collection: what was left is recorded now
        return sum(
            p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "gcp.gemini.requests"
            for p in m.data.data_points
        )

    def close(self) -> None:
        self.release()
        self.instrumentor.uninstrument()


def _unraisable_types(monkeypatch: pytest.MonkeyPatch, scenario: Callable[[], None]) -> list[str]:
    """What ``scenario`` (run with automatic collection off) sends to sys.unraisablehook."""
    seen: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(type(u.exc_value).__name__))
    gc.collect()
    gc.disable()
    try:
        scenario()
    finally:
        gc.enable()
        monkeypatch.undo()
    return seen


# Async calls, each through another hook: an adapter's call, a method without an adapter (its
# attempts counted alone), and Interactions (its own retry seam).
_ASYNC_CALLS: dict[str, Callable[[Any], Any]] = {
    "generate_content": lambda c: c.aio.models.generate_content(model=MODEL, contents="x"),
    "unowned": lambda c: c.aio.files.list(),
    "interactions": lambda c: c.aio.interactions.create(model=MODEL, input="x"),
}


def _drop_suspended_call(client: Any, which: str) -> None:
    """An async call stepped to its first await inside the SDK (its HTTP request), then dropped
    in a reference cycle: the loop ends and only the garbage collector will close it."""

    async def step() -> None:
        holder: dict[str, Any] = {}
        holder["self"] = holder
        holder["await"] = _ASYNC_CALLS[which](client).__await__()
        next(holder["await"])

    asyncio.run(step())


@pytest.mark.parametrize("which", list(_ASYNC_CALLS))
def test_an_async_call_closed_by_the_collector_is_recorded_later(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """A coroutine dropped while it awaits inside the SDK is closed by the collector, on the
    collector's thread: the exception thrown at its await crosses our hooks there. They used to
    record the call on the spot (waiting on the blocked locks forever), and their context
    resets raised, which left the span open and replaced the app's own unraisable error."""

    def scenario() -> None:
        _drop_suspended_call(make_client(fake), which)
        assert _collect_in_thread(), "gc.collect() blocked on the instrumentation"

    bare = _unraisable_types(monkeypatch, scenario)
    blocked = _Blocked()
    try:
        blocked.block()
        instrumented = _unraisable_types(monkeypatch, scenario)
        blocked.release()
        assert blocked.requests() == 1  # the attempt, counted once, after the collector left
        if which != "unowned":
            [span] = blocked.exporter.spans
            assert span.end_time is not None
            assert span.attributes["error.type"]
    finally:
        blocked.close()
    assert instrumented == bare  # what the app sees of the drop, exactly as without us


def test_an_async_tool_closed_by_the_collector_ends_its_spans_later(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Automatic function calling awaits a coroutine tool that never returns; the app drops
    the task. The collector closes it on another thread, through the tool's hook and the
    call's: both spans end at the next safe point, never inside the collector."""
    from test_traces import ROUND_1, _calls

    def scenario() -> None:
        client = make_client(fake)

        async def run() -> None:
            started = asyncio.Event()

            async def lookup(city: str) -> str:
                """Looks a city up."""
                started.set()
                await asyncio.get_running_loop().create_future()  # never resolved
                return city

            # Evaluated annotations: google-genai 2.x cannot read the strings this module's
            # `from __future__ import annotations` leaves (it answers the model an error).
            lookup.__annotations__ = {"city": str, "return": str}
            task = asyncio.ensure_future(
                client.aio.models.generate_content(
                    model=MODEL, contents="x", config={"tools": [lookup]}
                )
            )
            await asyncio.wait_for(started.wait(), 10)  # bounded: a tool never run fails here
            del task  # the loop only holds it weakly now: a cycle through the future
            assert _collect_in_thread(), "gc.collect() blocked on the instrumentation"

        asyncio.run(run())

    fake.enqueue(MODEL, Reply(usage=ROUND_1, extra=_calls("lookup")))
    bare = _unraisable_types(monkeypatch, scenario)
    fake.enqueue(MODEL, Reply(usage=ROUND_1, extra=_calls("lookup")))
    blocked = _Blocked()
    try:
        blocked.block()
        instrumented = _unraisable_types(monkeypatch, scenario)
        blocked.release()
        assert blocked.requests() == 1
        spans = {s.name: s for s in blocked.exporter.spans}
        assert set(spans) == {"execute_tool lookup", f"generate_content {MODEL}"}
        tool, call = spans["execute_tool lookup"], spans[f"generate_content {MODEL}"]
        assert tool.attributes["error.type"] == "GeneratorExit"
        assert call.attributes["error.type"] == "GeneratorExit"
        assert tool.parent.span_id == call.context.span_id
    finally:
        blocked.close()
    assert instrumented == bare


def test_gc_on_the_collecting_thread_inside_our_callbacks(fake: FakeGemini) -> None:
    """GC run from inside a metrics collection (another library's observable callback on the
    same provider, called while the SDK holds its collection lock and after ours banked the
    counters): the dropped stream is recorded, once, by a later collection."""
    from opentelemetry.metrics import Observation

    fake.enqueue(None, LONG)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        client = make_client(fake)
        client.models.generate_content(model=MODEL, contents="x")

        def collect_garbage(_options: Any) -> list[Observation]:
            gc.collect()
            return [Observation(1)]

        meter_provider.get_meter("other").create_observable_gauge("other", [collect_garbage])
        _drop_in_cycle(client)
        done = threading.Event()

        def collect() -> None:
            reader.get_metrics_data()
            done.set()

        threading.Thread(target=collect, daemon=True).start()
        assert done.wait(10), "a collection that ran the garbage collector hung"
        reader.get_metrics_data()
        ends = sorted(
            str(s.attributes.get("gcp.gemini.stream.end")) for s in spans.get_finished_spans()
        )
        assert ends == ["None", "abandoned"]
    finally:
        instrumentor.uninstrument()


def _requests(telemetry: Telemetry) -> float:
    return telemetry.total("gcp.gemini.requests")


@pytest.mark.parametrize("point", ["next_call", "collection", "uninstrument"])
def test_a_dropped_stream_is_recorded_at_the_next_safe_point(
    fake: FakeGemini, instrument: Callable[..., Telemetry], point: str
) -> None:
    telemetry = instrument()
    fake.enqueue(None, LONG)
    client = make_client(fake)
    _drop_in_cycle(client)
    gc.collect()
    assert telemetry.exporter.get_finished_spans() == ()  # noticed, not recorded in the GC
    if point == "next_call":
        client.models.generate_content(model=MODEL, contents="x")
        expected = 2
    elif point == "collection":
        telemetry.metrics()
        expected = 1
    else:
        GeminiInstrumentor().uninstrument()
        expected = 1
    spans = telemetry.exporter.get_finished_spans()
    assert len(spans) == expected
    dropped = [s for s in spans if s.attributes.get("gcp.gemini.stream.end") == "abandoned"]
    assert len(dropped) == 1
    assert dropped[0].end_time is not None and dropped[0].end_time >= dropped[0].start_time
    assert _requests(telemetry) == expected  # counted once, with the chunk it read


def test_a_dropped_stream_is_recorded_at_exit(fake: FakeGemini, tmp_path: Any) -> None:
    """Dropped, then the process exits with no further call or collection."""
    out = tmp_path / "spans.json"
    script = exit_script(
        fake,
        out,
        """
        import gc
        holder = {}
        holder["self"] = holder
        holder["stream"] = client.models.generate_content_stream(model="m", contents="x")
        del holder
        gc.collect()
        """,
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    [attrs] = spans_at_exit(out)
    assert attrs["gcp.gemini.stream.end"] == "abandoned"


def test_close_before_the_first_chunk_ends_the_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    stream = client.models.generate_content_stream(model=MODEL, contents="x")
    stream.close()
    span = telemetry.span()  # ended at close(), while the app still holds the stream
    assert span.attributes["gcp.gemini.stream.end"] == "closed"
    assert span.attributes["gcp.gemini.stream.chunks"] == 0
    assert fake.requests == []  # closing sent nothing, as without us
    assert list(stream) == []  # a closed generator, as the SDK's own would be
    del stream
    gc.collect()
    assert len(telemetry.spans()) == 1


def test_aclose_before_the_first_chunk_ends_the_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    async def scenario() -> None:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
        await stream.aclose()
        span = telemetry.span()
        assert span.attributes["gcp.gemini.stream.end"] == "closed"
        assert [c async for c in stream] == []

    asyncio.run(scenario())
    assert fake.requests == []
    assert len(telemetry.spans()) == 1


def test_the_first_chunk_is_still_requested_lazily(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    """Priming our generator pulls nothing from the SDK: the request goes out on next()."""
    stream = client.models.generate_content_stream(model=MODEL, contents="x")
    assert fake.requests == []
    assert len(list(stream)) == 3
    assert len(fake.requests) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_counts_from_zero(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    for _ in range(3):
        client.models.generate_content(model=MODEL, contents="x")

    def child_work() -> dict[str, Any]:  # one call of its own, then what it would export
        child_client = make_client(fake)  # held: the SDK's Client closes itself when dropped
        child_client.models.generate_content(model=MODEL, contents="x")
        status = quota_status(MODEL)
        return {
            "requests": telemetry.total("gcp.gemini.requests"),
            "tokens": telemetry.total("gcp.gemini.tokens"),
            "rpm": status.usage["rpm"] if status else None,
        }

    child = in_forked_child(child_work)
    assert child == {"requests": 1, "tokens": 20, "rpm": 1}
    assert telemetry.total("gcp.gemini.requests") == 3  # the parent's own, unchanged
