"""The OpenTelemetry configurations real users run, each through the real client and the fake
server: samplers that record nothing, tight span limits, metric Views, DELTA temporality, several
readers, no SDK at all, providers shut down while the app keeps calling, and content events with
no working logger provider. Whatever the pipeline does with spans and events, the app's calls are
unchanged and every call is counted exactly.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import errors, types
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricReader,
)
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from conftest import FAKE_KEY, Telemetry, in_forked_child, make_client, run_async
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.gemini import GeminiInstrumentor, quota_status
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"
_NO_RETRY = types.GenerateContentConfig(
    http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1))
)
# What one round of _calls() adds: 5 HTTP attempts (one a 429), 3 answers of 12 + 8 tokens.
_REQUESTS, _TOKENS, _VIOLATIONS, _TOKEN_RECORDS = 5, 60, 1, 6


def _calls(fake: FakeGemini, client: Any) -> list[Any]:
    """One round of the calls an app makes: plain, stream, async, a 429 and count_tokens.
    Returns what the app saw of each."""
    seen: list[Any] = [
        client.models.generate_content(model=MODEL, contents="hi").text,
        "".join(c.text for c in client.models.generate_content_stream(model=MODEL, contents="hi")),
    ]

    async def run() -> str:
        return (await client.aio.models.generate_content(model=MODEL, contents="hi")).text

    seen.append(run_async(run()))
    fake.enqueue(MODEL, Reply(status=429, error_body=quota_error_body()))
    try:
        client.models.generate_content(model=MODEL, contents="hi", config=_NO_RETRY)
    except errors.ClientError as error:
        seen.append((type(error), error.code))
    seen.append(client.models.count_tokens(model=MODEL, contents="hi").total_tokens)
    return seen


def _bare(fake: FakeGemini) -> list[Any]:
    fake.reset()
    seen = _calls(fake, make_client(fake))
    fake.reset()
    return seen


def _assert_counts(telemetry: Telemetry, rounds: int) -> None:
    assert telemetry.total("gcp.gemini.requests") == rounds * _REQUESTS
    assert telemetry.total("gcp.gemini.requests", http__response__status_code=429) == rounds
    assert telemetry.total("gcp.gemini.tokens") == rounds * _TOKENS
    assert telemetry.total("gcp.gemini.quota.exceeded") == rounds * _VIOLATIONS
    assert telemetry.total("gcp.gemini.cost") > 0
    usage = telemetry.points("gen_ai.client.token.usage")
    assert sum(p.count for p in usage) == rounds * _TOKEN_RECORDS
    assert sum(p.sum for p in usage) == rounds * _TOKENS
    duration = telemetry.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in duration) == rounds * _REQUESTS
    status = quota_status(MODEL)
    assert status is not None
    assert status.usage["rpm"] == rounds * 4  # count_tokens is not in the model's quota
    assert status.usage["tpm"] == rounds * 3 * 12


def _instrument_with(
    tracer_provider: Any, meter_provider: Any, reader: Any, spans: Any = None, **config: Any
) -> Iterator[Telemetry]:
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, **config
    )
    try:
        yield Telemetry(spans or InMemorySpanExporter(), reader)
    finally:
        instrumentor.uninstrument()


# --- 1. samplers that record nothing ----------------------------------------------------------
@pytest.mark.parametrize("sampling", ["always_off", "ratio_0", "unsampled_remote_parent"])
def test_unsampled_calls_count_exactly(fake: FakeGemini, sampling: str) -> None:
    """Non-recording spans: every attribute, event and status we set is dropped, nothing may
    fail for it, and the metrics (counters, histograms, quota windows, cost) count each call."""
    bare = _bare(fake)
    sampler = {
        "always_off": ALWAYS_OFF,
        "ratio_0": TraceIdRatioBased(0),
        "unsampled_remote_parent": ParentBased(ALWAYS_ON),
    }[sampling]
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    token = None
    if sampling == "unsampled_remote_parent":
        parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        for telemetry in _instrument_with(
            tracer_provider,
            MeterProvider(metric_readers=[reader]),
            reader,
            spans,
            capture_content="SPAN_ONLY",
        ):
            assert _calls(fake, make_client(fake)) == bare
            assert _calls(fake, make_client(fake)) == bare
            assert spans.get_finished_spans() == ()
            _assert_counts(telemetry, 2)
    finally:
        if token is not None:
            otel_context.detach(token)


# --- 2. span limits -------------------------------------------------------------------------
# The SDK warns (its own warning) when the limits drop an event's attributes: expected here.
@pytest.mark.filterwarnings("ignore:Log record attributes were dropped")
@pytest.mark.parametrize("how", ["environment", "span_limits"])
def test_tight_span_limits_raise_nothing_and_count_exactly(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    bare = _bare(fake)
    if how == "environment":
        for name, value in {
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3",
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5",
            "OTEL_SPAN_EVENT_COUNT_LIMIT": "0",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "1",
            "OTEL_ATTRIBUTE_COUNT_LIMIT": "1",  # the log records' too
        }.items():
            monkeypatch.setenv(name, value)
        tracer_provider = TracerProvider()
    else:
        tracer_provider = TracerProvider(
            span_limits=SpanLimits(
                max_span_attributes=3,
                max_span_attribute_length=5,
                max_events=0,
                max_event_attributes=1,
            )
        )
    spans = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    reader = InMemoryMetricReader()
    for telemetry in _instrument_with(
        tracer_provider,
        MeterProvider(metric_readers=[reader]),
        reader,
        spans,
        capture_content="SPAN_AND_EVENT",
        logger_provider=logger_provider,
    ):
        assert _calls(fake, make_client(fake)) == bare
        exported = spans.get_finished_spans()
        assert len(exported) == _REQUESTS
        for span in exported:
            assert not span.events
            assert len(span.attributes or {}) <= 3
            assert all(len(v) <= 5 for v in (span.attributes or {}).values() if type(v) is str)
        assert len(logs.get_finished_logs()) == _REQUESTS  # one content event per call
        _assert_counts(telemetry, 1)


# --- 3. the metrics SDK: Views, temporality, readers ----------------------------------------
_VIEWS = {
    "drop_gcp_gemini": [View(instrument_name="gcp.gemini.*", aggregation=DropAggregation())],
    "drop_gen_ai": [View(instrument_name="gen_ai.*", aggregation=DropAggregation())],
    "drop_all_but_tokens": [
        View(instrument_name="*", aggregation=DropAggregation()),
        View(instrument_name="gcp.gemini.tokens"),
    ],
    "renamed": [
        View(instrument_name="gcp.gemini.requests", name="my.requests"),
        View(instrument_name="gen_ai.client.token.usage", name="my.token.usage"),
    ],
    "buckets": [
        View(instrument_name="gen_ai.*", aggregation=ExplicitBucketHistogramAggregation([0, 1]))
    ],
    "attribute_keys": [
        View(instrument_name="gcp.gemini.*", attribute_keys={"gen_ai.request.model"}),
        View(instrument_name="gen_ai.*", attribute_keys=set()),
    ],
}


@pytest.mark.parametrize("views", list(_VIEWS))
def test_views_keep_what_they_keep_exact(fake: FakeGemini, views: str) -> None:
    """A View may drop, rename or reshape our instruments: what it keeps still counts every
    call (our first observable callback, which records the dropped calls, runs even when its
    own instrument is dropped), and the quota windows do not depend on any View."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=_VIEWS[views])
    for telemetry in _instrument_with(TracerProvider(), provider, reader):
        _calls(fake, make_client(fake))
        _calls(fake, make_client(fake))
        metrics = telemetry.metrics()
        requests = metrics.get("gcp.gemini.requests", metrics.get("my.requests"))
        tokens = metrics.get("gcp.gemini.tokens")
        usage = metrics.get("gen_ai.client.token.usage", metrics.get("my.token.usage"))
        if views == "drop_gcp_gemini":
            assert requests is None and tokens is None
        elif views == "drop_all_but_tokens":
            assert requests is None and usage is None
        else:
            assert requests is not None
            assert sum(p.value for p in requests) == 2 * _REQUESTS
        if tokens is not None:
            assert sum(p.value for p in tokens) == 2 * _TOKENS
        if views in ("drop_gen_ai", "drop_all_but_tokens"):
            assert usage is None
        else:
            assert usage is not None
            assert sum(p.count for p in usage) == 2 * _TOKEN_RECORDS
        status = quota_status(MODEL)
        assert status is not None and status.usage["rpm"] == 2 * 4


def test_a_delta_reader_reads_each_collections_own_calls(fake: FakeGemini) -> None:
    """Our counters are observable (cumulative totals); a DELTA reader must read N then M after
    N and M rounds, not N then N+M, and nothing after a round of no calls."""
    delta = AggregationTemporality.DELTA
    reader = InMemoryMetricReader(
        preferred_temporality={Counter: delta, Histogram: delta, ObservableCounter: delta}
    )
    for telemetry in _instrument_with(
        TracerProvider(), MeterProvider(metric_readers=[reader]), reader
    ):
        totals = []
        for rounds in (2, 3, 0):
            for _ in range(rounds):
                _calls(fake, make_client(fake))
            metrics = telemetry.metrics()
            totals.append(
                (
                    sum(p.value for p in metrics.get("gcp.gemini.requests", [])),
                    sum(p.value for p in metrics.get("gcp.gemini.tokens", [])),
                    sum(p.value for p in metrics.get("gcp.gemini.quota.exceeded", [])),
                    sum(p.count for p in metrics.get("gen_ai.client.token.usage", [])),
                )
            )
        assert totals == [
            (rounds * _REQUESTS, rounds * _TOKENS, rounds * _VIOLATIONS, rounds * _TOKEN_RECORDS)
            for rounds in (2, 3, 0)
        ]


class _RaisingReader(MetricReader):
    def _receive_metrics(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kw: Any
    ) -> None:
        raise RuntimeError("this reader's export fails")

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def test_two_readers_and_a_raising_one_each_read_every_call(fake: FakeGemini) -> None:
    first, second, raising = InMemoryMetricReader(), InMemoryMetricReader(), _RaisingReader()
    provider = MeterProvider(metric_readers=[first, raising, second])
    for telemetry in _instrument_with(TracerProvider(), provider, first):
        for rounds in (1, 2):
            _calls(fake, make_client(fake))
            with pytest.raises(RuntimeError):
                raising.collect()
            _assert_counts(telemetry, rounds)
            _assert_counts(Telemetry(InMemorySpanExporter(), second), rounds)


# --- 4. providers: none, disabled, shut down ----------------------------------------------------
@pytest.mark.parametrize("setup", ["no_sdk_providers", "sdk_disabled"])
def test_without_a_working_sdk_calls_are_unchanged_and_quota_counts(
    fake: FakeGemini, setup: str
) -> None:
    """instrument() with the API's no-op default providers, or with OTEL_SDK_DISABLED=true: no
    span, no metric, the calls unchanged, and quota_status() still counts. In a subprocess: the
    global providers are set once per process."""
    bare = _bare(fake)
    script = textwrap.dedent(
        f"""
        import json, logging, sys
        from google import genai
        from google.genai import errors, types
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.instrumentation.gemini import GeminiInstrumentor, quota_status
        from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
            Reply, quota_error_body)
        from opentelemetry.instrumentation.gemini.testing import fake_gemini

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        reader = InMemoryMetricReader()
        if {setup!r} == "sdk_disabled":
            GeminiInstrumentor().instrument(
                tracer_provider=TracerProvider(),
                meter_provider=MeterProvider(metric_readers=[reader]))
        else:
            GeminiInstrumentor().instrument()
        client = genai.Client(api_key={FAKE_KEY!r},
                              http_options=types.HttpOptions(base_url={fake.url!r}))
        no_retry = types.GenerateContentConfig(
            http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1)))
        seen = [client.models.generate_content(model={MODEL!r}, contents="hi").text]
        seen.append("".join(c.text for c in client.models.generate_content_stream(
            model={MODEL!r}, contents="hi")))
        status = quota_status({MODEL!r})
        data = reader.get_metrics_data()
        print(json.dumps({{"seen": seen, "rpm": status.usage["rpm"] if status else None,
                           "metrics": bool(data and data.resource_metrics)}}))
        """
    )
    env = dict(os.environ)
    if setup == "sdk_disabled":
        env["OTEL_SDK_DISABLED"] = "true"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"seen": bare[:2], "rpm": 2, "metrics": False}
    assert "gemini" not in done.stderr


def test_shut_down_providers_leave_calls_unchanged_and_us_quiet(
    fake: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    """The app shuts its providers down (at exit, in a test) and keeps calling: the calls are
    unchanged, nothing raises, and we log nothing per call (the SDK's own warnings are its)."""
    bare = _bare(fake)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    for _telemetry in _instrument_with(
        tracer_provider,
        meter_provider,
        reader,
        spans,
        capture_content="EVENT_ONLY",
        logger_provider=logger_provider,
    ):
        assert _calls(fake, make_client(fake)) == bare
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()
        with caplog.at_level(logging.DEBUG, logger="opentelemetry.instrumentation.gemini"):
            for _ in range(3):
                assert _calls(fake, make_client(fake)) == bare
        ours = [
            r
            for r in caplog.records
            if r.name.startswith("opentelemetry.instrumentation.gemini")
            and "configured tier" not in r.getMessage()
        ]
        assert ours == []
        status = quota_status(MODEL)
        assert status is not None and status.usage["rpm"] == 4 * 4


# --- 5. content events without a working logger provider --------------------------------------
class _RaisingLogProcessor(LogRecordProcessor):
    def on_emit(self, log_record: Any) -> None:
        raise RuntimeError("this log processor fails")

    emit = on_emit  # the name older SDKs call

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@pytest.mark.parametrize("logger_provider", ["none", "shut_down", "raising_processor"])
def test_content_events_without_a_working_logger_provider(
    fake: FakeGemini, instrument: Any, logger_provider: str
) -> None:
    bare = _bare(fake)
    config: dict[str, Any] = {"capture_content": "EVENT_ONLY"}
    if logger_provider != "none":
        provider = LoggerProvider()
        if logger_provider == "shut_down":
            provider.add_log_record_processor(SimpleLogRecordProcessor(InMemoryLogRecordExporter()))
            provider.shutdown()
        else:
            provider.add_log_record_processor(_RaisingLogProcessor())
        config["logger_provider"] = provider
    telemetry = instrument(**config)
    assert _calls(fake, make_client(fake)) == bare
    assert len(telemetry.spans()) == _REQUESTS
    assert all(s.end_time is not None for s in telemetry.spans())
    _assert_counts(telemetry, 1)


# --- found, not fixed: a forked child under a DELTA reader --------------------------------------
@pytest.mark.xfail(
    strict=True,
    reason="the child's counters restart from zero (right for CUMULATIVE), but the SDK's DELTA "
    "conversion of an observable counter subtracts the parent's last collected total: the "
    "child's first delta is negative. A fix must choose per reader temporality; reported.",
)
def test_a_forked_child_under_a_delta_reader_reads_its_own_calls(fake: FakeGemini) -> None:
    delta = AggregationTemporality.DELTA
    reader = InMemoryMetricReader(preferred_temporality={ObservableCounter: delta})
    for telemetry in _instrument_with(
        TracerProvider(), MeterProvider(metric_readers=[reader]), reader
    ):
        client = make_client(fake)
        for _ in range(3):
            client.models.generate_content(model=MODEL, contents="x")
        assert telemetry.total("gcp.gemini.requests") == 3  # the parent's collection

        def child_work(telemetry: Telemetry = telemetry) -> list[float]:
            child_client = make_client(fake)
            child_client.models.generate_content(model=MODEL, contents="x")
            return [p.value for p in telemetry.points("gcp.gemini.requests")]

        child = in_forked_child(child_work)
        assert child == [1]  # it reads [-2]: 1 - 3
