"""Concurrency and cancellation: tasks cancelled at every await, clients and streams shared
between threads, tasks and loops, tools that make calls of their own, and a metrics reader,
quota_status() and uninstrument()/instrument() racing the calls.

Each case runs through the real client against the fake server; what the app sees must be what
it sees bare, every span must end, and every request the server received must be counted once,
on the call that made it.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply
from test_traces import ROUND_1, _calls

MODEL = "gemini-2.5-flash"


def _evaluated(function: Callable[..., Any]) -> Callable[..., Any]:
    # google-genai 2.x cannot read the string annotations this module's
    # `from __future__ import annotations` leaves (it answers the model an error).
    function.__annotations__ = {"city": str, "return": str}
    return function


def _files_listed(fake: FakeGemini) -> int:
    return sum(1 for r in fake.requests if str(r.get("method", "")).endswith("/files"))


# --- a tool's own requests are not its call's attempts --------------------------------------
@pytest.mark.parametrize("how", ["sync", "async", "sync_tool_of_async_call"])
def test_a_tools_own_requests_are_not_attempts_of_the_call_running_it(
    fake: FakeGemini, telemetry: Telemetry, how: str
) -> None:
    """Automatic function calling runs the tool inside generate_content. A request the tool
    makes through an SDK method we have no call for (files.list) used to be taken as an HTTP
    attempt of the generate_content call: counted under its operation and model, and on its
    span (``gcp.gemini.attempts=3``). A sync tool of an async call runs in a worker thread with
    a copy of the call's context: its ``asyncio.run`` saw the call too."""
    client = make_client(fake)
    inner = make_client(fake)  # the tool's own client: google-genai 2.x binds one to a loop

    def lookup(city: str) -> str:
        """Looks a city up."""
        if how == "sync":
            list(inner.files.list())
        else:

            async def listed() -> None:
                [f async for f in await inner.aio.files.list()]

            asyncio.run(listed())
        return city

    async def alookup(city: str) -> str:
        """Looks a city up."""
        [f async for f in await client.aio.files.list()]
        return city

    tool = _evaluated(alookup if how == "async" else lookup)
    fake.enqueue(MODEL, Reply(usage=ROUND_1, extra=_calls(tool.__name__)))
    config = {"tools": [tool]}
    if how == "sync":
        client.models.generate_content(model=MODEL, contents="x", config=config)
    else:
        run_async(client.aio.models.generate_content(model=MODEL, contents="x", config=config))

    assert _files_listed(fake) == 1 and len(fake.requests) == 3  # the tool ran once
    call = telemetry.span()
    assert call.attributes["gcp.gemini.attempts"] == 2  # one per round, none of the tool's
    assert len(telemetry.all_spans()) == 2  # and the tool's
    assert telemetry.total("gcp.gemini.requests", gen_ai__operation__name="generate_content") == 2
    assert telemetry.total("gcp.gemini.requests", gen_ai__operation__name="files") == 1


# --- cancellation at every await point --------------------------------------------------------
class _Ledger(SpanProcessor):
    """The spans started and not ended yet."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._lock:
            self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.open.pop(span.context.span_id, None)


class _Traced:
    def __init__(self) -> None:
        self.ledger = _Ledger()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(self.ledger)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.instrumentor = GeminiInstrumentor()
        self.telemetry = Telemetry(self.exporter, self.reader)

    def instrument(self, **config: Any) -> None:
        self.instrumentor.instrument(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **config
        )

    def requests(self) -> float:
        return self.telemetry.total("gcp.gemini.requests")


@pytest.fixture
def traced() -> Iterator[_Traced]:
    t = _Traced()
    t.instrument()
    yield t
    if t.instrumentor.is_instrumented_by_opentelemetry:
        t.instrumentor.uninstrument()


async def _cancel_after(steps: int, start: Callable[[], Awaitable[Any]]) -> str:
    """Start the call, let the loop run ``steps`` times (each step: a tiny sleep, so that the
    real I/O moves on too), then cancel it: 'cancelled', or 'done' when it finished first."""
    task = asyncio.ensure_future(start())
    for _ in range(steps):
        if task.done():
            break
        await asyncio.sleep(0.001)
    task.cancel()
    try:
        await asyncio.wait_for(asyncio.shield(task), 10)  # bounded: a hang fails here
    except asyncio.CancelledError:
        return "cancelled"
    return "done"


async def _lookup(city: str) -> str:
    """Looks a city up."""
    await asyncio.sleep(0.002)
    return city


def _scenario(client: Any, fake: FakeGemini, which: str) -> Callable[[], Awaitable[Any]]:
    aio = client.aio
    tools = {"tools": [_evaluated(_lookup)]}
    if which in ("tool", "chat_tool"):
        fake.enqueue(MODEL, Reply(usage=ROUND_1, extra=_calls("_lookup")))
    if which == "stream":
        fake.enqueue(MODEL, Reply(chunks=4, chunk_delay=0.002))

    async def stream() -> list[Any]:
        chunks = await aio.models.generate_content_stream(model=MODEL, contents="x")
        return [c async for c in chunks]

    return {
        "generate_content": lambda: aio.models.generate_content(model=MODEL, contents="x"),
        "stream": stream,
        "embed": lambda: aio.models.embed_content(model="text-embedding-004", contents="x"),
        "tool": lambda: aio.models.generate_content(model=MODEL, contents="x", config=tools),
        "chat_tool": lambda: aio.chats.create(model=MODEL, config=tools).send_message("x"),
    }[which]


@pytest.mark.parametrize("which", ["generate_content", "stream", "embed", "tool", "chat_tool"])
def test_a_task_cancelled_at_any_await_ends_its_spans_and_counts_its_requests(
    fake: FakeGemini, traced: _Traced, which: str
) -> None:
    """Cancelled after 0, 1, 2... loop steps until the call finishes first: each time the app
    gets the CancelledError, no span is left open, nothing reaches the loop's exception handler
    or sys.unraisablehook, and every request the server received is counted (an attempt
    cancelled before its request got there counts too: README, the windows err towards the
    limit)."""
    client = make_client(fake)
    loop = asyncio.new_event_loop()
    loop_errors: list[Any] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    unraisable: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        for steps in range(200):
            fake.reset()
            traced.exporter.clear()
            before = traced.requests()
            outcome = loop.run_until_complete(_cancel_after(steps, _scenario(client, fake, which)))
            loop.run_until_complete(asyncio.sleep(0.01))  # a tool left in a thread, the server
            gc.collect()
            counted, received = traced.requests() - before, len(fake.requests)
            assert traced.ledger.open == {}, (steps, outcome)
            assert received <= counted <= received + 1, (steps, outcome, counted, received)
            errors = {s.attributes.get("error.type") for s in traced.exporter.get_finished_spans()}
            assert errors <= {None, "CancelledError"}, steps
            # A chat runs its tools between its calls: a cancel may land outside any span.
            if steps and outcome == "cancelled" and which != "chat_tool":
                [call] = [s for s in traced.telemetry.spans() if s.parent is None]
                assert call.attributes["error.type"] == "CancelledError"
            assert loop_errors == [] and unraisable == [], steps
            if outcome == "done" and steps:
                break
        else:
            pytest.fail("the call never finished before its cancel")
    finally:
        sys.unraisablehook = hook
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# --- threads, tasks and loops sharing a client and its streams ------------------------------
def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(30)
    assert not [t.name for t in threads if t.is_alive()], "a thread hung"


@pytest.mark.skipif(
    int(version("google-genai").split(".")[0]) < 3,
    reason="google-genai 2.x ties a client's async transport to its first event loop: bare, "
    "the app cannot use one client from several loops",
)
def test_one_client_from_threads_each_with_its_own_loop_and_streams_crossing_them(
    fake: FakeGemini, traced: _Traced
) -> None:
    client = make_client(fake)
    failures: list[BaseException] = []

    async def calls() -> None:
        async def streamed() -> int:
            chunks = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
            return len([c async for c in chunks])

        answers = await asyncio.gather(
            *(client.aio.models.generate_content(model=MODEL, contents="x") for _ in range(3)),
            streamed(),
        )
        assert answers[-1] == 3

    def worker() -> None:
        try:
            for _ in range(3):
                asyncio.run(calls())
        except BaseException as error:  # the test's own assertion: reported below
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    _join(threads)

    # A sync stream made (and read once) in one thread, finished in another; another left
    # half-read by a thread that exits.
    held: dict[str, Any] = {}

    def make() -> None:
        held["stream"] = client.models.generate_content_stream(model=MODEL, contents="x")
        next(held["stream"])

    def half_read() -> None:
        next(iter(client.models.generate_content_stream(model=MODEL, contents="x")))

    for step in (make, lambda: held.update(rest=list(held.pop("stream"))), half_read):
        thread = threading.Thread(target=step)
        thread.start()
        _join([thread])
    assert len(held["rest"]) == 2

    # An async stream made in one task, read by another; one closed by another task.
    async def across_tasks() -> None:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
        assert len(await asyncio.create_task(_read_all(stream))) == 3
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
        await stream.__anext__()
        await asyncio.create_task(stream.aclose())

    asyncio.run(across_tasks())
    gc.collect()
    traced.telemetry.metrics()  # a collection: the half-read stream is recorded by now

    assert failures == []
    assert traced.ledger.open == {}
    spans = traced.telemetry.spans()
    assert len(spans) == len(fake.requests) == 4 * 3 * 4 + 4
    ends = sorted(str(s.attributes.get("gcp.gemini.stream.end")) for s in spans)
    assert ends.count("abandoned") == 1 and ends.count("closed") == 1
    assert traced.requests() == len(fake.requests)


async def _read_all(stream: Any) -> list[Any]:
    return [c async for c in stream]


def test_collections_quota_status_and_re_instrumenting_race_the_calls(
    fake: FakeGemini, traced: _Traced
) -> None:
    """A reader collecting every millisecond, quota_status() from two threads, and (first)
    uninstrument()/instrument() toggled from another, while sync and async calls run: the app
    sees no exception and nothing hangs; once toggling stops, every request is counted."""
    from opentelemetry.instrumentation.gemini import quota_status

    client = make_client(fake)
    stop, failures = threading.Event(), []

    def guarded(body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not stop.is_set():
                try:
                    body()
                except BaseException as error:
                    failures.append(error)
                    return

        return run

    def sync_calls() -> None:
        assert client.models.generate_content(model=MODEL, contents="x").text
        assert len(list(client.models.generate_content_stream(model=MODEL, contents="x"))) == 3

    async def async_calls() -> None:
        # A client of this loop's own: google-genai 2.x ties one's async transport to the
        # first event loop that used it (bare, a second asyncio.run fails).
        local = make_client(fake)
        while not stop.is_set():
            await asyncio.gather(
                *(local.aio.models.generate_content(model=MODEL, contents="x") for _ in range(3))
            )

    def collect() -> None:
        traced.reader.get_metrics_data()
        stop.wait(0.001)

    def toggle() -> None:
        traced.instrumentor.uninstrument()
        stop.wait(0.002)
        traced.instrument()
        stop.wait(0.002)

    def phase(toggling: bool, calls_each: int) -> None:
        stop.clear()
        bodies = [collect, lambda: quota_status(MODEL), lambda: quota_status(MODEL)]
        bodies += [sync_calls, sync_calls] + ([toggle] if toggling else [])
        threads = [threading.Thread(target=guarded(b)) for b in bodies]
        threads.append(threading.Thread(target=lambda: asyncio.run(async_calls())))
        for t in threads:
            t.start()
        deadline = len(fake.requests) + calls_each
        for _ in range(3000):  # bounded: ~30 s at most
            if len(fake.requests) >= deadline or failures:
                break
            threading.Event().wait(0.01)
        stop.set()
        _join(threads)

    phase(toggling=True, calls_each=150)
    assert traced.instrumentor.is_instrumented_by_opentelemetry
    gc.collect()
    traced.reader.get_metrics_data()
    before, received = traced.requests(), len(fake.requests)
    phase(toggling=False, calls_each=150)
    gc.collect()
    assert failures == []
    assert traced.ledger.open == {}
    assert traced.requests() - before == len(fake.requests) - received
