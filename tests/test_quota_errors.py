"""The 429 parser against realistic Gemini error bodies, odd inputs and mutilated ones."""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
from pathlib import Path

import pytest
from google.genai import errors

from opentelemetry.instrumentation.gemini.quota.errors import (
    QuotaViolation,
    RateLimitInfo,
    parse_duration,
    parse_rate_limit,
)

FIXTURES = Path(__file__).parent / "fixtures" / "quota_errors"
API = "generativelanguage.googleapis.com/"
FREE_RPM = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
FREE_RPD = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
FREE_TPM = "GenerateContentInputTokensPerModelPerMinute-FreeTier"
FREE_TPD = "GenerateContentInputTokensPerModelPerDay-FreeTier"
FREE_REQUESTS = API + "generate_content_free_tier_requests"
FREE_INPUT = API + "generate_content_free_tier_input_token_count"


def violation(**fields: object) -> QuotaViolation:
    return QuotaViolation(**fields)  # type: ignore[arg-type]


def load(name: str) -> object:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def message_of(name: str) -> str:
    body = load(name)
    error = body[0]["error"] if isinstance(body, list) else body["error"]
    return error["message"]


# Expected readings, written out by hand from each fixture.
EXPECTED: dict[str, RateLimitInfo] = {
    # The reference's example: RetryInfo's whole seconds win over the message's 26.66s.
    "free_tier_input_tokens_per_minute": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_id=FREE_TPM,
                quota_metric=FREE_INPUT,
                limit=250000,
                window="minute",
                dimension="input_tokens",
                model="gemini-2.5-flash",
                location="global",
                tier="free",
            ),
        ),
        retry_delay=26.0,
        message=message_of("free_tier_input_tokens_per_minute"),
    ),
    "multiple_violations": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_id=FREE_RPM,
                quota_metric=FREE_REQUESTS,
                limit=15,
                window="minute",
                dimension="requests",
                model="gemini-2.0-flash",
                location="global",
                tier="free",
            ),
            violation(
                quota_id=FREE_TPM,
                quota_metric=FREE_INPUT,
                limit=1000000,
                window="minute",
                dimension="input_tokens",
                model="gemini-2.0-flash",
                location="global",
                tier="free",
            ),
        ),
        retry_delay=11.769242877,
        message=message_of("multiple_violations"),
    ),
    "retry_info_first": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_id="GenerateRequestsPerMinutePerProjectPerModel-PaidTier",
                quota_metric=API + "generate_requests_per_model",
                limit=150,
                window="minute",
                dimension="requests",
                model="gemini-2.5-pro",
                location="global",
                tier="tier_1",
            ),
        ),
        retry_delay=47.0,
        message=message_of("retry_info_first"),
    ),
    # Tier 1's input-token quota id names the tier inside the id, with no suffix.
    "paid_tier1_input_tokens": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_id="GenerateContentPaidTierInputTokensPerModelPerMinute",
                quota_metric=API + "generate_content_paid_tier_input_token_count",
                limit=2000000,
                window="minute",
                dimension="input_tokens",
                model="gemini-2.5-pro",
                location="global",
                tier="tier_1",
            ),
        ),
        retry_delay=33.0,
        message=message_of("paid_tier1_input_tokens"),
    ),
    # First violation: no quotaId, no quotaValue (limit comes from the message line). Second:
    # no quotaDimensions (model comes from the message line, location stays unknown).
    "missing_quota_id": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_metric=FREE_REQUESTS,
                limit=10,
                dimension="requests",
                model="gemini-2.5-flash",
                location="global",
                tier="free",
            ),
            violation(
                quota_id=FREE_TPM,
                quota_metric=FREE_INPUT,
                limit=250000,
                window="minute",
                dimension="input_tokens",
                model="gemini-2.5-flash",
                tier="free",
            ),
        ),
        retry_delay=8.0,
        message=message_of("missing_quota_id"),
    ),
    "message_only": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_metric=FREE_REQUESTS,
                limit=20,
                dimension="requests",
                model="gemini-2.5-flash",
                tier="free",
            ),
        ),
        retry_delay=39.84,
        message=message_of("message_only"),
    ),
    "error_info_legacy": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_id="GenerateContentRequestsPerMinutePerProjectPerRegion",
                quota_metric=API + "generate_content_requests",
                limit=60,
                window="minute",
                dimension="requests",
                location="us-west4",
            ),
        ),
        message=message_of("error_info_legacy").replace("123456789012", "<redacted>"),
        project="123456789012",
    ),
    "vertex_bare": RateLimitInfo(
        code=429, status="RESOURCE_EXHAUSTED", message=message_of("vertex_bare")
    ),
    "vertex_list_wrapped": RateLimitInfo(
        code=429, status="RESOURCE_EXHAUSTED", message=message_of("vertex_list_wrapped")
    ),
    "developer_bare": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        message="Resource has been exhausted (e.g. check quota).",
    ),
    "paid_tier2_requests_per_day": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=(
            violation(
                quota_id="GenerateRequestsPerDayPerProjectPerModel-PaidTier2",
                quota_metric=API + "generate_content_paid_tier_2_requests",
                limit=50000,
                window="day",
                dimension="requests",
                model="gemini-2.5-pro",
                location="global",
                tier="tier_2",
            ),
        ),
        retry_delay=52.0,
        message=message_of("paid_tier2_requests_per_day"),
    ),
    # No quotaValue anywhere; every message line says "limit: 0", so every violation gets 0.
    "limit_zero": RateLimitInfo(
        code=429,
        status="RESOURCE_EXHAUSTED",
        violations=tuple(
            violation(
                quota_id=quota_id,
                quota_metric=metric,
                limit=0,
                window=window,
                dimension=dimension,
                model="gemini-2.5-pro",
                location="global",
                tier="free",
            )
            for quota_id, metric, window, dimension in (
                (FREE_TPM, FREE_INPUT, "minute", "input_tokens"),
                (FREE_TPD, FREE_INPUT, "day", "input_tokens"),
                (FREE_RPM, FREE_REQUESTS, "minute", "requests"),
                (FREE_RPD, FREE_REQUESTS, "day", "requests"),
            )
        ),
        retry_delay=38.0,
        message=message_of("limit_zero"),
    ),
}
NAMES = sorted(EXPECTED)


# --- fixtures ------------------------------------------------------------------------------
def test_every_fixture_has_an_expectation() -> None:
    assert sorted(path.stem for path in FIXTURES.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_a_full_429_body(name: str) -> None:
    body = load(name)
    if isinstance(body, list):
        (body,) = body
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == 429
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert isinstance(error["message"], str) and error["message"]
    for entry in error.get("details", []):
        assert entry["@type"].startswith("type.googleapis.com/google.rpc.")


@pytest.mark.parametrize("name", NAMES)
def test_fixture_raw_text(name: str) -> None:
    assert parse_rate_limit((FIXTURES / f"{name}.json").read_text()) == EXPECTED[name]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_every_input_form_reads_the_same(name: str) -> None:
    raw = (FIXTURES / f"{name}.json").read_bytes()
    body = json.loads(raw)
    error = errors.ClientError(429, copy.deepcopy(body))
    inner = (body[0] if isinstance(body, list) else body)["error"]
    forms = [raw, bytearray(raw), body, inner, [body] if isinstance(body, dict) else body]
    forms += [error.details, error]
    for form in forms:
        assert parse_rate_limit(form) == EXPECTED[name], type(form)
    assert error.code == 429 and error.status == "RESOURCE_EXHAUSTED"


def test_reference_body_order_does_not_matter() -> None:
    body = load("multiple_violations")
    details = body["error"]["details"]
    for order in itertools.permutations(details):
        body["error"]["details"] = list(order)
        assert parse_rate_limit(body) == EXPECTED["multiple_violations"]


def test_legacy_error_info_names_the_project_only_in_its_own_field() -> None:
    # The consumer is the project gcp.gemini.project is learned from (issue 18); the message
    # copied to span status stays redacted, so the number appears in exactly one place.
    info = parse_rate_limit(load("error_info_legacy"))
    assert info is not None and info.project == "123456789012"
    assert info.message is not None and "123456789012" not in info.message
    assert "project_number:<redacted>" in info.message


def test_vertex_bare_429_says_nothing_more() -> None:
    info = parse_rate_limit(load("vertex_bare"))
    assert info is not None
    assert (info.code, info.violations, info.retry_delay, info.tier) == (429, (), None, None)


def test_limit_zero_and_per_day_are_visible() -> None:
    zero = parse_rate_limit(load("limit_zero"))
    day = parse_rate_limit(load("paid_tier2_requests_per_day"))
    assert zero is not None and {v.limit for v in zero.violations} == {0}
    assert day is not None and day.tier == "tier_2" and day.violations[0].window == "day"


# --- tier, window and dimension ------------------------------------------------------------
def one(quota_id: str | None = None, metric: str | None = None) -> QuotaViolation:
    item = {}
    if quota_id is not None:
        item["quotaId"] = quota_id
    if metric is not None:
        item["quotaMetric"] = metric
    body = {
        "error": {
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [item]}
            ]
        }
    }
    info = parse_rate_limit(body)
    assert info is not None and len(info.violations) == 1
    return info.violations[0]


@pytest.mark.parametrize(
    ("quota_id", "tier"),
    [
        ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "free"),
        ("GenerateRequestsPerMinutePerProjectPerModel-PaidTier", "tier_1"),
        ("GenerateRequestsPerMinutePerProjectPerModel-PaidTier2", "tier_2"),
        ("GenerateRequestsPerMinutePerProjectPerModel-PaidTier3", "tier_3"),
        ("EmbedContentPerMinutePerProjectPerUserPerModel-PaidTier", "tier_1"),
        ("GenerateContentPaidTierInputTokensPerModelPerMinute", "tier_1"),
        ("GenerateRequestsPerMinutePerProjectPerModel-PaidTier9", None),
        ("GenerateRequestsPerMinutePerProjectPerModel", None),
    ],
)
def test_tier_from_quota_id(quota_id: str, tier: str | None) -> None:
    assert one(quota_id).tier == tier


@pytest.mark.parametrize(
    ("metric", "tier"),
    [
        (API + "generate_content_free_tier_requests", "free"),
        (API + "generate_content_paid_tier_input_token_count", "tier_1"),
        (API + "generate_content_paid_tier_2_requests", "tier_2"),
        (API + "generate_content_paid_tier_3_input_token_count", "tier_3"),
        (API + "generate_requests_per_model", None),  # tier 1, but the name does not say so
    ],
)
def test_tier_from_metric_when_the_id_is_missing(metric: str, tier: str | None) -> None:
    assert one(metric=metric).tier == tier


def test_suffix_beats_metric_for_tier() -> None:
    v = one(
        "GenerateRequestsPerDayPerProjectPerModel-PaidTier2", API + "generate_requests_per_model"
    )
    assert v.tier == "tier_2"


@pytest.mark.parametrize(
    ("quota_id", "window", "dimension"),
    [
        ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "minute", "requests"),
        ("GenerateRequestsPerDayPerProjectPerModel-PaidTier3", "day", "requests"),
        ("GenerateContentInputTokensPerModelPerMinute-FreeTier", "minute", "input_tokens"),
        ("GenerateContentInputTokensPerModelPerDay-FreeTier", "day", "input_tokens"),
        ("GenerateContentOutputTokensPerModelPerMinute-PaidTier", "minute", "output_tokens"),
        ("EmbedContentTokensPerMinutePerProject-PaidTier", "minute", "tokens"),
        ("GenerateContentPaidTierImagesPerMinutePerProjectPerModel", "minute", "images"),
        ("GenerateContentSpendPer10MinutesPerProject-PaidTier2", "10_minutes", "spend"),
        ("GenerateContentSpendPerTenMinutesPerProject-PaidTier", "10_minutes", "spend"),
        ("GenerateContentRequestsPerHourPerProject", "hour", "requests"),
        ("GenerateContentRequestsPerMinutePerProjectPerRegion", "minute", "requests"),
        ("SomethingPerProjectPerModel", None, None),
    ],
)
def test_window_and_dimension_from_quota_id(
    quota_id: str, window: str | None, dimension: str | None
) -> None:
    v = one(quota_id)
    assert (v.window, v.dimension) == (window, dimension)


@pytest.mark.parametrize(
    ("metric", "window", "dimension"),
    [
        (API + "generate_content_free_tier_requests", None, "requests"),
        (API + "generate_content_free_tier_input_token_count", None, "input_tokens"),
        (API + "generate_requests_per_model_per_day", "day", "requests"),
        (API + "generate_requests_per_model", None, "requests"),
        (API + "embed_content_paid_tier_tokens", None, "tokens"),
        (
            "aiplatform.googleapis.com/generate_content_requests_per_minute_per_project",
            "minute",
            "requests",
        ),
        (API + "generate_content_output_token_count_per_minute", "minute", "output_tokens"),
        (API + "something_else", None, None),
    ],
)
def test_window_and_dimension_from_metric_when_the_id_is_missing(
    metric: str, window: str | None, dimension: str | None
) -> None:
    v = one(metric=metric)
    assert (v.window, v.dimension) == (window, dimension)


def test_id_wins_over_metric_for_window() -> None:
    v = one(
        "GenerateRequestsPerMinutePerProjectPerModel", API + "generate_requests_per_model_per_day"
    )
    assert v.window == "minute"


# --- values --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "limit"),
    [
        ("250000", 250000),
        (250000, 250000),
        (" 15 ", 15),
        ("0", 0),
        (0, 0),
        (1000000.0, 1000000),
        (2**63 - 1, 2**63 - 1),
        ("9223372036854775807", 2**63 - 1),
        (2**63, None),
        ("99999999999999999999999", None),
        ("-1", None),  # Google's "unlimited"
        (-1, None),
        (1.5, None),
        (float("nan"), None),
        (float("inf"), None),
        ("12k", None),
        ("1e6", None),
        ("", None),
        ("٤٢", None),  # non-ASCII digits
        (True, None),
        (None, None),
        ([], None),
        ({}, None),
    ],
)
def test_quota_value_forms(value: object, limit: int | None) -> None:
    body = {
        "error": {
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": FREE_RPM, "quotaValue": value}],
                }
            ]
        }
    }
    info = parse_rate_limit(body)
    assert info is not None and info.violations[0].limit == limit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("26s", 26.0),
        ("11.769242877s", 11.769242877),
        ("0.5s", 0.5),
        ("0s", 0.0),
        (" 47s ", 47.0),
        ("26.s", 26.0),
        ("315576000000s", 315576000000.0),
        ("326.4ms", 0.3264),
        ("393.337641ms", 0.393337641),
        ("1m2s", 62.0),
        ("1m2.5s", 62.5),
        ("135h9m46s", 486586.0),
        ("1h0m0s", 3600.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("1500ns", 0.0000015),
        ({"seconds": 26, "nanos": 500_000_000}, 26.5),
        ({"seconds": "26"}, 26.0),
        ("-1.5s", None),
        ("315576000001s", None),
        ("1e3s", None),
        ("26", None),
        ("s", None),
        ("", None),
        ("26 s", None),
        ("99999999999999h", None),
        ("NaNs", None),
        ("infs", None),
        (26, None),
        (None, None),
        ({"seconds": -1}, None),
        ({"seconds": 1, "nanos": 10**9}, None),
        ({"seconds": "x"}, None),
        ({"seconds": "9" * 5000}, None),
        (b"26s", None),
    ],
)
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("message", "delay"),
    [
        ("Quota exceeded. Please retry in 39.84s.", 39.84),
        ("Quota exceeded. Please retry in 326.4ms.", 0.3264),
        ("Quota exceeded. Please retry in 1m2.5s.", 62.5),
        ("You have exhausted your capacity. Your quota will reset after 135h10m5s.", 486605.0),
        ("Please retry in a while.", None),
        ("Please retry in -3s.", None),
    ],
)
def test_retry_delay_from_message(message: str, delay: float | None) -> None:
    info = parse_rate_limit({"error": {"code": 429, "message": message}})
    assert info is not None and info.retry_delay == delay


def test_retry_info_beats_message_and_error_info_delay() -> None:
    body = {
        "error": {
            "message": "Please retry in 9.5s.",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "QUOTA_EXHAUSTED",
                    "metadata": {"quotaResetDelay": "373.801628ms"},
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"},
            ],
        }
    }
    assert parse_rate_limit(body).retry_delay == 9.0  # type: ignore[union-attr]
    del body["error"]["details"][1]
    assert parse_rate_limit(body).retry_delay == 9.5  # type: ignore[union-attr]
    del body["error"]["message"]
    assert parse_rate_limit(body).retry_delay == 0.373801628  # type: ignore[union-attr]
    assert parse_rate_limit(body).violations == ()  # type: ignore[union-attr]


# --- robustness ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        None,
        42,
        4.2,
        True,
        "",
        "not json",
        "42",
        "null",
        "[]",
        "[1, 2]",
        b"\xff\xfe",
        b"",
        [],
        [1, "x"],
        (),
        object(),
        Exception("429"),
        {1, 2},
    ],
)
def test_nothing_readable_is_none(body: object) -> None:
    assert parse_rate_limit(body) is None


@pytest.mark.parametrize("body", [{}, {"error": {}}, {"error": None}, {"error": "Too many"}, "{}"])
def test_an_empty_dict_reads_as_empty(body: object) -> None:
    assert parse_rate_limit(body) == RateLimitInfo()


def test_unknown_detail_types_are_ignored() -> None:
    body = {
        "error": {
            "code": 429,
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                    "violations": [
                        {"type": "TOS", "subject": "google.com/cloud", "description": "x"}
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": "Quota exceeded for metric: x, limit: 5",
                },
                {"@type": "type.googleapis.com/google.rpc.DebugInfo", "retryDelay": "5s"},
                {"@type": 7, "violations": [{"quotaId": FREE_RPM}]},
            ],
        }
    }
    assert parse_rate_limit(body) == RateLimitInfo(code=429)


def test_entries_without_type_are_read_by_shape() -> None:
    body = {
        "error": {
            "details": [
                {
                    "violations": [
                        {
                            "quota_id": FREE_RPM,
                            "quota_value": 5,
                            "quota_dimensions": {"model": "gemini-2.5-flash"},
                        }
                    ]
                },
                {"retry_delay": "3s"},
            ]
        }
    }
    info = parse_rate_limit(body)
    assert info is not None and info.retry_delay == 3.0
    assert info.violations == (
        violation(
            quota_id=FREE_RPM,
            limit=5,
            window="minute",
            dimension="requests",
            model="gemini-2.5-flash",
            tier="free",
        ),
    )


def test_message_lines_fill_in_only_when_they_agree() -> None:
    lines = (
        "* Quota exceeded for metric: " + FREE_REQUESTS + ", limit: 20, model: gemini-2.5-flash\n"
        "* Quota exceeded for metric: " + FREE_REQUESTS + ", limit: 5, model: gemini-2.5-flash\n"
    )
    body = {
        "error": {
            "message": lines,
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaMetric": FREE_REQUESTS, "quotaId": FREE_RPD},
                        {"quotaMetric": FREE_REQUESTS, "quotaId": FREE_RPM},
                    ],
                },
            ],
        }
    }
    info = parse_rate_limit(body)
    assert info is not None
    assert [(v.limit, v.model) for v in info.violations] == [(None, "gemini-2.5-flash")] * 2


def test_message_lines_without_model_and_with_junk() -> None:
    message = (
        "Quota exceeded for metric: " + API + "generate_content_paid_tier_input_token_count, "
        "limit: 1000000\n* Quota exceeded for metric: x, limit: lots, model: m.\n"
        "Please retry in 39.478059362s."
    )
    info = parse_rate_limit({"error": {"message": message}})
    assert info is not None and info.retry_delay == 39.478059362
    assert [(v.limit, v.model, v.tier) for v in info.violations] == [
        (1000000, None, "tier_1"),
        (None, "m", None),
    ]


def test_google_body_wrapped_as_another_clients_message() -> None:
    inner = (FIXTURES / "multiple_violations.json").read_text()
    wrapped = {"error": {"message": inner, "code": 429, "status": "Too Many Requests"}}
    assert parse_rate_limit(json.dumps(wrapped)) == EXPECTED["multiple_violations"]


def test_sdk_fallback_body_for_non_json_answers() -> None:
    # What google-genai builds when the 429 body is not JSON: {"message": text, "status": reason}
    error = errors.ClientError(429, {"message": "Too Many Requests", "status": "Too Many Requests"})
    info = parse_rate_limit(error)
    assert info == RateLimitInfo(code=429, status="Too Many Requests", message="Too Many Requests")


def test_many_violations_are_capped() -> None:
    item = {"quotaId": FREE_RPM, "quotaValue": "1"}
    body = {
        "error": {
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [dict(item, quotaValue=str(i)) for i in range(1000)],
                }
            ]
        }
    }
    info = parse_rate_limit(body)
    assert info is not None and len(info.violations) == 64


def test_tier_is_the_first_tier_named() -> None:
    info = RateLimitInfo(
        violations=(violation(limit=1), violation(tier="tier_2"), violation(tier="free"))
    )
    assert info.tier == "tier_2"
    assert RateLimitInfo().tier is None


# --- fuzz-ish: nothing raises, whatever the damage -------------------------------------------
JUNK: list[object] = [
    None,
    True,
    0,
    -1,
    2**70,
    -(2**70),
    1.5,
    float("nan"),
    float("inf"),
    "",
    " ",
    "x",
    "-5",
    "1e309",
    "٣",
    "\x00",
    "9" * 5000,
    [],
    [None],
    [{}],
    {},
    {"@type": None},
    {"error": {}},
]


def paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def replaced(body: object, path: tuple, value: object) -> object:
    if not path:
        return value
    body = copy.deepcopy(body)
    parent = body
    for step in path[:-1]:
        parent = parent[step]  # type: ignore[index]
    parent[path[-1]] = value  # type: ignore[index]
    return body


def deleted(body: object, path: tuple) -> object:
    body = copy.deepcopy(body)
    parent = body
    for step in path[:-1]:
        parent = parent[step]  # type: ignore[index]
    del parent[path[-1]]  # type: ignore[attr-defined]
    return body


TIERS = {None, "free", "tier_1", "tier_2", "tier_3"}
DIMENSIONS = {None, "requests", "input_tokens", "output_tokens", "tokens", "images", "spend"}


def sane(info: object) -> None:
    if info is None:
        return
    assert isinstance(info, RateLimitInfo)
    assert info.code is None or (isinstance(info.code, int) and 100 <= info.code <= 599)
    assert info.status is None or isinstance(info.status, str)
    assert info.message is None or isinstance(info.message, str)
    delay = info.retry_delay
    assert delay is None or (type(delay) is float and math.isfinite(delay) and delay >= 0)
    assert isinstance(info.violations, tuple) and len(info.violations) <= 64
    assert info.tier in TIERS
    for v in info.violations:
        assert isinstance(v, QuotaViolation)
        assert v.limit is None or (type(v.limit) is int and 0 <= v.limit < 2**63)
        assert v.tier in TIERS and v.dimension in DIMENSIONS
        for text in (v.quota_id, v.quota_metric, v.window, v.model, v.location):
            assert text is None or (isinstance(text, str) and text)


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_every_field_with_every_wrong_type(name: str) -> None:
    body = load(name)
    for path in paths(body):
        for junk in JUNK:
            sane(parse_rate_limit(replaced(body, path, junk)))
        if path:
            sane(parse_rate_limit(deleted(body, path)))


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_truncated_and_corrupted_text(name: str) -> None:
    raw = (FIXTURES / f"{name}.json").read_bytes()
    rng = random.Random(f"quota-errors-{name}")
    for end in range(0, len(raw), max(1, len(raw) // 200)):
        sane(parse_rate_limit(raw[:end]))
        sane(parse_rate_limit(raw[:end].decode("utf-8", errors="replace")))
    for _ in range(300):
        damaged = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        sane(parse_rate_limit(bytes(damaged)))


def test_fuzz_random_structures() -> None:
    rng = random.Random(20261129)
    keys = [
        "error",
        "code",
        "status",
        "message",
        "details",
        "@type",
        "violations",
        "quotaId",
        "quotaMetric",
        "quotaValue",
        "quotaDimensions",
        "model",
        "location",
        "retryDelay",
        "metadata",
        "quota_limit",
        "quota_limit_value",
        "quota_metric",
        "reason",
        "seconds",
    ]
    types = [
        "type.googleapis.com/google.rpc." + t
        for t in ("QuotaFailure", "RetryInfo", "ErrorInfo", "Help")
    ]

    def build(depth: int) -> object:
        roll = rng.random()
        if depth > 4 or roll < 0.3:
            return rng.choice([*JUNK, *types, FREE_RPM, FREE_REQUESTS, "26s", "Please retry in 1s"])
        if roll < 0.5:
            return [build(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(keys): build(depth + 1) for _ in range(rng.randint(0, 5))}

    for _ in range(3000):
        body = build(0)
        sane(parse_rate_limit(body))
        sane(parse_rate_limit(json.dumps(body, default=str)))
