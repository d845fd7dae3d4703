"""The supported google-genai range, checked on whichever version is installed.

CI runs this file (with test_cli.py and test_faults_lifecycle.py) in small venvs on the oldest
supported google-genai, one 2.x and the newest (.ci/run, "SDK matrix"); the full suite runs on
the newest. Everything here goes through the real client to the fake server and uses only SDK
API that exists across the range (no ``HttpRetryOptions``, which older releases lack).

The minimum (package.py) is the first release whose response types carry every usage field we
price: ``thoughtsTokenCount``, ``toolUsePromptTokenCount`` and the per-modality details arrived in
1.8.0, ``trafficType`` in 1.10.0 (read from each release's ``types.py``). Older releases drop
those fields while parsing, so thinking and flex would be priced low without a word.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

from conftest import ENTRYPOINTS, FAKE_KEY, Telemetry, call_gemini
from opentelemetry.instrumentation.gemini.billing.book import PriceBook
from opentelemetry.instrumentation.gemini.package import _instruments
from opentelemetry.instrumentation.gemini.record.usage import Usage
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

SDK = version("google-genai")
# Releases before this one have no per-attempt seam (BaseApiClient._request_once): one warning
# at instrument time, and each call counts as one attempt (the SDK's own retries arrived later).
_PER_ATTEMPT_SINCE = (1, 21, 0)

EVERY_PRICED_FIELD: dict[str, Any] = {
    "promptTokenCount": 30_000,
    "cachedContentTokenCount": 10_000,
    "candidatesTokenCount": 400,
    "thoughtsTokenCount": 1_200,
    "toolUsePromptTokenCount": 500,
    "trafficType": "ON_DEMAND_FLEX",
    "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": 20_000},
        {"modality": "AUDIO", "tokenCount": 10_000},
    ],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 10_000}],
    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 400}],
}


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def _client(fake: FakeGemini) -> genai.Client:
    return genai.Client(api_key=FAKE_KEY, http_options=types.HttpOptions(base_url=fake.url))


def test_the_installed_sdk_is_in_our_range() -> None:
    assert get_dependency_conflicts(list(_instruments)) is None, (SDK, _instruments)


def test_instrumenting_warns_only_about_what_this_sdk_lacks(
    instrument: Callable[..., Telemetry], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        instrument()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    if _release(SDK) >= _PER_ATTEMPT_SINCE:
        assert warnings == [], [r.getMessage() for r in warnings]
    else:
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert SDK in warnings[0].getMessage()
        assert "_request_once" in warnings[0].getMessage()


def test_every_priced_usage_field_reaches_the_span_and_the_cost(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(tier="tier_1")
    fake.enqueue("gemini-2.5-flash", Reply(usage=EVERY_PRICED_FIELD))
    client = _client(fake)  # held: google-genai 3.x closes its HTTP client when collected
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    attributes = telemetry.span().attributes or {}
    assert attributes["gen_ai.usage.input_tokens"] == 30_500
    assert attributes["gen_ai.usage.output_tokens"] == 1_600
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 1_200
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 10_000
    assert attributes["gcp.gemini.usage.tool_use_prompt_tokens"] == 500
    assert attributes["gcp.gemini.usage.input_tokens.audio"] == 10_000
    assert attributes["gcp.gemini.traffic_type"] == "ON_DEMAND_FLEX"
    usage = Usage(
        prompt_tokens=30_000,
        cached_tokens=10_000,
        candidates_tokens=400,
        thoughts_tokens=1_200,
        tool_use_prompt_tokens=500,
        total_tokens=32_100,
        traffic_type="ON_DEMAND_FLEX",
        prompt_by_modality={"text": 20_000, "audio": 10_000},
        cached_by_modality={"text": 10_000},
        candidates_by_modality={"text": 400},
    )
    expected = PriceBook.load().cost("gemini-2.5-flash", usage, tier="tier_1")
    assert expected is not None
    assert attributes["gen_ai.usage.cost.amount"] == pytest.approx(expected.total)
    standard = PriceBook.load().cost("gemini-2.5-flash", usage, traffic_type="ON_DEMAND")
    assert standard is not None and expected.total == pytest.approx(standard.total / 2)


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_each_entry_point_makes_one_priced_span(
    fake: FakeGemini, telemetry: Telemetry, entrypoint: str
) -> None:
    call_gemini(_client(fake), entrypoint)
    span = telemetry.span()
    attributes = span.attributes or {}
    assert span.name == "generate_content gemini-2.5-flash"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.cost.amount"] > 0
    assert telemetry.total("gcp.gemini.requests", http__response__status_code=200) == 1


def test_a_429_is_parsed_and_counted(fake: FakeGemini, telemetry: Telemetry) -> None:
    fake.enqueue("gemini-2.5-flash", Reply(status=429, error_body=quota_error_body(limit=10)))
    client = _client(fake)
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    span = telemetry.span()
    assert (span.attributes or {})["error.type"] == "429"
    events = [e for e in span.events if e.name == "gcp.gemini.quota.exceeded"]
    assert len(events) == 1 and (events[0].attributes or {})["gcp.gemini.quota.limit"] == 10
    assert telemetry.total("gcp.gemini.requests", http__response__status_code=429) == 1
    assert telemetry.total("gcp.gemini.quota.exceeded") == 1


def test_embed_and_count_tokens(fake: FakeGemini, telemetry: Telemetry) -> None:
    client = _client(fake)
    client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    client.models.count_tokens(model="gemini-2.5-flash", contents="hello")
    names = sorted(s.name for s in telemetry.spans())
    assert names == ["count_tokens gemini-2.5-flash", "embeddings gemini-embedding-001"]
