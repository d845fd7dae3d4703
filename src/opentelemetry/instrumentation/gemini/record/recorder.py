"""The Recorder: instruments created once, and the one path that turns a Call into telemetry.

Span attributes, histograms, counters, cost and quota windows are all derived here from the
same ``Usage`` record, once per call (``record``) and once per HTTP attempt (``attempt``).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode, Tracer

from .. import attributes as A
from ..billing.units import unit_prices
from ..bounds import MAX_NAME, MAX_STACKTRACE, ModelCap, Secrets, warn_once
from ..bounds import name as capped_name
from ..config import UNKNOWN_TIER, Settings
from ..quota.errors import RateLimitInfo, parse_rate_limit
from . import rounds
from .call import _ABANDONED, OK_ATTEMPT, Attempt, Call, Reader, drain_abandoned, error_code
from .grounding import read_grounding
from .long_running import LongRunning
from .operations import (
    ACCRUED,
    BATCHES,
    BILLED,
    GENERATE_CONTENT,
    INFERENCE,
    PRICED_WITH_USAGE,
)
from .request import base_attributes, config_attributes, has_tools, normalize_model
from .usage import Usage, served_tier, sum_usages, usage_from_metadata

if TYPE_CHECKING:
    from ..billing.book import CostBreakdown, PriceBook
    from ..billing.units import UnitCost
    from ..quota.limits import LimitTable
    from .capture import Captured, Sink
    from .instruments import Instruments

_logger = logging.getLogger(__name__)

_V = TypeVar("_V")
_ATTR_CACHE_MAX = 1024  # distinct call shapes whose attribute dicts are kept, then cleared
_NO_REASONS: list[str] = []  # shared, never mutated
_UNPRICED_WARNINGS = 20  # distinct unpriced models named in the log; then one last line
# The histograms' attributes: the operation's, and with the input and the output token type.
_MetricAttrs = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
# A request shape's span name, model (as metrics carry it), attributes, provider and host (see
# Recorder.start).
_RequestShape = tuple[str, str, dict[str, Any], str, str]


class Recorder:
    def __init__(
        self,
        tracer: Tracer,
        instruments: Instruments,
        settings: Settings,
        prices: PriceBook | None,
        limits: LimitTable | None,
        secrets: Secrets | None = None,
    ) -> None:
        self.tracer = tracer
        self.settings = settings
        self.prices = prices
        self.limits = limits
        self.instruments = instruments
        self.windows = instruments.windows
        self.counters = instruments.counters
        self.secrets = secrets if secrets is not None else Secrets()
        self.models = ModelCap(settings.max_models)
        self.per_attempt = False  # set by _patch.patch once the attempt seam is in place
        self.tier = settings.tier
        self.tier_source = "config" if settings.tier != UNKNOWN_TIER else "default"
        # The Developer API's project: configured, else learned from an ErrorInfo's consumer
        # (a call on Vertex carries its client's project instead: Call.project).
        self.project = settings.project
        self.project_source = "config" if settings.project else None
        self._lock = threading.Lock()
        self._warned_unpriced: set[str] = set()
        self._metric_attrs: dict[tuple[Any, ...], _MetricAttrs] = {}
        self._request_shapes: dict[tuple[Any, ...], _RequestShape] = {}
        # modelVersion as answered -> (as the span shows it, as metrics count it)
        self._response_models: dict[str, tuple[str, str]] = {}
        # model -> (retry delay in s, epoch s it was asked at) of the latest 429 naming one.
        self.last_retry: dict[str, tuple[float, float]] = {}
        self._tier_conflicts: set[str] = set()  # tiers 429s named against the configured one
        self._duration = instruments.duration
        self._token_usage = instruments.token_usage
        self._ttfc = instruments.ttfc
        self._retry_delay = instruments.retry_delay
        # Video operations: their submits' requests, and which were seen done (priced once).
        self.long_running = LongRunning()
        # Where captured content goes (record/capture.py): set by the instrumentor when
        # content capture is on, else None.
        self.content: Sink | None = None

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self.models.reset_after_fork()
        self.secrets.reset_after_fork()
        if self.content is not None and self.content.uploads is not None:
            self.content.uploads.reset_after_fork()  # the parent's queue and thread
        self.last_retry = {}
        self.long_running.reset_after_fork()

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
        operation: str = GENERATE_CONTENT,
        reader: Reader | None = None,
        project: str | None = None,
    ) -> Call | None:
        """Open the call's span; None (and the SDK call runs untouched) if anything is off.

        ``reader`` turns the SDK's answer into an Answer (usage, model, id, attributes) for
        operations other than generate_content, whose answers ``Call.settle`` reads."""
        if _ABANDONED:  # streams dropped since the last call: record them here, not in the GC
            drain_abandoned()
        try:
            # Keyed by the model as the caller wrote it: normalized once per shape.
            key = (
                model if type(model) is str else normalize_model(model),
                vertex,
                base_url,
                stream,
                operation,
            )
            shape = self._request_shapes.get(key)
            if shape is None:
                shape = _remember(
                    self._request_shapes,
                    key,
                    _request_shape(model, vertex, base_url, stream, self.models, operation),
                )
            span_name, model, base, provider, host = shape
            # The SDK copies what it is given; the cached dict is only copied to be extended.
            requested_tier = None
            if config is None:
                attrs = base
            else:
                attrs = {**base, **config_attributes(config)}
                requested_tier = attrs.get(A.GEMINI_REQUEST_SERVICE_TIER)
            captured: Captured | None = None
            if self.content is not None and contents is not None:  # a call with content
                attrs = dict(attrs)
                captured = self.content.start(self, attrs, contents, config)
            try:
                span = self.tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attrs)
            except Exception:  # a span processor that raises: the metrics still count the call
                _logger.debug("gemini instrumentation: could not start a span", exc_info=True)
                span = INVALID_SPAN
            call = Call(self, span, model, stream, provider, host, is_async)
            if operation is not GENERATE_CONTENT:
                call.operation = operation
                call.reader = reader
            if requested_tier is not None:
                call.requested_tier = requested_tier
            if config is not None and operation is GENERATE_CONTENT and has_tools(config):
                call.tools = True
            if project is not None:
                call.project = project
            if captured is not None:
                call.captured = captured
            return call
        except Exception:
            _logger.debug("gemini instrumentation: could not start a span", exc_info=True)
            return None

    def attempt(self, call: Call, status: int | None, error: BaseException | None) -> None:
        """One HTTP attempt: counts against RPM/RPD whatever its outcome."""
        if status == 200:
            call.on_attempt_ok()
            return
        # Read the 429 first: the tier it reveals must already be on this attempt's count.
        developer = call.provider != A.PROVIDER_VERTEX_AI
        rate_limit = self._read_429(error, developer) if status == 429 else None
        if status == 403:
            self._read_403(error, developer)
        error_type = None if status is not None else error_class(error)
        call.attempts.append(Attempt(status, error_type, rate_limit))
        self.counters.attempt(
            call.operation, call.model, self.tier, status, error_type, call.project or self.project
        )
        if call.operation in INFERENCE:
            self.windows.record(call.model, requests=1)
        event: dict[str, Any] = {A.GEMINI_ATTEMPT_NUMBER: len(call.attempts)}
        if status is not None:
            event[A.HTTP_RESPONSE_STATUS_CODE] = status
        else:
            event[A.ERROR_TYPE] = error_type
        call.span.add_event(A.EVENT_ATTEMPT, event)
        if status == 429:
            self._quota_hit(call.model, call.span, rate_limit, call)

    def request_attempt(
        self,
        operation: str,
        model: str,
        status: int | None,
        error: BaseException | None,
        vertex: bool = False,
        project: str | None = None,
    ) -> None:
        """An HTTP attempt of a request no call of ours holds (a method we have no adapter for,
        or one made outside any call): counted, its 429 parsed, fed to the model's windows when
        the operation counts against inference quota. ``model`` as ``sdk.attempts.route`` read
        it from the request path ("" when the path names none); ``vertex`` and ``project``: its
        client's, as a call's."""
        name = self.models.admit(model) if model else None
        rate_limit = self._read_429(error, not vertex) if status == 429 else None
        if status == 403:
            self._read_403(error, not vertex)
        error_type = None if status is not None or error is None else error_class(error)
        project = project or self.project
        self.counters.attempt(operation, name, self.tier, status, error_type, project)
        if name is not None and operation in INFERENCE:
            self.windows.record(name, requests=1)
        if status == 429:
            self._quota_hit(name, None, rate_limit, project=project)

    def record(self, call: Call, error: BaseException | None, stream_end: str | None) -> None:
        """The single recording path: span attributes, metrics, cost and counters, once."""
        span = call.span
        duration = (call.end_perf or time.perf_counter()) - call.start
        extra: dict[str, Any] | None = None
        if call.reader is None:  # generate_content
            meta, response_model, response_id, reasons = call.settle()
            metas = call.request_usages
            usage = usage_from_metadata(meta) if not metas else _call_usage(metas)
        else:
            usage, response_model, response_id, extra = call.read()
            reasons = _NO_REASONS
        if not self.per_attempt and not call.attempts:
            # Without the attempt seam each call is one attempt, judged by its outcome; a
            # stream closed or dropped before its first chunk sent no request.
            if error is not None:
                call.attempt_error(error)
            elif call.chunks or not call.stream or stream_end == A.STREAM_END_EXHAUSTED:
                call.on_attempt_ok()
        elif error is not None and _in_stream_429(call, error):
            # The HTTP answer was 200 and already counted; the quota details still matter.
            developer = call.provider != A.PROVIDER_VERTEX_AI
            self._quota_hit(call.model, span, self._read_429(error, developer), call)
        tier = self.tier
        attrs: dict[str, Any] = {A.GEMINI_TIER: tier}
        if tier != UNKNOWN_TIER:  # an unknown tier has no source to tell
            attrs[A.GEMINI_TIER_SOURCE] = self.tier_source
        project = call.project or self.project
        if project is not None:
            attrs[A.GEMINI_PROJECT] = project
        if response_model is not None:
            names = self._response_models.get(response_model) or self._response_model(
                response_model
            )
            attrs[A.GEN_AI_RESPONSE_MODEL] = names[0]
            response_model = names[1]  # from here on, as metrics count it
        if response_id:
            attrs[A.GEN_AI_RESPONSE_ID] = (
                response_id
                if len(response_id) < self.secrets.safe_below and response_id.isascii()
                else self.secrets.clean(response_id, MAX_NAME)
            )
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
        served = served_tier(call.last) if error is None else None
        if served is not None:
            attrs[A.GEMINI_SERVICE_TIER] = served
        input_tokens = output_tokens = 0
        if usage is not None:
            input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
            attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            _usage_attributes(attrs, usage, input_tokens + output_tokens)
        if extra:  # an adapter's answer (batch jobs, caches, media): never generate_content's
            self._take_extra(attrs, extra)

        error_type: str | None = None
        if error is not None:
            error_type = _error_type(error)
            attrs[A.ERROR_TYPE] = error_type
            self._record_error(span, error)

        cost = None
        accrued = call.operation in ACCRUED  # priced and counted as it went: its reader's attrs
        if self.prices is not None and not accrued:
            cost = self._price(call, attrs, usage, response_model, error, served)
        if call.tools and error is None:
            self._grounding(call, attrs, tier, project)
        if call.round_ends:  # automatic function calling's rounds: which one cost what
            rounds.add_events(self, call, response_model, served, error)
        if call.captured is not None and self.content is not None:
            self.content.finish(self, call, call.captured, attrs, reasons)
        span.set_attributes(attrs)
        try:
            span.end(call.end_ns)
        except Exception:  # a span processor's on_end raised: the metrics below still count
            _logger.debug("gemini instrumentation: ending a span raised", exc_info=True)

        shape = (call.model, response_model, call.provider, call.host, error_type, call.operation)
        metric_attrs, input_attrs, output_attrs = self._metric_attrs.get(
            shape
        ) or self._new_metric_attributes(shape)
        self._duration.record(duration, metric_attrs)
        if call.stream and call.first_chunk_at is not None:
            self._ttfc.record(call.first_chunk_at - call.start, metric_attrs)
        if usage is not None:
            self._token_usage.record(input_tokens, input_attrs)
            if output_tokens or call.operation is GENERATE_CONTENT:  # embeddings: input only
                self._token_usage.record(output_tokens, output_attrs)
        if call.units is not None and cost is not None and cost.operation is not None:
            # A long-running operation's cost, seen at a poll: counted under the operation
            # that bills it (generate_videos), the poll's own attempts under its own.
            self.counters.call(
                call.model, response_model, tier, 0, None, cost, cost.operation, project
            )
            cost = None
        # Failed attempts were counted at once (attempt); successful ones ride on the call,
        # and reach the quota windows through the counters.
        self.counters.call(
            call.model,
            response_model,
            tier,
            call.attempts.count(OK_ATTEMPT),
            None if accrued else usage,
            cost,
            call.operation,
            project,
            A.PROCESSING_BATCH if call.operation == BATCHES else A.PROCESSING_ONLINE,
        )

    # --- pieces of record() --------------------------------------------------------------------
    def _take_extra(self, attrs: dict[str, Any], extra: dict[str, Any]) -> None:
        """An adapter's attributes, their text without any API key: names and states a server
        answers (a job's, an operation's, a cache's) may repeat it, as its errors may."""
        secrets = self.secrets
        for key, value in extra.items():
            if type(value) is str and (len(value) >= secrets.safe_below or not value.isascii()):
                value = secrets.clean(value, None)
            attrs[key] = value

    def _response_model(self, answered: str) -> tuple[str, str]:
        """A modelVersion as the span shows it (capped, no key) and as metrics count it (within
        the per-process model cap), worked out once per distinct answer."""
        shown = self.secrets.clean(normalize_model(answered), MAX_NAME)
        return _remember(self._response_models, answered, (shown, self.models.admit(shown)))

    def _record_error(self, span: Any, error: BaseException) -> None:
        """Status and exception event of a failed call: the error's text capped and without
        any API key (a server may echo it); the app's own exception is left untouched."""
        clean = self.secrets.clean
        message = _message(error)
        span.set_status(Status(StatusCode.ERROR, clean(f"{type(error).__name__}: {message}", 500)))
        event = _exception_attributes(error, clean(message))
        if not isinstance(_http_status(error), int):
            # The server's answers (429, 500...) have the SDK's HTTP path for a stack, and
            # formatting it costs more than all the rest of the call: only other errors get one.
            stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            event[A.EXCEPTION_STACKTRACE] = clean(stack, MAX_STACKTRACE, tail=True)
        span.add_event(A.EVENT_EXCEPTION, event)

    def _price(
        self,
        call: Call,
        attrs: dict[str, Any],
        usage: Usage | None,
        response_model: str | None,
        error: BaseException | None,
        served: str | None = None,
    ) -> CostBreakdown | UnitCost | None:
        """The call's cost attributes; its cost, for the counters and the spend window. Priced
        by the model that answered (an alias resolves to a version), else the one asked for."""
        assert self.prices is not None
        if error is not None or (
            call.operation not in BILLED
            and call.units is None
            and (usage is None or call.operation not in PRICED_WITH_USAGE)
        ):
            # Google bills no failed request (400, 429, 500...), nor count_tokens and the like:
            # a known zero, whatever the model.
            attrs[A.GEN_AI_USAGE_COST_AMOUNT] = 0.0
            attrs[A.GEN_AI_USAGE_COST_CURRENCY] = "USD"
            attrs[A.GEN_AI_USAGE_COST_SOURCE] = "local"
            return None
        if call.units is not None:
            return self._price_units(call, attrs, response_model)
        if usage is None:
            attrs[A.GEMINI_COST_UNPRICED_REASON] = A.UNPRICED_NO_USAGE
            if call.chunks:  # a stream that never delivered a chunk had nothing to price
                self.counters.unpriced.add(
                    (call.model, response_model, A.UNPRICED_NO_USAGE, call.project or self.project),
                    1,
                )
            return None
        model = response_model or call.model
        # At the traffic type the answer reports (Vertex), else the service tier that served
        # it (Developer API), else the one asked for.
        traffic = usage.traffic_type or served or call.requested_tier
        cost = self.prices.cost(model, usage, tier=self._billing_tier(call), traffic_type=traffic)
        if cost is None:
            self._unpriced(call, attrs, response_model, self.no_price_reason(model))
            return None
        _cost_attributes(attrs, cost)
        return cost

    def _billing_tier(self, call: Call) -> str | None:
        """The tier a call is billed at: the process's (the Developer API account's, which may
        be free) for the Developer API; None (pay-as-you-go) for Vertex AI, which has no free
        tier: a free Developer API key in the same process must not make Vertex calls free."""
        return None if call.provider == A.PROVIDER_VERTEX_AI else self.tier

    def _price_units(
        self, call: Call, attrs: dict[str, Any], response_model: str | None
    ) -> UnitCost | None:
        """Cost of what a call bills by unit (images, video seconds), from the dated unit
        prices; unpriced with a reason when they have no price for the model."""
        units = call.units
        assert units is not None
        cost, reason = None, units.unpriced
        if reason is None:
            try:
                cost, reason = unit_prices().price(
                    response_model or call.model, units, self._billing_tier(call)
                )
            except Exception:  # unreadable bundled data: unpriced, never an error in the app
                _logger.debug("gemini instrumentation: no unit prices", exc_info=True)
                reason = A.UNPRICED_UNKNOWN_MODEL
        if cost is None:
            self._unpriced(call, attrs, response_model, reason)
            return None
        _cost_attributes(attrs, cost)
        return cost

    def _unpriced(
        self, call: Call, attrs: dict[str, Any], response_model: str | None, reason: str
    ) -> None:
        """No cost attribute at all (a made-up 0 would read as "free" on every dashboard): the
        reason instead, and a count of unpriced calls (a video submit, priced when first seen
        done, is not one)."""
        attrs[A.GEMINI_COST_UNPRICED_REASON] = reason
        if reason != A.UNPRICED_PENDING:
            self.counters.unpriced.add(
                (call.model, response_model, reason, call.project or self.project), 1
            )

    def _grounding(self, call: Call, attrs: dict[str, Any], tier: str, project: str | None) -> None:
        """Grounding the answer reports (record/grounding.py): counted, and its Google Search
        fee added to the call's cost where the call's tokens are priced."""
        found = read_grounding(call.last)
        if found is None and call.usage_chunk is not call.last:
            found = read_grounding(call.usage_chunk)
        if found is None and call.prev is not None and not getattr(call.last, "candidates", None):
            # a stream's last chunk of usage only: the answer's end is in the one before
            found = read_grounding(call.prev)
        if found is None:
            return
        billed, list_usd = self.instruments.grounding.record(
            found,
            call.model,  # metrics: as the call's other counters name it
            attrs.get(A.GEN_AI_RESPONSE_MODEL) or call.model,  # priced: the model that answered
            tier,
            project,
            call.provider == A.PROVIDER_VERTEX_AI,
            attrs,
        )
        if list_usd and A.GEMINI_COST_LIST_AMOUNT in attrs:
            attrs[A.GEN_AI_USAGE_COST_AMOUNT] += billed
            attrs[A.GEMINI_COST_LIST_AMOUNT] += list_usd

    def no_price_reason(self, model: str) -> str:
        """Why the price book had no cost for ``model``: still loading after the wait budget,
        or a model it does not know (warned once per model)."""
        assert self.prices is not None
        if not self.prices.loaded:
            return A.UNPRICED_PRICES_LOADING
        self._warn_unpriced(model)
        return A.UNPRICED_UNKNOWN_MODEL

    def _warn_unpriced(self, model: str) -> None:
        with self._lock:
            if model in self._warned_unpriced:
                return
            if len(self._warned_unpriced) >= _UNPRICED_WARNINGS:
                warn_once(
                    "unpriced",
                    "more models without a known price; not logging each (see %s)",
                    A.METRIC_UNPRICED_CALLS,
                )
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
        model, response_model, provider, host, error_type, operation = shape
        base: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: operation,
            A.GEN_AI_PROVIDER_NAME: provider,
            A.GEN_AI_REQUEST_MODEL: model,
        }
        if model is None:  # a request that names no model (see _request_shape)
            del base[A.GEN_AI_REQUEST_MODEL]
        if response_model:
            base[A.GEN_AI_RESPONSE_MODEL] = response_model
        if host:
            base[A.SERVER_ADDRESS] = host
        if error_type:  # capped as the attempts counter caps it (label_caps)
            base[A.ERROR_TYPE] = self.instruments.caps[A.ERROR_TYPE].admit(error_type)
        return _remember(
            self._metric_attrs,
            shape,
            (
                base,
                {**base, A.GEN_AI_TOKEN_TYPE: A.TOKEN_TYPE_INPUT},
                {**base, A.GEN_AI_TOKEN_TYPE: A.TOKEN_TYPE_OUTPUT},
            ),
        )

    def _read_429(self, error: BaseException | None, developer: bool) -> RateLimitInfo | None:
        """Parse a 429's body and learn the tier it names (unless one is configured), and its
        project. Only from the Developer API (``developer``): the tier and the learned project
        are that API's, process-wide; a Vertex client's 429 names its own project, and
        learning it would put every Developer API call of the process under that project."""
        info = parse_rate_limit(getattr(error, "details", None))
        if info is not None and developer:
            if info.tier is not None:
                self._learn_tier(info.tier)
            if info.project is not None:
                self._learn_project(info.project)
        return info

    def _read_403(self, error: BaseException | None, developer: bool) -> None:
        """A 403 may name the project in an ErrorInfo too (an API not enabled, a key refused)."""
        if not developer:
            return
        info = parse_rate_limit(getattr(error, "details", None))
        if info is not None and info.project is not None:
            self._learn_project(info.project)

    def _learn_project(self, project: str) -> None:
        if self.project_source == "config" or project == self.project:
            return
        with self._lock:
            self.project = project
            self.project_source = "error_info"

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

    def _quota_hit(
        self,
        model: str | None,
        span: Any,
        info: RateLimitInfo | None,
        call: Call | None = None,
        project: str | None = None,
    ) -> None:
        """A 429's violations: counted, and events on ``span`` (None: no call of ours open).
        ``model`` None: a request that names no model (caches, files...). ``project``: of a
        request no call holds (a call's is its own)."""
        delay = info.retry_delay if info is not None else None
        project = (call.project if call is not None else project) or self.project
        if delay is not None:
            if model is not None:
                self.last_retry[model] = (delay, time.time())
            labels = {A.GEN_AI_REQUEST_MODEL: model} if model else {}
            if project is not None:
                labels[A.GEMINI_PROJECT] = self.instruments.project(project)
            self._retry_delay.record(delay, labels)
        violations = info.violations if info is not None else ()
        if not violations:
            event: dict[str, Any] = {}
            if delay is not None:
                event[A.GEMINI_RETRY_DELAY] = delay
            if span is not None:
                span.add_event(A.EVENT_QUOTA_EXCEEDED, event)
            self.counters.quota_exceeded.add((model, self.tier, None, None, None, None, project), 1)
            return
        clean = self.secrets.clean
        for v in violations:
            # The server's words: capped and without any key before they reach telemetry.
            quota_id, location = _opt(clean, v.quota_id), _opt(clean, v.location)
            event = {
                k: val
                for k, val in (
                    (A.GEMINI_QUOTA_ID, quota_id),
                    (A.GEMINI_QUOTA_METRIC, _opt(clean, v.quota_metric)),
                    (A.GEMINI_QUOTA_LIMIT, v.limit),
                    (A.GEMINI_QUOTA_WINDOW, v.window),
                    (A.GEMINI_QUOTA_DIMENSION, v.dimension),
                    (A.GEMINI_QUOTA_MODEL, _opt(clean, v.model)),
                    (A.GEMINI_QUOTA_LOCATION, location),
                    (A.GEMINI_RETRY_DELAY, delay),
                )
                if val is not None
            }
            if span is not None:
                span.add_event(A.EVENT_QUOTA_EXCEEDED, event)
            self.counters.quota_exceeded.add(
                (model, self.tier, quota_id, v.window, v.dimension, location, project), 1
            )

    # --- quota position: read by the gauges (instruments.py) and by status.quota_status ------
    def quota_limits(self, model: str, tier: str | None = None) -> dict[str, int]:
        """The tier's published rpm/tpm/rpd for ``model``; a dimension with none is absent."""
        found = self.limits.lookup(model, tier or self.tier) if self.limits is not None else None
        if found is None:
            return {}
        values = {"rpm": found.rpm, "tpm": found.tpm, "rpd": found.rpd}
        return {dim: value for dim, value in values.items() if value is not None}

    def window_usage(self, model: str) -> dict[str, int]:
        """This process's requests and input tokens in the last minute, requests today, as the
        windows hold them (the caller banks the counters first)."""
        u = self.windows.usage(model)
        return {
            "rpm": u.requests_per_minute,
            "tpm": u.input_tokens_per_minute,
            "rpd": u.requests_today,
        }

    def quota_usage(self, model: str) -> dict[str, int]:
        """``window_usage`` brought up to date with every finished call."""
        self.counters.bank()
        return self.window_usage(model)

    def spend_10m(self) -> float:
        """Billed USD over the rolling 10 minutes, all models (the limit is per project)."""
        self.counters.bank()
        return self.windows.spend_10m_total()

    def batch_enqueued_limit(self, model: str, tier: str | None = None) -> int | None:
        """The tier's Batch API enqueued-tokens limit for ``model``; None when unpublished."""
        found = self.limits.lookup(model, tier or self.tier) if self.limits is not None else None
        return found.batch_enqueued_tokens if found is not None else None

    def spend_limit_10m(self, tier: str | None = None) -> float | None:
        return self.limits.spend_limit_10m(tier or self.tier) if self.limits is not None else None


def _request_shape(
    model: Any,
    vertex: bool,
    base_url: str | None,
    stream: bool,
    models: ModelCap,
    operation: str,
) -> _RequestShape:
    """What every call of one (model, client, stream, operation) shape shares; the model as the
    span names it (capped) and as metrics count it (within the per-process cap)."""
    # A request that names no model (caches.list; a cache made elsewhere): none is made up.
    name = normalize_model(model) if model is not None or operation is GENERATE_CONTENT else ""
    attrs = base_attributes(
        name, vertex=vertex, base_url=base_url, stream=stream, operation=operation
    )
    return (
        # Semconv: the model in the name when the request names one (caches.list, a batch job's
        # get of a job made elsewhere do not: no model is made up).
        f"{operation} {name}" if name else operation,
        models.admit(name) if name else None,  # type: ignore[return-value]
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
        and error_code(error) == 429
        and bool(call.attempts)
        and call.attempts[-1].status == 200
    )


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


def _exception_attributes(error: BaseException, message: str) -> dict[str, str]:
    """What ``Span.record_exception`` writes, with our ``message``, less the stack trace."""
    cls = type(error)
    # The app's class: its __module__ may be anything (None, an object), its name any length.
    module, qualname = cls.__module__, cls.__qualname__
    plain = not isinstance(module, str) or module == "builtins"
    shown = qualname if plain else f"{module}.{qualname}"
    return {
        A.EXCEPTION_TYPE: capped_name(shown),
        A.EXCEPTION_MESSAGE: message,
        A.EXCEPTION_ESCAPED: "False",
    }


def _opt(clean: Any, text: str | None) -> str | None:
    return None if text is None else clean(text, MAX_NAME)


def _http_status(error: BaseException) -> Any:
    """The HTTP status of a server's answer: ``code`` (the SDK's APIError), else
    ``status_code`` (the Interactions API's errors); None for other errors."""
    code = error_code(error)
    return code if isinstance(code, int) else _status_code(error)


def _error_type(error: BaseException) -> str:
    code = _http_status(error)
    # APIError carries the HTTP status: the low-cardinality value dashboards group by.
    if isinstance(code, int):
        return str(code)
    return error_class(error)


def error_class(error: BaseException) -> str:
    """``error.type`` of an exception without a status: its class name, capped (the app's
    class, or a library's, may be named anything)."""
    return capped_name(type(error).__qualname__)


def _message(error: BaseException) -> str:
    """The exception's text, as ``traceback`` shows it when its ``__str__`` raises (or
    recurses): an app's exception may do that, and its call must still be recorded."""
    try:
        return str(error)
    except Exception:
        return "<exception str() failed>"


def _status_code(error: BaseException) -> Any:
    """``error.status_code`` (the Interactions API's errors): None when the app's exception has
    a property there that raises (``error.code``: ``call.error_code``)."""
    try:
        return getattr(error, "status_code", None)
    except Exception:
        return None


def _cost_attributes(attrs: dict[str, Any], cost: CostBreakdown | UnitCost) -> None:
    attrs[A.GEN_AI_USAGE_COST_AMOUNT] = cost.total
    attrs[A.GEN_AI_USAGE_COST_CURRENCY] = "USD"
    attrs[A.GEN_AI_USAGE_COST_SOURCE] = "local"
    attrs[A.GEMINI_COST_LIST_AMOUNT] = cost.list_total
    attrs[A.GEMINI_COST_PRICES_VERSION] = cost.prices_version
