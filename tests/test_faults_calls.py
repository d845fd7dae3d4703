"""What surrounds a call and must not break or leak either: tools and chats with content
capture, quota_status() from a finalizer, hostile settings and data files, and the CLI.
Everything through the real client against the fake server, compared with the bare call."""

# No `from __future__ import annotations` here: google-genai 2.x reads the tools' annotations
# as types to declare them to the model, and cannot read them as strings.
import base64
import contextlib
import gc
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini import (
    FileSystemUploader,
    GeminiInstrumentor,
    LimitsFileError,
    PricesFileError,
    quota_status,
)
from opentelemetry.instrumentation.gemini.bounds import MAX_CONTENT_PART, MAX_CONTENT_TOTAL
from opentelemetry.instrumentation.gemini.cli import main as cli_main
from opentelemetry.instrumentation.gemini.config import ENV_CAPTURE_CONTENT, ENV_TIER
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

MODEL = "gemini-2.5-flash"
HUGE = 200_000  # characters: far above MAX_CONTENT_PART
# A span attribute holding a few capped parts (and the JSON around them) stays below this.
BOUND = 4 * MAX_CONTENT_PART
MAX_USER_FILE = 16 * 1024 * 1024  # bounds.MAX_USER_FILE, as the error message says it


def _longest_attribute(telemetry: Telemetry) -> tuple[str, int]:
    return max(
        (
            (key, len(str(value)))
            for s in telemetry.all_spans()
            for key, value in s.attributes.items()
        ),
        key=lambda pair: pair[1],
    )


# --- captured tool calls and responses are capped like texts -----------------------------------
def lookup(city: str) -> str:
    """Looks a city up."""
    return "r" * HUGE


def _huge_call() -> dict[str, Any]:
    part = {"functionCall": {"name": "lookup", "args": {"city": "c" * HUGE}, "id": "call-1"}}
    return {
        "candidates": [
            {"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}
        ]
    }


def _chat_with_a_huge_tool_round(fake: FakeGemini) -> list[Any]:
    fake.enqueue(MODEL, Reply(extra=_huge_call()), Reply(text="done"))
    client = make_client(fake)  # held: a chat does not keep its client open
    chat = client.chats.create(model=MODEL, config={"tools": [lookup]})
    assert chat.send_message("q").text == "done"
    return fake.requests[-1]["body"]["contents"]


@pytest.mark.parametrize("mode", ["SPAN_ONLY", "SPAN_AND_EVENT"])
def test_captured_tool_arguments_and_results_are_capped(
    fake: FakeGemini, instrument: Callable[..., Telemetry], mode: str
) -> None:
    """A chat sends the model's function call and the tool's result back in its history: on
    the span they are capped as a text is, while the request itself is untouched."""
    bare = _chat_with_a_huge_tool_round(fake)
    telemetry = instrument(capture_content=mode)
    assert _chat_with_a_huge_tool_round(fake) == bare  # the same request, whole
    key, longest = _longest_attribute(telemetry)
    assert longest < BOUND, (key, longest)
    second = telemetry.spans()[-1]
    messages = json.loads(second.attributes["gen_ai.input.messages"])
    call = messages[1]["parts"][0]
    assert call["type"] == "tool_call" and call["name"] == "lookup"
    assert call["arguments"].startswith('{"city": "ccc') and "more characters]" in call["arguments"]
    response = messages[2]["parts"][0]
    assert response["type"] == "tool_call_response"
    assert "more characters]" in response["response"]
    first = json.loads(telemetry.spans()[0].attributes["gen_ai.output.messages"])
    assert "more characters]" in first[0]["parts"][0]["arguments"]


def _captured_as_sent_bare(
    fake: FakeGemini, instrument: Callable[..., Telemetry], contents: Any
) -> Telemetry:
    """``contents`` sent bare, then with content capture on: the same request both times."""
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents=contents)
    bare = fake.requests[-1]["body"]
    telemetry = instrument(capture_content=True)
    client.models.generate_content(model=MODEL, contents=contents)
    assert fake.requests[-1]["body"] == bare
    return telemetry


def _history(turns: int) -> list[dict[str, Any]]:
    """A chat's history, oldest first: turn i says ``turn i`` and 1,000 characters more."""
    return [
        {"role": "user" if i % 2 == 0 else "model", "parts": [{"text": f"turn {i} " + "h" * 1_000}]}
        for i in range(turns)
    ]


def test_a_long_history_is_captured_newest_first_within_the_total_bound(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """A long chat sends its whole history on every turn: each part is capped, but 1,000 turns
    made an attribute of a megabyte, on every later span. The list stops at MAX_CONTENT_TOTAL:
    the newest turns are kept, the older ones counted in an ``omitted`` part. The request is
    untouched."""
    contents = _history(1_001)
    telemetry = _captured_as_sent_bare(fake, instrument, contents)
    text = telemetry.span().attributes["gen_ai.input.messages"]
    assert len(text) <= MAX_CONTENT_TOTAL + MAX_CONTENT_PART
    messages = json.loads(text)
    first, *rest = messages
    omitted, kept = first["parts"][0], first["parts"][1:]
    assert omitted["type"] == "omitted"
    assert omitted["count"] + len(messages) == 1_001  # every turn is recorded or counted
    assert [p["type"] for p in kept] == ["text"]
    assert rest[-1]["parts"][0]["content"].startswith("turn 1000 ")  # the newest, whole
    assert rest[-1]["role"] == "user"


def test_a_content_uploader_still_gets_the_whole_long_history(
    fake: FakeGemini, instrument: Callable[..., Telemetry], tmp_path: Path
) -> None:
    uploads = tmp_path / "uploads"
    instrument(content_uploader=FileSystemUploader(uploads))
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents=_history(1_001))
    deadline = time.monotonic() + 10
    while not list(uploads.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    [stored] = uploads.glob("*.json")
    assert len(json.loads(stored.read_text())["input_messages"]) == 1_001


def test_a_system_instruction_of_a_thousand_parts_is_captured_within_the_total_bound(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    parts = [f"rule {i}: " + "r" * 1_000 for i in range(1_000)]
    config = {"system_instruction": {"parts": [{"text": p} for p in parts]}}
    telemetry = instrument(capture_content=True)
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x", config=config)
    text = telemetry.span().attributes["gen_ai.system_instructions"]
    assert len(text) <= MAX_CONTENT_TOTAL + MAX_CONTENT_PART
    recorded = json.loads(text)
    *kept, omitted = recorded
    assert [p["content"] for p in kept] == parts[: len(kept)]  # the first ones, in order
    assert omitted == {"type": "omitted", "count": 1_000 - len(kept)}


def test_an_answer_of_a_thousand_function_calls_is_captured_within_the_total_bound(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    calls = [
        {"functionCall": {"name": f"tool_{i}", "args": {"q": "a" * 1_000}}} for i in range(1_000)
    ]
    answer = {"candidates": [{"content": {"parts": calls, "role": "model"}, "index": 0}]}
    telemetry = instrument(capture_content=True)
    fake.enqueue(None, Reply(extra=answer))
    client = make_client(fake)
    response = client.models.generate_content(model=MODEL, contents="x")
    assert len(response.function_calls or ()) == 1_000  # the app's answer, whole
    text = telemetry.span().attributes["gen_ai.output.messages"]
    assert len(text) <= MAX_CONTENT_TOTAL + MAX_CONTENT_PART
    [message] = json.loads(text)
    *kept, omitted = message["parts"]
    assert [p["name"] for p in kept] == [f"tool_{i}" for i in range(len(kept))]
    assert omitted == {"type": "omitted", "count": 1_000 - len(kept)}


def test_captured_base64_text_and_uris_are_capped(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """Inline data given as base64 text (a caller's dict) is recorded without it, as bytes are;
    a file URI, a role and a MIME type are capped."""
    data = base64.b64encode(b"z" * HUGE).decode()
    contents = [
        {
            "role": "user",
            "parts": [
                {"inline_data": {"mime_type": "image/png", "data": data}},
                {"file_data": {"file_uri": "gs://b/" + "u" * HUGE, "mime_type": "image/png"}},
            ],
        }
    ]
    telemetry = _captured_as_sent_bare(fake, instrument, contents)
    key, longest = _longest_attribute(telemetry)
    assert longest < BOUND, (key, longest)
    blob, uri = json.loads(telemetry.span().attributes["gen_ai.input.messages"])[0]["parts"]
    assert blob == {"type": "blob", "mime_type": "image/png", "modality": "image", "content": ""}
    assert uri["uri"].startswith("gs://b/uuu") and "more characters]" in uri["uri"]


def test_an_unserializable_tool_call_in_the_history_keeps_the_rest(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """Arguments nested deeper than JSON can write: that one value is named, the other
    messages are still captured."""
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5_000):
        node["a"] = {}
        node = node["a"]
    history = [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"function_call": {"name": "f", "args": deep}}]},
    ]
    telemetry = instrument(capture_content=True)
    client = make_client(fake)
    # The SDK's own serialization may give up too (its error, unchanged).
    with contextlib.suppress(RecursionError):
        client.models.generate_content(model=MODEL, contents=history)
    messages = json.loads(telemetry.span().attributes["gen_ai.input.messages"])
    assert messages[0]["parts"] == [{"type": "text", "content": "hi"}]
    assert messages[1]["parts"][0]["arguments"] == "[dict not serializable]"


# --- quota_status() from a finalizer never waits for our locks -----------------------------------
def test_quota_status_from_a_finalizer_during_our_collection_never_hangs(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """An app's ``__del__`` calling quota_status() runs wherever the collector starts: here
    (collection threshold 1) inside our metrics callbacks, holding our counters' lock. It
    answers None there instead of waiting for that lock forever; outside, the real status."""
    telemetry = instrument()
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    seen: list[object] = []
    running = [True]

    class Reporter:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            seen.append(quota_status(MODEL))
            if running[0]:
                Reporter()  # the next collection finds another one

    done = threading.Event()

    def work() -> None:
        threshold = gc.get_threshold()
        Reporter()
        gc.set_threshold(1)
        try:
            for _ in range(20):
                client.models.generate_content(model=MODEL, contents="x")
                telemetry.reader.get_metrics_data()
        finally:
            gc.set_threshold(*threshold)
            running[0] = False
        done.set()

    threading.Thread(target=work, daemon=True).start()
    assert done.wait(60), "quota_status() in a finalizer waited for a lock we held"
    gc.collect()
    assert seen and all(s is None for s in seen)  # every finalizer ran inside a collection
    status = quota_status(MODEL)
    assert status is not None and status.model == MODEL


# --- hostile settings --------------------------------------------------------------------------
@pytest.mark.parametrize("env", [ENV_TIER, ENV_CAPTURE_CONTENT])
def test_a_huge_setting_is_warned_about_in_a_bounded_line(
    fake: FakeGemini,
    instrument: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    env: str,
) -> None:
    monkeypatch.setenv(env, "x" * 1_000_000)
    with caplog.at_level(logging.WARNING):
        telemetry = instrument()
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    assert telemetry.span().attributes["gcp.gemini.tier"] == "unknown"
    [warning] = [r.getMessage() for r in caplog.records if env in r.getMessage()]
    assert len(warning) < 500 and "more]" in warning


def _instrument_in_thread(**config: Any) -> BaseException | None:
    """instrument(**config) on a thread: what it raised, or fail if it does not return."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            GeminiInstrumentor().instrument(**config)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    assert outcome, f"instrument({config}) did not return"
    return outcome[0]


@pytest.mark.parametrize(
    ("key", "error"), [("prices_file", PricesFileError), ("limits_file", LimitsFileError)]
)
def test_a_fifo_as_a_data_file_fails_at_once(
    tmp_path: Path, key: str, error: type[Exception]
) -> None:
    """A named pipe (or a device) is not a data file: opening it to read would wait for a
    writer forever, reading /dev/zero would never end."""
    fifo = tmp_path / "prices.json"
    os.mkfifo(fifo)
    raised = _instrument_in_thread(**{key: str(fifo)})
    assert isinstance(raised, error) and "not a regular file" in str(raised)
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


@pytest.mark.parametrize(
    ("key", "error"), [("prices_file", PricesFileError), ("limits_file", LimitsFileError)]
)
def test_an_oversized_data_file_is_refused_unread(
    tmp_path: Path, key: str, error: type[Exception]
) -> None:
    big = tmp_path / "big.json"
    with big.open("w") as fh:
        fh.write('{"version": "1", "models": {}, "notes": "')
        fh.truncate(MAX_USER_FILE + 10)  # sparse: no disk used
    raised = _instrument_in_thread(**{key: str(big)})
    assert isinstance(raised, error) and "larger than 16 MiB" in str(raised)
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


# --- CLI ---------------------------------------------------------------------------------------
def test_doctor_reports_a_malformed_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1")
    for name in ("TRACES", "METRICS"):
        monkeypatch.delenv(f"OTEL_{name}_EXPORTER", raising=False)
        monkeypatch.delenv(f"OTEL_EXPORTER_OTLP_{name}_ENDPOINT", raising=False)
    out = io.StringIO()
    code = cli_main(["doctor", "--json"], out)
    checks = {c["name"]: c for c in json.loads(out.getvalue())["checks"]}
    assert code in (0, 1)
    for name in ("traces exporter", "metrics exporter"):
        if "otlp (" in checks[name]["detail"]:
            assert checks[name]["status"] == "warn"
            assert "Invalid IPv6 URL" in checks[name]["detail"]


def test_cli_refuses_a_fifo_prices_file(tmp_path: Path) -> None:
    fifo = tmp_path / "prices.json"
    os.mkfifo(fifo)
    out = io.StringIO()
    outcome: list[int] = []
    thread = threading.Thread(
        target=lambda: outcome.append(
            cli_main(["prices", MODEL, "--prices-file", str(fifo), "--json"], out)
        ),
        daemon=True,
    )
    thread.start()
    thread.join(20)
    assert outcome == [3], "the CLI waited on a named pipe"
    assert "not a regular file" in json.loads(out.getvalue())["error"]
