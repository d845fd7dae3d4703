"""Read a Gemini 429 body: which quotas were exceeded, at what limit, and when to retry.

Pure functions, no I/O. ``parse_rate_limit`` accepts what the instrumentation can get hold of:
the SDK's ``APIError.details`` (the whole parsed body, ``{"error": {...}}``), the inner error
dict, the raw body as ``str`` or ``bytes``, the ``[{"error": {...}}]`` list some Google endpoints
answer with, or an ``APIError`` itself. It never raises: anything it cannot read becomes ``None``.

Forms understood (see tests/fixtures/quota_errors/):

- ``google.rpc.QuotaFailure`` violations (quotaMetric, quotaId, quotaDimensions, quotaValue);
- ``google.rpc.RetryInfo`` (``retryDelay``, a protobuf Duration such as ``"11.769242877s"``);
- the older ``google.rpc.ErrorInfo`` (metadata quota_metric / quota_limit / quota_limit_value);
- the message alone: ``* Quota exceeded for metric: M, limit: N, model: X`` lines and
  ``Please retry in 39.84s``;
- bare bodies (Vertex AI's shared-quota 429) that carry only code, status and message.

The quota id names the window and the tier (``...PerMinute...-FreeTier``); when it is missing,
the metric name is read instead (``generate_content_paid_tier_2_requests``,
``generate_requests_per_model_per_day``). The consumer (project number) is kept in one place
only, ``RateLimitInfo.project`` (the source of ``gcp.gemini.project`` when none is configured);
it is dropped from the violations' metadata and masked in the message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

__all__ = ["QuotaViolation", "RateLimitInfo", "parse_duration", "parse_rate_limit"]


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One exceeded quota. Every field is None when the body did not say."""

    quota_id: str | None = None
    quota_metric: str | None = None
    limit: int | None = None
    window: str | None = None
    dimension: str | None = None
    model: str | None = None
    location: str | None = None
    tier: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a 429 (or any RESOURCE_EXHAUSTED body) says about the limits that were hit."""

    code: int | None = None
    status: str | None = None
    violations: tuple[QuotaViolation, ...] = ()
    retry_delay: float | None = None
    message: str | None = None
    project: str | None = None
    """The project number an ErrorInfo's ``consumer`` names (``projects/123``), if any."""

    @property
    def tier(self) -> str | None:
        """The tier named by the violations (the first one that names any), else None."""
        for violation in self.violations:
            if violation.tier is not None:
                return violation.tier
        return None


# --- limits on what we keep ----------------------------------------------------------------
_MAX_TEXT = 512  # longer ids, metrics or model names are not real: drop them
_MAX_MESSAGE = 8192
_MAX_VIOLATIONS = 64
_MAX_LIMIT = 2**63 - 1  # quota values are int64
_MAX_DURATION = 315_576_000_000  # google.protobuf.Duration's range, in seconds
_MAX_NESTING = 2  # a body whose message is itself a JSON error body, once or twice

_QUOTA_FAILURE = "google.rpc.QuotaFailure"
_RETRY_INFO = "google.rpc.RetryInfo"
_ERROR_INFO = "google.rpc.ErrorInfo"

# --- durations -----------------------------------------------------------------------------
# protobuf JSON form: "26s", "11.769242877s", "-1.5s". Google's messages and some ErrorInfo
# metadata use Go's form instead: "326.4ms", "1m2.5s", "135h9m46s".
_PROTO_DURATION = re.compile(r"([+-]?)(\d{1,12})(?:\.(\d{0,9}))?s", re.ASCII)
_GO_PART = re.compile(r"(\d{1,15}(?:\.\d{1,12})?)(h|ms|us|µs|μs|ns|m|s)", re.ASCII)
_GO_DURATION = re.compile(r"(?:\d{1,15}(?:\.\d{1,12})?(?:h|ms|us|µs|μs|ns|m|s))+", re.ASCII)
_GO_UNITS = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("1e-3"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),  # micro sign
    "μs": Decimal("1e-6"),  # Greek mu
    "ns": Decimal("1e-9"),
}

# --- message text --------------------------------------------------------------------------
_MESSAGE_VIOLATION = re.compile(
    r"Quota exceeded for metric:\s*(?P<metric>[^\s,]+)\s*,\s*limit:\s*(?P<limit>[^\s,]+)"
    r"(?:\s*,\s*model:\s*(?P<model>[^\s,]+))?",
    re.IGNORECASE,
)
_MESSAGE_RETRY = re.compile(
    r"(?:retry in|reset after)\s+(?P<delay>" + _GO_DURATION.pattern + r")", re.IGNORECASE
)
_CONSUMER = re.compile(r"(project_number:|projects/)\d+")

# --- quota id and metric words -------------------------------------------------------------
_ID_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z][a-z]*|[a-z]+|\d+", re.ASCII)
_ID_TIER = re.compile(r"(Free|Paid)Tier(\d*)(?![a-z])")
_METRIC_TIER = re.compile(r"(free|paid)_tier(?:_(\d+))?(?![a-z])")
_METRIC_WINDOW = re.compile(r"per_(?:(\d{1,4})_)?(second|minute|hour|day|week|month)s?(?![a-z])")
_WINDOW_UNITS = {
    "second": "second",
    "seconds": "second",
    "minute": "minute",
    "minutes": "minute",
    "hour": "hour",
    "hours": "hour",
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
}
_NUMBER_WORDS = {"two": 2, "five": 5, "ten": 10, "fifteen": 15, "thirty": 30}
_PAID_TIERS = {"": "tier_1", "1": "tier_1", "2": "tier_2", "3": "tier_3"}
# Word in a quota id (lower case) -> dimension, checked after "Input/Output ... Tokens".
_ID_DIMENSIONS = (
    ("tokens", "tokens"),
    ("token", "tokens"),
    ("requests", "requests"),
    ("request", "requests"),
    ("images", "images"),
    ("image", "images"),
    ("spend", "spend"),
    ("cost", "spend"),
)
_METRIC_DIMENSIONS = (
    ("input_token", "input_tokens"),
    ("output_token", "output_tokens"),
    ("token", "tokens"),
    ("request", "requests"),
    ("image", "images"),
    ("spend", "spend"),
    ("cost", "spend"),
)


# --- public functions ----------------------------------------------------------------------
def parse_duration(text: object) -> float | None:
    """Seconds in a duration string, or None.

    Reads the protobuf JSON form (``"11.769242877s"`` -> 11.769242877) and the Go form Google
    uses in messages (``"326.4ms"``, ``"1m2s"``). Negative, non-finite or out-of-range values
    (beyond google.protobuf.Duration's ~10,000 years) are None. A ``{"seconds", "nanos"}``
    mapping, the non-JSON rendering of a Duration, is read as well.
    """
    try:
        return _duration(text)
    except Exception:
        return None


def parse_rate_limit(body: object) -> RateLimitInfo | None:
    """Read a 429 body (or an ``APIError``) into a RateLimitInfo.

    Returns None only when ``body`` holds no dict at all (None, a number, text that is not
    JSON). Otherwise returns whatever could be read; fields the body does not carry are None.
    """
    try:
        return _parse(body, depth=0)
    except Exception:
        return None


# --- body ----------------------------------------------------------------------------------
def _parse(body: object, depth: int) -> RateLimitInfo | None:
    fallback_code: int | None = None
    if not isinstance(body, (Mapping, list, tuple, str, bytes, bytearray, memoryview)):
        details = getattr(body, "details", None)  # google.genai.errors.APIError
        if details is None:
            return None
        fallback_code = _int(getattr(body, "code", None))
        body = details
    error = _error_dict(_load(body))
    if error is None:
        return None

    message = error.get("message")
    message = (message[:_MAX_MESSAGE].strip() or None) if isinstance(message, str) else None
    if message is not None and depth < _MAX_NESTING and message.lstrip()[:1] in ("{", "["):
        # A client that wrapped Google's body as its own message: read the inner body.
        inner = _parse(message, depth + 1)
        if inner is not None and (inner.violations or inner.code or inner.status):
            return inner

    code = _int(error.get("code"))
    if code is None:
        code = fallback_code
    status = _text(error.get("status"))
    details = error.get("details")
    entries = list(_dicts(details)) if isinstance(details, list) else []

    # Distinct violations in body order (exact repeats: QuotaFailure and ErrorInfo describing
    # the same quota). Only the first _MAX_VIOLATIONS are read: a body of thousands costs no
    # more than that to parse (reading each one's words is most of the work).
    found: dict[QuotaViolation, None] = {}
    retry_delay: float | None = None
    reset_delay: float | None = None
    project: str | None = None
    for entry in entries:
        kind = _entry_kind(entry)
        if kind == _QUOTA_FAILURE:
            if len(found) < _MAX_VIOLATIONS:
                found.update(dict.fromkeys(_quota_failure(entry)))
        elif kind == _RETRY_INFO and retry_delay is None:
            retry_delay = _duration(_get(entry, "retryDelay", "retry_delay"))
        elif kind == _ERROR_INFO:
            metadata = entry.get("metadata")
            if not isinstance(metadata, Mapping):
                continue
            project = project or _consumer(metadata)
            if reset_delay is None:
                reset_delay = _duration(_get(metadata, "quotaResetDelay", "quota_reset_delay"))
            if len(found) < _MAX_VIOLATIONS:
                violation = _error_info(metadata)
                if violation is not None:
                    found[violation] = None

    from_message = _message_violations(message) if message is not None else []
    violations = list(found)
    if violations:
        violations = _unique(_fill_from_message(v, from_message) for v in violations)
    else:
        violations = from_message
    if retry_delay is None and message is not None:
        retry_delay = _message_delay(message)
    if retry_delay is None:
        retry_delay = reset_delay

    return RateLimitInfo(
        code=code,
        status=status,
        violations=tuple(violations[:_MAX_VIOLATIONS]),
        retry_delay=retry_delay,
        message=_CONSUMER.sub(r"\1<redacted>", message) if message is not None else None,
        project=project,
    )


def _load(body: object) -> object:
    if isinstance(body, (bytes, bytearray, memoryview)):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return body


def _error_dict(body: object) -> Mapping[str, Any] | None:
    if isinstance(body, (list, tuple)):
        body = next(iter(_dicts(body)), None)
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error")
    return inner if isinstance(inner, Mapping) else body


def _dicts(items: Iterable[object]) -> Iterable[Mapping[str, Any]]:
    return (item for item in items if isinstance(item, Mapping))


def _entry_kind(entry: Mapping[str, Any]) -> str | None:
    type_url = entry.get("@type")
    if isinstance(type_url, str):
        for kind in (_QUOTA_FAILURE, _RETRY_INFO, _ERROR_INFO):
            if type_url.endswith(kind):
                return kind
        return None  # a type we do not read (Help, LocalizedMessage, ...)
    if type_url is not None:
        return None
    # No @type at all: go by shape.
    if "violations" in entry:
        return _QUOTA_FAILURE
    if "retryDelay" in entry or "retry_delay" in entry:
        return _RETRY_INFO
    if "reason" in entry and "metadata" in entry:
        return _ERROR_INFO
    return None


def _quota_failure(entry: Mapping[str, Any]) -> Iterable[QuotaViolation]:
    items = entry.get("violations")
    if not isinstance(items, list):
        return
    for item in _dicts(items[:_MAX_VIOLATIONS]):
        dimensions = _get(item, "quotaDimensions", "quota_dimensions")
        if not isinstance(dimensions, Mapping):
            dimensions = {}
        violation = _violation(
            quota_id=_text(_get(item, "quotaId", "quota_id")),
            metric=_text(_get(item, "quotaMetric", "quota_metric")),
            limit=_limit(_get(item, "quotaValue", "quota_value")),
            model=_text(dimensions.get("model")),
            location=_text(dimensions.get("location")),
        )
        if violation != _EMPTY:
            yield violation


_CONSUMER_PROJECT = re.compile(r"projects/(\d{1,20})")


def _consumer(metadata: Mapping[str, Any]) -> str | None:
    """The project number of an ErrorInfo's ``metadata.consumer`` ("projects/123456")."""
    consumer = metadata.get("consumer")
    found = _CONSUMER_PROJECT.fullmatch(consumer) if isinstance(consumer, str) else None
    return found.group(1) if found else None


def _error_info(metadata: Mapping[str, Any]) -> QuotaViolation | None:
    """The quota an ErrorInfo's ``metadata`` names, if any."""
    quota_id = _text(metadata.get("quota_limit"))
    metric = _text(metadata.get("quota_metric"))
    if quota_id is None and metric is None:
        return None
    # "consumer" (the project number) is read by _consumer, for gcp.gemini.project only.
    return _violation(
        quota_id=quota_id,
        metric=metric,
        limit=_limit(metadata.get("quota_limit_value")),
        model=_text(metadata.get("model")),
        location=_text(metadata.get("quota_location")),
    )


def _violation(
    *,
    quota_id: str | None,
    metric: str | None,
    limit: int | None,
    model: str | None,
    location: str | None,
) -> QuotaViolation:
    window, dimension, tier = _read_quota_names(quota_id, metric)
    return QuotaViolation(
        quota_id=quota_id,
        quota_metric=metric,
        limit=limit,
        window=window,
        dimension=dimension,
        model=model,
        location=location,
        tier=tier,
    )


@lru_cache(maxsize=256)
def _read_quota_names(
    quota_id: str | None, metric: str | None
) -> tuple[str | None, str | None, str | None]:
    """Window, dimension and tier named by a quota id or metric. Kept per name: a 429 storm
    repeats the same few quotas, and reading their words is most of parsing a 429."""
    return (
        _id_window(quota_id) or _metric_window(metric),
        _id_dimension(quota_id) or _metric_dimension(metric),
        _id_tier(quota_id) or _metric_tier(metric),
    )


_EMPTY = QuotaViolation()


def _unique(violations: Iterable[QuotaViolation]) -> list[QuotaViolation]:
    """Drop exact repeats (QuotaFailure and ErrorInfo describing the same quota)."""
    return list(dict.fromkeys(violations))


# --- message -------------------------------------------------------------------------------
def _message_violations(message: str) -> list[QuotaViolation]:
    found = []
    for match in _MESSAGE_VIOLATION.finditer(message):
        if len(found) >= _MAX_VIOLATIONS:
            break
        model = match.group("model")
        found.append(
            _violation(
                quota_id=None,
                metric=_text(match.group("metric")),
                limit=_limit(match.group("limit").rstrip(".")),
                model=_text(model.rstrip(".")) if model else None,
                location=None,
            )
        )
    return found


def _fill_from_message(
    violation: QuotaViolation, from_message: list[QuotaViolation]
) -> QuotaViolation:
    """Take limit and model from the message lines when details left them out.

    Google's message lists ``metric, limit, model`` without the window, so a value is taken
    only when every line for that metric (and model, if known) agrees on it.
    """
    if not from_message or violation.quota_metric is None:
        return violation
    if violation.limit is not None and violation.model is not None:
        return violation
    lines = [
        line
        for line in from_message
        if line.quota_metric == violation.quota_metric
        and (violation.model is None or line.model in (None, violation.model))
    ]
    limit, model = violation.limit, violation.model
    if limit is None:
        limit = _agreed(line.limit for line in lines)
    if model is None:
        model = _agreed(line.model for line in lines)
    if limit == violation.limit and model == violation.model:
        return violation
    return QuotaViolation(
        quota_id=violation.quota_id,
        quota_metric=violation.quota_metric,
        limit=limit,
        window=violation.window,
        dimension=violation.dimension,
        model=model,
        location=violation.location,
        tier=violation.tier,
    )


def _agreed(values: Iterable[Any]) -> Any:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _message_delay(message: str) -> float | None:
    match = _MESSAGE_RETRY.search(message)
    return _duration(match.group("delay")) if match else None


# --- quota id / metric words ---------------------------------------------------------------
def _words(quota_id: str) -> list[str]:
    return [word.lower() for word in _ID_WORDS.findall(quota_id)]


def _id_window(quota_id: str | None) -> str | None:
    if quota_id is None:
        return None
    words = _words(quota_id)
    for i, word in enumerate(words[:-1]):
        if word != "per":
            continue
        following = words[i + 1]
        if following in _WINDOW_UNITS:
            return _WINDOW_UNITS[following]
        if following.isdigit():  # at most 4 digits, as in a metric's name: a longer number
            count = int(following) if len(following) <= 4 else None  # is no window (a long label)
        else:
            count = _NUMBER_WORDS.get(following)
        if count and i + 2 < len(words) and words[i + 2] in _WINDOW_UNITS:
            return _window(count, _WINDOW_UNITS[words[i + 2]])
    return None


def _metric_window(metric: str | None) -> str | None:
    if metric is None:
        return None
    match = _METRIC_WINDOW.search(metric.lower())
    if match is None:
        return None
    count = int(match.group(1)) if match.group(1) else 1
    return _window(count, match.group(2))


def _window(count: int, unit: str) -> str:
    return unit if count == 1 else f"{count}_{unit}s"


def _id_dimension(quota_id: str | None) -> str | None:
    if quota_id is None:
        return None
    words = _words(quota_id.split("-", 1)[0])
    # A word right after "Per" names a scope or a window ("PerRequest" would not be a dimension).
    subject = {w for i, w in enumerate(words) if i == 0 or words[i - 1] != "per"}
    if "input" in subject and ("tokens" in subject or "token" in subject):
        return "input_tokens"
    if "output" in subject and ("tokens" in subject or "token" in subject):
        return "output_tokens"
    for word, dimension in _ID_DIMENSIONS:
        if word in subject:
            return dimension
    return None


def _metric_dimension(metric: str | None) -> str | None:
    if metric is None:
        return None
    name = metric.rsplit("/", 1)[-1].lower()
    for fragment, dimension in _METRIC_DIMENSIONS:
        if fragment in name:
            return dimension
    return None


def _id_tier(quota_id: str | None) -> str | None:
    if quota_id is None:
        return None
    # The suffix (-FreeTier, -PaidTier, -PaidTier2, -PaidTier3) wins over a tier word inside
    # the id (GenerateContentPaidTierInputTokensPerModelPerMinute), so take the last match.
    matches = _ID_TIER.findall(quota_id)
    if not matches:
        return None
    kind, number = matches[-1]
    return "free" if kind == "Free" else _PAID_TIERS.get(number)


def _metric_tier(metric: str | None) -> str | None:
    if metric is None:
        return None
    match = _METRIC_TIER.search(metric.lower())
    if match is None:
        return None
    return "free" if match.group(1) == "free" else _PAID_TIERS.get(match.group(2) or "")


# --- scalars -------------------------------------------------------------------------------
def _get(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = mapping.get(camel)
    return mapping.get(snake) if value is None else value


def _text(value: object, max_length: int = _MAX_TEXT) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= max_length else None


def _int(value: object) -> int | None:
    """A status code: an int (or digits) in 100..599."""
    if isinstance(value, str) and len(value.strip()) == 3 and value.strip().isdecimal():
        value = int(value.strip()) if value.isascii() else None
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _limit(value: object) -> int | None:
    """A quota value: a non-negative int64, given as int, integral float or digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
            return None
        value = int(text)
    elif isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_LIMIT:
        return value
    return None


def _duration(value: object) -> float | None:
    if isinstance(value, Mapping):  # {"seconds": 26, "nanos": 500000000}
        seconds, nanos = value.get("seconds", 0), value.get("nanos", 0)
        if isinstance(seconds, str) and 0 < len(seconds) <= 12 and seconds.isascii():
            seconds = int(seconds) if seconds.isdigit() else None
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (seconds, nanos)):
            return None
        if not (0 <= nanos < 1_000_000_000) or seconds < 0:
            return None
        return _seconds(Decimal(seconds) + Decimal(nanos) / 1_000_000_000)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > 64:
        return None
    match = _PROTO_DURATION.fullmatch(text)
    if match is not None:
        sign, whole, fraction = match.groups()
        if sign == "-":
            return None
        return _seconds(Decimal(f"{whole}.{fraction or 0}"))
    if not _GO_DURATION.fullmatch(text):
        return None
    return _seconds(sum(Decimal(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(text)))


def _seconds(value: Decimal) -> float | None:
    return float(value) if 0 <= value <= _MAX_DURATION else None
