"""Rolling usage windows: minute, Pacific day (DST included), 10-minute spend; threads; memory;
fed per second from the counters' ledger."""

from __future__ import annotations

import asyncio
import sys
import threading
import tracemalloc
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pytest

from opentelemetry.instrumentation.gemini.billing.book import CostBreakdown
from opentelemetry.instrumentation.gemini.quota import windows as qw
from opentelemetry.instrumentation.gemini.quota.windows import QuotaWindows, WindowUsage
from opentelemetry.instrumentation.gemini.record.counters import CallLedger
from opentelemetry.instrumentation.gemini.record.usage import Usage

MODEL = "gemini-2.5-flash"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        self.now = now


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


# A Wednesday afternoon in January, Pacific time: far from midnight and from DST switches.
T0 = utc(2026, 1, 14, 20, 0, 0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def windows(clock: FakeClock) -> QuotaWindows:
    return QuotaWindows(clock=clock)


# --- minute window -----------------------------------------------------------------------


def test_minute_counts_drop_out_exactly_60s_later(windows: QuotaWindows, clock) -> None:
    windows.record(MODEL, requests=1, input_tokens=1000)
    clock.set(T0 + 59.999)
    assert windows.usage(MODEL).requests_per_minute == 1
    assert windows.usage(MODEL).input_tokens_per_minute == 1000
    clock.set(T0 + 60)
    assert windows.usage(MODEL).requests_per_minute == 0
    assert windows.usage(MODEL).input_tokens_per_minute == 0
    assert windows.usage(MODEL).requests_today == 1


def test_minute_window_slides(windows: QuotaWindows, clock) -> None:
    windows.record(MODEL, requests=1, input_tokens=100)
    clock.set(T0 + 30)
    windows.record(MODEL, requests=2, input_tokens=200)
    clock.set(T0 + 45.5)
    windows.record(MODEL, requests=4, input_tokens=400)
    assert windows.usage(MODEL).requests_per_minute == 7
    clock.set(T0 + 65)
    assert windows.usage(MODEL).requests_per_minute == 6
    assert windows.usage(MODEL).input_tokens_per_minute == 600
    clock.set(T0 + 90)
    assert windows.usage(MODEL).requests_per_minute == 4
    clock.set(T0 + 105)
    assert windows.usage(MODEL) == WindowUsage(0, 0, 7, 0.0)


def test_minute_granularity_is_the_whole_second(windows: QuotaWindows, clock) -> None:
    clock.set(T0 + 0.75)
    windows.record(MODEL, requests=1)
    clock.set(T0 + 59.99)
    assert windows.usage(MODEL).requests_per_minute == 1
    clock.set(T0 + 60.0)  # its second [T0, T0 + 1) has left the window
    assert windows.usage(MODEL).requests_per_minute == 0


def test_ring_slot_reused_after_a_long_gap(windows: QuotaWindows, clock) -> None:
    windows.record(MODEL, requests=3, input_tokens=30)
    clock.set(T0 + 3600)  # same ring slot, an hour later
    windows.record(MODEL, requests=1, input_tokens=10)
    assert windows.usage(MODEL).requests_per_minute == 1
    assert windows.usage(MODEL).input_tokens_per_minute == 10


def test_many_records_in_one_second_accumulate(windows: QuotaWindows) -> None:
    for _ in range(1000):
        windows.record(MODEL, requests=1, input_tokens=7)
    assert windows.usage(MODEL) == WindowUsage(1000, 7000, 1000, 0.0)


def test_models_are_independent(windows: QuotaWindows) -> None:
    windows.record("gemini-2.5-pro", requests=2, input_tokens=5)
    windows.record(MODEL, requests=1, input_tokens=3)
    assert windows.usage("gemini-2.5-pro") == WindowUsage(2, 5, 2, 0.0)
    assert windows.usage(MODEL) == WindowUsage(1, 3, 1, 0.0)
    assert sorted(windows.models()) == ["gemini-2.5-flash", "gemini-2.5-pro"]


def test_unknown_model_is_all_zero(windows: QuotaWindows) -> None:
    assert windows.usage("never-seen") == WindowUsage(0, 0, 0, 0.0)
    assert windows.models() == []
    assert windows.spend_10m_total() == 0.0


# --- Pacific day -------------------------------------------------------------------------


def _assert_resets_at(windows: QuotaWindows, clock: FakeClock, reset: float) -> None:
    clock.set(reset - 3600)
    windows.record(MODEL, requests=2)
    clock.set(reset - 0.001)
    windows.record(MODEL, requests=3)
    assert windows.usage(MODEL).requests_today == 5
    clock.set(reset)
    assert windows.usage(MODEL).requests_today == 0
    windows.record(MODEL, requests=1)
    assert windows.usage(MODEL).requests_today == 1
    # The minute window does not care about midnight.
    assert windows.usage(MODEL).requests_per_minute == 4


def test_day_resets_at_pacific_midnight_in_winter(windows: QuotaWindows, clock) -> None:
    # 2026-01-15 00:00 PST = 08:00 UTC.
    _assert_resets_at(windows, clock, utc(2026, 1, 15, 8))


def test_day_resets_at_pacific_midnight_in_summer(clock) -> None:
    clock.set(utc(2026, 7, 14, 20))
    windows = QuotaWindows(clock=clock)
    # 2026-07-15 00:00 PDT = 07:00 UTC.
    _assert_resets_at(windows, clock, utc(2026, 7, 15, 7))


def test_utc_midnight_is_not_a_reset(windows: QuotaWindows, clock) -> None:
    clock.set(utc(2026, 1, 14, 23, 59, 59))
    windows.record(MODEL, requests=1)
    clock.set(utc(2026, 1, 15, 0, 0, 1))
    windows.record(MODEL, requests=1)
    assert windows.usage(MODEL).requests_today == 2


def test_spring_forward_day_is_23_hours(clock) -> None:
    # 2026-03-08: midnight PST (08:00 UTC); clocks jump at 02:00; next midnight is PDT (07:00 UTC).
    clock.set(utc(2026, 3, 8, 8, 0, 0))
    windows = QuotaWindows(clock=clock)
    windows.record(MODEL, requests=1)
    clock.set(utc(2026, 3, 8, 7, 59, 59) + 23 * 3600)  # 06:59:59 UTC on the 9th: still the 8th
    windows.record(MODEL, requests=1)
    assert windows.usage(MODEL).requests_today == 2
    clock.set(utc(2026, 3, 9, 7, 0, 0))
    assert windows.usage(MODEL).requests_today == 0


def test_fall_back_day_is_25_hours(clock) -> None:
    # 2026-11-01: midnight PDT (07:00 UTC); clocks fall back at 02:00; next midnight is PST.
    clock.set(utc(2026, 11, 1, 7, 0, 0))
    windows = QuotaWindows(clock=clock)
    windows.record(MODEL, requests=1)
    clock.set(utc(2026, 11, 2, 7, 0, 0))  # 23:00 PST on the 1st: a fixed -7 h would reset here
    windows.record(MODEL, requests=1)
    assert windows.usage(MODEL).requests_today == 2
    clock.set(utc(2026, 11, 2, 7, 59, 59))
    assert windows.usage(MODEL).requests_today == 2
    clock.set(utc(2026, 11, 2, 8, 0, 0))
    assert windows.usage(MODEL).requests_today == 0


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (utc(2026, 1, 15, 12), utc(2026, 1, 15, 8), utc(2026, 1, 16, 8)),
        (utc(2026, 7, 15, 12), utc(2026, 7, 15, 7), utc(2026, 7, 16, 7)),
        (utc(2026, 3, 8, 12), utc(2026, 3, 8, 8), utc(2026, 3, 9, 7)),
        (utc(2026, 11, 1, 12), utc(2026, 11, 1, 7), utc(2026, 11, 2, 8)),
        (utc(2026, 11, 2, 7, 30), utc(2026, 11, 1, 7), utc(2026, 11, 2, 8)),
    ],
)
def test_pacific_day_bounds(now: float, start: float, end: float) -> None:
    assert qw.pacific_day_bounds(now) == (start, end)
    assert qw._us_pacific_day_bounds(now) == (start, end)


@pytest.mark.skipif(qw._PACIFIC is None, reason="no tz database to compare the fallback with")
def test_fallback_rules_agree_with_zoneinfo_2020_to_2032() -> None:
    day = date(2020, 1, 1)
    while day < date(2033, 1, 1):
        midnight = datetime(day.year, day.month, day.day, tzinfo=qw._PACIFIC).timestamp()
        for offset in (0, 1, 2 * 3600 - 1, 2 * 3600, 3 * 3600, 12 * 3600, 23 * 3600 - 1):
            now = midnight + offset
            assert qw._us_pacific_day_bounds(now) == qw.pacific_day_bounds(now), day
        day += timedelta(days=1)


def test_day_roll_computes_bounds_once_per_day(monkeypatch, windows: QuotaWindows, clock) -> None:
    calls = []
    real = qw.pacific_day_bounds
    monkeypatch.setattr(qw, "pacific_day_bounds", lambda now: calls.append(now) or real(now))
    for i in range(5000):
        clock.set(T0 + i * 10)  # ~14 hours, across one Pacific midnight
        windows.record(MODEL, requests=1)
    assert len(calls) == 2  # first use, then the midnight


# --- spend -------------------------------------------------------------------------------


def test_spend_over_rolling_10_minutes(windows: QuotaWindows, clock) -> None:
    windows.record(MODEL, requests=1, cost_usd=0.25)
    clock.set(T0 + 300)
    windows.record(MODEL, cost_usd=1.0)
    windows.record("gemini-2.5-pro", cost_usd=2.0)
    assert windows.usage(MODEL).spend_10m == pytest.approx(1.25)
    assert windows.spend_10m_total() == pytest.approx(3.25)
    clock.set(T0 + 599.9)
    assert windows.usage(MODEL).spend_10m == pytest.approx(1.25)
    clock.set(T0 + 600)
    assert windows.usage(MODEL).spend_10m == pytest.approx(1.0)
    assert windows.spend_10m_total() == pytest.approx(3.0)
    clock.set(T0 + 900)
    assert windows.spend_10m_total() == 0.0
    assert windows.usage(MODEL).requests_today == 1


def test_spend_only_records_do_not_count_requests(windows: QuotaWindows) -> None:
    windows.record(MODEL, cost_usd=0.5)
    assert windows.usage(MODEL) == WindowUsage(0, 0, 0, 0.5)


# --- concurrency and memory --------------------------------------------------------------


def _run_threads(threads: int, work: Callable[[int], None]) -> None:
    """``work(n)`` on ``threads`` threads started together, switching as often as possible."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    start = threading.Barrier(threads)

    def run(n: int) -> None:
        start.wait()
        work(n)

    try:
        pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        sys.setswitchinterval(old)


def test_threads_give_exact_totals(windows: QuotaWindows) -> None:
    threads, per_thread = 8, 10_000

    def work(n: int) -> None:
        model = MODEL if n % 2 else "gemini-2.5-pro"
        for _ in range(per_thread):
            windows.record(model, requests=1, input_tokens=3, cost_usd=0.5)

    _run_threads(threads, work)
    half = threads // 2 * per_thread
    for model in (MODEL, "gemini-2.5-pro"):
        assert windows.usage(model) == WindowUsage(half, 3 * half, half, 0.5 * half)
    assert windows.spend_10m_total() == 0.5 * threads * per_thread


async def test_works_from_asyncio_tasks(windows: QuotaWindows) -> None:
    async def task() -> None:
        for _ in range(100):
            windows.record(MODEL, requests=1, input_tokens=2)
            await asyncio.sleep(0)

    await asyncio.gather(*(task() for _ in range(10)))
    assert windows.usage(MODEL) == WindowUsage(1000, 2000, 1000, 0.0)


def _buffer_sizes(windows: QuotaWindows) -> list[int]:
    return [
        len(getattr(win, name))
        for win in windows._models.values()
        for name in ("sec", "req", "tok", "spend_slot", "spend")
    ]


def test_memory_is_bounded(windows: QuotaWindows, clock) -> None:
    for i in range(1000):
        clock.set(T0 + i * 0.37)
        windows.record(MODEL, requests=1, input_tokens=10**6 + i, cost_usd=0.001)
    sizes = _buffer_sizes(windows)
    # What the windows' own code allocates and keeps: other threads (a previous test's exporter
    # still winding down) allocate in the same process.
    ours = [tracemalloc.Filter(True, qw.__file__)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(ours)
        for i in range(1000, 101_000):  # ~10 hours of traffic, across a Pacific midnight
            clock.set(T0 + i * 0.37)
            windows.record(MODEL, requests=1, input_tokens=10**6 + i, cost_usd=0.001)
        after = tracemalloc.take_snapshot().filter_traces(ours)
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert _buffer_sizes(windows) == sizes == [60] * 5
    assert grown < 20_000


# --- fed by the counters' ledger: each second's calls banked as one sum per model ----------


def _ledger(windows: QuotaWindows) -> CallLedger:
    return CallLedger(windows.record, windows.clock)


def _call(
    ledger: CallLedger, model: str = MODEL, prompt: int = 100, usd: float = 0.0, billed=True
) -> None:
    """One finished call: one successful attempt, ``prompt`` input tokens, ``usd`` of output."""
    cost = CostBreakdown(0.0, 0.0, usd, 0.0, billed, "test") if usd else None
    ledger.add(model, model, "tier_1", 1, Usage(prompt_tokens=prompt, candidates_tokens=5), cost)


def test_ledger_banks_a_second_when_the_next_begins(windows: QuotaWindows, clock) -> None:
    ledger = _ledger(windows)
    for _ in range(3):
        _call(ledger)
    assert windows.usage(MODEL).requests_per_minute == 0  # not banked yet: still this second
    clock.set(T0 + 1.5)
    _call(ledger)  # the first call of the next second banks the three before it
    assert windows.usage(MODEL) == WindowUsage(3, 300, 3, 0.0)
    clock.set(T0 + 59.999)
    ledger.bank()  # a read banks what is pending
    assert windows.usage(MODEL) == WindowUsage(4, 400, 4, 0.0)
    clock.set(T0 + 60)  # the first three were stamped with their own second: they drop out
    assert windows.usage(MODEL) == WindowUsage(1, 100, 4, 0.0)


def test_ledger_bank_mid_second_counts_every_call_once(windows: QuotaWindows, clock) -> None:
    ledger = _ledger(windows)
    _call(ledger, usd=0.5)
    ledger.bank()
    ledger.bank()  # nothing new: nothing added twice
    _call(ledger, usd=0.25)
    ledger.bank()
    assert windows.usage(MODEL) == WindowUsage(2, 200, 2, 0.75)
    clock.set(T0 + 30)
    _call(ledger, model="gemini-2.5-pro", prompt=7)
    ledger.bank()
    assert windows.usage(MODEL) == WindowUsage(2, 200, 2, 0.75)
    assert windows.usage("gemini-2.5-pro") == WindowUsage(1, 7, 1, 0.0)


def test_ledger_after_an_idle_gap_stamps_calls_with_their_own_second(
    windows: QuotaWindows, clock
) -> None:
    ledger = _ledger(windows)
    _call(ledger, usd=1.0)
    clock.set(T0 + 120)  # two minutes without a call: banked only now, at T0
    _call(ledger, usd=2.0)
    assert windows.usage(MODEL) == WindowUsage(0, 0, 1, 1.0)
    ledger.bank()
    assert windows.usage(MODEL) == WindowUsage(1, 100, 2, 3.0)
    clock.set(T0 + 600)
    assert windows.usage(MODEL).spend_10m == pytest.approx(2.0)


def test_ledger_unbilled_calls_add_no_spend(windows: QuotaWindows) -> None:
    ledger = _ledger(windows)
    _call(ledger, usd=1.0, billed=False)  # the free tier: priced at list, billed 0
    _call(ledger, usd=0.5)
    ledger.bank()
    assert windows.usage(MODEL) == WindowUsage(2, 200, 2, 0.5)


def test_ledger_banks_yesterdays_second_out_of_today(clock) -> None:
    midnight = utc(2026, 1, 15, 8, 0, 0)  # Pacific midnight (PST)
    clock.set(midnight - 0.5)
    windows = QuotaWindows(clock=clock)
    ledger = _ledger(windows)
    _call(ledger)
    clock.set(midnight + 0.2)
    windows.record(MODEL, requests=1)  # a failed attempt, recorded at once, rolls the day
    ledger.bank()  # the call of 23:59:59 is banked after midnight: yesterday's
    usage = windows.usage(MODEL)
    assert (usage.requests_per_minute, usage.requests_today) == (2, 1)


def test_a_banked_second_never_overwrites_a_later_one(windows: QuotaWindows, clock) -> None:
    ledger = _ledger(windows)
    _call(ledger)
    clock.set(T0 + 60.5)  # the same minute bucket, one minute later: a failed attempt
    windows.record(MODEL, requests=1, input_tokens=9)
    ledger.bank()  # the call of T0, a minute old: out of the minute, still today
    assert windows.usage(MODEL) == WindowUsage(1, 9, 2, 0.0)


def test_ledger_from_threads_gives_exact_windows(windows: QuotaWindows, clock) -> None:
    ledger = _ledger(windows)
    threads, per_thread = 8, 2_000

    def work(n: int) -> None:
        for i in range(per_thread):
            if n == 0 and i % 100 == 0:
                clock.set(clock.now + 0.5)  # seconds end while the others add
            _call(ledger, usd=0.5)

    _run_threads(threads, work)
    ledger.bank()
    total = threads * per_thread
    assert clock.now - T0 == 10  # every call within the last minute
    assert windows.usage(MODEL) == WindowUsage(total, 100 * total, total, 0.5 * total)
