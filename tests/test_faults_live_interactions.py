"""Faults on the Live API and the Interactions API: coroutines closed by the garbage collector
at awkward points, hostile servers (huge numbers, keys echoed, garbage frames), span
processors that raise, re-instrumentation and forks while a session is open.

Each case runs through the real google-genai client against the loopback fakes (fake_live.py,
fake_interactions.py), and where the app could notice us, bare first, then instrumented.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.genai import types
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from conftest import FAKE_KEY, Telemetry, make_client
from opentelemetry.instrumentation.gemini.bounds import INT64_MAX
from opentelemetry.instrumentation.gemini.record.call import drain_abandoned
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply
from opentelemetry.instrumentation.gemini.testing.fake_live import FakeLive, LiveScript, turn, usage
from test_faults_bounds import GOOGLE_SHAPED_KEY, _exported_text
from test_faults_gc import _Blocked, _collect_in_thread, _unraisable_types
from test_live import live_client, say

LIVE_MODEL = "gemini-live-2.5-flash-preview"
MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def live() -> Iterator[FakeLive]:
    # Short idle timeout: sessions the tests drop are never closed by their client.
    with FakeLive(max_lifetime=600, idle_timeout=2) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_live(live: FakeLive) -> None:
    live.reset()


async def one_session(live: FakeLive, script: LiveScript, turns: int = 1) -> Any:
    """A session the app runs to its end: what the app saw (message counts, or the error)."""
    live.enqueue(script)
    seen: list[int] = []
    try:
        async with live_client(live).aio.live.connect(model=LIVE_MODEL) as session:
            for _ in range(turns):
                seen.append(len(await say(session)))
    except Exception as error:
        return type(error).__name__, str(error), getattr(error, "code", None), seen
    return seen


def _int_attributes_fit_int64(telemetry: Telemetry) -> None:
    for span in telemetry.all_spans():
        for key, value in (span.attributes or {}).items():
            if isinstance(value, int):
                assert -(2**63) <= value <= INT64_MAX, (span.name, key, value)


# --- the garbage collector closes a session's coroutine: never waits on us ------------------
_KEPT: list[Any] = []  # sessions the app keeps after dropping the coroutine that used them


def _drop_mid_connect(live: FakeLive) -> None:
    """A coroutine stepped into ``connect``'s handshake (its TCP connect), then dropped in a
    reference cycle: only the garbage collector will close it."""
    client = live_client(live)

    async def session() -> None:
        async with client.aio.live.connect(model=LIVE_MODEL) as s:
            await s.receive().__anext__()

    async def step() -> None:
        holder: dict[str, Any] = {}
        holder["self"] = holder
        holder["await"] = session().__await__()
        next(holder["await"])

    asyncio.run(step())


def _drop_mid_close(live: FakeLive) -> None:
    """A coroutine stepped by hand until its ``async with`` body has run: it is then suspended
    in ``__aexit__`` (the websocket's closing handshake), and dropped there in a cycle. The app
    keeps the session object, so no weakref notices the drop: only the coroutine's close."""
    live.enqueue(LiveScript([("hold",)]))
    client = live_client(live)
    entered: list[Any] = []
    left: list[bool] = []

    async def session() -> None:
        async with client.aio.live.connect(model=LIVE_MODEL) as s:
            entered.append(s)
        left.append(True)

    async def driver() -> None:
        holder: dict[str, Any] = {}
        holder["self"] = holder
        holder["await"] = steps = session().__await__()
        for _ in range(10_000):
            awaited = steps.send(None)
            if entered and not left:
                return  # suspended inside __aexit__
            if awaited is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([awaited], timeout=5)
        raise AssertionError("the session never reached __aexit__")

    asyncio.run(driver())
    _KEPT.extend(entered)


@pytest.mark.parametrize("where", ["connect", "close"])
def test_a_session_closed_by_the_collector_mid_handshake_never_waits(
    live: FakeLive, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The old failure: a GeneratorExit thrown into the connect handshake, or into the SDK's
    closing of the websocket, recorded the session on the spot (span pipeline, counters),
    inside the collector: with those busy on other threads, ``gc.collect()`` hung."""
    drop = _drop_mid_connect if where == "connect" else _drop_mid_close

    def scenario() -> None:
        drop(live)
        assert _collect_in_thread(), "gc.collect() blocked on the instrumentation"

    bare = _unraisable_types(monkeypatch, scenario)
    blocked = _Blocked()
    try:
        blocked.block()
        instrumented = _unraisable_types(monkeypatch, scenario)
        blocked.release()
        drain_abandoned()
        [span] = blocked.exporter.spans
        assert span.end_time is not None
        assert span.attributes["gcp.gemini.live.end"] == "abandoned"
        if where == "connect":  # the handshake's attempt, counted once, after the collector
            assert span.attributes["error.type"] == "GeneratorExit"
            assert blocked.requests() == 1
    finally:
        blocked.close()
        _KEPT.clear()
        gc.collect()  # their sockets closed: the fake's sessions end
    assert instrumented == bare


# --- hostile Live servers --------------------------------------------------------------------
_HUGE = {
    "promptTokenCount": 10**30,
    "responseTokenCount": 10**30,
    "totalTokenCount": 10**30,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10**30}],
}


def _huge_turns(n: int) -> LiveScript:
    return LiveScript(
        [("expect",)]
        + [("send", {"usageMetadata": _HUGE})] * n
        + [("send", {"serverContent": {"turnComplete": True}})]
    )


async def test_a_session_of_huge_turns_keeps_its_span_within_int64(
    live: FakeLive, instrument: Callable[..., Telemetry], caplog: pytest.LogCaptureFixture
) -> None:
    """Each usage message's counts are clamped to 2^53; 1,100 of them summed to ~10^19 on the
    session's span, beyond int64: the OTLP encoder dropped those attributes with an error."""
    bare = await one_session(live, _huge_turns(1100))
    telemetry = instrument(tier="tier_1")
    with caplog.at_level(logging.WARNING):
        instrumented = await one_session(live, _huge_turns(1100))
    assert instrumented == bare == [1101]
    _int_attributes_fit_int64(telemetry)
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 2**53
    assert attrs["gcp.gemini.live.usage_messages"] == 1100
    encode_spans(telemetry.all_spans())  # type: ignore[arg-type]
    encode_metrics(telemetry.reader.get_metrics_data())
    assert sum("clamped" in r.getMessage() for r in caplog.records) <= 1


def _bounded_and_keyless(telemetry: Telemetry) -> None:
    """No API key anywhere we export, and every attribute (its key too) of name size."""
    exported = _exported_text(telemetry)
    assert FAKE_KEY not in exported and GOOGLE_SHAPED_KEY not in exported
    for span in telemetry.all_spans():
        for key, value in (span.attributes or {}).items():
            assert len(key) <= 64 and len(str(value)) <= 256, (key[:80], str(value)[:80])
    for points in telemetry.metrics().values():
        for point in points:
            for key, value in point.attributes.items():
                assert len(str(value)) <= 256, (key, str(value)[:80])


# What a server may send where the SDK expects an enum: it passes unknown values through.
_HOSTILE_NAME = "ON_DEMAND " + FAKE_KEY + " " + GOOGLE_SHAPED_KEY + "x" * 100_000


async def test_hostile_enum_names_in_live_usage_never_reach_a_span(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    """A traffic type or a modality repeating the key (or 100 KB long) was copied whole: as
    the value of gcp.gemini.traffic_type, and as the key of a per-modality attribute."""
    meta = usage(30, 4)
    meta["trafficType"] = _HOSTILE_NAME
    meta["promptTokensDetails"] = [
        {"modality": "TEXT", "tokenCount": 10},
        {"modality": _HOSTILE_NAME, "tokenCount": 20},
    ]
    with warnings.catch_warnings(record=True) as bare_warnings:
        warnings.simplefilter("always")
        bare = await one_session(live, LiveScript.turns(turn("x", meta)))
    telemetry = instrument(tier="tier_1")
    with warnings.catch_warnings(record=True) as instrumented_warnings:
        warnings.simplefilter("always")
        instrumented = await one_session(live, LiveScript.turns(turn("x", meta)))
    assert instrumented == bare == [2]
    assert [str(w.message) for w in instrumented_warnings] == [
        str(w.message) for w in bare_warnings
    ]
    _bounded_and_keyless(telemetry)
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 30  # the counts stand; the names do not
    assert attrs["gcp.gemini.usage.input_tokens.text"] == 10
    assert "gcp.gemini.traffic_type" not in attrs


# --- hostile Interactions answers ------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("field", ["status", "service_tier", "id", "model"])
def test_hostile_interaction_fields_are_cut_and_redacted(
    fake: FakeGemini, telemetry: Telemetry, field: str, stream: bool
) -> None:
    """The interaction's status and service tier (the usage's traffic type) were copied as
    the server sent them: the key it repeated, and 100 KB, on the span."""
    fake.enqueue(None, Reply(extra={field: _HOSTILE_NAME}))
    client = make_client(fake, retry=types.HttpRetryOptions(attempts=1))
    result = client.interactions.create(model=MODEL, input="x", stream=stream)
    events = list(result) if stream else [result]
    assert getattr(events[-1] if not stream else events[-1].interaction, field) == _HOSTILE_NAME
    _bounded_and_keyless(telemetry)
    attrs = telemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 12  # still counted and priced
    assert telemetry.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 12
