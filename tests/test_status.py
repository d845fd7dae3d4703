"""The public quota_status() API: the same numbers as the quota gauges, read in process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors

from conftest import ENTRYPOINTS, Telemetry, call_gemini
from opentelemetry.instrumentation import gemini
from opentelemetry.instrumentation.gemini import GeminiInstrumentor, QuotaStatus, quota_status
from opentelemetry.instrumentation.gemini.quota.limits import LimitTable
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

FLASH = "gemini-2.5-flash"
PROMPT_TOKENS = 12  # the fake server's default promptTokenCount
FIXTURES = Path(__file__).parent / "fixtures" / "quota_errors"


def test_exported_from_the_package() -> None:
    assert {"quota_status", "QuotaStatus"} <= set(gemini.__all__)


def test_none_when_not_instrumented(client: Any) -> None:
    assert quota_status(FLASH) is None
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument()
    try:
        assert quota_status(FLASH) is not None
    finally:
        instrumentor.uninstrument()
    assert quota_status(FLASH) is None


def test_before_any_call_with_no_tier(telemetry: Telemetry) -> None:
    status = quota_status(FLASH)
    assert status is not None
    # (test_status_forecast.py covers the forecast.)
    assert dataclasses.replace(status, forecast=None) == QuotaStatus(
        model=FLASH,
        tier="unknown",
        tier_source="default",
        limits={},
        usage={"rpm": 0, "tpm": 0, "rpd": 0},
        utilization={},
        spend_10m_usd=0.0,
        spend_10m_limit_usd=None,
        spend_10m_utilization=None,
        last_retry_delay=None,
        last_retry_at=None,
    )


def test_after_calls_matches_the_limits_usage_and_the_gauges(client: Any, instrument: Any) -> None:
    limits = {"rpm": 40, "tpm": 1000, "rpd": 400}
    telemetry = instrument(tier="tier_1", limits={FLASH: {"tier_1": limits}})
    for entrypoint in ENTRYPOINTS:
        call_gemini(client, entrypoint)

    status = quota_status(FLASH)
    assert status is not None
    assert (status.tier, status.tier_source) == ("tier_1", "config")
    assert status.limits == limits
    assert status.usage == {"rpm": 4, "tpm": 4 * PROMPT_TOKENS, "rpd": 4}
    assert status.utilization == pytest.approx(
        {"rpm": 4 / 40, "tpm": 4 * PROMPT_TOKENS / 1000, "rpd": 4 / 400}
    )
    spent = sum(s.attributes["gen_ai.usage.cost.amount"] for s in telemetry.spans())
    assert status.spend_10m_usd == pytest.approx(spent)
    assert status.spend_10m_limit_usd == LimitTable.load().spend_limit_10m("tier_1")
    assert status.spend_10m_utilization == pytest.approx(spent / status.spend_10m_limit_usd)
    assert status.last_retry_delay is None

    for dim in ("rpm", "tpm", "rpd"):
        for gauge, expected in (
            ("gcp.gemini.quota.limit", status.limits),
            ("gcp.gemini.quota.usage", status.usage),
            ("gcp.gemini.quota.utilization", status.utilization),
        ):
            [point] = telemetry.points(
                gauge, gen_ai__request__model=FLASH, gcp__gemini__quota__dimension=dim
            )
            assert point.value == pytest.approx(expected[dim])


def test_a_429_gives_the_learned_tier_and_the_retry_delay(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    body = json.loads((FIXTURES / "free_tier_input_tokens_per_minute.json").read_text())
    fake.enqueue(None, Reply(status=429, error_body=body))
    with pytest.raises(errors.ClientError):
        call_gemini(client, "sync")
    status = quota_status(FLASH)
    assert status is not None
    assert (status.tier, status.tier_source) == ("free", "quota_id")
    assert status.last_retry_delay == 26.0  # RetryInfo's "26s"
    assert isinstance(status.last_retry_at, float)
    assert status.usage["rpm"] == 1  # the rejected attempt still counts
    free = LimitTable.load().lookup(FLASH, "free")
    assert free is not None
    assert status.limits["rpm"] == free.rpm
    assert status.spend_10m_limit_usd is None  # no spend limit on the free tier
    # Another model has no retry delay of its own.
    other = quota_status("gemini-2.5-pro")
    assert other is not None and other.last_retry_delay is None


def test_model_spelled_as_in_the_call(client: Any, telemetry: Telemetry) -> None:
    call_gemini(client, "sync", model=f"models/{FLASH}")
    status = quota_status(f"models/{FLASH}")
    assert status is not None
    assert status.model == FLASH
    assert status.usage["rpm"] == 1


def test_is_read_only(telemetry: Telemetry) -> None:
    status = quota_status(FLASH)
    assert status is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.tier = "tier_3"  # type: ignore[misc]
    with pytest.raises(TypeError):
        status.usage["rpm"] = 5  # type: ignore[index]
