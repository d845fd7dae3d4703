"""Where this process stands against a model's rate limits, for apps that want to act on it.

The gauges ``gcp.gemini.quota.*`` chart the same numbers; this is the in-process read, e.g. to
slow a batch job down before Google answers 429::

    from opentelemetry.instrumentation.gemini import quota_status

    status = quota_status("gemini-2.5-flash")
    if status is not None and status.utilization.get("rpm", 0.0) > 0.8:
        time.sleep(5)

Usage counts only this process's calls: Google applies limits per Cloud project, across every
process and key, so a fleet's position comes from summing the counters in a metrics backend.
``status.forecast`` projects this process alone to the next RPD reset (midnight Pacific) and
against its budgets; the fleet's forecast per project is the recording rules'
(examples/grafana/rules/gemini-rules.yml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from . import instrumentor
from .record.collecting import in_collection
from .record.forecast import ProcessForecast, forecast
from .record.instruments import BATCH_DIM, SESSIONS_DIM, utilization
from .record.request import normalize_model

__all__ = ["ProcessForecast", "QuotaStatus", "quota_status"]


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """One model's quota position as this process sees it.

    Dimension keys are ``"rpm"`` (requests in the last minute), ``"tpm"`` (input tokens in the
    last minute) and ``"rpd"`` (requests since midnight America/Los_Angeles). Requests count
    every HTTP attempt, the SDK's retries and 429s included, as Google counts them. For a model
    that had a Live API session or a Batch API job in this process, as the gauges report them:
    ``"live_sessions"`` (sessions open now) and ``"batch_enqueued_tokens"`` (tokens in its
    unfinished jobs, an estimate at 4 characters a token).
    """

    model: str
    tier: str
    """``free``, ``tier_1``, ``tier_2``, ``tier_3`` or ``unknown``."""
    tier_source: str
    """``config``, ``quota_id`` (learned from a 429) or ``default``."""
    limits: Mapping[str, int]
    """The tier's published limits; a dimension with no known limit is absent."""
    usage: Mapping[str, int]
    utilization: Mapping[str, float]
    """usage / limit for each dimension with a known, non-zero limit."""
    spend_10m_usd: float
    """Billed USD over the rolling 10 minutes, all models (Google's spend limit is per project)."""
    spend_10m_limit_usd: float | None
    spend_10m_utilization: float | None
    last_retry_delay: float | None
    """Seconds the latest 429 for this model asked to wait (RetryInfo or message), if any."""
    last_retry_at: float | None
    """When that 429 arrived, in epoch seconds (``time.time()``)."""
    forecast: ProcessForecast | None = None
    """THIS PROCESS's forecast to the next RPD reset and against its budgets (scope
    ``"process"``: other processes of the project are not in it)."""


def quota_status(model: str) -> QuotaStatus | None:
    """``model``'s limits, this process's usage and utilization; None when not instrumented,
    and when called from inside a garbage collection on this thread (a ``__del__`` or weakref
    callback), where waiting for the recorder's locks could hang the thread for good.

    ``model`` is spelled as in the call (``"models/gemini-2.5-flash"`` works too). A model not
    called yet reports zero usage against its tier's limits.
    """
    recorder = instrumentor.active_recorder
    if recorder is None or in_collection():
        return None
    name = normalize_model(model)
    tier, source = recorder.tier, recorder.tier_source
    limits = recorder.quota_limits(name, tier)
    usage = recorder.quota_usage(name)
    instruments = recorder.instruments
    for dimension, positions in (
        (SESSIONS_DIM, instruments.sessions(recorder, tier)),
        (BATCH_DIM, instruments.batch_positions(recorder, tier)),
    ):
        for model_name, used, limit in positions:
            if model_name == name:
                usage[dimension] = used
                if limit is not None:
                    limits[dimension] = limit
    spend = recorder.spend_10m()
    spend_limit = recorder.spend_limit_10m(tier)
    retry = recorder.last_retry.get(name)
    windows = recorder.windows
    spend_today, spend_month = windows.spend_calendar_totals()  # banked by spend_10m above
    settings = recorder.settings
    return QuotaStatus(
        model=name,
        tier=tier,
        tier_source=source,
        limits=MappingProxyType(limits),
        usage=MappingProxyType(usage),
        utilization=MappingProxyType(utilization(usage, limits)),
        spend_10m_usd=spend,
        spend_10m_limit_usd=spend_limit,
        spend_10m_utilization=spend / spend_limit if spend_limit else None,
        last_retry_delay=retry[0] if retry is not None else None,
        last_retry_at=retry[1] if retry is not None else None,
        forecast=forecast(
            seconds_to_reset=windows.day_remaining(),
            seconds_since_reset=windows.day_elapsed(),
            requests_last_minute=usage.get("rpm", 0),
            requests_today=usage.get("rpd", 0),
            rpd_limit=limits.get("rpd"),
            spend_10m_usd=spend,
            spend_today_usd=spend_today,
            spend_month_usd=spend_month,
            daily_budget_usd=settings.daily_budget_usd,
            monthly_budget_usd=settings.monthly_budget_usd,
        ),
    )
