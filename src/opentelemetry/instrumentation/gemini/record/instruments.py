"""Every instrument of one meter provider, created once and kept across re-instrumentation.

The OTel SDK hands back an instrument already registered under the same name and drops the
callbacks passed the second time, so a recorder built after ``uninstrument()`` cannot create its
own: it takes these, whose observable callbacks read whichever recorder is live (``recorder``).
The in-process totals (counters, quota windows) live here too, so a re-instrumented process
keeps counting from where it was: a cumulative counter never goes back.

After a fork the child starts from zero (its parent exports the totals so far) with fresh
locks, as the OTel SDK does for its own state.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation, get_meter

from .. import attributes as A
from ..bounds import int64
from ..quota.windows import QuotaWindows
from ..version import __version__
from .batches import BatchJobs
from .budgets import register_budget_gauges
from .call import drain_abandoned_aside
from .counters import DashboardCounters, label_caps
from .grounding import GroundingMeter
from .live import OpenSessions, PendingUsage
from .storage import StorageMeter

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from .recorder import Recorder

SCOPE = "opentelemetry.instrumentation.gemini"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
_SESSIONS = A.QUOTA_DIMENSION_LIVE_SESSIONS


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self.recorder: Recorder | None = None  # the live one, read by the gauges
        self.duration = meter.create_histogram(
            A.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(A.DURATION_BUCKETS),
        )
        self.token_usage = meter.create_histogram(
            A.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(A.TOKEN_BUCKETS),
        )
        self.ttfc = meter.create_histogram(
            A.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the streaming request to its first chunk.",
            explicit_bucket_boundaries_advisory=list(A.DURATION_BUCKETS),
        )
        self.retry_delay = meter.create_histogram(
            A.METRIC_RETRY_DELAY,
            unit="s",
            description="Retry delay the server asked for in a 429 answer.",
            explicit_bucket_boundaries_advisory=[1, 2, 5, 10, 20, 30, 60, 120, 300, 3600, 86400],
        )
        self.windows = QuotaWindows()
        self.batches = BatchJobs()  # Batch API jobs: enqueued tokens, results priced once
        # Its first callback records the calls abandoned since the last collection, so this
        # collection already counts them.
        # Labels whose values come from answers or the app's clients (projects, quota ids...):
        # capped per process, one cap per label shared by every instrument carrying it.
        self.caps = label_caps()
        self.counters = DashboardCounters(
            meter, self.windows, before_collect=self._before_collect, caps=self.caps
        )
        # Spend no call row holds: context cache storage (token-hours) and grounding fees.
        self.storage = StorageMeter(meter, self.windows, caps=self.caps)
        self.grounding = GroundingMeter(meter, self.windows, caps=self.caps)
        self.counters.cost_sources += [
            self.storage.cost_observations,
            self.grounding.cost_observations,
        ]
        # Live API sessions open now, per model: the quota gauges' live_sessions dimension.
        self.live_sessions = OpenSessions()
        # Their usage messages, priced and counted before every read of the counters or windows.
        self.live_usage = PendingUsage(self.counters, self.windows)
        self.counters.before_bank = self.live_usage.drain
        for name, callback, description in (
            (
                A.METRIC_QUOTA_LIMIT,
                self._observe_limits,
                "The tier's published limit per model: rpm, tpm, rpd.",
            ),
            (
                A.METRIC_QUOTA_USAGE,
                self._observe_usage,
                "This process's usage in the quota windows: requests and input tokens in the "
                "last minute, requests since Pacific midnight, USD in 10 minutes.",
            ),
            (
                A.METRIC_QUOTA_UTILIZATION,
                self._observe_utilization,
                "This process's usage divided by the tier's limit.",
            ),
        ):
            meter.create_observable_gauge(name, [callback], unit="1", description=description)
        register_budget_gauges(meter, self)

    def _before_collect(self) -> None:
        """A collection's first callback: the calls abandoned since the last one, then the Live
        usage messages queued since (an abandoned session's end drains them too). The calls are
        recorded aside: their span ends must not run under the SDK's collection lock."""
        drain_abandoned_aside()
        live_usage = getattr(self, "live_usage", None)  # None: a collection during __init__
        if live_usage is not None:
            live_usage.drain()

    # --- observable gauges (collection time, not the call path) -----------------------------
    # One bank of the counters per collection, then one pass over the models: linear in the
    # number of models (they are capped, bounds.ModelCap).
    # Each callback reads the tier and project once: a 429 may change them mid-collection, and
    # one collection must not label one tier's limits with another's name.
    def _positions(self, tier: str) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        """(model, limits, usage) for every model this process used, for the live recorder."""
        recorder = self.recorder
        if recorder is None:
            return []
        self.counters.bank()
        return [
            (model, recorder.quota_limits(model, tier), recorder.window_usage(model))
            for model in sorted(self.windows.models())
        ]

    def _observe_limits(self, _options: CallbackOptions) -> Iterable[Observation]:
        recorder = self.recorder
        if recorder is None or recorder.limits is None:
            return []
        tier, project = recorder.tier, self.project(recorder.project)
        out = [
            Observation(int64(value), _gauge_attrs(model, tier, dim, project))
            for model, limits, _usage in self._positions(tier)
            for dim, value in limits.items()
        ] + [
            Observation(int64(limit), _gauge_attrs(model, tier, BATCH_DIM, project))
            for model, _tokens, limit in self.batch_positions(recorder, tier)
            if limit is not None
        ]
        out.extend(
            Observation(limit, _gauge_attrs(model, tier, _SESSIONS, project))
            for model, _open, limit in self.sessions(recorder, tier)
            if limit is not None
        )
        return out

    def _observe_usage(self, _options: CallbackOptions) -> Iterable[Observation]:
        recorder = self.recorder
        if recorder is None:
            return []
        tier, project = recorder.tier, self.project(recorder.project)
        out = [
            Observation(int64(value), _gauge_attrs(model, tier, dim, project))
            for model, _limits, usage in self._positions(tier)
            for dim, value in usage.items()
        ]
        out.append(Observation(self.windows.spend_10m_total(), _spend_attrs(tier, project)))
        out.extend(
            Observation(n, _gauge_attrs(model, tier, _SESSIONS, project))
            for model, n, _limit in self.sessions(recorder, tier)
        )
        out += [
            Observation(int64(tokens), _gauge_attrs(model, tier, BATCH_DIM, project))
            for model, tokens, _limit in self.batch_positions(recorder, tier)
        ]
        return out

    def _observe_utilization(self, _options: CallbackOptions) -> Iterable[Observation]:
        recorder = self.recorder
        if recorder is None:
            return []
        tier, project = recorder.tier, self.project(recorder.project)
        out = [
            Observation(value, _gauge_attrs(model, tier, dim, project))
            for model, limits, usage in self._positions(tier)
            for dim, value in utilization(usage, limits).items()
        ]
        spend_limit = recorder.spend_limit_10m(tier)
        if spend_limit:
            out.append(
                Observation(
                    self.windows.spend_10m_total() / spend_limit,
                    _spend_attrs(tier, project),
                )
            )
        out.extend(
            Observation(n / limit, _gauge_attrs(model, tier, _SESSIONS, project))
            for model, n, limit in self.sessions(recorder, tier)
            if limit
        )
        out += [
            Observation(tokens / limit, _gauge_attrs(model, tier, BATCH_DIM, project))
            for model, tokens, limit in self.batch_positions(recorder, tier)
            if limit
        ]
        return out

    def project(self, project: str | None) -> str | None:
        """A project as metrics carry it: within the process's cap (a 429 may name a new one
        each time), as the counters carry it."""
        return None if project is None else self.caps[A.GEMINI_PROJECT].admit(project)

    def sessions(
        self, recorder: Recorder, tier: str | None = None
    ) -> list[tuple[str, int, int | None]]:
        """(model, Live sessions open now, the tier's concurrent session limit) for every model
        that had a session in this process (at ``tier``, default the recorder's)."""
        limits = recorder.limits
        tier = recorder.tier if tier is None else tier
        out = []
        for model, n in sorted(self.live_sessions.snapshot().items()):
            found = limits.lookup(model, tier) if limits is not None else None
            out.append((model, n, found.live_sessions if found is not None else None))
        return out

    def batch_positions(
        self, recorder: Recorder, tier: str | None = None
    ) -> list[tuple[str, int, int | None]]:
        """(model, tokens enqueued in unfinished Batch API jobs, the tier's limit) per model
        this process enqueued a job for (at ``tier``, default the recorder's)."""
        return [
            (model, tokens, recorder.batch_enqueued_limit(model, tier))
            for model, tokens in sorted(self.batches.enqueued_by_model().items())
        ]

    def reset_after_fork(self) -> None:
        for cap in self.caps.values():
            cap.reset_after_fork()
        self.counters.reset_after_fork()
        self.live_sessions.reset_after_fork()
        self.live_usage.reset_after_fork()
        self.windows.reset_after_fork()
        self.storage.reset_after_fork()
        self.grounding.reset_after_fork()
        self.batches.reset_after_fork()
        if self.recorder is not None:
            self.recorder.reset_after_fork()


BATCH_DIM = A.QUOTA_DIMENSION_BATCH_ENQUEUED
SESSIONS_DIM = _SESSIONS


def utilization(usage: dict[str, int], limits: dict[str, int]) -> dict[str, float]:
    """usage / limit per dimension with a known limit; a 0 limit (no access) has no ratio."""
    return {dim: usage.get(dim, 0) / limit for dim, limit in limits.items() if limit}


def _gauge_attrs(
    model: str, tier: str, dimension: str, project: str | None = None
) -> dict[str, str]:
    attrs = {
        A.GEN_AI_REQUEST_MODEL: model,
        A.GEMINI_TIER: tier,
        A.GEMINI_QUOTA_DIMENSION: dimension,
    }
    if project is not None:
        attrs[A.GEMINI_PROJECT] = project
    return attrs


def _spend_attrs(tier: str, project: str | None = None) -> dict[str, str]:
    attrs = {A.GEMINI_TIER: tier, A.GEMINI_QUOTA_DIMENSION: "spend_10m"}
    if project is not None:
        attrs[A.GEMINI_PROJECT] = project
    return attrs


# One Instruments per meter provider, for the life of the provider.
_BY_PROVIDER: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_LIVE: weakref.WeakSet[Instruments] = weakref.WeakSet()
_lock = threading.Lock()
# The global provider as the first instrument() without a meter_provider found it: the API's
# proxy when the app had not set one yet. The proxy hands its instruments (callbacks and all) to
# the provider set later, so those are that provider's instruments from then on.
_first_global: Any = None


def instruments_for(meter_provider: MeterProvider | None) -> Instruments:
    """The provider's instruments (``None``: the global provider), created on first use."""
    from opentelemetry.metrics import get_meter_provider

    global _first_global
    provider = meter_provider if meter_provider is not None else get_meter_provider()
    with _lock:
        found = _BY_PROVIDER.get(provider)
        if found is None and _first_global is not None and provider is get_meter_provider():
            # The global provider, set since instruments were made on its proxy: a second set
            # would not count (the SDK drops the callbacks of a name already registered).
            found = _BY_PROVIDER.get(_first_global)
            if found is not None:
                _BY_PROVIDER[provider] = found
        if found is None and meter_provider is None and _first_global is None:
            _first_global = provider
        if found is None:
            meter = get_meter(SCOPE, __version__, provider, schema_url=SCHEMA_URL)
            found = _BY_PROVIDER[provider] = Instruments(meter)
            _LIVE.add(found)
        return found


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for instruments in list(_LIVE):
        instruments.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
