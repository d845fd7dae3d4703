"""Budgets as data (issue 18): daily/monthly budgets exported as gauges per project, with this
process's spend since the Pacific midnight and the 1st of the month, and the Pacific day."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini.config import Settings
from opentelemetry.instrumentation.gemini.quota.windows import QuotaWindows
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

MODEL = "gemini-2.5-flash"
PACIFIC = ZoneInfo("America/Los_Angeles")


def _gauge(telemetry: Telemetry, name: str) -> dict[frozenset[tuple[str, object]], float]:
    return {frozenset(p.attributes.items()): p.value for p in telemetry.metrics().get(name, [])}


@pytest.mark.parametrize("how", ["kwarg", "env"])
def test_budgets_and_spend_are_gauges_per_project(
    fake: FakeGemini,
    instrument: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    if how == "env":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_DAILY_BUDGET_USD", "12.5")
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_MONTHLY_BUDGET_USD", "300")
        telemetry = instrument(tier="tier_1", project="team-a")
    else:
        telemetry = instrument(
            tier="tier_1", project="team-a", daily_budget_usd=12.5, monthly_budget_usd=300
        )
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    client.models.generate_content(model=MODEL, contents="x")
    cost = sum(float(s.attributes["gen_ai.usage.cost.amount"]) for s in telemetry.spans())
    assert cost > 0

    project = ("gcp.gemini.project", "team-a")
    day, month = ("gcp.gemini.budget.period", "day"), ("gcp.gemini.budget.period", "month")
    assert _gauge(telemetry, "gcp.gemini.budget") == {
        frozenset({project, day}): 12.5,
        frozenset({project, month}): 300.0,
    }
    spend = _gauge(telemetry, "gcp.gemini.spend")
    assert set(spend) == {frozenset({project, day}), frozenset({project, month})}
    assert spend[frozenset({project, day})] == pytest.approx(cost, rel=1e-12)
    assert spend[frozenset({project, month})] == pytest.approx(cost, rel=1e-12)
    [remaining] = _gauge(telemetry, "gcp.gemini.quota.day_remaining").items()
    [elapsed] = _gauge(telemetry, "gcp.gemini.quota.day_elapsed").items()
    assert remaining[0] == elapsed[0] == frozenset({project})
    assert 0 < remaining[1] <= 25 * 3600 and 0 <= elapsed[1] < 25 * 3600
    assert 23 * 3600 - 1 <= remaining[1] + elapsed[1] <= 25 * 3600 + 1


def test_no_budget_no_budget_gauge(fake: FakeGemini, instrument: Callable[..., Telemetry]) -> None:
    telemetry = instrument(tier="tier_1")
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    assert _gauge(telemetry, "gcp.gemini.budget") == {}
    # Without a project the spend carries no project label (one process, one group).
    assert {dict(k)["gcp.gemini.budget.period"] for k in _gauge(telemetry, "gcp.gemini.spend")} == {
        "day",
        "month",
    }


@pytest.mark.parametrize("junk", ["-1", "lots", "inf", "nan"])
def test_a_junk_budget_is_ignored_with_a_warning(
    junk: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        settings = Settings.resolve({"OTEL_INSTRUMENTATION_GEMINI_DAILY_BUDGET_USD": junk}, {})
    assert settings.daily_budget_usd is None
    assert "DAILY_BUDGET_USD" in caplog.text


def _at(*fields: int) -> float:
    return datetime(*fields, tzinfo=PACIFIC).timestamp()


def test_spend_today_and_this_month_follow_the_pacific_calendar() -> None:
    now = [_at(2026, 3, 31, 23, 0)]
    windows = QuotaWindows(clock=lambda: now[0])
    windows.record(MODEL, requests=1, cost_usd=2.0)
    windows.record("gemini-2.5-pro", requests=1, cost_usd=1.0)
    assert windows.spend_calendar_totals() == (3.0, 3.0)
    assert windows.day_remaining() == 3600
    now[0] = _at(2026, 4, 1, 0, 30)  # a new day and a new month, Pacific
    assert windows.spend_calendar_totals() == (0.0, 0.0)
    windows.record(MODEL, requests=1, cost_usd=0.5)
    now[0] = _at(2026, 4, 2, 9, 0)
    windows.record(MODEL, requests=1, cost_usd=0.25)
    assert windows.spend_calendar_totals() == (0.25, 0.75)
    assert windows.day_elapsed() == 9 * 3600


def test_the_pacific_day_is_dst_correct() -> None:
    # 2026-03-08 is 23 hours long in Los Angeles, 2026-11-01 25 hours.
    now = [_at(2026, 3, 8, 0, 0)]
    windows = QuotaWindows(clock=lambda: now[0])
    assert windows.day_remaining() == 23 * 3600
    now[0] = _at(2026, 11, 1, 0, 0)
    assert windows.day_remaining() == 25 * 3600


def test_spend_with_nothing_spent_is_a_float(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """One gauge, one point type: no spend yet reads 0.0 for both periods, not an int 0 next to
    a float (an OTLP gauge point is int or double)."""
    telemetry = instrument(tier="tier_1")
    client = make_client(fake)
    client.models.count_tokens(model=MODEL, contents="x")  # free: nothing spent
    values = list(_gauge(telemetry, "gcp.gemini.spend").values())
    assert len(values) == 2
    assert all(type(v) is float and v == 0.0 for v in values)
