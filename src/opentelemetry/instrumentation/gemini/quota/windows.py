"""In-process rolling usage windows, to set beside the tier's limits.

Per model: requests and input tokens over the last 60 seconds (sixty 1-second buckets in a
ring), requests since midnight America/Los_Angeles (when Gemini's RPD resets) and spend over a
rolling 10 minutes (sixty 10-second buckets). Memory per model is fixed whatever the traffic;
``record`` is a few list stores under one short lock, so it is cheap from threads and from
asyncio code alike (nothing in here awaits). Failed attempts are recorded at once; finished
calls reach the windows from the counters' ledger, summed per model and second
(counters.CallLedger).

These are the calls this process saw, not the project's whole usage: Google counts limits per
Cloud project, across every process and key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import Final

MINUTE_BUCKETS: Final = 60  # of 1 second
SPEND_BUCKET_SECONDS: Final = 10
SPEND_BUCKETS: Final = 60  # 60 x 10 s = 10 minutes
# A clock stepped back by at most this much before the current day's start keeps the day (a
# second's correction across midnight must not reset RPD); further back, it is another day.
_STEP_BACK_KEEPS_DAY: Final = 60.0

try:
    from zoneinfo import ZoneInfo

    _PACIFIC: ZoneInfo | None = ZoneInfo("America/Los_Angeles")
except Exception:  # no tz database (e.g. Windows without the tzdata package)
    _PACIFIC = None


@dataclass(frozen=True, slots=True)
class WindowUsage:
    requests_per_minute: int
    input_tokens_per_minute: int
    requests_today: int
    spend_10m: float


_ZERO: Final = WindowUsage(0, 0, 0, 0.0)


def pacific_day_bounds(now: float) -> tuple[float, float]:
    """Epoch seconds of the Pacific midnight at or before ``now`` and of the next one."""
    if _PACIFIC is None:
        return _us_pacific_day_bounds(now)
    day = datetime.fromtimestamp(now, _PACIFIC).date()
    start = datetime.combine(day, dtime(0), _PACIFIC).timestamp()
    end = datetime.combine(day + timedelta(days=1), dtime(0), _PACIFIC).timestamp()
    return start, end


def pacific_month_start(day_start: float) -> float:
    """Epoch seconds of the Pacific midnight starting the month that holds ``day_start`` (a
    Pacific midnight)."""
    # Noon Pacific of that day is on the same calendar date in UTC (19:00 or 20:00 UTC).
    noon = datetime.fromtimestamp(day_start + 12 * 3600, timezone.utc)
    first = date(noon.year, noon.month, 1)
    if _PACIFIC is None:
        return _midnight_epoch(first)
    return datetime.combine(first, dtime(0), _PACIFIC).timestamp()


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def _midnight_utc_offset(day: date) -> int:
    """UTC offset in hours at Pacific midnight starting ``day`` (US rules since 2007).

    Clocks change at 02:00 local, so midnight on the switch day still has the old offset.
    """
    if _nth_sunday(day.year, 3, 2) < day <= _nth_sunday(day.year, 11, 1):
        return -7
    return -8


def _us_pacific_day_bounds(now: float) -> tuple[float, float]:
    """Fallback for ``pacific_day_bounds`` when no tz database is installed."""
    utc = datetime.fromtimestamp(now, timezone.utc)
    day = (utc + timedelta(hours=_midnight_utc_offset(utc.date()))).date()
    start = _midnight_epoch(day)
    if start > now:  # the guess used the wrong side of a switch: midnight is a day earlier
        day -= timedelta(days=1)
        start = _midnight_epoch(day)
    end = _midnight_epoch(day + timedelta(days=1))
    if end <= now:
        start, end = end, _midnight_epoch(day + timedelta(days=2))
    return start, end


def _midnight_epoch(day: date) -> float:
    naive = datetime.combine(day, dtime(0), timezone.utc)
    return (naive - timedelta(hours=_midnight_utc_offset(day))).timestamp()


class _ModelWindow:
    """Fixed-size rings of one model; every field is touched under QuotaWindows._lock."""

    __slots__ = (
        "day_requests",
        "day_spend",
        "day_start",
        "month_spend",
        "month_start",
        "req",
        "sec",
        "spend",
        "spend_slot",
        "tok",
    )

    def __init__(self) -> None:
        self.sec = [-1] * MINUTE_BUCKETS  # which epoch second each bucket holds
        self.req = [0] * MINUTE_BUCKETS
        self.tok = [0] * MINUTE_BUCKETS
        self.spend_slot = [-1] * SPEND_BUCKETS  # which 10-second slot each bucket holds
        self.spend = [0.0] * SPEND_BUCKETS
        self.day_start = -1.0
        self.day_requests = 0
        self.day_spend = 0.0  # USD since day_start (budgets: the billing day is Pacific too)
        self.month_start = -1.0
        self.month_spend = 0.0  # USD since month_start, the 1st of the month, Pacific

    def spend_at(self, slot: int) -> float:
        lo = slot - SPEND_BUCKETS
        stamps = self.spend_slot
        return sum(v for i, v in enumerate(self.spend) if lo < stamps[i] <= slot)


class QuotaWindows:
    """Rolling per-model usage windows with an injectable clock (epoch seconds).

    Window semantics, with ``now`` from the clock:
    - per minute: records whose whole second lies in (now_s - 60, now_s], now_s = floor(now);
      a record drops out exactly 60 s after the start of its second.
    - today: records since the last midnight America/Los_Angeles (DST-correct). The next reset
      instant is computed once per day; a clock that steps backwards keeps the current day,
      unless it lands more than a minute before that day began (then it is another day).
    - spend: 10-second slots in (now_slot - 60, now_slot]: the last 590-600 s.

    A wall clock stepped back leaves buckets stamped later than it reads: they count for
    nothing (they lie after now) and are taken over by the next record that falls on them, so
    the windows count again at once rather than once the clock has caught up (hours).
    """

    __slots__ = ("_day_end", "_day_start", "_lock", "_models", "_month_start", "clock")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _ModelWindow] = {}
        self._day_start = 0.0
        self._day_end = 0.0  # forces a roll on first use
        self._month_start = 0.0

    def reset_after_fork(self) -> None:
        """The child's windows start empty: the parent's calls are the parent's."""
        self._lock = threading.Lock()
        self._models = {}

    def _now(self) -> float:
        """Under the lock: the clock, with the day rolled to the one holding it."""
        now = self.clock()
        if now >= self._day_end or now < self._day_start - _STEP_BACK_KEEPS_DAY:
            self._day_start, self._day_end = pacific_day_bounds(now)
            self._month_start = pacific_month_start(self._day_start)
        return now

    def record(
        self,
        model: str,
        requests: int = 0,
        input_tokens: int = 0,
        cost_usd: float = 0.0,
        at: float | None = None,
    ) -> None:
        """Count requests, input tokens and cost against ``model``, now or ``at`` (an epoch
        second already past: the counters bank each second's calls once it has ended)."""
        win = self._models.get(model)
        if win is None:
            with self._lock:
                win = self._models.setdefault(model, _ModelWindow())
        with self._lock:
            # Read the clock under the lock so records reach the rings in clock order.
            clock_sec = int(clock := self._now())
            # A banked second later than the clock: the clock stepped back since; it is now.
            now = clock if at is None or at > clock else at
            sec = int(now)
            i = sec % MINUTE_BUCKETS
            held = win.sec[i]
            if held == sec:
                win.req[i] += requests
                win.tok[i] += input_tokens
            # held > sec: a later second's bucket (this one left the minute), unless it is later
            # than the clock too (stamped before the clock stepped back).
            elif held < sec or held > clock_sec:
                win.sec[i] = sec
                win.req[i] = requests
                win.tok[i] = input_tokens
            if at is None or at >= self._day_start:  # a banked second of yesterday: not today's
                if win.day_start == self._day_start:
                    win.day_requests += requests
                else:
                    win.day_start = self._day_start
                    win.day_requests = requests
                    win.day_spend = 0.0
            if cost_usd and (at is None or at >= self._day_start):
                if win.day_start != self._day_start:  # no request recorded today yet
                    win.day_start = self._day_start
                    win.day_requests = 0
                    win.day_spend = 0.0
                win.day_spend += cost_usd
            if cost_usd and (at is None or at >= self._month_start):
                if win.month_start == self._month_start:
                    win.month_spend += cost_usd
                else:
                    win.month_start = self._month_start
                    win.month_spend = cost_usd
            if cost_usd:
                slot = sec // SPEND_BUCKET_SECONDS
                j = slot % SPEND_BUCKETS
                held = win.spend_slot[j]
                if held == slot:
                    win.spend[j] += cost_usd
                elif held < slot or held > clock_sec // SPEND_BUCKET_SECONDS:
                    win.spend_slot[j] = slot
                    win.spend[j] = cost_usd

    def usage(self, model: str) -> WindowUsage:
        """The model's current windows; all zero for a model never recorded."""
        win = self._models.get(model)
        if win is None:
            return _ZERO
        with self._lock:
            now = self._now()
            sec = int(now)
            lo = sec - MINUTE_BUCKETS
            stamps = win.sec
            requests = tokens = 0
            for i in range(MINUTE_BUCKETS):
                if lo < stamps[i] <= sec:
                    requests += win.req[i]
                    tokens += win.tok[i]
            today = win.day_requests if win.day_start == self._day_start else 0
            spend = win.spend_at(sec // SPEND_BUCKET_SECONDS)
        return WindowUsage(requests, tokens, today, spend)

    def models(self) -> list[str]:
        """Every model recorded so far (they are kept: memory is fixed per model)."""
        with self._lock:
            return list(self._models)

    def spend_10m_total(self) -> float:
        """Spend over the rolling 10 minutes across all models: the limit is per project."""
        with self._lock:
            slot = int(self.clock() // SPEND_BUCKET_SECONDS)
            return sum(win.spend_at(slot) for win in self._models.values())

    def spend_calendar_totals(self) -> tuple[float, float]:
        """USD since the last Pacific midnight and since the 1st of the month (Pacific), all
        models: budgets are per project, and Google's billing day is Pacific time."""
        with self._lock:
            self._now()  # the day rolled where the clock is
            day = sum(
                (w.day_spend for w in self._models.values() if w.day_start == self._day_start), 0.0
            )
            month = sum(
                (
                    w.month_spend
                    for w in self._models.values()
                    if w.month_start == self._month_start
                ),
                0.0,  # a float even with no spend: one gauge, one point type
            )
        return day, month

    def day_remaining(self) -> float:
        """Seconds until the next Pacific midnight, when RPD resets."""
        with self._lock:
            now = self._now()
            return max(0.0, self._day_end - now)

    def day_elapsed(self) -> float:
        """Seconds since the last Pacific midnight."""
        with self._lock:
            now = self._now()
            return max(0.0, now - self._day_start)
