"""retry_policy="respect_retry_info" (issue 18), through the real client with the SDK's own
retry options on: before the SDK's next attempt after a 429 the policy waits what RetryInfo
asked for (capped by retry_max_wait), gives up at once on a per-day quota with the 429 the SDK
would have raised, and records what it did on the span. The default, "sdk", changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from google.genai import errors, types

from conftest import Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"
RETRY = types.HttpRetryOptions(
    attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0, http_status_codes=[429]
)
ASKED = 1.0  # seconds RetryInfo asks for, far above the SDK's own 0.01-0.02 s backoff
# A call that did not wait for ASKED ends well before it: what is left of ASKED is room for a
# slow machine's stalls, not a speed target.
NO_WAIT = ASKED - 0.3
PER_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_DAY = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
POLICY_KEYS = {
    "gcp.gemini.retry.policy",
    "gcp.gemini.retry.policy.action",
    "gcp.gemini.retry.policy.waited",
    "gcp.gemini.retry.policy.waits",
}


def _429(quota_id: str, delay: float = ASKED) -> Reply:
    return Reply(
        status=429, error_body=quota_error_body(quota_id=quota_id, retry_delay=f"{delay}s")
    )


def _generate(client: Any, mode: str) -> Any:
    if mode == "async":
        return run_async(client.aio.models.generate_content(model=MODEL, contents="x"))
    if mode == "stream":  # the 429 answers the request that opens the stream
        return list(client.models.generate_content_stream(model=MODEL, contents="x"))[-1]
    return client.models.generate_content(model=MODEL, contents="x")


def _timed(client: Any, mode: str) -> tuple[Any, float]:
    started = time.monotonic()
    result = _generate(client, mode)
    return result, time.monotonic() - started


def _policy_attrs(telemetry: Telemetry) -> dict[str, Any]:
    span = telemetry.span()
    return {k: v for k, v in (span.attributes or {}).items() if k in POLICY_KEYS}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_off_by_default_the_sdk_retries_on_its_own_schedule(
    fake: FakeGemini, telemetry: Telemetry, mode: str
) -> None:
    client = make_client(fake, retry=RETRY)
    fake.enqueue(MODEL, _429(PER_MINUTE), Reply())
    result, elapsed = _timed(client, mode)
    assert result.text
    assert elapsed < NO_WAIT  # the SDK's backoff, not the server's delay
    assert len(fake.requests) == 2
    assert _policy_attrs(telemetry) == {}


@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
def test_waits_what_the_server_asked_before_the_next_attempt(
    fake: FakeGemini, instrument: Callable[..., Telemetry], mode: str
) -> None:
    telemetry = instrument(retry_policy="respect_retry_info")
    client = make_client(fake, retry=RETRY)
    fake.enqueue(MODEL, _429(PER_MINUTE), Reply())
    result, elapsed = _timed(client, mode)
    assert result.text  # the call's answer is the SDK's, untouched
    assert elapsed >= ASKED - 0.05
    assert len(fake.requests) == 2
    attrs = _policy_attrs(telemetry)
    assert attrs["gcp.gemini.retry.policy"] == "respect_retry_info"
    assert attrs["gcp.gemini.retry.policy.action"] == "waited"
    assert attrs["gcp.gemini.retry.policy.waits"] == 1
    # The server's delay less the SDK's own backoff, already slept.
    assert ASKED - 0.1 <= attrs["gcp.gemini.retry.policy.waited"] <= ASKED


def test_the_wait_is_capped(
    fake: FakeGemini, instrument: Callable[..., Telemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_RETRY_POLICY", "respect_retry_info")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_RETRY_MAX_WAIT", "0.05")
    telemetry = instrument()
    client = make_client(fake, retry=RETRY)
    fake.enqueue(MODEL, _429(PER_MINUTE, delay=30), Reply())
    _result, elapsed = _timed(client, "sync")
    assert elapsed < 1
    assert _policy_attrs(telemetry)["gcp.gemini.retry.policy.waited"] <= 0.05


def _raised(client: Any, mode: str) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as caught:
        _generate(client, mode)
    return caught.value


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gives_up_at_once_on_a_per_day_quota_with_the_sdks_exception(
    fake: FakeGemini, instrument: Callable[..., Telemetry], mode: str
) -> None:
    # What the SDK raises on its own (not instrumented yet): three attempts, then the last 429.
    client = make_client(fake, retry=RETRY)
    fake.enqueue(MODEL, _429(PER_DAY), _429(PER_DAY), _429(PER_DAY))
    sdk_error = _raised(client, mode)
    assert len(fake.requests) == 3

    fake.reset()
    telemetry = instrument(retry_policy="respect_retry_info")
    fake.enqueue(MODEL, _429(PER_DAY), _429(PER_DAY), _429(PER_DAY))
    started = time.monotonic()
    error = _raised(client, mode)
    assert time.monotonic() - started < NO_WAIT  # no wait for a quota that will not clear
    assert len(fake.requests) == 1
    assert type(error) is type(sdk_error)
    assert (error.code, error.status, error.message, error.details) == (
        sdk_error.code,
        sdk_error.status,
        sdk_error.message,
        sdk_error.details,
    )
    assert _policy_attrs(telemetry) == {
        "gcp.gemini.retry.policy": "respect_retry_info",
        "gcp.gemini.retry.policy.action": "gave_up",
        "gcp.gemini.retry.policy.waited": 0.0,
        "gcp.gemini.retry.policy.waits": 0,
    }
    # The 429 was counted as an attempt, with its quota.
    assert telemetry.total("gcp.gemini.requests", **{"http.response.status_code": 429}) == 1


def test_without_retry_options_a_per_day_429_is_raised_as_before(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    instrument(retry_policy="respect_retry_info")
    client = make_client(fake)  # the SDK's default: no retries
    fake.enqueue(MODEL, _429(PER_DAY))
    error = _raised(client, "sync")
    assert error.code == 429 and len(fake.requests) == 1


def test_the_default_policy_installs_no_hook() -> None:
    from google.genai import _api_client

    before = _api_client.BaseApiClient._request
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument()
    try:
        assert _api_client.BaseApiClient._request is before
    finally:
        instrumentor.uninstrument()
    instrumentor.instrument(retry_policy="respect_retry_info")
    try:
        assert _api_client.BaseApiClient._request is not before
    finally:
        instrumentor.uninstrument()
    assert _api_client.BaseApiClient._request is before


def test_when_the_sdk_runs_out_of_attempts_its_429_reaches_the_caller(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(retry_policy="respect_retry_info", retry_max_wait=0.05)
    client = make_client(fake, retry=RETRY)
    fake.enqueue(MODEL, *(_429(PER_MINUTE) for _ in range(3)))
    error = _raised(client, "sync")
    assert error.code == 429 and len(fake.requests) == 3  # the SDK's attempts limit holds
    attrs = _policy_attrs(telemetry)
    assert attrs["gcp.gemini.retry.policy.action"] == "waited"
    assert attrs["gcp.gemini.retry.policy.waits"] == 2


def test_other_errors_pass_through_untouched(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(retry_policy="respect_retry_info")
    client = make_client(fake, retry=RETRY)
    fake.enqueue(MODEL, Reply(status=400), Reply())
    with pytest.raises(errors.ClientError) as caught:
        _generate(client, "sync")
    assert caught.value.code == 400 and len(fake.requests) == 1  # 400 is not retried
    assert _policy_attrs(telemetry) == {}
