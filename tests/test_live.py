"""Live API sessions through the real client (``client.aio.live.connect``) against the loopback
websocket fake: one span per session on every exit path, usage priced and counted per message,
open sessions against the tier's limit, refused connects."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from conftest import FAKE_KEY, Telemetry, in_forked_child
from opentelemetry.instrumentation.gemini import quota_status
from opentelemetry.instrumentation.gemini.record.call import drain_abandoned
from opentelemetry.instrumentation.gemini.testing.fake_live import (
    FakeLive,
    LiveScript,
    close,
    go_away,
    tool_call,
    turn,
    usage,
)

MODEL = "gemini-live-2.5-flash-preview"  # genai-prices: live audio rates; limits: 50 sessions
SPAN = f"generate_live_content {MODEL}"
OP = "generate_live_content"
# USD per 1M tokens of the live model (genai-prices; Google's pricing page): text in, audio in,
# text out, audio out. The expected costs below are computed from these, independently.
TEXT_IN, AUDIO_IN, TEXT_OUT, AUDIO_OUT = 0.50, 3.00, 2.00, 12.00


def usd(text_in: int = 0, audio_in: int = 0, text_out: int = 0, audio_out: int = 0) -> float:
    return (
        text_in * TEXT_IN + audio_in * AUDIO_IN + text_out * TEXT_OUT + audio_out * AUDIO_OUT
    ) / 1e6


@pytest.fixture(scope="module")
def live() -> Iterator[FakeLive]:
    with FakeLive(max_lifetime=600, idle_timeout=20) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_live(live: FakeLive) -> None:
    live.reset()


@pytest.fixture
def tel(instrument: Callable[..., Telemetry]) -> Telemetry:
    return instrument(tier="tier_1")


def live_client(live: FakeLive) -> genai.Client:
    return genai.Client(
        api_key=FAKE_KEY,
        http_options=types.HttpOptions(
            base_url=live.url, async_client_args={"ssl": live.client_ssl}
        ),
    )


async def say(session: Any, text: str = "hello") -> list[types.LiveServerMessage]:
    """One client turn, and the server's messages up to its turnComplete."""
    await session.send_client_content(
        turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=True
    )
    return [message async for message in session.receive()]


def connect(live: FakeLive, model: str = MODEL, **config: Any) -> Any:
    return live_client(live).aio.live.connect(
        model=model, config={"response_modalities": ["AUDIO"], **config}
    )


def sessions_open(tel: Telemetry, model: str = MODEL) -> float | None:
    points = tel.points(
        "gcp.gemini.quota.usage",
        gen_ai__request__model=model,
        gcp__gemini__quota__dimension="live_sessions",
    )
    return points[0].value if points else None


# --- a session, its usage and cost ---------------------------------------------------------
async def test_a_session_is_one_span_with_its_turns_usage_and_cost(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(
        LiveScript.turns(
            turn("hi", usage(100, 50, prompt_audio=80, response_audio=50)),
            turn("again", usage(200, 40, response_audio=40)),
        )
    )
    async with connect(live, temperature=0.2) as session:
        first = await say(session)
        second = await say(session, "more")
    # The app got the SDK's own messages, untouched.
    assert [type(m) for m in first + second] == [types.LiveServerMessage] * 4
    assert first[-1].usage_metadata.response_token_count == 50

    span = tel.span()
    a = span.attributes
    assert span.name == SPAN
    assert a["gen_ai.operation.name"] == OP
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["server.address"] == "127.0.0.1"
    assert a["gcp.gemini.live.end"] == "closed"
    assert a["gcp.gemini.live.turns"] == 2
    assert a["gcp.gemini.live.messages"] == 4
    assert a["gcp.gemini.live.usage_messages"] == 2
    assert a["gcp.gemini.live.close_code"] == 1000
    # Per turn, added up: the rule README states.
    assert a["gen_ai.usage.input_tokens"] == 300
    assert a["gen_ai.usage.output_tokens"] == 90
    assert a["gcp.gemini.usage.input_tokens.audio"] == 80
    assert a["gcp.gemini.usage.input_tokens.text"] == 220
    assert a["gcp.gemini.usage.output_tokens.audio"] == 90
    # Audio priced apart from text.
    expected = usd(text_in=20, audio_in=80, audio_out=50) + usd(text_in=200, audio_out=40)
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(expected)
    assert a["gcp.gemini.cost.list_amount"] == pytest.approx(expected)
    assert "genai-prices" in a["gcp.gemini.cost.prices_version"]
    assert "error.type" not in a

    assert tel.total("gcp.gemini.cost", gen_ai__operation__name=OP) == pytest.approx(expected)
    assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 300
    assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="output") == 90
    assert tel.total("gcp.gemini.requests", gen_ai__operation__name=OP) == 1
    assert tel.total("gen_ai.client.token.usage", gen_ai__operation__name=OP) == 390
    assert tel.points("gen_ai.client.operation.duration", gen_ai__operation__name=OP)[0].count == 1
    assert sessions_open(tel) == 0
    limit = tel.points(
        "gcp.gemini.quota.limit",
        gen_ai__request__model=MODEL,
        gcp__gemini__quota__dimension="live_sessions",
    )
    assert [p.value for p in limit] == [50]


async def test_cost_and_tokens_accrue_per_message_while_the_session_is_open(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(
        LiveScript.turns(
            turn("one", usage(1000, 500, response_audio=500)),
            turn("two", usage(2000, 100, response_audio=100)),
        )
    )
    async with connect(live) as session:
        await say(session)
        # Mid-session: the first turn is counted and priced already, the session is open.
        assert tel.total("gcp.gemini.cost") == pytest.approx(usd(text_in=1000, audio_out=500))
        assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 1000
        assert sessions_open(tel) == 1
        utilization = tel.points(
            "gcp.gemini.quota.utilization", gcp__gemini__quota__dimension="live_sessions"
        )
        assert [p.value for p in utilization] == [pytest.approx(1 / 50)]
        status = quota_status(MODEL)  # the in-process read says what the gauges say
        assert status is not None
        assert status.usage["live_sessions"] == 1 and status.limits["live_sessions"] == 50
        assert status.utilization["live_sessions"] == pytest.approx(1 / 50)
        assert tel.spans() == ()
        await say(session)
        assert tel.total("gcp.gemini.cost") == pytest.approx(
            usd(text_in=1000, audio_out=500) + usd(text_in=2000, audio_out=100)
        )
    assert sessions_open(tel) == 0
    assert quota_status(MODEL).usage["live_sessions"] == 0  # type: ignore[union-attr]
    assert tel.span().attributes["gen_ai.usage.cost.amount"] == pytest.approx(
        tel.total("gcp.gemini.cost")
    )


# --- the usage rule: per turn, added up; never read as running totals ------------------------
async def test_usage_read_per_turn_adds_every_turn(live: FakeLive, tel: Telemetry) -> None:
    """What the Live API sends (pydantic-ai's probe of the live service, Google's billing
    docs): one usage message per turn, the turn's prompt growing with the context that is
    billed again, the response going up and down. Each turn is billed: the sum is the bill."""
    per_turn = [(143, 19), (181, 24), (224, 22)]
    live.enqueue(LiveScript.turns(*(turn("t", usage(p, r)) for p, r in per_turn)))
    async with connect(live) as session:
        for _ in per_turn:
            await say(session)
    a = tel.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 143 + 181 + 224
    assert a["gen_ai.usage.output_tokens"] == 19 + 24 + 22
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(usd(text_in=548, text_out=65))


async def test_usage_read_as_running_totals_would_be_summed_not_differenced(
    live: FakeLive, tel: Telemetry
) -> None:
    """The other reading, pinned so the rule is explicit: a server whose usage messages were
    session running totals (143, 143+181, ...) would be over-counted, because every message is
    taken as one turn's usage. The Live API does not send running totals (README)."""
    running = [(143, 19), (324, 43), (548, 65)]
    live.enqueue(LiveScript.turns(*(turn("t", usage(p, r)) for p, r in running)))
    async with connect(live) as session:
        for _ in running:
            await say(session)
    a = tel.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 143 + 324 + 548  # not 548
    assert a["gen_ai.usage.output_tokens"] == 19 + 43 + 65  # not 65


async def test_usage_in_a_message_of_its_own_after_the_turn_counts_when_read(
    live: FakeLive, tel: Telemetry
) -> None:
    """A usage message after turnComplete reaches the app on its next ``receive()``; it is
    counted when the app reads it (nothing the app never reads can be seen)."""
    live.enqueue(
        LiveScript.turns(turn("a", usage(10, 5), usage_on="separate"), turn("b", usage(20, 6)))
    )
    async with connect(live) as session:
        first = await say(session)
        assert all(m.usage_metadata is None for m in first)
        assert tel.total("gcp.gemini.tokens") == 0
        second = await say(session)
        assert second[0].usage_metadata.prompt_token_count == 10
    a = tel.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 30
    assert a["gcp.gemini.live.usage_messages"] == 2


async def test_thoughts_tool_use_and_cached_tokens_are_read_from_live_usage(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript.turns(turn("x", usage(100, 10, thoughts=7, tool_use=5, cached=40))))
    async with connect(live) as session:
        await say(session)
    a = tel.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 105
    assert a["gen_ai.usage.output_tokens"] == 17
    assert a["gen_ai.usage.reasoning.output_tokens"] == 7
    assert a["gen_ai.usage.cache_read.input_tokens"] == 40
    assert a["gcp.gemini.usage.tool_use_prompt_tokens"] == 5
    assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="reasoning") == 7
    assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="cached_input") == 40


async def test_tool_calls_are_counted(live: FakeLive, tel: Telemetry) -> None:
    live.enqueue(
        LiveScript([*tool_call("get_weather", {"city": "Oslo"}), *turn("ok", usage(9, 3))])
    )
    async with connect(live) as session:
        messages = await _until_tool_call(session)
        call = messages[-1].tool_call.function_calls[0]
        assert call.name == "get_weather"
        await session.send_tool_response(
            function_responses=[types.FunctionResponse(id=call.id, name=call.name, response={})]
        )
        await _read_turn(session)
    a = tel.span().attributes
    assert a["gcp.gemini.live.tool_calls"] == 1
    assert a["gcp.gemini.live.turns"] == 1


async def _until_tool_call(session: Any) -> list[Any]:
    await session.send_client_content(
        turns=types.Content(role="user", parts=[types.Part(text="weather?")]), turn_complete=True
    )
    out = []
    async for message in session.receive():
        out.append(message)
        if message.tool_call is not None:
            break
    return out


async def _read_turn(session: Any) -> list[Any]:
    return [message async for message in session.receive()]


async def test_a_vertex_session_reads_vertex_usage_and_the_session_id(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(
        LiveScript.turns(
            turn("x", usage(100, 40, response_audio=40, vertex=True)), session_id="session-42"
        )
    )
    client = genai.Client(
        vertexai=True,
        api_key=FAKE_KEY,
        http_options=types.HttpOptions(
            base_url=live.url, async_client_args={"ssl": live.client_ssl}
        ),
    )
    async with client.aio.live.connect(model=MODEL) as session:
        assert session.session_id == "session-42"
        await say(session)
    assert "aiplatform" in live.paths[-1]
    a = tel.span().attributes
    assert a["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert a["gen_ai.conversation.id"] == "session-42"
    assert a["gen_ai.usage.output_tokens"] == 40
    assert a["gcp.gemini.usage.output_tokens.audio"] == 40
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(usd(text_in=100, audio_out=40))


async def test_interruptions_are_counted(live: FakeLive, tel: Telemetry) -> None:
    live.enqueue(
        LiveScript(
            [
                ("expect",),
                ("send", {"serverContent": {"modelTurn": {"parts": [{"text": "Long"}]}}}),
                ("send", {"serverContent": {"interrupted": True}}),
                ("send", {"serverContent": {"turnComplete": True}, "usageMetadata": usage(5, 1)}),
            ]
        )
    )
    async with connect(live) as session:
        await say(session)
    a = tel.span().attributes
    assert a["gcp.gemini.live.interruptions"] == 1
    assert a["gcp.gemini.live.turns"] == 1


async def test_content_capture_records_the_system_instructions_only(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    tel = instrument(capture_content=True)
    live.enqueue(LiveScript.turns(turn("secret answer", usage(5, 1))))
    async with connect(live, system_instruction="Be brief.") as session:
        await say(session, "secret question")
    a = tel.span().attributes
    assert "Be brief." in a["gen_ai.system_instructions"]
    assert a["gen_ai.input.messages"] == "[]"
    assert "gen_ai.output.messages" not in a


# --- every exit path ends the span ---------------------------------------------------------
async def test_an_exception_of_the_app_inside_the_session_ends_it_as_an_error(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript.turns(turn("x", usage(10, 5))))
    with pytest.raises(ValueError, match="app"):
        async with connect(live) as session:
            await say(session)
            raise ValueError("app")
    span = tel.span()
    assert span.attributes["gcp.gemini.live.end"] == "error"
    assert span.attributes["error.type"] == "ValueError"
    assert span.status.status_code.name == "ERROR"
    # What the session used before the error was billed: its cost stays.
    assert span.attributes["gen_ai.usage.cost.amount"] == pytest.approx(usd(10, 0, 5))
    assert sessions_open(tel) == 0


async def test_the_server_closing_with_an_error_code_ends_the_session(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript([*turn("x", usage(10, 5)), ("expect",), close(1011, "Internal")]))
    with pytest.raises(errors.APIError) as raised:
        async with connect(live) as session:
            await say(session)
            await say(session)
    assert raised.value.code == 1011
    a = tel.span().attributes
    assert a["gcp.gemini.live.end"] == "server_closed"
    assert a["gcp.gemini.live.close_code"] == 1011
    assert a["error.type"] == "1011"
    assert a["gcp.gemini.live.turns"] == 1
    assert sessions_open(tel) == 0


async def test_a_server_close_the_app_handles_is_not_an_error(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript([("expect",), close(1000, "done")]))
    async with connect(live) as session:
        with pytest.raises(errors.APIError):
            await say(session)
    span = tel.span()
    assert span.attributes["gcp.gemini.live.end"] == "server_closed"
    assert span.attributes["gcp.gemini.live.close_code"] == 1000
    assert "error.type" not in span.attributes
    assert span.status.status_code.name == "UNSET"


async def test_go_away_then_close_ends_the_session_as_go_away(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(
        LiveScript([*turn("x", usage(10, 5)), go_away("2.5s"), ("sleep", 0.05), close(1000)])
    )
    with pytest.raises(errors.APIError):
        async with connect(live) as session:
            await say(session)
            async for _message in session.receive():
                pass
    span = tel.span()
    a = span.attributes
    assert a["gcp.gemini.live.end"] == "go_away"
    assert a["gcp.gemini.live.go_away.time_left"] == 2.5
    assert [e.name for e in span.events if e.name == "gcp.gemini.live.go_away"] == [
        "gcp.gemini.live.go_away"
    ]
    assert sessions_open(tel) == 0


async def test_a_cancelled_task_ends_the_session_as_cancelled(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript([("hold",)]))
    entered = asyncio.Event()

    async def run() -> None:
        async with connect(live) as session:
            entered.set()
            await session.receive().__anext__()  # the server sends nothing: waits

    task = asyncio.ensure_future(run())
    await asyncio.wait_for(entered.wait(), 10)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    a = tel.span().attributes
    assert a["gcp.gemini.live.end"] == "cancelled"
    assert a["error.type"] == "CancelledError"
    assert sessions_open(tel) == 0


async def test_a_session_dropped_without_closing_is_recorded_as_abandoned(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript.turns(turn("x", usage(10, 5))))
    manager = connect(live)
    session = await manager.__aenter__()
    await say(session)
    assert sessions_open(tel) == 1
    del manager, session  # never __aexit__: the app forgot the session
    gc.collect()
    drain_abandoned()  # a collection does this too (the counters' first callback)
    a = tel.span().attributes
    assert a["gcp.gemini.live.end"] == "abandoned"
    assert a["gen_ai.usage.input_tokens"] == 10
    assert sessions_open(tel) == 0


async def test_generator_exit_inside_the_session_marks_it_abandoned(
    live: FakeLive, tel: Telemetry
) -> None:
    """Closing a suspended coroutine (what garbage collection does to one) throws GeneratorExit
    into its ``async with``, whose ``__aexit__`` then runs where no lock may be taken: the
    session is only marked abandoned there, and recorded by the next drain."""
    live.enqueue(LiveScript([("hold",)]))
    manager = connect(live)
    await manager.__aenter__()
    exit_error = GeneratorExit()
    assert not await manager.__aexit__(GeneratorExit, exit_error, None)
    assert tel.spans() == ()  # not recorded in that context
    drain_abandoned()
    assert tel.span().attributes["gcp.gemini.live.end"] == "abandoned"
    assert sessions_open(tel) == 0


# --- connects that fail --------------------------------------------------------------------
async def test_a_429_on_connect_is_an_error_span_and_a_counted_quota_hit(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript(refuse=429))
    with pytest.raises(Exception) as raised:
        async with connect(live):
            pass
    assert getattr(getattr(raised.value, "response", None), "status_code", None) == 429
    span = tel.span()
    a = span.attributes
    assert a["gcp.gemini.live.end"] == "error"
    assert a["http.response.status_code"] == 429
    assert span.status.status_code.name == "ERROR"
    assert "gen_ai.usage.cost.amount" not in a
    assert tel.total("gcp.gemini.requests", http__response__status_code=429) == 1
    assert tel.total("gcp.gemini.quota.exceeded") == 1
    # The refusal's body is Google's 429: the quota it names is read, as for any call.
    [hit] = tel.points("gcp.gemini.quota.exceeded")
    assert hit.attributes["gcp.gemini.quota.id"].startswith("GenerateRequestsPerMinute")
    assert [e.name for e in span.events].count("gcp.gemini.quota.exceeded") == 1
    assert sessions_open(tel) is None  # never opened


async def test_a_session_refused_at_setup_ends_with_its_close_code(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript(close_on_setup=(1008, "models/x is not found")))
    with pytest.raises(errors.APIError) as raised:
        async with connect(live) as session:
            await say(session)
    assert raised.value.code == 1008
    a = tel.span().attributes
    assert a["gcp.gemini.live.close_code"] == 1008
    assert a["error.type"] == "1008"
    assert sessions_open(tel) is None  # refused before the SDK handed a session over


async def test_a_connect_cancelled_before_setup_completes_ends_its_span(
    live: FakeLive, tel: Telemetry
) -> None:
    live.enqueue(LiveScript([("hold",)]))

    async def slow_setup() -> None:
        async with connect(live):
            pass

    # The fake answers setup at once: cancel while the handshake is still under way.
    task = asyncio.ensure_future(slow_setup())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    a = tel.span().attributes
    assert a["gcp.gemini.live.end"] == "cancelled"
    assert a["error.type"] == "CancelledError"
    assert sessions_open(tel) is None


async def test_an_unknown_model_is_unpriced_with_a_reason(live: FakeLive, tel: Telemetry) -> None:
    live.enqueue(LiveScript.turns(turn("x", usage(10, 5))))
    async with connect(live, model="gemini-9-live-nobody-knows") as session:
        await say(session)
    a = tel.span().attributes
    assert a["gcp.gemini.cost.unpriced_reason"] == "unknown_model"
    assert "gen_ai.usage.cost.amount" not in a
    assert a["gen_ai.usage.input_tokens"] == 10
    assert tel.total("gcp.gemini.cost.unpriced_calls") == 1


async def test_uninstrumented_sessions_are_not_traced(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    from opentelemetry.instrumentation.gemini import GeminiInstrumentor

    tel = instrument()
    GeminiInstrumentor().uninstrument()
    live.enqueue(LiveScript.turns(turn("x", usage(10, 5))))
    async with connect(live) as session:
        await say(session)
    assert tel.spans() == ()


def test_the_fake_binds_loopback_and_stops_itself() -> None:
    with FakeLive(max_lifetime=0.2) as server:
        assert server.url.startswith("https://127.0.0.1:")
        server._thread.join(5)  # type: ignore[union-attr]
        assert not server._thread.is_alive()  # type: ignore[union-attr]


# --- garbage collection never waits on us ---------------------------------------------------
async def test_a_session_dropped_in_a_cycle_is_noticed_without_taking_a_lock(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    """The drop is noticed by a weakref callback, which runs wherever the collector runs: here
    on another thread while the counters' lock and the open-session count's lock are held (as
    a collection or another session would hold them). The collection must not wait; the
    session is recorded by the next drain."""
    import threading

    from opentelemetry.instrumentation.gemini import instrumentor

    tel = instrument(tier="tier_1")
    live.enqueue(LiveScript.turns(turn("x", usage(10, 5))))
    manager = connect(live)
    session = await manager.__aenter__()
    await say(session)
    cycle: dict[str, Any] = {"manager": manager, "session": session}
    cycle["self"] = cycle
    del manager, session, cycle

    assert instrumentor.active_recorder is not None
    provider_instruments = instrumentor.active_recorder.instruments
    assert len(provider_instruments.live_usage) == 1  # the turn's usage, not counted yet
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with (
            provider_instruments.counters._calls._lock,
            provider_instruments.live_sessions._lock,
            provider_instruments.live_usage._lock,  # a drain (collection, session end) under way
        ):
            held.set()
            release.wait(30)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(10)
    done = threading.Event()
    threading.Thread(target=lambda: (gc.collect(), done.set()), daemon=True).start()
    try:
        assert done.wait(10), "gc.collect() waited on the instrumentation"
    finally:
        release.set()
    drain_abandoned()
    assert tel.span().attributes["gcp.gemini.live.end"] == "abandoned"
    assert sessions_open(tel) == 0


# --- the concurrent session limit, as data ----------------------------------------------------
def test_session_limits_come_from_the_data_and_can_be_overridden() -> None:
    from opentelemetry.instrumentation.gemini.quota.limits import LimitsFileError, LimitTable

    table = LimitTable.load()
    assert table.lookup(MODEL, "tier_1").live_sessions == 50  # type: ignore[union-attr]
    assert table.lookup(MODEL, "tier_3").live_sessions == 1000  # type: ignore[union-attr]
    assert table.lookup(MODEL, "free").live_sessions is None  # type: ignore[union-attr]
    # Native-audio models: no session limit published in the seed data.
    native = "gemini-2.5-flash-native-audio-preview-09-2025"
    assert table.lookup(native, "tier_1").live_sessions is None  # type: ignore[union-attr]
    mine = LimitTable.load(overrides={"gemini-2.5-flash-live": {"tier_1": {"live_sessions": 80}}})
    assert mine.lookup(MODEL, "tier_1").live_sessions == 80  # type: ignore[union-attr]
    assert mine.lookup(MODEL, "tier_1").tpm == 4_000_000  # type: ignore[union-attr]
    with pytest.raises(LimitsFileError, match="live_sessions"):
        LimitTable.load(overrides={MODEL: {"tier_1": {"live_sessions": -1}}})


# --- usage messages are counted at the next drain, once ---------------------------------------
def _instruments() -> Any:
    from opentelemetry.instrumentation.gemini import instrumentor

    assert instrumentor.active_recorder is not None
    return instrumentor.active_recorder.instruments


def _ledger_tokens(instruments: Any) -> float:
    """Input tokens in the counters' rows, read without a collection (what a drain moved)."""
    counters = instruments.counters
    return sum(row[1] for _key, row in counters._rows())


async def test_usage_appears_at_the_next_collection_and_is_never_counted_twice(
    live: FakeLive, tel: Telemetry
) -> None:
    """A usage message is only queued when the app receives it; the next collection prices and
    counts it while the session is open; later collections and the session's end add nothing
    more, and the span's totals are those the counters got."""
    live.enqueue(
        LiveScript.turns(
            turn("one", usage(1000, 500, response_audio=500)),
            turn("two", usage(2000, 100, response_audio=100)),
        )
    )
    instruments = _instruments()
    first_usd = usd(text_in=1000, audio_out=500)
    both_usd = first_usd + usd(text_in=2000, audio_out=100)
    async with connect(live) as session:
        await say(session)
        assert len(instruments.live_usage) == 1  # queued: nothing read, priced or counted yet
        assert _ledger_tokens(instruments) == 0
        assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 1000
        assert len(instruments.live_usage) == 0
        assert tel.total("gcp.gemini.cost") == pytest.approx(first_usd)
        assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 1000  # again
        await say(session)
        assert len(instruments.live_usage) == 1
    # The session's end drained its own message before the span was written.
    assert len(instruments.live_usage) == 0
    a = tel.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 3000
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(both_usd)
    for _ in range(2):
        assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 3000
        assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="output") == 600
        assert tel.total("gcp.gemini.cost") == pytest.approx(both_usd)
        assert tel.total("gcp.gemini.cost.list") == pytest.approx(both_usd)
        assert tel.total("gcp.gemini.requests", gen_ai__operation__name=OP) == 1


async def test_the_tpm_window_holds_a_turn_at_the_second_it_arrived(
    live: FakeLive, tel: Telemetry
) -> None:
    """The windows are fed at a drain, but at the second each usage message arrived: a turn
    drained a minute later is out of the last minute, not in it; every read of the windows
    (the gauges, ``quota_status``) drains first."""
    from opentelemetry.instrumentation.gemini import quota_status

    instruments = _instruments()
    now = [float(int(time.time()))]
    instruments.live_usage.clock = instruments.windows.clock = lambda: now[0]
    live.enqueue(
        LiveScript.turns(turn("one", usage(1000, 5)), turn("two", usage(300, 5)), session_id="s")
    )

    def tpm() -> float:
        [point] = tel.points(
            "gcp.gemini.quota.usage",
            gen_ai__request__model=MODEL,
            gcp__gemini__quota__dimension="tpm",
        )
        return point.value

    async with connect(live) as session:
        await say(session)  # arrives at T
        now[0] += 61  # read a minute later: the turn is out of the window, though just drained
        assert len(instruments.live_usage) == 1
        assert tpm() == 0
        await say(session)  # arrives at T+61
        now[0] += 30
        status = quota_status(MODEL)
        assert status is not None and status.usage["tpm"] == 300
        assert tpm() == 300
    # Billed USD went to the spend windows as well (10 minutes: both turns).
    assert instruments.windows.spend_10m_total() == pytest.approx(
        usd(text_in=1000, text_out=5) + usd(text_in=300, text_out=5)
    )


async def test_a_full_queue_counts_a_usage_message_at_once(
    live: FakeLive, tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.instrumentation.gemini.record import live as record_live

    monkeypatch.setattr(record_live, "MAX_PENDING", 1)
    instruments = _instruments()
    live.enqueue(LiveScript.turns(turn("one", usage(100, 5)), turn("two", usage(20, 5))))
    async with connect(live) as session:
        await say(session)
        await say(session)
        assert len(instruments.live_usage) == 1  # the first queued, the second counted at once
        assert _ledger_tokens(instruments) == 20
    assert tel.span().attributes["gen_ai.usage.input_tokens"] == 120
    assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 120
    assert tel.total("gcp.gemini.cost") == pytest.approx(usd(text_in=120, text_out=10))


async def test_usage_queued_before_uninstrument_is_counted_once(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    from opentelemetry.instrumentation.gemini import GeminiInstrumentor

    tel = instrument(tier="tier_1")
    instruments = _instruments()
    live.enqueue(LiveScript.turns(turn("one", usage(100, 5))))
    async with connect(live) as session:
        await say(session)
        assert len(instruments.live_usage) == 1
        GeminiInstrumentor().uninstrument()
        # The provider's counters still export, and still count what was queued.
        assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 100
    assert tel.span().attributes["gen_ai.usage.input_tokens"] == 100
    assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 100
    assert tel.total("gcp.gemini.cost") == pytest.approx(usd(text_in=100, text_out=5))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_child_counts_none_of_the_parents_queued_usage(
    live: FakeLive, tel: Telemetry
) -> None:
    instruments = _instruments()
    live.enqueue(LiveScript.turns(turn("one", usage(100, 5))))
    async with connect(live) as session:
        await say(session)
        assert len(instruments.live_usage) == 1
        child = in_forked_child(  # what the child would export
            lambda: {
                "queued": len(instruments.live_usage),
                "tokens": tel.total("gcp.gemini.tokens"),
            }
        )
        assert child == {"queued": 0, "tokens": 0}
        assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 100
    assert tel.span().attributes["gen_ai.usage.input_tokens"] == 100
    assert tel.total("gcp.gemini.tokens", gcp__gemini__token__type="input") == 100


async def test_each_turn_is_priced_on_its_own_not_the_session_summed(
    live: FakeLive, instrument: Callable[..., Telemetry], tmp_path: Any
) -> None:
    """Deferred pricing keeps per-turn prices: a price that depends on the prompt's size (a
    long-context tier, here from a prices file) applies to each turn, as Google bills each
    turn as a request; two turns whose sum crosses the threshold stay at the standard rate."""
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "version": "live-cliff-test",
                "models": {
                    MODEL: {
                        "input": 1.0,
                        "output": 2.0,
                        "long_context": {
                            "above_prompt_tokens": 1000,
                            "input": 10.0,
                            "output": 20.0,
                        },
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    tel = instrument(tier="tier_1", prices_file=str(prices))
    live.enqueue(LiveScript.turns(turn("one", usage(600, 10)), turn("two", usage(600, 10))))
    async with connect(live) as session:
        await say(session)
        await say(session)
    expected = 2 * (600 * 1.0 + 10 * 2.0) / 1e6
    assert tel.span().attributes["gen_ai.usage.cost.amount"] == pytest.approx(expected)
    assert tel.total("gcp.gemini.cost") == pytest.approx(expected)
