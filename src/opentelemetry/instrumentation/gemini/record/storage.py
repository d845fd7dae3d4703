"""Storage billed by time: the token-hours of the context caches this process created.

Google bills a context cache's tokens per hour for its actual lifetime: from creation until it
is deleted or expires (an update moves the expiry). Nothing in an answer reports that spend, so
it is metered here, in process: each cache this process created is kept (name, model, tokens,
rate, expiry) and its storage is *banked* - priced from the last bank up to now, or up to its
expiry if that came first - at every metric collection, at an update (before the expiry moves)
and at a delete (which stops the meter). A get or list answer that shows a metered cache with
another expiry (another process updated it) moves the expiry too (``seen``). The banked USD is
the ``cache_storage`` component of ``gcp.gemini.cost`` (and of ``gcp.gemini.cost.list``); two
gauges show what is live now.

Bounded: at most ``MAX_CACHES`` caches are metered at once (further ones are not, with one
warning). Only caches created here are metered: a cache created by another process is that
process's to meter (metering it here too would count it twice).

Expiry is kept as a duration on this process's clock (the answer's expire time minus its create
or update time): a host clock that differs from Google's does not stretch or cut a lifetime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import attributes as A
from ..bounds import int64, warn_once
from .counters import MonotonicSums
from .operations import CREATE_CACHE

if TYPE_CHECKING:
    from ..bounds import LabelCap
    from ..quota.windows import QuotaWindows

MAX_CACHES = 4096  # caches metered at once; each costs ~200 bytes
_HOUR = 3600.0
_SAME_EXPIRY = 1.0  # s: an expiry read back within this of ours is the one we know
# (model, tier, project): the banked USD's series, and the gauges'.
_KEYS = (A.GEN_AI_REQUEST_MODEL, A.GEMINI_TIER, A.GEMINI_PROJECT)


class _Live:
    """One metered cache. ``rate``: list USD per token per hour (None: no storage price)."""

    __slots__ = (
        "billed",
        "expire",
        "model",
        "offset",
        "project",
        "rate",
        "since",
        "tier",
        "tokens",
    )

    def __init__(
        self,
        model: str,
        tokens: int,
        rate: float | None,
        billed: bool,
        tier: str,
        project: str | None,
        since: float,
        expire: float,
    ) -> None:
        self.model = model
        self.tokens = tokens
        self.rate = rate
        self.billed = billed
        self.tier = tier
        self.project = project
        self.since = since  # banked up to here (epoch s, this process's clock)
        self.expire = expire
        # This process's clock minus Google's, as measured by the latest create/update answer
        # (latency included): turns an expire time read later (get, list) into ours.
        self.offset: float | None = None


class StorageMeter:
    """The live caches of this process, their banked storage cost, and two gauges:
    ``gcp.gemini.cache.tokens`` and ``gcp.gemini.cache.storage_rate`` per model."""

    def __init__(
        self,
        meter: Meter,
        windows: QuotaWindows | None = None,
        clock: Callable[[], float] = time.time,
        caps: Mapping[str, LabelCap] | None = None,
    ) -> None:
        self.clock = clock  # settable: tests drive lifetimes without sleeping
        self._windows = windows
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._spent: dict[str, float] = {}  # billed USD banked per live cache (for its delete)
        self._billed = MonotonicSums(_KEYS, caps)
        self._list = MonotonicSums(_KEYS, caps)
        meter.create_observable_gauge(
            A.METRIC_CACHE_TOKENS,
            [self._observe_tokens],
            unit="{token}",
            description="Tokens held in the context caches this process created and that are "
            "still live (not deleted, not expired), per model.",
        )
        meter.create_observable_gauge(
            A.METRIC_CACHE_STORAGE_RATE,
            [self._observe_rate],
            unit="USD/h",
            description="What those caches' storage costs per hour now (billed; 0 on the free "
            "tier), per model.",
        )

    # --- the cache's life --------------------------------------------------------------------
    def created(
        self,
        name: str,
        model: str,
        tokens: int,
        ttl: float,
        rate: float | None,
        billed: bool,
        tier: str,
        project: str | None,
        answered_at: float | None = None,
    ) -> bool:
        """Start metering ``name`` (live for ``ttl`` seconds from now); whether it is metered
        (False beyond MAX_CACHES, or for a name already metered). ``answered_at``: the answer's
        create time (epoch s, Google's clock)."""
        now = self.clock()
        with self._lock:
            if name in self._live:
                return False
            if len(self._live) >= MAX_CACHES:
                self._bank(now)  # expired caches make room
                if len(self._live) >= MAX_CACHES:
                    warn_once(
                        "cache-cap",
                        "more than %d live context caches: the storage of further ones is not "
                        "metered in this process",
                        MAX_CACHES,
                    )
                    return False
            live = _Live(model, tokens, rate, billed, tier, project, now, now + max(ttl, 0.0))
            if answered_at is not None:
                live.offset = now - answered_at
            self._live[name] = live
            return True

    def updated(
        self,
        name: str,
        ttl: float | None,
        tokens: int | None = None,
        answered_at: float | None = None,
    ) -> bool:
        """An update answered: the storage so far is banked at the old expiry, then the expiry
        moves to ``ttl`` seconds from now. Whether ``name`` is metered here. ``answered_at``:
        the answer's update time (Google's clock)."""
        now = self.clock()
        with self._lock:
            self._bank(now)
            live = self._live.get(name)
            if live is None:
                return False
            if ttl is not None:
                live.expire = now + max(ttl, 0.0)
                if answered_at is not None:
                    live.offset = now - answered_at
            if tokens:
                live.tokens = tokens
            return True

    def seen(self, name: str, expire_at: float) -> None:
        """A get or list answer shows a metered cache's expiry (``expire_at``, Google's clock):
        if another process moved it, follow (then bank: a cut expiry stops the meter there)."""
        with self._lock:
            live = self._live.get(name)
            if live is None or live.offset is None:
                return
            expire = expire_at + live.offset
            if abs(expire - live.expire) <= _SAME_EXPIRY:
                return
            live.expire = expire
            self._bank(self.clock())

    def deleted(self, name: str) -> float | None:
        """A delete answered: bank up to now and stop. The billed USD the cache's storage came
        to in this process (None: not metered here)."""
        now = self.clock()
        with self._lock:
            self._bank(now)
            live = self._live.pop(name, None)
            if live is None:
                return None
            return self._spent.pop(name, 0.0)

    def model_of(self, name: str) -> str | None:
        live = self._live.get(name)
        return live.model if live is not None else None

    def rate_per_hour(self, name: str) -> float | None:
        """List USD per hour of a metered cache; None if not metered or unpriced."""
        live = self._live.get(name)
        if live is None or live.rate is None:
            return None
        return live.tokens * live.rate

    # --- banking -----------------------------------------------------------------------------
    def bank(self) -> None:
        with self._lock:
            self._bank(self.clock())

    def _bank(self, now: float) -> None:
        """Under the lock: price every cache from its last bank to ``now`` or its expiry, and
        drop the expired ones."""
        expired = []
        for name, live in self._live.items():
            end = now if now < live.expire else live.expire
            if end > live.since:
                if live.rate is not None and live.tokens:
                    usd = live.tokens * live.rate * (end - live.since) / _HOUR
                    key = (live.model, live.tier, live.project)
                    self._list.add(key, usd)
                    billed = usd if live.billed else 0.0
                    self._billed.add(key, billed)
                    if billed:
                        self._spent[name] = self._spent.get(name, 0.0) + billed
                        if self._windows is not None:
                            self._windows.record(live.model, cost_usd=billed)
                live.since = end
            if now >= live.expire:
                expired.append(name)
        for name in expired:
            del self._live[name]
            self._spent.pop(name, None)

    # --- collection time ---------------------------------------------------------------------
    def cost_observations(self, billed: bool) -> list[Observation]:
        """The ``cache_storage`` component of gcp.gemini.cost (``billed``) or .cost.list."""
        self.bank()
        sums = self._billed if billed else self._list
        return [
            Observation(
                total,
                {
                    **_attrs(values),
                    A.GEMINI_COST_COMPONENT: A.COST_COMPONENT_CACHE_STORAGE,
                    A.GEN_AI_OPERATION_NAME: CREATE_CACHE,
                },
            )
            for values, total in sums.snapshot().items()
        ]

    def _per_model(self) -> dict[tuple[Any, ...], tuple[int, float]]:
        """(model, tier, project) -> (live tokens, billed USD per hour), after a bank."""
        with self._lock:
            self._bank(self.clock())
            out: dict[tuple[Any, ...], tuple[int, float]] = {}
            for live in self._live.values():
                key = (live.model, live.tier, live.project)
                tokens, usd = out.get(key, (0, 0.0))
                per_hour = live.tokens * live.rate if live.rate and live.billed else 0.0
                out[key] = (tokens + live.tokens, usd + per_hour)
            return out

    def _observe_tokens(self, _options: CallbackOptions) -> Iterable[Observation]:
        # Each cache's tokens are clamped, but thousands of them may still sum beyond int64,
        # which would fail the whole OTLP export: saturate, as the counters do.
        return [Observation(int64(t), _attrs(k)) for k, (t, _usd) in self._per_model().items()]

    def _observe_rate(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(usd, _attrs(k)) for k, (_t, usd) in self._per_model().items()]

    def reset_after_fork(self) -> None:
        """The child meters nothing of its parent's: those caches are the parent's to meter."""
        self._lock = threading.Lock()
        self._live = {}
        self._spent = {}
        self._billed.reset_after_fork()
        self._list.reset_after_fork()


def _attrs(values: tuple[Any, ...]) -> dict[str, Any]:
    return {k: v for k, v in zip(_KEYS, values, strict=False) if v is not None}
