"""Budgets and the Pacific calendar as gauges, so one set of backend rules serves every team.

The app knows what a backend cannot easily compute: its configured budgets (data, per project),
what it spent since the last Pacific midnight and since the 1st of the month (Google's billing
and RPD day is America/Los_Angeles), and how far the next Pacific midnight is (DST-correct, via
zoneinfo). Prometheus rules sum the spend over processes per project and compare it with the
budget; they scale rates by ``day_remaining`` to forecast the day's end (examples/grafana/rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import attributes as A

if TYPE_CHECKING:
    from .instruments import Instruments
    from .recorder import Recorder


def register_budget_gauges(meter: Meter, instruments: Instruments) -> None:
    """Create the budget, spend and Pacific-day gauges; callbacks read the live recorder."""

    def project_attrs(recorder: Recorder | None) -> dict[str, str] | None:
        if recorder is None:
            return None
        project = instruments.project(recorder.project)  # within the process's cap
        return {A.GEMINI_PROJECT: project} if project is not None else {}

    def observe_budget(_options: CallbackOptions) -> Iterable[Observation]:
        # The recorder read once: uninstrument() on another thread may clear it meanwhile.
        recorder = instruments.recorder
        base = project_attrs(recorder)
        if base is None or recorder is None:
            return []
        settings = recorder.settings
        out = []
        for period, amount in (
            ("day", settings.daily_budget_usd),
            ("month", settings.monthly_budget_usd),
        ):
            if amount is not None:
                out.append(Observation(amount, {**base, A.GEMINI_BUDGET_PERIOD: period}))
        return out

    def observe_spend(_options: CallbackOptions) -> Iterable[Observation]:
        base = project_attrs(instruments.recorder)
        if base is None:
            return []
        instruments.counters.bank()  # calls finished this second reach the windows first
        day, month = instruments.windows.spend_calendar_totals()
        return [
            Observation(day, {**base, A.GEMINI_BUDGET_PERIOD: "day"}),
            Observation(month, {**base, A.GEMINI_BUDGET_PERIOD: "month"}),
        ]

    def observe_remaining(_options: CallbackOptions) -> Iterable[Observation]:
        base = project_attrs(instruments.recorder)
        if base is None:
            return []
        return [Observation(instruments.windows.day_remaining(), base)]

    def observe_elapsed(_options: CallbackOptions) -> Iterable[Observation]:
        base = project_attrs(instruments.recorder)
        if base is None:
            return []
        return [Observation(instruments.windows.day_elapsed(), base)]

    meter.create_observable_gauge(
        A.METRIC_BUDGET,
        [observe_budget],
        unit="USD",
        description="The configured Gemini budget per period (day, month; Pacific calendar).",
    )
    meter.create_observable_gauge(
        A.METRIC_SPEND,
        [observe_spend],
        unit="USD",
        description="This process's billed USD since the last Pacific midnight (day) and the "
        "1st of the month (month).",
    )
    meter.create_observable_gauge(
        A.METRIC_QUOTA_DAY_REMAINING,
        [observe_remaining],
        unit="s",
        description="Seconds until the next midnight America/Los_Angeles, when RPD resets.",
    )
    meter.create_observable_gauge(
        A.METRIC_QUOTA_DAY_ELAPSED,
        [observe_elapsed],
        unit="s",
        description="Seconds since the last midnight America/Los_Angeles.",
    )
