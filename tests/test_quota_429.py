"""429s end to end: every real 429 body through the real client, the SDK's own retries counted
attempt by attempt, the tier learned from quota ids, and the quota gauges against the limits.

The parser itself is unit-tested in test_quota_errors.py and the window maths in
test_quota_windows.py; here the question is what a user sees in telemetry.
"""

# No `from __future__ import annotations` here: google-genai 2.x reads the tools' annotations
# as types to declare them to the model, and cannot read them as strings.
import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from conftest import ENTRYPOINTS, Telemetry, call_gemini, make_client, run_async
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.config import ENV_LIMITS_FILE
from opentelemetry.instrumentation.gemini.quota.limits import LimitsFileError, LimitTable
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

FIXTURES = Path(__file__).parent / "fixtures" / "quota_errors"
FLASH = "gemini-2.5-flash"
PROMPT_TOKENS = 12  # the fake server's default promptTokenCount
# Fast SDK retries: every 408/429/5xx is retried up to `attempts` times within the call.
RETRY = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05)


def body(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def too_many(name: str = "free_tier_input_tokens_per_minute") -> Reply:
    return Reply(status=429, error_body=body(name))


# What each stored 429 body says, read by hand from the JSON: the model the call asks for,
# the tier the body names, RetryInfo's delay (else the message's), and per violation
# (quota id, window, dimension, limit, model dimension, location dimension).
Violation = tuple[str | None, str | None, str | None, int | None, str | None, str | None]
EXPECTED: dict[str, tuple[str, str | None, float | None, list[Violation]]] = {
    "developer_bare": (FLASH, None, None, []),
    "error_info_legacy": (
        FLASH,
        None,
        None,
        [
            (
                "GenerateContentRequestsPerMinutePerProjectPerRegion",
                "minute",
                "requests",
                60,
                None,
                "us-west4",
            )
        ],
    ),
    "free_tier_input_tokens_per_minute": (
        FLASH,
        "free",
        26.0,
        [
            (
                "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                "minute",
                "input_tokens",
                250000,
                FLASH,
                "global",
            )
        ],
    ),
    "limit_zero": (
        "gemini-2.5-pro",
        "free",
        38.0,
        [
            (
                "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                "minute",
                "input_tokens",
                0,
                "gemini-2.5-pro",
                "global",
            ),
            (
                "GenerateContentInputTokensPerModelPerDay-FreeTier",
                "day",
                "input_tokens",
                0,
                "gemini-2.5-pro",
                "global",
            ),
            (
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "minute",
                "requests",
                0,
                "gemini-2.5-pro",
                "global",
            ),
            (
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                "day",
                "requests",
                0,
                "gemini-2.5-pro",
                "global",
            ),
        ],
    ),
    "message_only": (FLASH, "free", 39.84, [(None, None, "requests", 20, FLASH, None)]),
    "missing_quota_id": (
        FLASH,
        "free",
        8.0,
        [
            (None, None, "requests", 10, FLASH, "global"),
            (
                "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                "minute",
                "input_tokens",
                250000,
                FLASH,
                None,
            ),
        ],
    ),
    "multiple_violations": (
        "gemini-2.0-flash",
        "free",
        11.769242877,
        [
            (
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "minute",
                "requests",
                15,
                "gemini-2.0-flash",
                "global",
            ),
            (
                "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                "minute",
                "input_tokens",
                1000000,
                "gemini-2.0-flash",
                "global",
            ),
        ],
    ),
    "paid_tier1_input_tokens": (
        "gemini-2.5-pro",
        "tier_1",
        33.0,
        [
            (
                "GenerateContentPaidTierInputTokensPerModelPerMinute",
                "minute",
                "input_tokens",
                2000000,
                "gemini-2.5-pro",
                "global",
            )
        ],
    ),
    "paid_tier2_requests_per_day": (
        "gemini-2.5-pro",
        "tier_2",
        52.0,
        [
            (
                "GenerateRequestsPerDayPerProjectPerModel-PaidTier2",
                "day",
                "requests",
                50000,
                "gemini-2.5-pro",
                "global",
            )
        ],
    ),
    "retry_info_first": (
        "gemini-2.5-pro",
        "tier_1",
        47.0,
        [
            (
                "GenerateRequestsPerMinutePerProjectPerModel-PaidTier",
                "minute",
                "requests",
                150,
                "gemini-2.5-pro",
                "global",
            )
        ],
    ),
    "vertex_bare": (FLASH, None, None, []),
    "vertex_list_wrapped": (FLASH, None, None, []),
}


def test_every_stored_429_body_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in FIXTURES.glob("*.json"))


def quota_events(telemetry: Telemetry) -> list[dict[str, Any]]:
    return [
        dict(e.attributes or {})
        for e in telemetry.span().events
        if e.name == "gcp.gemini.quota.exceeded"
    ]


def requests_by_status(telemetry: Telemetry) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for p in telemetry.points("gcp.gemini.requests"):
        key = p.attributes.get("http.response.status_code", p.attributes.get("error.type"))
        out[key] = out.get(key, 0) + p.value
    return out


def gauge(telemetry: Telemetry, name: str, dimension: str, model: str = FLASH) -> float:
    found = telemetry.points(
        name, gen_ai__request__model=model, gcp__gemini__quota__dimension=dimension
    )
    assert len(found) == 1, found
    return float(found[0].value)


# --- each body through the real client --------------------------------------------------------
PROJECTS = {"error_info_legacy": "123456789012"}  # fixtures whose ErrorInfo names a consumer


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_each_429_body_through_the_real_client(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str, fixture: str
) -> None:
    model, tier, delay, violations = EXPECTED[fixture]
    fake.enqueue(None, too_many(fixture))
    with pytest.raises(errors.ClientError) as caught:
        call_gemini(client, entrypoint, model=model)
    assert caught.value.code == 429  # the SDK's own exception reaches the caller

    span = telemetry.span()
    assert span.attributes["error.type"] == "429"
    assert span.attributes["gcp.gemini.tier"] == (tier or "unknown")
    # An unknown tier has no source attribute: there is nothing to tell.
    assert span.attributes.get("gcp.gemini.tier.source") == ("quota_id" if tier else None)
    attempt_events = [dict(e.attributes) for e in span.events if e.name == "gcp.gemini.attempt"]
    assert attempt_events == [{"gcp.gemini.attempt.number": 1, "http.response.status_code": 429}]

    events = quota_events(telemetry)
    # A body without quota details is still one quota.exceeded event (and one count).
    assert len(events) == max(len(violations), 1)
    for event, (quota_id, window, dimension, limit, q_model, location) in zip(
        events, violations, strict=False
    ):
        expected = {
            "gcp.gemini.quota.id": quota_id,
            "gcp.gemini.quota.window": window,
            "gcp.gemini.quota.dimension": dimension,
            "gcp.gemini.quota.limit": limit,
            "gcp.gemini.quota.model": q_model,
            "gcp.gemini.quota.location": location,
            "gcp.gemini.retry_delay": delay,
        }
        assert {k: event.get(k) for k in expected} == expected
        assert isinstance(event["gcp.gemini.quota.limit"], int)
        assert event["gcp.gemini.quota.metric"].startswith("generativelanguage.googleapis.com/")
    if not violations:
        assert events == [{}]

    assert requests_by_status(telemetry) == {429: 1}
    assert telemetry.total("gcp.gemini.quota.exceeded") == len(events)
    for quota_id, window, dimension, _, _, location in violations:
        low_cardinality = {
            "gen_ai.request.model": model,
            "gcp.gemini.tier": tier or "unknown",
            "gcp.gemini.quota.id": quota_id,
            "gcp.gemini.quota.window": window,
            "gcp.gemini.quota.dimension": dimension,
            "gcp.gemini.quota.location": location,
            # Learned from an ErrorInfo's consumer (the legacy body names one).
            "gcp.gemini.project": PROJECTS.get(fixture),
        }
        expected_attrs = {k: v for k, v in low_cardinality.items() if v is not None}
        assert [
            p.value
            for p in telemetry.points("gcp.gemini.quota.exceeded")
            if dict(p.attributes) == expected_attrs
        ] == [1]
    retry_delays = telemetry.points("gcp.gemini.retry_delay")
    if delay is None:
        assert retry_delays == []
    else:
        assert [(p.count, p.sum) for p in retry_delays] == [(1, delay)]


def test_a_per_day_quota_is_told_apart_from_a_per_minute_one(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, too_many("paid_tier2_requests_per_day"), too_many())
    for _ in range(2):
        with pytest.raises(errors.ClientError):
            call_gemini(client, "sync")
    assert telemetry.total("gcp.gemini.quota.exceeded", gcp__gemini__quota__window="day") == 1
    assert telemetry.total("gcp.gemini.quota.exceeded", gcp__gemini__quota__window="minute") == 1


def test_vertex_bare_429_still_counts_as_a_429_with_an_event(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    fake.enqueue(None, too_many("vertex_bare"))
    with pytest.raises(errors.ClientError):
        call_gemini(make_client(fake, vertexai=True), "sync")
    span = telemetry.span()
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert quota_events(telemetry) == [{}]
    assert requests_by_status(telemetry) == {429: 1}
    [point] = telemetry.points("gcp.gemini.quota.exceeded")
    assert dict(point.attributes) == {
        "gen_ai.request.model": FLASH,
        "gcp.gemini.tier": "unknown",
        "gcp.gemini.project": "fake-project",  # the Vertex client's project
    }


@pytest.mark.parametrize("entrypoint", ("sync_stream", "async_stream"))
def test_429_event_inside_a_200_stream(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    fake.enqueue(None, Reply(error_after_chunks=1, error_body=body("paid_tier2_requests_per_day")))
    with pytest.raises(errors.ClientError):
        call_gemini(client, entrypoint)
    span = telemetry.span()
    assert span.attributes["gcp.gemini.tier"] == "tier_2"
    assert [e["gcp.gemini.quota.window"] for e in quota_events(telemetry)] == ["day"]
    # One HTTP request, answered 200: nothing more counts against RPM.
    assert requests_by_status(telemetry) == {200: 1}
    assert telemetry.total("gcp.gemini.quota.exceeded") == 1


# --- the SDK's own retries ------------------------------------------------------------------
def test_retries_429_429_200_count_three_attempts_on_one_span(
    fake: FakeGemini, telemetry: Telemetry, entrypoint: str
) -> None:
    fake.enqueue(None, too_many(), too_many(), Reply())
    chunks_or_response = call_gemini(make_client(fake, retry=RETRY), entrypoint)
    assert chunks_or_response  # the call succeeded on its third attempt
    assert len(fake.requests) == 3

    span = telemetry.span()
    assert span.attributes["gcp.gemini.attempts"] == 3
    assert "error.type" not in span.attributes
    assert [dict(e.attributes) for e in span.events if e.name == "gcp.gemini.attempt"] == [
        {"gcp.gemini.attempt.number": 1, "http.response.status_code": 429},
        {"gcp.gemini.attempt.number": 2, "http.response.status_code": 429},
    ]
    assert len(quota_events(telemetry)) == 2
    # The tier the first 429 revealed is on every attempt's count, the first one included.
    assert {p.attributes["gcp.gemini.tier"] for p in telemetry.points("gcp.gemini.requests")} == {
        "free"
    }
    assert requests_by_status(telemetry) == {429: 2, 200: 1}
    assert telemetry.total("gcp.gemini.quota.exceeded") == 2
    # Against RPM/RPD every attempt counts; against TPM only the answered prompt.
    assert gauge(telemetry, "gcp.gemini.quota.usage", "rpm") == 3
    assert gauge(telemetry, "gcp.gemini.quota.usage", "rpd") == 3
    assert gauge(telemetry, "gcp.gemini.quota.usage", "tpm") == PROMPT_TOKENS


def test_retries_that_run_out_raise_the_last_429_with_every_attempt_counted(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    fake.enqueue(None, *(too_many("paid_tier2_requests_per_day") for _ in range(3)))
    with pytest.raises(errors.ClientError) as caught:
        call_gemini(make_client(fake, retry=RETRY), "sync")
    assert caught.value.code == 429
    span = telemetry.span()
    assert span.attributes["gcp.gemini.attempts"] == 3
    assert span.attributes["error.type"] == "429"
    assert requests_by_status(telemetry) == {429: 3}
    assert telemetry.total("gcp.gemini.quota.exceeded", gcp__gemini__quota__window="day") == 3


# --- each attempt belongs to the call that made it ----------------------------------------------
LITE = "gemini-2.5-flash-lite"


def attempts_by_model(telemetry: Telemetry) -> dict[str, int]:
    return {
        str(s.attributes["gen_ai.request.model"]): int(s.attributes.get("gcp.gemini.attempts", 1))
        for s in telemetry.spans()
    }


def test_interleaved_streams_and_a_call_in_a_loop_body_keep_their_own_attempts(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    # A sync stream marks itself only while it pulls a chunk: another stream pulled in between,
    # or a call made in the caller's loop body, has its attempts counted on its own span.
    fake.enqueue(FLASH, too_many(), Reply(chunks=2))
    fake.enqueue(LITE, too_many(), too_many(), Reply(chunks=2))
    fake.enqueue("gemini-2.5-pro", too_many(), Reply())
    client = make_client(fake, retry=RETRY)
    first = client.models.generate_content_stream(model=FLASH, contents="x")
    second = client.models.generate_content_stream(model=LITE, contents="x")
    next(first)
    next(second)
    for _ in first:
        client.models.generate_content(model="gemini-2.5-pro", contents="x")
    list(second)
    assert attempts_by_model(telemetry) == {FLASH: 2, LITE: 3, "gemini-2.5-pro": 2}
    assert requests_by_status(telemetry) == {429: 4, 200: 3}


def test_a_stream_pulled_on_another_thread_counts_its_attempts_there(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    # The SDK sends a stream's request (and retries it) on the first pull, in whichever thread
    # pulls: the stream must mark itself in that thread, not in the one that created it.
    fake.enqueue(FLASH, too_many(), Reply(chunks=2))
    client = make_client(fake, retry=RETRY)
    stream = client.models.generate_content_stream(model=FLASH, contents="x")
    pulled: list[Any] = []
    puller = threading.Thread(target=lambda: pulled.extend(stream))
    puller.start()
    puller.join(timeout=30)
    assert len(pulled) == 2
    assert attempts_by_model(telemetry) == {FLASH: 2}
    assert requests_by_status(telemetry) == {429: 1, 200: 1}


def test_a_call_made_by_a_tool_counts_its_own_attempts_and_usage(
    fake: FakeGemini, telemetry: Telemetry, entrypoint: str
) -> None:
    # Automatic function calling runs the tool inside the outer call; the tool's own
    # generate_content call (retried once) is a call of its own, nested in the outer one.
    client = make_client(fake, retry=RETRY)

    def lookup(city: str) -> str:
        """Looks a city up."""
        return client.models.generate_content(model=LITE, contents=city).text or ""

    call = {
        "functionCall": {"name": "lookup", "args": {"city": "Paris"}},
    }
    fake.enqueue(
        FLASH,
        Reply(
            usage={"promptTokenCount": 100, "candidatesTokenCount": 10},
            extra={
                "candidates": [
                    {"content": {"parts": [call], "role": "model"}, "finishReason": "STOP"}
                ]
            },
        ),
        Reply(usage={"promptTokenCount": 200, "candidatesTokenCount": 20}, text="Done."),
    )
    fake.enqueue(LITE, too_many(), Reply(usage={"promptTokenCount": 7, "candidatesTokenCount": 3}))
    call_gemini(client, entrypoint, FLASH, config={"tools": [lookup]})
    spans = {s.attributes["gen_ai.request.model"]: s.attributes for s in telemetry.spans()}
    assert spans[LITE]["gcp.gemini.attempts"] == 2
    assert spans[LITE]["gen_ai.usage.input_tokens"] == 7
    assert spans[FLASH]["gcp.gemini.attempts"] == 2  # its two rounds, no retry
    assert spans[FLASH]["gen_ai.usage.input_tokens"] == 300
    assert spans[FLASH]["gen_ai.usage.output_tokens"] == 30
    assert requests_by_status(telemetry) == {429: 1, 200: 3}


# --- tier -------------------------------------------------------------------------------------
def test_tier_learned_from_a_429_is_kept_by_later_calls(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, too_many("paid_tier2_requests_per_day"))
    with pytest.raises(errors.ClientError):
        call_gemini(client, "sync")
    call_gemini(client, "async")
    first, second = telemetry.spans()
    for span in (first, second):
        assert span.attributes["gcp.gemini.tier"] == "tier_2"
        assert span.attributes["gcp.gemini.tier.source"] == "quota_id"
    assert {p.attributes["gcp.gemini.tier"] for p in telemetry.points("gcp.gemini.requests")} == {
        "tier_2"
    }
    tier_2 = LimitTable.load().lookup(FLASH, "tier_2")
    assert tier_2 is not None
    assert gauge(telemetry, "gcp.gemini.quota.limit", "rpm") == tier_2.rpm


def test_a_later_429_naming_another_tier_moves_the_learned_tier(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, too_many("retry_info_first"), too_many("paid_tier2_requests_per_day"))
    for _ in range(2):
        with pytest.raises(errors.ClientError):
            call_gemini(client, "sync")
    assert [s.attributes["gcp.gemini.tier"] for s in telemetry.spans()] == ["tier_1", "tier_2"]


def test_configured_tier_wins_over_the_429_and_warns_once(
    fake: FakeGemini, client: Any, instrument: Any, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = instrument(tier="tier_1")
    fake.enqueue(None, too_many(), too_many())
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.gemini"):
        for _ in range(2):
            with pytest.raises(errors.ClientError):
                call_gemini(client, "sync")
    for span in telemetry.spans():
        assert span.attributes["gcp.gemini.tier"] == "tier_1"
        assert span.attributes["gcp.gemini.tier.source"] == "config"
    # The events still say which tier's quota Google applied.
    assert all(
        e.attributes["gcp.gemini.quota.id"].endswith("-FreeTier")
        for s in telemetry.spans()
        for e in s.events
        if e.name == "gcp.gemini.quota.exceeded"
    )
    warnings = [r for r in caplog.records if "configured tier" in r.getMessage()]
    assert len(warnings) == 1
    assert "'free'" in warnings[0].getMessage()


# --- limits as data, exported as gauges ------------------------------------------------------
def test_gauges_limit_usage_and_utilization_after_calls(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    limits = {"rpm": 40, "tpm": 1000, "rpd": 400}
    telemetry = instrument(tier="tier_1", limits={FLASH: {"tier_1": limits}})
    for entrypoint in ENTRYPOINTS:
        call_gemini(client, entrypoint)
    usage = {"rpm": 4, "tpm": 4 * PROMPT_TOKENS, "rpd": 4}
    for dim, limit in limits.items():
        assert gauge(telemetry, "gcp.gemini.quota.limit", dim) == limit
        assert gauge(telemetry, "gcp.gemini.quota.usage", dim) == usage[dim]
        assert gauge(telemetry, "gcp.gemini.quota.utilization", dim) == pytest.approx(
            usage[dim] / limit
        )
        point = telemetry.points("gcp.gemini.quota.limit", gcp__gemini__quota__dimension=dim)[0]
        assert point.attributes["gcp.gemini.tier"] == "tier_1"

    spent = sum(s.attributes["gen_ai.usage.cost.amount"] for s in telemetry.spans())
    assert spent > 0
    [spend] = telemetry.points("gcp.gemini.quota.usage", gcp__gemini__quota__dimension="spend_10m")
    assert spend.value == pytest.approx(spent)
    [ratio] = telemetry.points(
        "gcp.gemini.quota.utilization", gcp__gemini__quota__dimension="spend_10m"
    )
    spend_limit = LimitTable.load().spend_limit_10m("tier_1")
    assert spend_limit
    assert ratio.value == pytest.approx(spent / spend_limit)


def test_limit_gauges_follow_the_packaged_table_for_the_tier(client: Any, instrument: Any) -> None:
    telemetry = instrument(tier="free")
    call_gemini(client, "sync", model="models/gemini-2.5-pro")
    row = LimitTable.load().lookup("gemini-2.5-pro", "free")
    assert row is not None
    for dim in ("rpm", "tpm", "rpd"):
        assert gauge(telemetry, "gcp.gemini.quota.limit", dim, "gemini-2.5-pro") == getattr(
            row, dim
        )


def test_unknown_tier_exports_usage_but_no_limit(client: Any, telemetry: Telemetry) -> None:
    call_gemini(client, "sync")
    assert telemetry.points("gcp.gemini.quota.limit") == []
    assert gauge(telemetry, "gcp.gemini.quota.usage", "rpm") == 1
    assert not telemetry.points("gcp.gemini.quota.utilization", gen_ai__request__model=FLASH)


def limits_file(tmp_path: Path, rpm: int) -> str:
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({FLASH: {"tier_2": {"rpm": rpm}}}))
    return str(path)


def test_limits_file_kwarg_overrides_the_table(
    client: Any, instrument: Any, tmp_path: Path
) -> None:
    telemetry = instrument(tier="tier_2", limits_file=limits_file(tmp_path, 7))
    call_gemini(client, "sync")
    assert gauge(telemetry, "gcp.gemini.quota.limit", "rpm") == 7
    tier_2 = LimitTable.load().lookup(FLASH, "tier_2")
    assert tier_2 is not None  # the fields the file does not name keep the table's value
    assert gauge(telemetry, "gcp.gemini.quota.limit", "tpm") == tier_2.tpm


def test_limits_file_env_var_and_the_kwarg_beats_it(
    client: Any, instrument: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LIMITS_FILE, limits_file(tmp_path, 7))
    telemetry = instrument(tier="tier_2", limits={FLASH: {"tier_2": {"rpm": 9}}})
    call_gemini(client, "sync")
    assert gauge(telemetry, "gcp.gemini.quota.limit", "rpm") == 9


def test_limits_file_from_env_var(
    client: Any, instrument: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LIMITS_FILE, limits_file(tmp_path, 7))
    telemetry = instrument(tier="tier_2")
    call_gemini(client, "sync")
    assert gauge(telemetry, "gcp.gemini.quota.limit", "rpm") == 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({FLASH: {"tier_9": {"rpm": 1}}}), "unknown tier"),
        (json.dumps({FLASH: {"tier_1": {"rpm": -1}}}), "non-negative integer"),
    ],
)
def test_a_bad_limits_file_fails_instrument_and_patches_nothing(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "limits.json"
    path.write_text(content)
    instrumentor = GeminiInstrumentor()
    from google.genai import models

    original = models.Models.generate_content
    with pytest.raises(LimitsFileError, match=message) as caught:
        instrumentor.instrument(limits_file=str(path))
    assert str(path) in str(caught.value)
    assert not instrumentor.is_instrumented_by_opentelemetry
    assert models.Models.generate_content is original


def test_a_missing_limits_file_from_the_env_var_fails_instrument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.json"
    monkeypatch.setenv(ENV_LIMITS_FILE, str(missing))
    instrumentor = GeminiInstrumentor()
    with pytest.raises(LimitsFileError, match="not found"):
        instrumentor.instrument()
    assert not instrumentor.is_instrumented_by_opentelemetry


# --- exact counts under concurrency -----------------------------------------------------------
THREADS, CALLS = 8, 25


def test_threads_through_the_real_client_give_exact_counts(
    fake: FakeGemini, instrument: Any
) -> None:
    telemetry = instrument(tier="tier_1")
    # Eight 429s go to whoever asks first; with 10 attempts no call can run out of retries,
    # so every call succeeds and exactly 8 extra attempts happen, whatever the interleaving.
    rejected = 8
    fake.enqueue(None, *(too_many() for _ in range(rejected)))
    client = make_client(
        fake, retry=types.HttpRetryOptions(attempts=10, initial_delay=0.01, max_delay=0.05)
    )
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(CALLS):
                client.models.generate_content(model=FLASH, contents="x")
        except BaseException as error:  # surfaced below: a thread cannot fail the test
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    calls = THREADS * CALLS
    assert_exact_counts(telemetry, calls, rejected)


def test_concurrent_asyncio_tasks_give_exact_counts(fake: FakeGemini, instrument: Any) -> None:
    telemetry = instrument(tier="tier_1")
    rejected, calls = 6, 60
    fake.enqueue(None, *(too_many() for _ in range(rejected)))
    client = make_client(
        fake, retry=types.HttpRetryOptions(attempts=10, initial_delay=0.01, max_delay=0.05)
    )

    async def one(i: int, in_flight: asyncio.Semaphore) -> None:
        async with in_flight:
            if i % 2:
                await client.aio.models.generate_content(model=FLASH, contents="x")
                return
            stream = await client.aio.models.generate_content_stream(model=FLASH, contents="x")
            async for _ in stream:
                pass

    async def run() -> None:
        # Eight in flight at a time: the fake server's listen backlog is small, and more
        # simultaneous connections get reset whether we instrument or not.
        in_flight = asyncio.Semaphore(THREADS)
        await asyncio.gather(*(one(i, in_flight) for i in range(calls)))

    run_async(run())
    assert_exact_counts(telemetry, calls, rejected)


def assert_exact_counts(telemetry: Telemetry, calls: int, rejected: int) -> None:
    spans = telemetry.spans()
    assert len(spans) == calls
    assert sum(s.attributes.get("gcp.gemini.attempts", 1) for s in spans) == calls + rejected
    assert requests_by_status(telemetry) == {200: calls, 429: rejected}
    assert telemetry.total("gcp.gemini.quota.exceeded") == rejected
    assert gauge(telemetry, "gcp.gemini.quota.usage", "rpm") == calls + rejected
    assert gauge(telemetry, "gcp.gemini.quota.usage", "rpd") == calls + rejected
    assert gauge(telemetry, "gcp.gemini.quota.usage", "tpm") == calls * PROMPT_TOKENS
