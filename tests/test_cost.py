"""Cost in USD, end to end: the real google-genai client against the fake server.

Each expected figure is worked out by hand from the price table in
shared/reference/gemini-billing-and-quotas.md (USD per 1M tokens, standard tier) with a one-line
formula, independent of pricing.py, and compared to 1e-9 USD.
"""

from __future__ import annotations

import inspect
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, models
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from conftest import Telemetry, call_gemini
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.billing.book import PricesFileError
from opentelemetry.instrumentation.gemini.config import ENV_PRICES_FILE
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

COST = "gcp.gemini.cost"
COST_LIST = "gcp.gemini.cost.list"
UNPRICED = "gcp.gemini.cost.unpriced_calls"
M = 1_000_000  # prices are USD per 1M tokens
EPS = 1e-9


def usd(tokens: int, per_million: float) -> float:
    return tokens * per_million / M


def assert_cost(telemetry: Telemetry, amount: float, list_amount: float | None = None) -> None:
    a = telemetry.span().attributes
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(amount, abs=EPS)
    assert a["gen_ai.usage.cost.currency"] == "USD"
    assert a["gen_ai.usage.cost.source"] == "local"
    expected_list = amount if list_amount is None else list_amount
    assert a["gcp.gemini.cost.list_amount"] == pytest.approx(expected_list, abs=EPS)
    assert "genai-prices" in a["gcp.gemini.cost.prices_version"]
    assert "gcp.gemini.cost.unpriced_reason" not in a


def by_component(telemetry: Telemetry, name: str = COST, **attrs: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in telemetry.points(name, **attrs):
        key = p.attributes["gcp.gemini.cost.component"]
        out[key] = out.get(key, 0.0) + p.value
    return out


# --- what a call costs ---------------------------------------------------------------------------

FLASH_THINKING = {
    "promptTokenCount": 10_000,  # includes the 4,000 cached tokens
    "cachedContentTokenCount": 4_000,
    "candidatesTokenCount": 500,
    "thoughtsTokenCount": 1_500,
    "trafficType": "ON_DEMAND",
}
# 2.5 Flash: input 0.30, cache read 0.03, output (thinking included) 2.50.
FLASH_THINKING_USD = {
    "input": usd(10_000 - 4_000, 0.30),
    "cached_input": usd(4_000, 0.03),
    "output": usd(500 + 1_500, 2.50),
}


def test_flash_with_cached_and_thinking_tokens(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    fake.enqueue("gemini-2.5-flash", Reply(usage=FLASH_THINKING, model_version="gemini-2.5-flash"))
    call_gemini(client, entrypoint, "gemini-2.5-flash")

    total = 6_000 * 0.30 / M + 4_000 * 0.03 / M + 2_000 * 2.50 / M
    assert_cost(telemetry, total)
    components = by_component(
        telemetry, gen_ai__request__model="gemini-2.5-flash", gcp__gemini__tier="unknown"
    )
    assert components == pytest.approx(FLASH_THINKING_USD, abs=EPS)
    assert by_component(telemetry, COST_LIST) == pytest.approx(FLASH_THINKING_USD, abs=EPS)


@pytest.mark.parametrize(
    ("model", "prompt", "cached", "output", "rates"),
    [
        # (input, cache read, output) at <= 200k and > 200k prompt tokens.
        ("gemini-2.5-pro", 200_000, 0, 1_000, (1.25, 0.125, 10.0)),
        ("gemini-2.5-pro", 200_001, 0, 1_000, (2.50, 0.25, 15.0)),
        ("gemini-2.5-pro", 250_000, 50_000, 2_000, (2.50, 0.25, 15.0)),
        ("gemini-3-pro-preview", 200_000, 0, 1_000, (2.0, 0.20, 12.0)),
        ("gemini-3-pro-preview", 200_001, 0, 1_000, (4.0, 0.40, 18.0)),
        ("gemini-3-pro-preview", 300_000, 100_000, 4_000, (4.0, 0.40, 18.0)),
    ],
)
def test_long_context_cliff_prices_every_token_of_the_request(
    fake: FakeGemini,
    client: Any,
    telemetry: Telemetry,
    model: str,
    prompt: int,
    cached: int,
    output: int,
    rates: tuple[float, float, float],
) -> None:
    usage = {
        "promptTokenCount": prompt,
        "cachedContentTokenCount": cached,
        "candidatesTokenCount": output,
    }
    fake.enqueue(model, Reply(usage=usage, model_version=model))
    call_gemini(client, "sync", model)

    rate_in, rate_cached, rate_out = rates
    expected = (prompt - cached) * rate_in / M + cached * rate_cached / M + output * rate_out / M
    assert_cost(telemetry, expected)


def test_tool_use_prompt_tokens_count_towards_the_cliff(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    # 199,000 prompt + 2,000 tool-use = 201,000 input tokens > 200k: the whole request at the
    # long-context rates. genai-prices decides the tier on the same sum; see pricing.py.
    usage = {
        "promptTokenCount": 199_000,
        "toolUsePromptTokenCount": 2_000,
        "candidatesTokenCount": 1_000,
    }
    fake.enqueue("gemini-2.5-pro", Reply(usage=usage, model_version="gemini-2.5-pro"))
    call_gemini(client, "sync", "gemini-2.5-pro")

    assert_cost(telemetry, (199_000 + 2_000) * 2.50 / M + 1_000 * 15.0 / M)


def test_audio_input_on_flash_lite(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    usage = {
        "promptTokenCount": 3_000,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 1_000},
            {"modality": "AUDIO", "tokenCount": 2_000},
        ],
        "candidatesTokenCount": 100,
    }
    model = "gemini-2.5-flash-lite"
    fake.enqueue(model, Reply(usage=usage, model_version=model))
    call_gemini(client, "sync", model)

    # Flash-Lite: text 0.10, audio 0.30, output 0.40.
    assert_cost(telemetry, 1_000 * 0.10 / M + 2_000 * 0.30 / M + 100 * 0.40 / M)
    assert telemetry.span().attributes["gcp.gemini.usage.input_tokens.audio"] == 2_000


def test_tool_use_prompt_tokens_are_billed_as_input(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    usage = {
        "promptTokenCount": 1_000,
        "toolUsePromptTokenCount": 5_000,
        "candidatesTokenCount": 200,
    }
    fake.enqueue("gemini-2.5-flash", Reply(usage=usage, model_version="gemini-2.5-flash"))
    call_gemini(client, "sync", "gemini-2.5-flash")

    assert_cost(telemetry, 1_000 * 0.30 / M + 5_000 * 0.30 / M + 200 * 2.50 / M)
    assert by_component(telemetry) == pytest.approx(
        {"input": usd(1_000, 0.30), "tool_use_input": usd(5_000, 0.30), "output": usd(200, 2.50)},
        abs=EPS,
    )


@pytest.mark.parametrize("entrypoint", ["sync_stream", "async_stream"])
def test_stream_is_priced_from_the_last_chunks_cumulative_usage(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    usage = {"promptTokenCount": 1_000, "candidatesTokenCount": 900, "thoughtsTokenCount": 300}
    fake.enqueue(
        "gemini-2.5-flash",
        Reply(usage=usage, model_version="gemini-2.5-flash", chunks=3, text="one two three"),
    )
    chunks = call_gemini(client, entrypoint, "gemini-2.5-flash")

    assert len(chunks) == 3
    # The chunks carry 1/3, 2/3 and all of the output: the last one is the bill, never the sum.
    seen = [c.usage_metadata.candidates_token_count for c in chunks]
    assert seen == [300, 600, 900]
    assert_cost(telemetry, 1_000 * 0.30 / M + (900 + 300) * 2.50 / M)


def test_alias_is_priced_by_the_response_model_version(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    usage = {"promptTokenCount": 2_000, "candidatesTokenCount": 1_000}
    fake.enqueue("gemini-flash-latest", Reply(usage=usage, model_version="gemini-2.5-flash"))
    call_gemini(client, "sync", "gemini-flash-latest")

    # 2.5 Flash rates, not whatever the alias pointed at when the price data was written.
    assert_cost(telemetry, 2_000 * 0.30 / M + 1_000 * 2.50 / M)
    points = telemetry.points(COST, gen_ai__request__model="gemini-flash-latest")
    assert {p.attributes["gen_ai.response.model"] for p in points} == {"gemini-2.5-flash"}


def test_free_tier_bills_zero_and_keeps_the_list_amount(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    telemetry = instrument(tier="free")
    fake.enqueue("gemini-2.5-flash", Reply(usage=FLASH_THINKING, model_version="gemini-2.5-flash"))
    call_gemini(client, "sync", "gemini-2.5-flash")

    list_total = 6_000 * 0.30 / M + 4_000 * 0.03 / M + 2_000 * 2.50 / M
    assert_cost(telemetry, 0.0, list_total)
    # The billed counter has the model's series, at 0; the list counter has what it would cost.
    assert by_component(telemetry, gcp__gemini__tier="free") == {
        "input": 0.0,
        "cached_input": 0.0,
        "output": 0.0,
    }
    assert by_component(telemetry, COST_LIST, gcp__gemini__tier="free") == pytest.approx(
        FLASH_THINKING_USD, abs=EPS
    )


def test_flex_traffic_is_half_price(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    usage = {**FLASH_THINKING, "trafficType": "ON_DEMAND_FLEX"}
    fake.enqueue("gemini-2.5-flash", Reply(usage=usage, model_version="gemini-2.5-flash"))
    call_gemini(client, "sync", "gemini-2.5-flash")

    # Flex: 50% of every standard rate (cache read included: see data/gemini_prices.json).
    expected = 0.5 * (6_000 * 0.30 / M + 4_000 * 0.03 / M + 2_000 * 2.50 / M)
    assert_cost(telemetry, expected)
    assert telemetry.span().attributes["gcp.gemini.traffic_type"] == "ON_DEMAND_FLEX"


def test_async_call_is_priced(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    usage = {"promptTokenCount": 40_000, "candidatesTokenCount": 3_000, "thoughtsTokenCount": 7_000}
    fake.enqueue("gemini-2.5-pro", Reply(usage=usage, model_version="gemini-2.5-pro"))
    call_gemini(client, "async", "gemini-2.5-pro")

    assert_cost(telemetry, 40_000 * 1.25 / M + 10_000 * 10.0 / M)


# --- user prices file ----------------------------------------------------------------------------

OVERRIDES = {
    "version": "acme-2026-11",
    "notes": "negotiated rates",
    "models": {
        "gemini-2.5-flash": {"input": 0.25, "cached_input": 0.025, "output": 2.00},
        "gemini-9-ultra": {"input": 5.0, "output": 20.0},
    },
}


@pytest.mark.parametrize("via", ["kwarg", "env"])
def test_user_prices_file_overrides_and_adds_models(
    fake: FakeGemini,
    client: Any,
    instrument: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    via: str,
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(OVERRIDES), encoding="utf-8")
    if via == "env":
        monkeypatch.setenv(ENV_PRICES_FILE, str(path))
        telemetry = instrument()
    else:
        telemetry = instrument(prices_file=str(path))
    fake.enqueue("gemini-2.5-flash", Reply(usage=FLASH_THINKING, model_version="gemini-2.5-flash"))
    fake.enqueue(
        "gemini-9-ultra", Reply(usage={"promptTokenCount": 1_000, "candidatesTokenCount": 10})
    )
    call_gemini(client, "sync", "gemini-2.5-flash")
    call_gemini(client, "sync", "gemini-9-ultra")

    flash, ultra = telemetry.spans()
    expected = 6_000 * 0.25 / M + 4_000 * 0.025 / M + 2_000 * 2.00 / M
    assert flash.attributes["gen_ai.usage.cost.amount"] == pytest.approx(expected, abs=EPS)
    assert (
        "overrides acme-2026-11 (prices.json)" in flash.attributes["gcp.gemini.cost.prices_version"]
    )
    ultra_usd = 1_000 * 5.0 / M + 10 * 20.0 / M
    assert ultra.attributes["gen_ai.usage.cost.amount"] == pytest.approx(ultra_usd, abs=EPS)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"models": {}}),  # no version
        json.dumps({"version": "x", "models": {"gemini-2.5-flash": {"input": -1}}}),
        json.dumps({"version": "x", "models": {"gemini-2.5-flash": {"inptu": 1}}}),
    ],
)
def test_bad_prices_file_fails_instrument_and_patches_nothing(
    client: Any,
    instrument: Any,
    spans: InMemorySpanExporter,
    tmp_path: Path,
    content: str,
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    original = models.Models.generate_content

    with pytest.raises(PricesFileError, match=r"prices\.json"):
        instrument(prices_file=str(path))

    assert models.Models.generate_content is original
    call_gemini(client, "sync", "gemini-2.5-flash")
    assert spans.get_finished_spans() == ()


def test_missing_prices_file_is_a_clear_error(instrument: Any, tmp_path: Path) -> None:
    with pytest.raises(PricesFileError, match="cannot read prices file"):
        instrument(prices_file=str(tmp_path / "nope.json"))


def test_no_network_at_import_or_instrument_time() -> None:
    # A fresh interpreter with an audit hook that refuses any socket use or DNS lookup.
    script = textwrap.dedent(
        """
        import sys

        def guard(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
                raise RuntimeError(f"network during import/instrument: {event} {args}")

        sys.addaudithook(guard)
        from opentelemetry.instrumentation.gemini import GeminiInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider

        instrumentor = GeminiInstrumentor()
        instrumentor.instrument(
            tracer_provider=TracerProvider(), meter_provider=MeterProvider()
        )
        assert instrumentor.is_instrumented_by_opentelemetry
        instrumentor.uninstrument()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# --- unknown models and failed calls -------------------------------------------------------------


def test_unknown_model_has_no_cost_warns_once_and_is_counted(
    fake: FakeGemini, client: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            fake.enqueue("gemini-99-ultra", Reply(usage={"promptTokenCount": 10}))
            call_gemini(client, "sync", "gemini-99-ultra")

    for span in telemetry.spans():
        a = span.attributes
        assert "gen_ai.usage.cost.amount" not in a
        assert "gcp.gemini.cost.list_amount" not in a
        assert a["gcp.gemini.cost.unpriced_reason"] == "unknown_model"
    warnings = [r for r in caplog.records if "gemini-99-ultra" in r.getMessage()]
    assert len(warnings) == 1
    assert (
        telemetry.total(
            UNPRICED,
            gen_ai__request__model="gemini-99-ultra",
            gcp__gemini__cost__unpriced_reason="unknown_model",
        )
        == 2
    )
    assert telemetry.points(COST) == []
    assert telemetry.points(COST_LIST) == []


@pytest.mark.parametrize("status", [429, 500])
def test_failed_calls_cost_zero(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str, status: int
) -> None:
    fake.enqueue("gemini-2.5-flash", Reply(status=status))
    with pytest.raises(errors.APIError):
        call_gemini(client, entrypoint, "gemini-2.5-flash")

    a = telemetry.span().attributes
    assert a["gen_ai.usage.cost.amount"] == 0.0
    assert a["gen_ai.usage.cost.currency"] == "USD"
    assert "gcp.gemini.cost.unpriced_reason" not in a
    assert telemetry.points(COST) == []
    assert telemetry.points(UNPRICED) == []


def test_count_tokens_is_not_priced(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    """Traced (issue: every request counted), never billed, never in the token counters."""
    client.models.count_tokens(model="gemini-2.5-flash", contents="hello")
    span = telemetry.span()
    assert span.name == "count_tokens gemini-2.5-flash"
    assert span.attributes["gen_ai.usage.cost.amount"] == 0.0
    assert span.attributes["gcp.gemini.counted_tokens"] == 12
    assert telemetry.points(COST) == []
    assert telemetry.points("gcp.gemini.tokens") == []


# --- the spend counter ---------------------------------------------------------------------------


def test_cost_counter_sums_calls_exactly_by_component(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    second = {"promptTokenCount": 3_000, "toolUsePromptTokenCount": 700, "candidatesTokenCount": 90}
    fake.enqueue(
        "gemini-2.5-flash",
        Reply(usage=FLASH_THINKING, model_version="gemini-2.5-flash"),
        Reply(usage=second, model_version="gemini-2.5-flash"),
    )
    call_gemini(client, "sync", "gemini-2.5-flash")
    call_gemini(client, "async", "gemini-2.5-flash")

    expected = {
        "input": usd(6_000, 0.30) + usd(3_000, 0.30),
        "cached_input": usd(4_000, 0.03),
        "output": usd(2_000, 2.50) + usd(90, 2.50),
        "tool_use_input": usd(700, 0.30),
    }
    assert by_component(telemetry) == pytest.approx(expected, abs=EPS)
    spans_total = sum(s.attributes["gen_ai.usage.cost.amount"] for s in telemetry.spans())
    assert telemetry.total(COST) == pytest.approx(spans_total, abs=EPS)
    assert telemetry.total(COST) == pytest.approx(sum(expected.values()), abs=EPS)
    for point in telemetry.points(COST):
        assert set(point.attributes) == {
            "gen_ai.operation.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gcp.gemini.tier",
            "gcp.gemini.cost.component",
            "gcp.gemini.cost.processing",
        }
        assert point.attributes["gen_ai.operation.name"] == "generate_content"
        assert point.attributes["gcp.gemini.cost.processing"] == "online"


@contextmanager
def instrumented_on_a_prometheus_registry() -> Iterator[CollectorRegistry]:
    """Instrumented with a Prometheus reader on a registry of its own (not the process's
    global one), uninstrumented after. Skips where the exporter has no such option."""
    if "registry" not in inspect.signature(PrometheusMetricReader).parameters:
        pytest.skip("this opentelemetry-exporter-prometheus has no private registry option")
    registry = CollectorRegistry()
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider(), meter_provider=meter_provider)
    try:
        yield registry
    finally:
        instrumentor.uninstrument()
        meter_provider.shutdown()


def test_prometheus_name_of_the_spend_counter(fake: FakeGemini, client: Any) -> None:
    # README's PromQL uses these names: pin what the Prometheus exporter makes of ours.
    with instrumented_on_a_prometheus_registry() as registry:
        fake.enqueue("gemini-2.5-flash", Reply(usage={"promptTokenCount": 1_000}))
        call_gemini(client, "sync", "gemini-2.5-flash")
        text = generate_latest(registry).decode()

    lines = [line for line in text.splitlines() if line.startswith("gcp_gemini_cost")]
    names = {line.split("{", 1)[0] for line in lines}
    assert names == {"gcp_gemini_cost_USD_total", "gcp_gemini_cost_list_USD_total"}
    billed = next(line for line in lines if line.startswith("gcp_gemini_cost_USD_total"))
    assert 'gcp_gemini_cost_component="input"' in billed
    assert 'gen_ai_request_model="gemini-2.5-flash"' in billed
    assert 'gcp_gemini_tier="unknown"' in billed
    assert float(billed.rsplit(" ", 1)[1]) == pytest.approx(1_000 * 0.30 / M, abs=EPS)


# --- automatic function calling: several billed requests behind one response ---------------------


def get_weather(city: str) -> str:
    """Returns the weather in a city."""
    return f"Sunny in {city}"


AFC_ROUND_1 = {"promptTokenCount": 1_000, "candidatesTokenCount": 20, "thoughtsTokenCount": 80}
AFC_ROUND_2 = {
    "promptTokenCount": 1_200,
    "cachedContentTokenCount": 1_000,
    "candidatesTokenCount": 50,
}
FUNCTION_CALL = {
    "candidates": [
        {
            "content": {
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ]
}


def test_automatic_function_calling_prices_every_round(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    # Round 1 asks for get_weather; the SDK calls it and sends round 2, whose response (or
    # stream) is the only usage the caller sees. Google bills both requests. Streams: round 2's
    # chunks carry cumulative usage of round 2 only.
    fake.enqueue(
        "gemini-2.5-flash",
        Reply(usage=AFC_ROUND_1, model_version="gemini-2.5-flash", extra=FUNCTION_CALL),
        Reply(usage=AFC_ROUND_2, model_version="gemini-2.5-flash", text="Sunny in Paris."),
    )
    response = call_gemini(
        client,
        entrypoint,
        "gemini-2.5-flash",
        config={"tools": [get_weather]},
    )
    text = "".join(c.text or "" for c in response) if isinstance(response, list) else response.text
    assert text.strip() == "Sunny in Paris."
    assert len(fake.requests) == 2  # the SDK really ran two rounds

    # 2.5 Flash: input 0.30, cache read 0.03, output (thinking included) 2.50.
    expected = {
        "input": usd(1_000 + 1_200 - 1_000, 0.30),
        "cached_input": usd(1_000, 0.03),
        "output": usd(20 + 80 + 50, 2.50),
    }
    assert_cost(telemetry, sum(expected.values()))
    assert by_component(telemetry) == pytest.approx(expected, abs=EPS)
    a = telemetry.span().attributes
    assert a["gen_ai.usage.input_tokens"] == 2_200
    assert a["gen_ai.usage.output_tokens"] == 150
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1_000
    assert a["gen_ai.usage.reasoning.output_tokens"] == 80
    assert a["gcp.gemini.attempts"] == 2
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
