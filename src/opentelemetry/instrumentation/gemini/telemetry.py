"""The Recorder: instruments created once, and the one path that turns a Call into telemetry.

Span attributes, histograms, counters, cost and quota windows are all derived here from the
same ``Usage`` record, once per call (``record``) and once per HTTP attempt (``attempt``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from . import attributes as A
from . import content
from ._call import OK_ATTEMPT, Attempt, Call
from .config import UNKNOWN_TIER, Settings
from .counters import DashboardCounters
from .quota_errors import RateLimitInfo, parse_rate_limit
from .request import base_attributes, config_attributes, normalize_model
from .usage import Usage, sum_usages, usage_from_metadata

if TYPE_CHECKING:
    from .limits import LimitTable
    from .pricing import CostBreakdown, PriceBook
    from .quota_windows import QuotaWindows

_logger = logging.getLogger(__name__)

_V = TypeVar("_V")
_ATTR_CACHE_MAX = 1024  # distinct call shapes whose attribute dicts are kept, then cleared
# The histograms' attributes: the operation's, and with the input and the output token type.
_MetricAttrs = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
# A request shape's span name, model, attributes, provider and host (see Recorder.start).
_RequestShape = tuple[str, str, dict[str, Any], str, str]


class Recorder:
    def __init__(
        self,
        tracer: Tracer,
        meter: Meter,
        settings: Settings,
        prices: PriceBook | None,
        limits: LimitTable | None,
        windows: QuotaWindows | None,
    ) -> None:
        self.tracer = tracer
        self.settings = settings
        self.prices = prices
        self.limits = limits
        self.windows = windows
        self.per_attempt = False  # set by _patch.patch once the attempt seam is in place
        self.tier = settings.tier
        self.tier_source = "config" if settings.tier != UNKNOWN_TIER else "default"
        self._lock = threading.Lock()
        self._warned_unpriced: set[str] = set()
        self._metric_attrs: dict[tuple[Any, ...], _MetricAttrs] = {}
        self._request_shapes: dict[tuple[Any, ...], _RequestShape] = {}
        # model -> (retry delay in s, epoch s it was asked at) of the latest 429 naming one.
        self.last_retry: dict[str, tuple[float, float]] = {}
        self._tier_conflicts: set[str] = set()  # tiers 429s named against the configured one
        self.models_seen: set[str] = set()

        self._duration = meter.create_histogram(
            A.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(A.DURATION_BUCKETS),
        )
        self._token_usage = meter.create_histogram(
            A.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(A.TOKEN_BUCKETS),
        )
        self._ttfc = meter.create_histogram(
            A.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the streaming request to its first chunk.",
            explicit_bucket_boundaries_advisory=list(A.DURATION_BUCKETS),
        )
        self._retry_delay = meter.create_histogram(
            A.METRIC_RETRY_DELAY,
            unit="s",
            description="Retry delay the server asked for in a 429 answer.",
            explicit_bucket_boundaries_advisory=[1, 2, 5, 10, 20, 30, 60, 120, 300, 3600, 86400],
        )
        self.counters = DashboardCounters(meter, windows)
        if limits is not None:
            meter.create_observable_gauge(
                A.METRIC_QUOTA_LIMIT,
                [self._observe_limits],
                unit="1",
                description="The tier's published limit per model: rpm, tpm, rpd.",
            )
        if windows is not None:
            meter.create_observable_gauge(
                A.METRIC_QUOTA_USAGE,
                [self._observe_usage],
                unit="1",
                description="This process's usage in the quota windows: requests and input "
                "tokens in the last minute, requests since Pacific midnight, USD in 10 minutes.",
            )
            meter.create_observable_gauge(
                A.METRIC_QUOTA_UTILIZATION,
                [self._observe_utilization],
                unit="1",
                description="This process's usage divided by the tier's limit.",
            )

    # --- per call ---------------------------------------------------------------------------
    def start(
        self,
        model: Any,
        config: Any,
        contents: Any,
        *,
        vertex: bool,
        base_url: str | None,
        stream: bool,
        is_async: bool = False,
    ) -> Call | None:
        """Open the call's span; None (and the SDK call runs untouched) if anything is off."""
        try:
            # Keyed by the model as the caller wrote it: normalized once per shape.
            key = (
                model if type(model) is str else normalize_model(model),
                vertex,
                base_url,
                stream,
            )
            shape = self._request_shapes.get(key)
            if shape is None:
                shape = _remember(
                    self._request_shapes, key, _request_shape(model, vertex, base_url, stream)
                )
            span_name, model, base, provider, host = shape
            # The SDK copies what it is given; the cached dict is only copied to be extended.
            attrs = base if config is None else {**base, **config_attributes(config)}
            if self.settings.capture_content:
                attrs = dict(attrs)
                self._capture_input(attrs, contents, config)
            span = self.tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attrs)
            return Call(self, span, model, stream, provider, host, is_async)
        except Exception:
            _logger.debug("gemini instrumentation: could not start a span", exc_info=True)
            return None

    def attempt(self, call: Call, status: int | None, error: BaseException | None) -> None:
        """One HTTP attempt: counts against RPM/RPD whatever its outcome."""
        if status == 200:
            call.on_attempt_ok()
            return
        # Read the 429 first: the tier it reveals must already be on this attempt's count.
        rate_limit = self._read_429(error) if status == 429 else None
        error_type = None if status is not None else type(error).__qualname__
        call.attempts.append(Attempt(status, error_type, rate_limit))
        self.counters.failed_attempt(call.model, self.tier, status, error_type)
        if self.windows is not None:
            self.windows.record(call.model, requests=1)
        event: dict[str, Any] = {A.GEMINI_ATTEMPT_NUMBER: len(call.attempts)}
        if status is not None:
            event[A.HTTP_RESPONSE_STATUS_CODE] = status
        else:
            event[A.ERROR_TYPE] = error_type
        call.span.add_event(A.EVENT_ATTEMPT, event)
        if status == 429:
            self._quota_hit(call, rate_limit)

    def record(self, call: Call, error: BaseException | None, stream_end: str | None) -> None:
        """The single recording path: span attributes, metrics, cost and counters, once."""
        span = call.span
        duration = time.perf_counter() - call.start
        meta, response_model, response_id, reasons = call.settle()
        if not self.per_attempt and not call.attempts:
            # Without the attempt seam each call is one attempt, judged by its outcome.
            if error is None:
                call.on_attempt_ok()
            else:
                call.on_attempt_error(error)
        elif error is not None and _in_stream_429(call, error):
            # The HTTP answer was 200 and already counted; the quota details still matter.
            self._quota_hit(call, self._read_429(error))
        metas = call.request_usages
        usage = usage_from_metadata(meta) if not metas else _call_usage(metas)
        tier = self.tier
        if response_model is not None:
            response_model = normalize_model(response_model)
        attrs: dict[str, Any] = {A.GEMINI_TIER: tier}
        if tier != UNKNOWN_TIER:  # an unknown tier has no source to tell
            attrs[A.GEMINI_TIER_SOURCE] = self.tier_source
        if response_model:
            attrs[A.GEN_AI_RESPONSE_MODEL] = response_model
        if response_id:
            attrs[A.GEN_AI_RESPONSE_ID] = response_id
        if reasons:
            attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = (
                reasons if len(reasons) == 1 else list(dict.fromkeys(reasons))
            )
        if len(call.attempts) != 1:
            attrs[A.GEMINI_ATTEMPTS] = len(call.attempts)
        if call.stream:
            attrs[A.GEMINI_STREAM_CHUNKS] = call.chunks
            attrs[A.GEMINI_STREAM_END] = stream_end or A.STREAM_END_ERROR
            if call.first_chunk_at is not None:
                attrs[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = call.first_chunk_at - call.start
        input_tokens = output_tokens = 0
        if usage is not None:
            input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
            attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            _usage_attributes(attrs, usage, input_tokens + output_tokens)
        if call.texts is not None and call.chunks:
            attrs[A.GEN_AI_OUTPUT_MESSAGES] = content.output_messages(call.texts, reasons)

        error_type: str | None = None
        if error is not None:
            error_type = _error_type(error)
            attrs[A.ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
            if isinstance(getattr(error, "code", None), int):
                # The server's answer (429, 500...): its stack is always the SDK's HTTP path, and
                # formatting it (record_exception) costs more than all the rest of the call.
                span.add_event(A.EVENT_EXCEPTION, _exception_attributes(error))
            else:
                span.record_exception(error)

        cost = None
        if self.prices is not None:
            cost = self._price(call, attrs, usage, response_model, error)
        span.set_attributes(attrs)
        span.end()

        shape = (call.model, response_model, call.provider, call.host, error_type)
        metric_attrs, input_attrs, output_attrs = self._metric_attrs.get(
            shape
        ) or self._new_metric_attributes(shape)
        self._duration.record(duration, metric_attrs)
        if call.stream and call.first_chunk_at is not None:
            self._ttfc.record(call.first_chunk_at - call.start, metric_attrs)
        if usage is not None:
            self._token_usage.record(input_tokens, input_attrs)
            self._token_usage.record(output_tokens, output_attrs)
        # Failed attempts were counted at once (attempt); successful ones ride on the call,
        # and reach the quota windows through the counters.
        self.counters.call(
            call.model, response_model, tier, call.attempts.count(OK_ATTEMPT), usage, cost
        )
        if call.model not in self.models_seen:  # a lookup costs less than add's method call
            self.models_seen.add(call.model)

    # --- pieces of record() --------------------------------------------------------------------
    def _price(
        self,
        call: Call,
        attrs: dict[str, Any],
        usage: Usage | None,
        response_model: str | None,
        error: BaseException | None,
    ) -> CostBreakdown | None:
        """The call's cost attributes; its cost, for the counters and the spend window. Priced
        by the model that answered (an alias resolves to a version), else the one asked for."""
        assert self.prices is not None
        if error is not None:
            # Google bills no failed request (400, 429, 500...): a known zero, whatever the model.
            attrs[A.GEN_AI_USAGE_COST_AMOUNT] = 0.0
            attrs[A.GEN_AI_USAGE_COST_CURRENCY] = "USD"
            attrs[A.GEN_AI_USAGE_COST_SOURCE] = "local"
            return None
        if usage is None:
            attrs[A.GEMINI_COST_UNPRICED_REASON] = A.UNPRICED_NO_USAGE
            if call.chunks:  # a stream that never delivered a chunk had nothing to price
                self.counters.unpriced.add((call.model, response_model, A.UNPRICED_NO_USAGE), 1)
            return None
        model = response_model or call.model
        cost = self.prices.cost(model, usage, tier=self.tier)  # at the usage's traffic type
        if cost is None:
            # No cost attribute at all: a made-up 0 would read as "free" on every dashboard.
            attrs[A.GEMINI_COST_UNPRICED_REASON] = A.UNPRICED_UNKNOWN_MODEL
            self.counters.unpriced.add((call.model, response_model, A.UNPRICED_UNKNOWN_MODEL), 1)
            self._warn_unpriced(model)
            return None
        attrs[A.GEN_AI_USAGE_COST_AMOUNT] = cost.total
        attrs[A.GEN_AI_USAGE_COST_CURRENCY] = "USD"
        attrs[A.GEN_AI_USAGE_COST_SOURCE] = "local"
        attrs[A.GEMINI_COST_LIST_AMOUNT] = cost.list_total
        attrs[A.GEMINI_COST_PRICES_VERSION] = cost.prices_version
        return cost

    def _warn_unpriced(self, model: str) -> None:
        with self._lock:
            if model in self._warned_unpriced:
                return
            self._warned_unpriced.add(model)
        _logger.warning(
            "opentelemetry-instrumentation-gemini: no price known for model %r; its calls carry "
            "no cost attribute (counted in %s). Add it with a prices file "
            "(OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE).",
            model,
            A.METRIC_UNPRICED_CALLS,
        )

    def _new_metric_attributes(self, shape: tuple[Any, ...]) -> _MetricAttrs:
        """The semconv histograms' attribute sets (operation; input tokens; output tokens) of
        one call shape (model, response model, provider, host, error type), built once: the SDK
        copies them on every record anyway.

        Semconv attributes only: the SDK charges every histogram record per attribute, and
        the process-wide tier is on the span and on every gcp.gemini.* metric already.
        """
        model, response_model, provider, host, error_type = shape
        base: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: A.OPERATION_GENERATE_CONTENT,
            A.GEN_AI_PROVIDER_NAME: provider,
            A.GEN_AI_REQUEST_MODEL: model,
        }
        if response_model:
            base[A.GEN_AI_RESPONSE_MODEL] = response_model
        if host:
            base[A.SERVER_ADDRESS] = host
        if error_type:
            base[A.ERROR_TYPE] = error_type
        return _remember(
            self._metric_attrs,
            shape,
            (
                base,
                {**base, A.GEN_AI_TOKEN_TYPE: A.TOKEN_TYPE_INPUT},
                {**base, A.GEN_AI_TOKEN_TYPE: A.TOKEN_TYPE_OUTPUT},
            ),
        )

    def _read_429(self, error: BaseException | None) -> RateLimitInfo | None:
        """Parse a 429's body and learn the tier it names (unless one is configured)."""
        info = parse_rate_limit(getattr(error, "details", None))
        if info is not None and info.tier is not None:
            self._learn_tier(info.tier)
        return info

    def _learn_tier(self, tier: str) -> None:
        if tier == self.tier:
            return
        with self._lock:
            if self.tier_source != "config":
                # A later 429 naming another tier (an upgrade) moves us again.
                self.tier_source = "quota_id"  # first: a known tier always has its source
                self.tier = tier
                return
            if tier in self._tier_conflicts:
                return  # warned once already: every 429 would repeat it
            self._tier_conflicts.add(tier)
        _logger.warning(
            "opentelemetry-instrumentation-gemini: configured tier %r, but Google's 429 "
            "names quota of tier %r; keeping the configured tier.",
            self.tier,
            tier,
        )

    def _quota_hit(self, call: Call, info: RateLimitInfo | None) -> None:
        span = call.span
        delay = info.retry_delay if info is not None else None
        if delay is not None:
            self.last_retry[call.model] = (delay, time.time())
            self._retry_delay.record(delay, {A.GEN_AI_REQUEST_MODEL: call.model})
        violations = info.violations if info is not None else ()
        if not violations:
            event: dict[str, Any] = {}
            if delay is not None:
                event[A.GEMINI_RETRY_DELAY] = delay
            span.add_event(A.EVENT_QUOTA_EXCEEDED, event)
            self.counters.quota_exceeded.add((call.model, self.tier, None, None, None, None), 1)
            return
        for v in violations:
            event = {
                k: val
                for k, val in (
                    (A.GEMINI_QUOTA_ID, v.quota_id),
                    (A.GEMINI_QUOTA_METRIC, v.quota_metric),
                    (A.GEMINI_QUOTA_LIMIT, v.limit),
                    (A.GEMINI_QUOTA_WINDOW, v.window),
                    (A.GEMINI_QUOTA_DIMENSION, v.dimension),
                    (A.GEMINI_QUOTA_MODEL, v.model),
                    (A.GEMINI_QUOTA_LOCATION, v.location),
                    (A.GEMINI_RETRY_DELAY, delay),
                )
                if val is not None
            }
            span.add_event(A.EVENT_QUOTA_EXCEEDED, event)
            self.counters.quota_exceeded.add(
                (call.model, self.tier, v.quota_id, v.window, v.dimension, v.location), 1
            )

    def _capture_input(self, attrs: dict[str, Any], contents: Any, config: Any) -> None:
        try:
            attrs[A.GEN_AI_INPUT_MESSAGES] = content.input_messages(contents)
            system = content.system_instructions(config)
            if system:
                attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = system
        except Exception:
            _logger.debug("gemini instrumentation: could not capture content", exc_info=True)

    # --- quota position: read by the gauges below and by status.quota_status -----------------
    def quota_limits(self, model: str, tier: str | None = None) -> dict[str, int]:
        """The tier's published rpm/tpm/rpd for ``model``; a dimension with none is absent."""
        found = self.limits.lookup(model, tier or self.tier) if self.limits is not None else None
        if found is None:
            return {}
        values = {"rpm": found.rpm, "tpm": found.tpm, "rpd": found.rpd}
        return {dim: value for dim, value in values.items() if value is not None}

    def quota_usage(self, model: str) -> dict[str, int]:
        """This process's requests and input tokens in the last minute, requests today."""
        if self.windows is None:
            return {}
        self.counters.bank()
        u = self.windows.usage(model)
        return {
            "rpm": u.requests_per_minute,
            "tpm": u.input_tokens_per_minute,
            "rpd": u.requests_today,
        }

    def spend_10m(self) -> float:
        """Billed USD over the rolling 10 minutes, all models (the limit is per project)."""
        if self.windows is None:
            return 0.0
        self.counters.bank()
        return self.windows.spend_10m_total()

    def spend_limit_10m(self, tier: str | None = None) -> float | None:
        return self.limits.spend_limit_10m(tier or self.tier) if self.limits is not None else None

    # --- observable gauges (collection time, not the call path) -----------------------------
    def _models(self) -> list[str]:
        return sorted(self.models_seen)

    def _observe_limits(self, _options: CallbackOptions) -> Iterable[Observation]:
        tier = self.tier
        return [
            Observation(value, _gauge_attrs(model, tier, dim))
            for model in self._models()
            for dim, value in self.quota_limits(model, tier).items()
        ]

    def _observe_usage(self, _options: CallbackOptions) -> Iterable[Observation]:
        tier = self.tier
        out = [
            Observation(value, _gauge_attrs(model, tier, dim))
            for model in self._models()
            for dim, value in self.quota_usage(model).items()
        ]
        out.append(
            Observation(
                self.spend_10m(), {A.GEMINI_TIER: tier, A.GEMINI_QUOTA_DIMENSION: "spend_10m"}
            )
        )
        return out

    def _observe_utilization(self, _options: CallbackOptions) -> Iterable[Observation]:
        tier = self.tier
        out = [
            Observation(value, _gauge_attrs(model, tier, dim))
            for model in self._models()
            for dim, value in utilization(
                self.quota_usage(model), self.quota_limits(model, tier)
            ).items()
        ]
        spend_limit = self.spend_limit_10m(tier)
        if spend_limit:
            out.append(
                Observation(
                    self.spend_10m() / spend_limit,
                    {A.GEMINI_TIER: tier, A.GEMINI_QUOTA_DIMENSION: "spend_10m"},
                )
            )
        return out


def _request_shape(model: Any, vertex: bool, base_url: str | None, stream: bool) -> _RequestShape:
    """What every call of one (model, client, stream) shape shares."""
    name = normalize_model(model)
    attrs = base_attributes(name, vertex=vertex, base_url=base_url, stream=stream)
    return (
        f"generate_content {name}",
        name,
        attrs,
        attrs[A.GEN_AI_PROVIDER_NAME],
        attrs[A.SERVER_ADDRESS],
    )


def _remember(cache: dict[Any, _V], key: Any, value: _V) -> _V:
    """Keep ``value`` in one of the per-shape attribute caches, cleared once it holds
    _ATTR_CACHE_MAX shapes (an unbounded variety of models must not grow memory)."""
    if len(cache) >= _ATTR_CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def utilization(usage: Mapping[str, float], limits: Mapping[str, int]) -> dict[str, float]:
    """usage / limit per dimension with a known limit; a 0 limit (no access) has no ratio."""
    return {dim: usage.get(dim, 0) / limit for dim, limit in limits.items() if limit}


def _call_usage(metas: list[Any]) -> Usage | None:
    """The usage of a call whose SDK made requests of its own (automatic function calling:
    ``metas``, one per request): their sum; usage is cumulative within a request, never summed
    there."""
    if len(metas) == 1:
        return usage_from_metadata(metas[0])
    return sum_usages([u for u in map(usage_from_metadata, metas) if u is not None])


def _in_stream_429(call: Call, error: BaseException | None) -> bool:
    """A 429 sent as an error event inside a stream whose HTTP answer was 200."""
    return (
        error is not None
        and getattr(error, "code", None) == 429
        and bool(call.attempts)
        and call.attempts[-1].status == 200
    )


def _gauge_attrs(model: str, tier: str, dimension: str) -> dict[str, str]:
    return {A.GEN_AI_REQUEST_MODEL: model, A.GEMINI_TIER: tier, A.GEMINI_QUOTA_DIMENSION: dimension}


def _usage_attributes(attrs: dict[str, Any], usage: Usage, input_and_output: int) -> None:
    """The usage attributes beyond semconv's input and output tokens (set by the caller)."""
    if usage.cached_tokens:
        attrs[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_tokens
    if usage.thoughts_tokens:
        attrs[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.thoughts_tokens
    if usage.tool_use_prompt_tokens:
        attrs[A.GEMINI_USAGE_TOOL_USE_PROMPT_TOKENS] = usage.tool_use_prompt_tokens
    total = usage.total_tokens
    if total and total != input_and_output:
        # Only when the other counts do not explain it: otherwise it is input + output.
        attrs[A.GEMINI_USAGE_TOTAL_TOKENS] = total
    if usage.traffic_type:
        attrs[A.GEMINI_TRAFFIC_TYPE] = usage.traffic_type
    # Written out: most calls report one modality list or two, and this runs once per call.
    if usage.prompt_by_modality:
        for modality, count in usage.prompt_by_modality.items():
            attrs[A.GEMINI_USAGE_INPUT_MODALITY_PREFIX + modality] = count
    if usage.cached_by_modality:
        for modality, count in usage.cached_by_modality.items():
            attrs[A.GEMINI_USAGE_CACHED_MODALITY_PREFIX + modality] = count
    if usage.candidates_by_modality:
        for modality, count in usage.candidates_by_modality.items():
            attrs[A.GEMINI_USAGE_OUTPUT_MODALITY_PREFIX + modality] = count


def _exception_attributes(error: BaseException) -> dict[str, str]:
    """What ``Span.record_exception`` writes, less the stack trace."""
    cls = type(error)
    module, name = cls.__module__, cls.__qualname__
    return {
        A.EXCEPTION_TYPE: name if module == "builtins" else f"{module}.{name}",
        A.EXCEPTION_MESSAGE: str(error),
        A.EXCEPTION_ESCAPED: "False",
    }


def _error_type(error: BaseException) -> str:
    code = getattr(error, "code", None)
    # APIError carries the HTTP status: the low-cardinality value dashboards group by.
    if isinstance(code, int):
        return str(code)
    return type(error).__qualname__
