"""Quota state under hostile 429s and hostile clocks: what a 429 body, a stream of projects or a
wall clock stepped back can grow or skew in the per-model, per-project and per-tier state (the
ledger's rows, the quota windows, the parser's work), through the real client and the fake
server."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.genai import errors, types

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini import instrumentor, quota_status
from opentelemetry.instrumentation.gemini.quota import errors as quota_errors
from opentelemetry.instrumentation.gemini.record import counters
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"
PROMPT_TOKENS = 12  # the fake server's default promptTokenCount
RETRY = types.HttpRetryOptions(attempts=2, initial_delay=0.01, max_delay=0.02)


def _consumer_429(project: int) -> Reply:
    """A 429 whose ErrorInfo names ``projects/<project>`` as its consumer."""
    body = quota_error_body()
    body["error"]["details"].append(
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {"consumer": f"projects/{project}"},
        }
    )
    return Reply(status=429, error_body=body)


# --- per-project state is bounded -------------------------------------------------------------
def test_the_ledger_stays_bounded_when_429s_name_ever_new_projects(
    fake: FakeGemini, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each consumer a 429 names becomes the project of the calls after it. Past the series cap
    the ledger folded the model pair into ``other`` but kept the project, so every new project
    still made a row (summed on every bank, once a second): rows grew with the projects."""
    cap = 10
    monkeypatch.setattr(counters, "MAX_SERIES", cap)  # our own cap, small for the test
    client = make_client(fake, retry=RETRY)
    calls = 6 * cap
    for project in range(calls):
        fake.enqueue(None, _consumer_429(1000 + project), Reply())
        client.models.generate_content(model=MODEL, contents="x")  # the SDK retries the 429

    inputs = telemetry.points("gcp.gemini.tokens", gcp__gemini__token__type="input")
    assert len(inputs) <= 2 * cap + 1  # was one series per project: 60
    assert sum(p.value for p in inputs) == calls * PROMPT_TOKENS  # none lost to the cap
    ok = telemetry.points("gcp.gemini.requests", http__response__status_code=200)
    assert sum(p.value for p in ok) == calls


# --- a wall clock stepped back ----------------------------------------------------------------
class FakeClock:
    """The quota windows' clock (their own seam), frozen where the test puts it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(telemetry: Telemetry) -> FakeClock:
    recorder = instrumentor.active_recorder
    assert recorder is not None
    fake_clock = FakeClock(time.time())
    recorder.windows.clock = fake_clock
    return fake_clock


def _rejected_calls(fake: FakeGemini, client: Any, n: int) -> None:
    """``n`` calls answered 429 (no retry): each attempt goes to the windows at once, on their
    clock."""
    for _ in range(n):
        fake.enqueue(None, Reply(status=429))
        with pytest.raises(errors.ClientError):
            client.models.generate_content(model=MODEL, contents="x")


def _usage_gauge(telemetry: Telemetry, dimension: str) -> float:
    [point] = telemetry.points(
        "gcp.gemini.quota.usage",
        gen_ai__request__model=MODEL,
        gcp__gemini__quota__dimension=dimension,
    )
    return float(point.value)


def test_the_minute_window_counts_at_once_after_the_clock_steps_back(
    fake: FakeGemini, telemetry: Telemetry, clock: FakeClock
) -> None:
    """Calls made while the clock was 3 hours ahead left their seconds' buckets stamped in the
    future. Once the clock was set right, a call landing on such a bucket was dropped (taken as
    an older second arriving late): rpm read 0 under full traffic, for 3 hours."""
    client = make_client(fake)
    ahead = clock.now + 3 * 3600  # a whole number of minutes: the same buckets
    clock.now = ahead
    _rejected_calls(fake, client, 2)
    clock.now = ahead - 3 * 3600  # the clock set right
    _rejected_calls(fake, client, 3)

    status = quota_status(MODEL)
    assert status is not None
    assert status.usage["rpm"] == 3  # was 0
    assert _usage_gauge(telemetry, "rpm") == 3


def test_a_clock_stepped_back_days_is_in_its_own_day(
    fake: FakeGemini, telemetry: Telemetry, clock: FakeClock
) -> None:
    """A clock two days ahead, then set right, kept counting into the day two days ahead:
    RPD did not reset at the next Pacific midnight, and day_remaining read over two days."""
    client = make_client(fake)
    now = clock.now
    clock.now = now + 2 * 86400
    _rejected_calls(fake, client, 2)
    clock.now = now
    _rejected_calls(fake, client, 3)

    status = quota_status(MODEL)
    assert status is not None and status.forecast is not None
    assert status.usage["rpd"] == 3  # was 5
    assert 0 < status.forecast.seconds_to_reset <= 25 * 3600  # was over two days
    [remaining] = telemetry.points("gcp.gemini.quota.day_remaining")
    assert remaining.value <= 25 * 3600
    assert _usage_gauge(telemetry, "rpd") == 3


# --- what a 429 body can make us do ------------------------------------------------------------
def _quota_failure(quota_id: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": MODEL},
                "quotaValue": "10",
            }
        ],
    }


def _error_info(quota_id: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "metadata": {"quota_limit": quota_id, "quota_metric": "generate_requests"},
    }


@pytest.mark.parametrize("entry", [_quota_failure, _error_info])
def test_a_429_of_thousands_of_violations_is_read_only_up_to_the_cap(
    fake: FakeGemini, telemetry: Telemetry, entry: Any
) -> None:
    """Only 64 violations are kept, but every one of thousands of details entries was read
    first (its quota id's words parsed): on a 5 MB body, as long as the SDK's own handling of
    the answer. The parser's per-name cache counts the names it read."""
    details = [entry(f"Generate{i}RequestsPerMinutePerProject-FreeTier") for i in range(3000)]
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": details}}
    fake.enqueue(None, Reply(status=429, error_body=body))
    client = make_client(fake)
    read_quota_names = quota_errors._read_quota_names
    read_quota_names.cache_clear()
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="x")
    assert caught.value.code == 429
    assert read_quota_names.cache_info().misses <= 2 * 64  # was 3000
    events = [e for e in telemetry.span().events if e.name == "gcp.gemini.quota.exceeded"]
    assert len(events) == 64
    assert telemetry.total("gcp.gemini.quota.exceeded") == 64
    assert {e.attributes["gcp.gemini.quota.window"] for e in events} == {"minute"}


def test_a_window_of_hundreds_of_digits_is_no_window(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """``Per<n>Minute`` in a quota id names an n-minute window; n of 300 digits made a
    ``gcp.gemini.quota.window`` label of 308 characters, past every other name's cap."""
    quota_id = "GenerateRequestsPer" + "9" * 300 + "MinutePerProject-FreeTier"
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}
    body["error"]["details"] = [_quota_failure(quota_id)]
    fake.enqueue(None, Reply(status=429, error_body=body))
    client = make_client(fake)
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=MODEL, contents="x")
    [event] = [e for e in telemetry.span().events if e.name == "gcp.gemini.quota.exceeded"]
    assert "gcp.gemini.quota.window" not in event.attributes
    [point] = telemetry.points("gcp.gemini.quota.exceeded")
    assert "gcp.gemini.quota.window" not in point.attributes
    assert point.attributes["gcp.gemini.quota.dimension"] == "requests"
