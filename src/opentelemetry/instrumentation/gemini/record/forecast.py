"""One process's forecast to the next RPD reset (midnight America/Los_Angeles), for
``quota_status()``. The backend's recording rules make the same forecast for the whole fleet
per project (examples/grafana/rules/gemini-rules.yml); this one sees only this process's calls.

Rates: the larger of the last minute's and the day's average so far, as the rules take the
larger of a short and a long window: a burst counts at once, a lull does not hide the day's pace.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessForecast:
    """Where THIS PROCESS alone is heading by the next Pacific midnight (other processes of
    the same project are not counted: the fleet's forecast comes from the recording rules)."""

    scope: str
    """Always ``"process"``: these numbers cover this process only."""
    seconds_to_reset: float
    """Until the next midnight America/Los_Angeles, when RPD resets (DST-correct)."""
    requests_today: int
    requests_per_second: float
    requests_at_reset: float
    """Requests today plus the rate times the time left."""
    rpd_limit: int | None
    rpd_at_reset_utilization: float | None
    """requests_at_reset / rpd_limit: above 1, this process alone runs out before the reset."""
    rpd_exhausted_in: float | None
    """Seconds until requests today reach the RPD at the current rate (0: already there); None
    without a limit or without traffic."""
    spend_today_usd: float
    """Billed USD since the last Pacific midnight, every model."""
    spend_month_usd: float
    """Billed USD since the 1st of the month, Pacific time, every model."""
    spend_per_second_usd: float
    spend_at_reset_usd: float
    daily_budget_usd: float | None
    monthly_budget_usd: float | None
    daily_budget_at_reset_utilization: float | None
    daily_budget_exhausted_in: float | None
    """Seconds until spend today reaches the daily budget at the current rate (0: already
    there); None without a budget or without spend."""


def forecast(
    *,
    seconds_to_reset: float,
    seconds_since_reset: float,
    requests_last_minute: int,
    requests_today: int,
    rpd_limit: int | None,
    spend_10m_usd: float,
    spend_today_usd: float,
    spend_month_usd: float,
    daily_budget_usd: float | None,
    monthly_budget_usd: float | None,
) -> ProcessForecast:
    elapsed = max(seconds_since_reset, 1.0)  # just after midnight: no division by ~0
    rate = max(requests_last_minute / 60.0, requests_today / elapsed)
    spend_rate = max(spend_10m_usd / 600.0, spend_today_usd / elapsed)
    at_reset = requests_today + rate * seconds_to_reset
    spend_at_reset = spend_today_usd + spend_rate * seconds_to_reset
    return ProcessForecast(
        scope="process",
        seconds_to_reset=seconds_to_reset,
        requests_today=requests_today,
        requests_per_second=rate,
        requests_at_reset=at_reset,
        rpd_limit=rpd_limit,
        rpd_at_reset_utilization=at_reset / rpd_limit if rpd_limit else None,
        rpd_exhausted_in=_time_left(rpd_limit, requests_today, rate),
        spend_today_usd=spend_today_usd,
        spend_month_usd=spend_month_usd,
        spend_per_second_usd=spend_rate,
        spend_at_reset_usd=spend_at_reset,
        daily_budget_usd=daily_budget_usd,
        monthly_budget_usd=monthly_budget_usd,
        daily_budget_at_reset_utilization=spend_at_reset / daily_budget_usd
        if daily_budget_usd
        else None,
        daily_budget_exhausted_in=_time_left(daily_budget_usd, spend_today_usd, spend_rate),
    )


def _time_left(limit: float | None, used: float, rate: float) -> float | None:
    if limit is None:
        return None
    if used >= limit:
        return 0.0
    return (limit - used) / rate if rate > 0 else None
