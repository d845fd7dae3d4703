"""Shared fixtures: a fake Gemini server on loopback, the real google-genai client pointed at it,
and per-test in-memory OpenTelemetry providers passed to ``instrument()``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google import genai
from google.genai import types
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeCredentials, FakeGemini

FAKE_KEY = "fake-api-key-0123456789"  # never a real key; tests assert it never leaks


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(max_lifetime=1200) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_fake(fake: FakeGemini) -> None:
    fake.reset()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


class Telemetry:
    """What a test reads: finished spans and exported metric points."""

    def __init__(self, exporter: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self.exporter = exporter
        self.reader = reader

    def spans(self) -> tuple[ReadableSpan, ...]:
        """The calls' spans: without the ``execute_tool`` children of automatic function
        calling (``all_spans``), so that one call still reads as one span."""
        return tuple(
            s
            for s in self.exporter.get_finished_spans()
            if (s.attributes or {}).get("gen_ai.operation.name") != "execute_tool"
        )

    def all_spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def span(self) -> ReadableSpan:
        found = self.spans()
        assert len(found) == 1, [s.name for s in found]
        return found[0]

    def metrics(self) -> dict[str, list[Any]]:
        """metric name -> list of data points (with .attributes and .value / .sum / .count)."""
        out: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def points(self, name: str, **attrs: Any) -> list[Any]:
        return [
            p
            for p in self.metrics().get(name, [])
            if all(p.attributes.get(k.replace("__", ".")) == v for k, v in attrs.items())
        ]

    def total(self, name: str, **attrs: Any) -> float:
        """Sum of counter values (or histogram sums) matching the attributes."""
        return sum(
            getattr(p, "value", None) or getattr(p, "sum", 0) for p in self.points(name, **attrs)
        )


@pytest.fixture
def instrument(
    spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> Iterator[Callable[..., Telemetry]]:
    """Call ``instrument(**config)`` in a test to enable the instrumentation with its options."""
    instrumentor = GeminiInstrumentor()

    def _instrument(**config: Any) -> Telemetry:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        meter_provider = MeterProvider(metric_readers=[metric_reader])
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, **config
        )
        return Telemetry(spans, metric_reader)

    yield _instrument
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def telemetry(instrument: Callable[..., Telemetry]) -> Telemetry:
    """Instrumented with defaults."""
    return instrument()


def make_client(
    fake: FakeGemini, retry: types.HttpRetryOptions | None = None, vertexai: bool = False
) -> genai.Client:
    options = types.HttpOptions(base_url=fake.url, retry_options=retry)
    if vertexai:
        return genai.Client(
            vertexai=True,
            project="fake-project",
            location="us-central1",
            api_key=None,
            http_options=options,
            credentials=FakeCredentials(),
        )
    return genai.Client(api_key=FAKE_KEY, http_options=options)


@pytest.fixture
def client(fake: FakeGemini) -> genai.Client:
    return make_client(fake)


# One event loop per test for the async calls it makes: google-genai 2.x (what Python 3.10
# installs) binds a client's async HTTP client to the loop of its first call, so a client used
# from two asyncio.run() loops fails ("Event loop is closed"). Tests about loops and the garbage
# collector make their own.
_loop: asyncio.AbstractEventLoop | None = None


@pytest.fixture(autouse=True)
def _event_loop() -> Iterator[None]:
    global _loop
    yield
    if _loop is not None:
        loop, _loop = _loop, None
        try:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def run_async(awaitable: Any) -> Any:
    """``asyncio.run`` on the test's own loop (see ``_event_loop``)."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(awaitable)


ENTRYPOINTS = ("sync", "async", "sync_stream", "async_stream")


def call_gemini(
    client: genai.Client, entrypoint: str, model: str = "gemini-2.5-flash", **kwargs: Any
) -> Any:
    """Run one generate_content call through the given entry point, consuming any stream.

    Returns the response (or the list of chunks for streams).
    """
    kwargs.setdefault("contents", "Say hello")
    if entrypoint == "sync":
        return client.models.generate_content(model=model, **kwargs)
    if entrypoint == "sync_stream":
        return list(client.models.generate_content_stream(model=model, **kwargs))

    async def run() -> Any:
        if entrypoint == "async":
            return await client.aio.models.generate_content(model=model, **kwargs)
        stream = await client.aio.models.generate_content_stream(model=model, **kwargs)
        return [chunk async for chunk in stream]

    return run_async(run())


@pytest.fixture(params=ENTRYPOINTS)
def entrypoint(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def in_forked_child(work: Callable[[], Any]) -> Any:
    """Fork; run ``work`` in the child and return what it returned (JSON), or
    ``{"error": repr}`` if it raised. The child leaves at once (``os._exit``): nothing of the
    parent's runs twice."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            try:
                report = work()
            except BaseException as error:
                report = {"error": repr(error)}
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = json.loads(pipe.read() or "null")
    os.waitpid(pid, 0)
    return answer
