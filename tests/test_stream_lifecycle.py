"""Every way a stream can end ends its span: exhausted, closed, broken out of, dropped.

A dropped stream is noticed at once and recorded at the next safe point (the next call, the
next metrics collection, uninstrument, exit): ``_dropped`` collects metrics once, as a
periodic reader would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

from conftest import Telemetry
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

MODEL = "gemini-2.5-flash"
LONG = Reply(chunks=6, text="a b c d e f g h i j k l")


def _dropped(telemetry: Telemetry) -> None:
    gc.collect()
    telemetry.metrics()


def _only_span_end(telemetry: Telemetry) -> str:
    span = telemetry.span()
    assert span.end_time is not None
    return str(span.attributes["gcp.gemini.stream.end"])


def test_break_out_of_a_loop_ends_the_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, LONG)
    for _chunk in client.models.generate_content_stream(model=MODEL, contents="x"):
        break
    _dropped(telemetry)
    assert _only_span_end(telemetry) == "abandoned"
    assert telemetry.span().attributes["gcp.gemini.stream.chunks"] == 1


def test_close_ends_the_span(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    fake.enqueue(None, LONG)
    stream = client.models.generate_content_stream(model=MODEL, contents="x")
    next(stream)
    stream.close()
    assert _only_span_end(telemetry) == "closed"
    del stream
    gc.collect()
    assert len(telemetry.spans()) == 1  # closing then dropping ends it once


def test_never_read_and_dropped_stream_ends_the_span(client: Any, telemetry: Telemetry) -> None:
    stream = client.models.generate_content_stream(model=MODEL, contents="x")
    del stream
    _dropped(telemetry)
    assert _only_span_end(telemetry) == "abandoned"
    assert telemetry.span().attributes["gcp.gemini.stream.chunks"] == 0


def test_abandoned_stream_in_a_reference_cycle_ends_on_gc(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, LONG)
    holder: dict[str, Any] = {}
    holder["self"] = holder
    holder["stream"] = client.models.generate_content_stream(model=MODEL, contents="x")
    next(holder["stream"])
    del holder
    _dropped(telemetry)
    assert _only_span_end(telemetry) == "abandoned"


def test_stream_is_still_a_generator_to_the_caller(client: Any, telemetry: Telemetry) -> None:
    stream = client.models.generate_content_stream(model=MODEL, contents="x")
    assert iter(stream) is stream
    assert hasattr(stream, "send") and hasattr(stream, "throw")
    list(stream)
    assert _only_span_end(telemetry) == "exhausted"


def test_async_break_aclose_and_drop(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    async def scenario() -> None:
        fake.enqueue(None, LONG, LONG, LONG)
        broken = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
        async for _chunk in broken:
            break
        del broken

        closed = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
        await closed.__anext__()
        await closed.aclose()

        exhausted = await client.aio.models.generate_content_stream(model=MODEL, contents="x")
        assert len([c async for c in exhausted]) == 6

    asyncio.run(scenario())
    gc.collect()
    ends = sorted(str(s.attributes["gcp.gemini.stream.end"]) for s in telemetry.spans())
    assert ends == ["abandoned", "closed", "exhausted"]
    assert all(s.end_time is not None for s in telemetry.spans())


def test_async_stream_cancelled_mid_read_ends_the_span(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, Reply(chunks=5, chunk_delay=0.5, text="a b c d e"))

    async def scenario() -> None:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="x")

        async def read_all() -> None:
            async for _chunk in stream:
                pass

        task = asyncio.create_task(read_all())
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    gc.collect()
    span = telemetry.span()
    assert span.end_time is not None
    assert span.attributes["gcp.gemini.stream.end"] == "error"
    assert span.attributes["error.type"] == "CancelledError"
