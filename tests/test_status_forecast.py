"""quota_status().forecast: this process's projection to the next RPD reset and against its
budgets, labelled as one process (issue 18)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini import ProcessForecast, quota_status
from opentelemetry.instrumentation.gemini.record.forecast import forecast
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

FLASH = "gemini-2.5-flash"


def test_the_forecast_of_this_process(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(
        tier="tier_1",
        daily_budget_usd=1.0,
        monthly_budget_usd=20.0,
        limits={FLASH: {"tier_1": {"rpd": 2}}},
    )
    client = make_client(fake)
    for _ in range(3):
        client.models.generate_content(model=FLASH, contents="x")
    cost = sum(float(s.attributes["gen_ai.usage.cost.amount"]) for s in telemetry.spans())

    status = quota_status(FLASH)
    assert status is not None
    f = status.forecast
    assert isinstance(f, ProcessForecast)
    assert f.scope == "process"
    assert 0 < f.seconds_to_reset <= 25 * 3600
    assert f.requests_today == 3
    assert f.requests_per_second >= 3 / 60  # at least the last minute's pace
    assert f.requests_at_reset == pytest.approx(3 + f.requests_per_second * f.seconds_to_reset)
    assert f.rpd_limit == 2
    assert f.rpd_at_reset_utilization == pytest.approx(f.requests_at_reset / 2)
    assert f.rpd_exhausted_in == 0.0  # 3 of 2: already out
    assert f.spend_today_usd == pytest.approx(cost) and f.spend_month_usd == pytest.approx(cost)
    assert f.spend_per_second_usd >= cost / 600
    assert f.spend_at_reset_usd == pytest.approx(cost + f.spend_per_second_usd * f.seconds_to_reset)
    assert (f.daily_budget_usd, f.monthly_budget_usd) == (1.0, 20.0)
    assert f.daily_budget_at_reset_utilization == pytest.approx(f.spend_at_reset_usd / 1.0)
    assert f.daily_budget_exhausted_in == pytest.approx((1.0 - cost) / f.spend_per_second_usd)


def test_no_limit_no_budget_no_traffic(instrument: Callable[..., Telemetry]) -> None:
    instrument(tier="unknown")
    status = quota_status(FLASH)
    assert status is not None and status.forecast is not None
    f = status.forecast
    assert (f.requests_today, f.requests_per_second, f.spend_today_usd) == (0, 0.0, 0.0)
    assert f.rpd_limit is None and f.rpd_at_reset_utilization is None
    assert f.rpd_exhausted_in is None and f.daily_budget_exhausted_in is None
    assert f.daily_budget_usd is None and f.daily_budget_at_reset_utilization is None


def test_rates_take_the_larger_of_the_last_minute_and_the_day() -> None:
    # 60 requests in the last minute (1/s) vs 3600 over 2 hours (0.5/s): the burst wins.
    f = forecast(
        seconds_to_reset=1000,
        seconds_since_reset=7200,
        requests_last_minute=60,
        requests_today=3600,
        rpd_limit=5000,
        spend_10m_usd=0.0,
        spend_today_usd=72.0,
        spend_month_usd=100.0,
        daily_budget_usd=100.0,
        monthly_budget_usd=None,
    )
    assert f.requests_per_second == 1.0
    assert f.requests_at_reset == 4600 and f.rpd_exhausted_in == 1400
    # No spend in 10 minutes, 72 USD over 2 hours: the day's pace, 0.01 USD/s.
    assert f.spend_per_second_usd == pytest.approx(0.01)
    assert f.spend_at_reset_usd == pytest.approx(82.0)
    assert f.daily_budget_exhausted_in == pytest.approx(2800)
