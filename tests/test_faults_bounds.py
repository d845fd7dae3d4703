"""What users and servers can send that must not break or leak through telemetry: keys echoed
in errors, requests we must not consume, thousands of model names, numbers beyond int64, huge
strings, span processors that raise, and re-instrumentation on the same providers."""

from __future__ import annotations

import gc
import json
import logging
import tracemalloc
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import start_http_server

from conftest import FAKE_KEY, Telemetry, make_client
from opentelemetry.instrumentation.gemini import FileSystemUploader, GeminiInstrumentor, bounds
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)
from test_cost import instrumented_on_a_prometheus_registry

MODEL = "gemini-2.5-flash"
# Shaped like a Google API key, built at run time so no key-shaped literal is committed.
GOOGLE_SHAPED_KEY = "AIza" + "Q" * 35


def _exported_text(telemetry: Telemetry) -> str:
    """Every string spans (a call's and its children's) and metrics export, in one text."""
    parts: list[str] = []
    for span in telemetry.all_spans():
        parts.append(span.name)
        parts.append(str(span.status.description))
        parts.append(json.dumps(dict(span.attributes or {}), default=str))
        for event in span.events:
            parts.append(json.dumps(dict(event.attributes or {}), default=str))
    for points in telemetry.metrics().values():
        for point in points:
            parts.append(json.dumps(dict(point.attributes), default=str))
    return "\n".join(parts)


# --- 2. the API key never exported, even when the server repeats it ---------------------------
def _echoing_body(status: int) -> dict[str, Any]:
    body = quota_error_body(quota_id=f"PerMinute-{FAKE_KEY}") if status == 429 else {}
    error = body.get("error", {"code": status, "status": "INVALID_ARGUMENT"})
    error["message"] = (
        f"API key not valid: key={FAKE_KEY} (also seen: {GOOGLE_SHAPED_KEY}). "
        + error.get("message", "")
    )
    return {"error": error}


@pytest.mark.parametrize("status", [400, 403, 429])
def test_a_key_the_server_repeats_is_redacted_everywhere(
    fake: FakeGemini, telemetry: Telemetry, status: int
) -> None:
    fake.enqueue(None, Reply(status=status, error_body=_echoing_body(status)))
    client = make_client(fake)
    with pytest.raises(errors.APIError) as caught:
        client.models.generate_content(model=MODEL, contents="x")
    assert FAKE_KEY in str(caught.value)  # the app's own exception is untouched
    exported = _exported_text(telemetry)
    assert FAKE_KEY not in exported
    assert GOOGLE_SHAPED_KEY not in exported
    assert "[REDACTED]" in str(telemetry.span().status.description)
    [event] = [e for e in telemetry.span().events if e.name == "exception"]
    assert "[REDACTED]" in str(event.attributes["exception.message"])


@pytest.mark.parametrize(
    ("header", "served"),
    [("Flex", "flex"), ("on_demand_flex", "on_demand_flex"), (FAKE_KEY, None), ("x y", None)],
)
def test_only_a_tier_name_is_taken_from_the_service_tier_header(
    fake: FakeGemini, telemetry: Telemetry, header: str, served: str | None
) -> None:
    """A proxy may rewrite any header: only a name of letters and underscores becomes
    ``gcp.gemini.service_tier``, so an echoed key (shorter than any length cap) stays out."""
    fake.enqueue(None, Reply(headers={"x-gemini-service-tier": header}))
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    assert telemetry.span().attributes.get("gcp.gemini.service_tier") == served
    assert FAKE_KEY.lower() not in _exported_text(telemetry)


def test_a_key_in_a_transport_error_is_redacted(
    fake: FakeGemini, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-HTTP error (here: a connection refused on a URL carrying the key) gets a stack
    trace event: the key is cut from it too."""
    client = make_client(fake)
    dead = types.HttpOptions(base_url=f"http://127.0.0.1:9/{GOOGLE_SHAPED_KEY}/")
    broken = type(client)(api_key=FAKE_KEY, http_options=dead)
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises, unchanged
        broken.models.generate_content(model=MODEL, contents="x")
    exported = _exported_text(telemetry)
    assert GOOGLE_SHAPED_KEY not in exported and FAKE_KEY not in exported
    [event] = [e for e in telemetry.span().events if e.name == "exception"]
    assert "exception.stacktrace" in event.attributes


def test_a_client_per_user_key_keeps_redaction_bounded(
    fake: FakeGemini, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app that makes a client for each of its users' own keys: each key was kept for good,
    and every text we clean was searched for each of them, so memory and the cost of every
    error grew with the users. Keys shaped like Google's need no entry (any such key is
    redacted); of others, the latest are kept. The keys in use are still redacted."""
    monkeypatch.setattr(bounds, "_MAX_KEYS", 4, raising=False)  # our own cap, small here
    options = {"base_url": fake.url}
    clients = [
        genai.Client(api_key=key, http_options=options)
        for user in range(16)
        for key in (f"proxy-key-for-user-{user:06d}", f"AIza{user:035d}")
    ]
    tracemalloc.start()
    try:
        before = _bounds_memory()
        for client in clients:
            client.models.generate_content(model=MODEL, contents="x")
        grown = _bounds_memory() - before
    finally:
        tracemalloc.stop()
    assert grown < 160, grown  # was an entry per key: 32 of them, 296 bytes of tuple alone
    proxy = clients[-2]  # the latest user's: its key is in use
    keys = "proxy-key-for-user-000015 and " + f"AIza{15:035d}"
    echo = {"error": {"code": 400, "message": f"bad keys: {keys}", "status": "INVALID_ARGUMENT"}}
    fake.enqueue(None, Reply(status=400, error_body=echo))
    with pytest.raises(errors.ClientError):
        proxy.models.generate_content(model=MODEL, contents="x")
    status = str(telemetry.spans()[-1].status.description)
    assert "proxy-key-for-user" not in status and "AIza" not in status
    assert status.count("[REDACTED]") == 2


def _bounds_memory() -> int:
    """Bytes allocated by bounds.py (the keys it keeps) and still alive."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, str(Path(bounds.__file__)))]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


# --- 4. content capture never consumes what the SDK still has to read ----------------------
def _parts_sent(fake: FakeGemini) -> list[Any]:
    return [c.get("parts") for c in fake.requests[-1]["body"]["contents"]]


def _generator_contents() -> list[dict[str, Any]]:
    return [{"role": "user", "parts": (dict(text=t) for t in ("hello", "world"))}]


def test_capture_does_not_consume_generator_parts(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents=_generator_contents())
    bare = _parts_sent(fake)
    telemetry = instrument(capture_content=True)
    client.models.generate_content(model=MODEL, contents=_generator_contents())
    assert _parts_sent(fake) == bare == [[{"text": "hello"}, {"text": "world"}]]
    mapped = [{"role": "user", "parts": map(lambda t: {"text": t}, ["a", "b"])}]
    client.models.generate_content(model=MODEL, contents=mapped)
    assert _parts_sent(fake) == [[{"text": "a"}, {"text": "b"}]]
    assert len(telemetry.spans()) == 2


def test_captured_text_parts_are_capped(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(capture_content=True)
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x" * 100_000)
    captured = telemetry.span().attributes["gen_ai.input.messages"]
    assert len(captured) < 17_000
    assert "more characters" in captured


# --- 5. any number of model names: bounded series and logs --------------------------------
def test_model_names_beyond_the_cap_fold_into_other(
    fake: FakeGemini, instrument: Callable[..., Telemetry], caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = instrument(max_models=5)
    client = make_client(fake)
    with caplog.at_level(logging.WARNING):
        for i in range(40):
            client.models.generate_content(model=f"junk-model-{i}", contents="x")
    requests = telemetry.points("gcp.gemini.requests")
    models = {p.attributes["gen_ai.request.model"] for p in requests}
    assert len(models) == 6 and "other" in models
    assert sum(p.value for p in requests) == 40  # not a count lost
    usage_models = {
        p.attributes.get("gen_ai.request.model") for p in telemetry.points("gcp.gemini.quota.usage")
    }
    assert len(usage_models - {None}) <= 6
    # Spans keep each call's own name.
    assert len({s.attributes["gen_ai.request.model"] for s in telemetry.spans()}) == 40
    # One line per unpriced model up to a limit, then one: never one per model for ever.
    unpriced = [r for r in caplog.records if "price" in r.getMessage()]
    assert len(unpriced) <= 21


def test_max_models_from_the_environment(
    fake: FakeGemini, instrument: Callable[..., Telemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_MAX_MODELS", "2")
    telemetry = instrument()
    client = make_client(fake)
    for name in ("a-1", "a-2", "a-3"):
        client.models.generate_content(model=name, contents="x")
    models = {p.attributes["gen_ai.request.model"] for p in telemetry.points("gcp.gemini.requests")}
    assert models == {"a-1", "a-2", "other"}


# --- 6. numbers beyond int64 never break the OTLP export ----------------------------------
def test_huge_numbers_keep_the_otlp_export_working(
    fake: FakeGemini,
    telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One warning per process: as in a fresh one, whatever tests warned before this one.
    monkeypatch.setattr(bounds, "_warned", set())
    huge = {"promptTokenCount": 10**30, "candidatesTokenCount": 10**30}
    fake.enqueue(None, Reply(usage=huge), Reply(usage=huge))
    client = make_client(fake)
    config = types.GenerateContentConfig(top_k=2**70, seed=2**70)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            response = client.models.generate_content(model=MODEL, contents="x", config=config)
    assert response.usage_metadata.prompt_token_count == 10**30  # the app's answer unchanged
    data = telemetry.reader.get_metrics_data()
    encode_metrics(data)  # raised ValueError (int64 out of range) before the fix
    encode_spans([s for s in telemetry.spans()])  # type: ignore[arg-type]
    attrs = telemetry.spans()[0].attributes
    assert "gen_ai.request.seed" not in attrs
    assert attrs["gen_ai.usage.input_tokens"] <= 2**63 - 1
    assert telemetry.total("gcp.gemini.tokens") <= 2 * (2**63 - 1)
    assert sum("clamped" in r.getMessage() for r in caplog.records) == 1


# --- lone surrogates: text UTF-8 cannot encode, from a JSON escape --------------------------
def test_a_lone_surrogate_in_an_answer_keeps_the_prometheus_scrape_working(
    fake: FakeGemini,
) -> None:
    """A JSON escape such as ``\\udc00`` in an answer's modelVersion decodes to a lone
    surrogate. As a metric label it made every later scrape of /metrics fail, the app's own
    metrics included, for the life of the process (the series is cumulative)."""
    with instrumented_on_a_prometheus_registry() as registry:
        server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        try:
            fake.enqueue(None, Reply(model_version=f"{MODEL}-\udc00"))
            client = make_client(fake)
            client.models.generate_content(model=MODEL, contents="x")
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as answer:
                scraped = answer.read().decode()
        finally:
            server.shutdown()
    assert f'gen_ai_response_model="{MODEL}-\ufffd"' in scraped
    assert "gcp_gemini_requests_total{" in scraped


def test_lone_surrogates_in_captured_content_are_exported_replaced(
    fake: FakeGemini, instrument: Callable[..., Telemetry], tmp_path: Path
) -> None:
    """Captured content holding a lone surrogate (the caller's prompt, the model's answer)
    lost its whole attribute at export, on the span and on the event, and a
    FileSystemUploader's write failed. Replaced by U+FFFD in what we export; the request and
    the response are the app's, unchanged."""
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    telemetry = instrument(capture_content="SPAN_AND_EVENT", logger_provider=logger_provider)
    fake.enqueue(None, Reply(text="answer \ud83d"))
    client = make_client(fake)
    response = client.models.generate_content(model=MODEL, contents="prompt \udc80")
    assert response.text == "answer \ud83d"
    assert fake.requests[-1]["body"]["contents"][0]["parts"][0]["text"] == "prompt \udc80"
    [span] = telemetry.spans()
    encode_spans([span])  # type: ignore[list-item]
    output = json.loads(span.attributes["gen_ai.output.messages"])
    assert output[0]["parts"][0]["content"] == "answer \ufffd"
    assert "prompt \ufffd" in span.attributes["gen_ai.input.messages"]
    [record] = logs.get_finished_logs()
    encode_logs([record])
    assert "answer \ufffd" in json.dumps(
        dict(record.log_record.attributes or {}), ensure_ascii=False
    )

    instrumentor = GeminiInstrumentor()
    instrumentor.uninstrument()
    instrumentor.instrument(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(),
        content_uploader=FileSystemUploader(tmp_path),
        capture_content="SPAN_ONLY",
    )
    fake.enqueue(None, Reply(text="answer \ud83d"))
    client.models.generate_content(model=MODEL, contents="prompt \udc80")
    instrumentor.uninstrument()  # flushes the uploads
    [stored] = tmp_path.glob("*.json")
    assert "answer \ufffd" in stored.read_text("utf-8")


# --- 7. a span processor that raises does not stop the metrics ----------------------------
class _Raising(SpanProcessor):
    def __init__(self, on: str) -> None:
        self.on = on

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.on == "start":
            raise RuntimeError("processor failed on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.on == "end":
            raise RuntimeError("processor failed on end")


@pytest.mark.parametrize("on", ["start", "end"])
def test_a_raising_span_processor_does_not_stop_the_counts(
    fake: FakeGemini, spans: Any, metric_reader: Any, on: str
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(_Raising(on))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[metric_reader]),
    )
    try:
        client = make_client(fake)
        for _ in range(5):
            assert client.models.generate_content(model=MODEL, contents="x").text
        list(client.models.generate_content_stream(model=MODEL, contents="x"))
        telemetry = Telemetry(spans, metric_reader)
        assert telemetry.total("gcp.gemini.requests") == 6
        assert telemetry.total("gcp.gemini.tokens") == 6 * 20
        durations = telemetry.points("gen_ai.client.operation.duration")
        assert sum(p.count for p in durations) == 6
    finally:
        instrumentor.uninstrument()


# --- 8. bad files raise the documented error ----------------------------------------------
def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("prices", '{"version": "x", "models": ' + _deep(100_000) + "}"),
        ("limits", '{"gemini-2.5-flash": ' + _deep(100_000) + "}"),
        ("limits", '{"version": "x", "spend_limit_10m_usd": {"tier_1": NaN}}'),
        ("limits", '{"version": "x", "spend_limit_10m_usd": {"tier_1": Infinity}}'),
        ("limits", '{"gemini-2.5-flash": {"tier_1": {"rpm": ' + "1" + "0" * 30 + "}}}"),
        ("prices", '{"version": "x", "models": {"m": {"input": NaN}}}'),
        ("prices", '{"version": "x", "models": {"m": {"input": 1' + "0" * 400 + "}}}"),
        (
            "prices",
            '{"version": "x", "models": {"m": {"input": 1, "priority_multiplier": 1'
            + "0" * 400
            + "}}}",
        ),
    ],
)
def test_bad_files_raise_their_own_error(tmp_path: Any, kind: str, text: str) -> None:
    from opentelemetry.instrumentation.gemini.billing.book import PricesFileError
    from opentelemetry.instrumentation.gemini.quota.limits import LimitsFileError

    path = tmp_path / f"{kind}.json"
    path.write_text(text)
    expected = PricesFileError if kind == "prices" else LimitsFileError
    instrumentor = GeminiInstrumentor()
    with pytest.raises(expected):
        instrumentor.instrument(**{f"{kind}_file": str(path)})
    assert not instrumentor.is_instrumented_by_opentelemetry


# --- 9. what we copy is bounded -----------------------------------------------------------
def test_a_huge_html_429_is_cut_to_size(fake: FakeGemini, telemetry: Telemetry) -> None:
    page = "<html><body>" + "Too many requests. " * 280_000 + "</body></html>"  # ~5 MB
    fake.enqueue(None, Reply(status=429, raw_body=page))
    client = make_client(fake)
    with pytest.raises(errors.APIError) as caught:
        client.models.generate_content(model=MODEL, contents="x")
    assert len(str(caught.value)) > 5_000_000  # the app still gets the whole page
    span = telemetry.span()
    assert len(str(span.status.description)) <= 500
    [event] = [e for e in span.events if e.name == "exception"]
    assert len(event.attributes["exception.message"]) <= 4096
    assert telemetry.total("gcp.gemini.requests", http__response__status_code=429) == 1


def test_a_huge_model_version_is_cut_on_spans_and_metrics(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    fake.enqueue(None, Reply(model_version="v" * 1_000_000))
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    assert len(telemetry.span().attributes["gen_ai.response.model"]) <= 256
    for points in telemetry.metrics().values():
        for point in points:
            for value in point.attributes.values():
                assert len(str(value)) <= 256


def test_a_huge_model_name_is_cut(fake: FakeGemini, telemetry: Telemetry) -> None:
    client = make_client(fake)
    client.models.generate_content(model="m" * 5_000, contents="x")
    span = telemetry.span()
    assert len(span.name) < 300
    assert len(span.attributes["gen_ai.request.model"]) <= 256


# --- 3. re-instrumenting on the same providers keeps counting -----------------------------
def test_reinstrument_on_the_same_providers_keeps_the_counters(
    fake: FakeGemini, spans: Any, metric_reader: Any
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    providers = {
        "tracer_provider": tracer_provider,
        "meter_provider": MeterProvider(metric_readers=[metric_reader]),
    }
    telemetry = Telemetry(spans, metric_reader)
    instrumentor = GeminiInstrumentor()
    client = make_client(fake)
    instrumentor.instrument(tier="free", **providers)
    client.models.generate_content(model=MODEL, contents="x")
    instrumentor.uninstrument()
    client.models.generate_content(model=MODEL, contents="x")  # not instrumented: not counted
    instrumentor.instrument(tier="tier_1", **providers)
    try:
        client.models.generate_content(model=MODEL, contents="x")
        assert telemetry.total("gcp.gemini.requests", gcp__gemini__tier="free") == 1
        assert telemetry.total("gcp.gemini.requests", gcp__gemini__tier="tier_1") == 1
        assert telemetry.total("gcp.gemini.tokens", gcp__gemini__tier="tier_1") == 20
        limits = telemetry.points("gcp.gemini.quota.limit")
        assert {p.attributes["gcp.gemini.tier"] for p in limits} == {"tier_1"}
        rpm = telemetry.points(
            "gcp.gemini.quota.usage",
            gcp__gemini__quota__dimension="rpm",
            gen_ai__request__model=MODEL,
        )
        assert [p.value for p in rpm] == [2]  # both instrumented calls, in the same minute
    finally:
        instrumentor.uninstrument()
