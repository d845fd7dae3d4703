"""A hostile or broken server at the transport level: server-sent event streams that reset,
trickle, carry malformed lines or huge events (generate_content_stream, sync and async), and
Live websockets that close with unusual codes, never answer the setup, send binary or oversized
frames, or close while the app sends.

Each case runs bare first, then instrumented, through the real google-genai client against the
loopback fakes (``Reply.sse_body`` / ``trickle`` / ``reset_after``, ``LiveScript``): the app
sees the same result or exception, the span ends with a sensible end, counts are exact and the
key never exported. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.genai import types

from conftest import FAKE_KEY, Telemetry, make_client, run_async
from opentelemetry.instrumentation import gemini
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply
from opentelemetry.instrumentation.gemini.testing.fake_grounding import grounding_metadata
from opentelemetry.instrumentation.gemini.testing.fake_live import FakeLive, LiveScript, close
from opentelemetry.instrumentation.gemini.testing.fake_live import usage as live_usage
from test_faults_bounds import _exported_text
from test_live import live_client

MODEL = "gemini-2.5-flash"
LIVE_MODEL = "gemini-live-2.5-flash-preview"


def _event(obj: Any, eol: str = "\n") -> bytes:
    return f"data: {json.dumps(obj)}{eol}{eol}".encode()


def _chunk(text: str, prompt: int | None = None, output: int = 0, finish: str | None = None):
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL, "responseId": "r1"}
    if prompt is not None:
        out["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        }
    return out


def _stream(fake: FakeGemini, mode: str) -> tuple[Any, ...]:
    """One stream read to its end: ("ok", texts) or ("error", type, message)."""
    client = make_client(fake)
    try:
        if mode == "sync":
            stream = client.models.generate_content_stream(model=MODEL, contents="hi")
            return ("ok", [chunk.text for chunk in stream])

        async def read() -> list[Any]:
            stream = await client.aio.models.generate_content_stream(model=MODEL, contents="hi")
            return [chunk.text async for chunk in stream]

        return ("ok", run_async(asyncio.wait_for(read(), 20)))
    except Exception as error:
        return ("error", type(error).__name__, str(error))


# name -> (reply, chunks the app reads, tokens (input, output) or None, stream end)
_U = {"promptTokenCount": 5}
SSE_CASES: dict[str, tuple[Reply, int, tuple[int, int] | None, str]] = {
    "reset_mid_event": (Reply(chunks=3, reset_after=30), 0, None, "error"),
    "reset_mid_stream": (
        Reply(
            sse_body=_event(_chunk("a", 5, 1)) * 2, reset_after=len(_event(_chunk("a", 5, 1))) + 25
        ),
        1,
        (5, 1),
        "error",
    ),
    "trickle": (Reply(chunks=2, text="Hi there", trickle=0.0002), 2, (12, 8), "exhausted"),
    "no_data_prefix": (
        Reply(sse_body=b"event: x\n\n" + _event(_chunk("a", 5, 1))),
        0,
        None,
        "error",
    ),
    "invalid_json": (
        Reply(sse_body=_event(_chunk("a", 5, 1)) + b"data: {not json\n\n"),
        1,
        (5, 1),
        "error",
    ),
    "utf8_bom": (
        Reply(sse_body=b"\xef\xbb\xbf" + _event(_chunk("a", 5, 1, "STOP"))),
        0,
        None,
        "error",
    ),
    "crlf_and_lf": (
        Reply(sse_body=_event(_chunk("a", 5, 1), "\r\n") + _event(_chunk("b", 5, 2, "STOP"))),
        2,
        (5, 2),
        "exhausted",
    ),
    "comment_line": (Reply(sse_body=b": ping\n\n" + _event(_chunk("a", 5, 1))), 0, None, "error"),
    "usage_goes_down": (
        Reply(sse_body=_event(_chunk("a", 5, 10)) + _event(_chunk("b", 5, 3, "STOP"))),
        2,
        (5, 3),  # cumulative: the latest wins, never a sum nor the highest
        "exhausted",
    ),
    "usage_repeats": (
        Reply(sse_body=_event(_chunk("a", 5, 3)) + _event(_chunk("b", 5, 3, "STOP"))),
        2,
        (5, 3),
        "exhausted",
    ),
    "usage_after_finish": (
        Reply(
            sse_body=_event(_chunk("a", 5, 1, "STOP"))
            + _event({"usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7}})
        ),
        2,
        (5, 7),
        "exhausted",
    ),
    "error_after_usage": (
        Reply(
            sse_body=_event(_chunk("a", 5, 1))
            + _event({"error": {"code": 500, "message": f"key={FAKE_KEY}", "status": "INTERNAL"}})
        ),
        1,
        (5, 1),
        "error",
    ),
    "empty_200": (Reply(sse_body=b""), 0, None, "exhausted"),
    "html_page_200": (
        Reply(sse_body=f"<html><body>502 Bad Gateway {FAKE_KEY}</body></html>".encode()),
        0,
        None,
        "error",
    ),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", list(SSE_CASES))
def test_a_broken_event_stream_reads_as_bare_and_ends_its_span(
    fake: FakeGemini, instrument: Callable[..., Telemetry], case: str, mode: str
) -> None:
    reply, chunks, tokens, end = SSE_CASES[case]
    fake.enqueue(None, reply)
    bare = _stream(fake, mode)
    telemetry = instrument()
    fake.enqueue(None, reply)
    assert _stream(fake, mode) == bare
    span = telemetry.span()
    attrs = span.attributes or {}
    assert attrs["gcp.gemini.stream.end"] == end
    assert attrs["gcp.gemini.stream.chunks"] == chunks
    assert (span.status.status_code.name == "ERROR") == (end == "error")
    assert telemetry.total("gcp.gemini.requests") == 1
    if tokens is None:
        assert "gen_ai.usage.input_tokens" not in attrs
        assert telemetry.points("gen_ai.client.token.usage") == []
    else:
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == tokens
        assert (
            telemetry.total("gen_ai.client.token.usage", gen_ai__token__type="input") == tokens[0]
        )
        assert (
            telemetry.total("gen_ai.client.token.usage", gen_ai__token__type="output")
            == (tokens[1])
        )
    assert FAKE_KEY not in _exported_text(telemetry)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_last_event_of_usage_only_keeps_the_finish_reason_and_grounding(
    fake: FakeGemini, instrument: Callable[..., Telemetry], mode: str
) -> None:
    """A stream may end with an event of usage only, after the one carrying the finish reason
    and the grounding: the span keeps both (Google Search grounding is billed)."""
    ending = _chunk("b", 5, 1, "MAX_TOKENS")
    ending["candidates"][0]["groundingMetadata"] = grounding_metadata()
    usage_only = {k: v for k, v in _chunk("", 5, 3).items() if k != "candidates"}
    body = _event(_chunk("a ", 5, 0)) + _event(ending) + _event(usage_only)
    search = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    client = make_client(fake)

    def read() -> list[Any]:
        fake.enqueue(None, Reply(sse_body=body))
        if mode == "sync":
            stream = client.models.generate_content_stream(
                model=MODEL, contents="hi", config=search
            )
            return [(c.text, c.usage_metadata is not None) for c in stream]

        async def chunks() -> list[Any]:
            stream = await client.aio.models.generate_content_stream(
                model=MODEL, contents="hi", config=search
            )
            return [(c.text, c.usage_metadata is not None) async for c in stream]

        return run_async(asyncio.wait_for(chunks(), 20))

    bare = read()
    assert [has_usage for _, has_usage in bare] == [True, True, True] and len(bare) == 3
    telemetry = instrument()
    assert read() == bare
    attrs = telemetry.span().attributes or {}
    assert attrs["gen_ai.response.finish_reasons"] == ("max_tokens",)
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gcp.gemini.grounding.search_queries"] == 1
    assert attrs["gcp.gemini.grounding.sources"] == ("google_search",)
    assert attrs["gcp.gemini.cost.grounding.list_amount"] > 0


def test_a_single_8_mb_event_is_read_and_captured_capped(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    body = _event(_chunk("y" * (8 << 20), 5, 3, "STOP"))
    telemetry = instrument(capture_content=True)
    fake.enqueue(None, Reply(sse_body=body))
    [text] = _stream(fake, "sync")[1]
    assert len(text) == 8 << 20
    attrs = telemetry.span().attributes or {}
    assert attrs["gen_ai.usage.output_tokens"] == 3
    [message] = json.loads(attrs["gen_ai.output.messages"])
    assert message["parts"][0]["content"].endswith(f"...[{(8 << 20) - 16384} more characters]")


def _ours(snapshot: tracemalloc.Snapshot) -> int:
    package = os.path.dirname(gemini.__file__)
    return sum(
        stat.size
        for stat in snapshot.filter_traces([tracemalloc.Filter(True, f"{package}/*")]).statistics(
            "filename"
        )
    )


@pytest.mark.parametrize("capture", [False, True])
def test_twenty_thousand_tiny_events_keep_our_state_constant(
    fake: FakeGemini, instrument: Callable[..., Telemetry], capture: bool
) -> None:
    """What we hold per stream must not grow with its chunks: with content capture on, the
    text is kept as runs capped at what the span records, not as every chunk's SDK parts
    (which kept ~600 bytes a chunk alive: 12 MB for these 20,000)."""
    n = 20_000
    body = b"".join(_event(_chunk("x", 5, i + 1)) for i in range(n))
    telemetry = instrument(capture_content=capture)
    client = make_client(fake)
    # A first call resolves the model's prices (a one-time cache of its own size, larger with
    # older genai-prices): what is measured below is the stream's own state only.
    client.models.generate_content(model=MODEL, contents="hi")
    fake.enqueue(None, Reply(sse_body=body))
    stream = client.models.generate_content_stream(model=MODEL, contents="hi")
    tracemalloc.start()
    try:
        for i, _ in enumerate(stream):
            if i == 1_000:
                early = _ours(tracemalloc.take_snapshot())
        # Measured while the stream is still open (its span not recorded yet), once garbage
        # is collected: what remains is what something keeps alive (the SDK's chunks are
        # cyclic garbage, collected late on some Pythons).
        gc.collect()
        late = _ours(tracemalloc.take_snapshot())
        total_traced = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert late - early < 16_384 + 8_192, (early, late)  # at most the capture cap, not per chunk
    assert total_traced < 4 << 20, total_traced  # nothing of ours keeps the chunks alive
    attrs = telemetry.spans()[-1].attributes or {}
    assert attrs["gcp.gemini.stream.chunks"] == n
    assert attrs["gen_ai.usage.output_tokens"] == n  # the latest cumulative usage, not a sum
    if capture:
        [message] = json.loads(attrs["gen_ai.output.messages"])
        assert message["parts"] == [
            {"type": "text", "content": "x" * 16384 + f"...[{n - 16384} more characters]"}
        ]


def test_a_content_uploader_still_gets_the_whole_streamed_output(
    fake: FakeGemini, instrument: Callable[..., Telemetry], tmp_path: Any
) -> None:
    from opentelemetry.instrumentation.gemini import FileSystemUploader

    uploader = FileSystemUploader(str(tmp_path))
    telemetry = instrument(capture_content=True, content_uploader=uploader)
    n = 20_000
    fake.enqueue(None, Reply(sse_body=b"".join(_event(_chunk("x", 5, 1)) for _ in range(n))))
    _stream(fake, "sync")
    assert telemetry.span().attributes["gen_ai.output.messages_ref"]
    GeminiInstrumentor().uninstrument()  # flushes the upload queue
    [document] = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    [message] = document["output_messages"]
    assert message["parts"] == [{"type": "text", "content": "x" * n}]


# --- the Live API's websocket --------------------------------------------------------------
@pytest.fixture(scope="module")
def live() -> Iterator[FakeLive]:
    with FakeLive(max_lifetime=600, idle_timeout=2) as server:
        yield server


def _text(text: str, complete: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"modelTurn": {"role": "model", "parts": [{"text": text}]}}
    if complete:
        content["turnComplete"] = True
    return {"serverContent": content}


async def _session(live: FakeLive, script: LiveScript, keep_sending: bool = False) -> Any:
    """A session the app runs: one turn, reading to its end (or sending until it fails)."""
    live.enqueue(script)
    seen: list[Any] = []
    try:
        async with live_client(live).aio.live.connect(model=LIVE_MODEL) as session:
            if keep_sending:
                for _ in range(2_000):
                    await session.send_realtime_input(text="hi " * 100)
                    await asyncio.sleep(0)
                return "sent all"
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="hi")]),
                turn_complete=True,
            )
            async for message in session.receive():
                seen.append(
                    (
                        message.server_content is not None,
                        message.usage_metadata is not None,
                        message.go_away is not None,
                    )
                )
    except Exception as error:
        return type(error).__name__, str(error), _code(error), seen
    return seen


def _code(error: BaseException) -> Any:
    """The error's code; websockets' ConnectionClosed's without its deprecated property."""
    if hasattr(error, "rcvd"):
        return None if error.rcvd is None else error.rcvd.code
    return getattr(error, "code", None)


_REASON = f"key={FAKE_KEY} ".ljust(123, "x")  # a close reason is at most 123 bytes
LIVE_CASES: dict[str, tuple[LiveScript, str, int | None]] = {
    **{
        f"close_{code}": (
            LiveScript([("expect",), ("send", _text("a")), close(code, "bye")]),
            "server_closed",
            code,
        )
        for code in (1000, 1001, 1011, 4000, 4999)
    },
    "abnormal_1006": (
        LiveScript([("expect",), ("send", _text("a")), ("abort",)]),
        "server_closed",
        1006,
    ),
    "reason_with_the_key": (LiveScript([("expect",), close(1011, _REASON)]), "server_closed", 1011),
    "setup_closed_with_the_key": (LiveScript(close_on_setup=(1008, _REASON)), "error", 1008),
    "setup_never_answered": (LiveScript(silent_setup=True), "error", 1000),
    "message_of_5_mb": (
        LiveScript([("expect",), ("send", _text("z" * (5 << 20), complete=True))]),
        "server_closed",
        1006,
    ),
    "binary_frame": (
        LiveScript(
            [
                ("expect",),
                (
                    "raw",
                    json.dumps({**_text("a", True), "usageMetadata": live_usage(10, 5)}).encode(),
                ),
            ]
        ),
        "closed",
        1000,
    ),
    "go_away_then_more": (
        LiveScript(
            [
                ("expect",),
                ("send", {"goAway": {"timeLeft": "5s"}}),
                ("send", _text("a")),
                ("send", {**_text("", True), "usageMetadata": live_usage(10, 5)}),
                close(1000, ""),
            ]
        ),
        "closed",  # the app read its turn to the end and left: the goAway changed nothing
        1000,
    ),
}


@pytest.mark.parametrize("case", list(LIVE_CASES))
def test_a_hostile_live_server_reads_as_bare_and_ends_the_session(
    live: FakeLive, instrument: Callable[..., Telemetry], case: str
) -> None:
    """The server's fake ends every session within its idle timeout (2 s): the app's own wait
    for a setup never answered ends there, bare as instrumented."""
    script, end, code = LIVE_CASES[case]
    bare = run_async(asyncio.wait_for(_session(live, script), 20))
    telemetry = instrument()
    assert run_async(asyncio.wait_for(_session(live, script), 20)) == bare
    attrs = telemetry.span().attributes or {}
    assert attrs["gcp.gemini.live.end"] == end
    assert attrs.get("gcp.gemini.live.close_code") == code
    assert telemetry.total("gcp.gemini.requests") == 1
    if case == "go_away_then_more":
        assert attrs["gcp.gemini.live.go_away.time_left"] == 5.0
        assert attrs["gcp.gemini.live.messages"] == 3
    usage = case in ("binary_frame", "go_away_then_more")
    assert attrs.get("gen_ai.usage.input_tokens") == (10 if usage else None)
    assert telemetry.total("gen_ai.client.token.usage", gen_ai__token__type="output") == (
        5 if usage else 0
    )
    assert FAKE_KEY not in _exported_text(telemetry)


def test_the_server_closing_while_the_app_sends(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    """The app's send raises websockets' ConnectionClosedError: the same, with the same warnings
    (none: reading its deprecated ``code`` property warned from us, three times), and the
    session's close code is the frame's."""
    script = LiveScript([("expect",), close(1011, f"overloaded {FAKE_KEY}")])

    def run() -> tuple[Any, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = run_async(asyncio.wait_for(_session(live, script, keep_sending=True), 20))
        return outcome, [str(w.message) for w in caught]

    bare = run()
    assert bare[0][0] == "ConnectionClosedError"
    telemetry = instrument()
    assert run() == bare
    attrs = telemetry.span().attributes or {}
    assert attrs["gcp.gemini.live.close_code"] == 1011
    assert attrs["error.type"] == "1011"
    assert attrs["gcp.gemini.live.end"] == "server_closed"  # from the app's send, not a receive
    assert telemetry.total("gcp.gemini.requests") == 1
    assert FAKE_KEY not in _exported_text(telemetry)


def test_a_send_after_the_app_closed_its_own_session_is_not_the_servers_end(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    """The app closes the session, then sends: websockets' ConnectionClosedOK, sent first. That
    exception left the session; the server did not end it."""

    async def session() -> Any:
        live.enqueue(LiveScript([("expect",), ("expect",)]))
        try:
            async with live_client(live).aio.live.connect(model=LIVE_MODEL) as s:
                await s.close()
                await s.send_realtime_input(text="hi")
        except Exception as error:
            return type(error).__name__, _code(error)
        return None

    bare = run_async(asyncio.wait_for(session(), 20))
    assert bare is not None and bare[0].startswith("ConnectionClosed")
    telemetry = instrument()
    assert run_async(asyncio.wait_for(session(), 20)) == bare
    attrs = telemetry.span().attributes or {}
    assert attrs["gcp.gemini.live.end"] == "error"


def test_live_usage_of_negative_and_huge_counts_is_clamped(
    live: FakeLive, instrument: Callable[..., Telemetry]
) -> None:
    meta = {"promptTokenCount": -5, "responseTokenCount": -(10**30), "totalTokenCount": 10**30}
    script = LiveScript([("expect",), ("send", {**_text("a", True), "usageMetadata": meta})])
    bare = run_async(asyncio.wait_for(_session(live, script), 20))
    telemetry = instrument()
    assert run_async(asyncio.wait_for(_session(live, script), 20)) == bare
    attrs = telemetry.span().attributes or {}
    assert attrs["gen_ai.usage.input_tokens"] == 0
    assert attrs["gen_ai.usage.output_tokens"] == 0
    assert attrs["gcp.gemini.usage.total_tokens"] == 2**53
    for points in telemetry.metrics().values():
        for point in points:
            value = getattr(point, "value", None) or getattr(point, "sum", 0)
            assert -(2**63) <= value < 2**63


# --- the Interactions API's event stream ------------------------------------------------------
def _interaction_stream(fake: FakeGemini, mode: str) -> tuple[Any, ...]:
    """One streamed create read to its end: ("ok", event types) or ("error", type, message)."""
    client = make_client(fake, retry=types.HttpRetryOptions(attempts=1))
    try:
        if mode == "sync":
            stream = client.interactions.create(model=MODEL, input="hi", stream=True)
            return ("ok", [type(event).__name__ for event in stream])

        async def read() -> list[str]:
            stream = await client.aio.interactions.create(model=MODEL, input="hi", stream=True)
            return [type(event).__name__ async for event in stream]

        return ("ok", run_async(asyncio.wait_for(read(), 20)))
    except Exception as error:
        return ("error", type(error).__name__, str(error))


INTERACTION_CASES: dict[str, Reply] = {
    "reset_mid_stream": Reply(reset_after=200),
    "trickle": Reply(trickle=0.0002, chunks=1),
    "invalid_json": Reply(sse_body=b'data: {"event_type": "interaction.start"\n\ndata: {nope\n\n'),
    "empty_200": Reply(sse_body=b""),
    "html_page_200": Reply(sse_body=f"<html>502 {FAKE_KEY}</html>".encode()),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", list(INTERACTION_CASES))
def test_a_broken_interactions_stream_reads_as_bare_and_ends_its_span(
    fake: FakeGemini, instrument: Callable[..., Telemetry], case: str, mode: str
) -> None:
    reply = INTERACTION_CASES[case]
    fake.enqueue(None, reply)
    bare = _interaction_stream(fake, mode)
    telemetry = instrument()
    fake.enqueue(None, reply)
    assert _interaction_stream(fake, mode) == bare
    span = telemetry.span()
    attrs = span.attributes or {}
    assert attrs["gcp.gemini.stream.end"] == ("exhausted" if bare[0] == "ok" else "error")
    if bare[0] == "ok":
        assert attrs["gcp.gemini.stream.chunks"] == len(bare[1])
    assert telemetry.total("gcp.gemini.requests") == 1
    assert FAKE_KEY not in _exported_text(telemetry)
