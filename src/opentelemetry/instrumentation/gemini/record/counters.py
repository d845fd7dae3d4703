"""The dashboard counters: summed in process, exported through observable counters.

A synchronous counter costs several microseconds per ``add`` in the OTel SDK, and one call feeds
up to a dozen series (tokens by type, USD by component, its attempts). Here a finished call's
whole contribution is one row added under one short lock (``CallLedger``); the SDK reads the
totals only at collection time. Exported values are cumulative totals, exactly what a monotonic
counter reports.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import attributes as A
from ..billing.book import COST_COMPONENTS
from ..billing.units import UNIT_COMPONENTS
from ..bounds import MAX_LABEL_VALUES, OTHER_ERROR_TYPE, OTHER_MODEL, LabelCap, int64
from .operations import GENERATE_CONTENT, INFERENCE

if TYPE_CHECKING:
    from ..billing.book import CostBreakdown
    from ..quota.windows import QuotaWindows
    from .usage import Usage

# Where a second's calls go once it has ended: (model, requests, input tokens, billed USD, at).
WindowSink = Callable[[str, int, int, float, float], None]

# gcp.gemini.tokens' disjoint types, in the ledger's column order.
TOKEN_TYPES = (
    A.TOKEN_KIND_INPUT,
    A.TOKEN_KIND_CACHED_INPUT,
    A.TOKEN_KIND_TOOL_USE_INPUT,
    A.TOKEN_KIND_OUTPUT,
    A.TOKEN_KIND_REASONING,
)
# A ledger row: successful attempts, tokens by type (TOKEN_TYPES), list USD by component
# (COST_COMPONENTS). Its key: (model, response model, tier, billed, operation, project,
# processing); whether the row's calls were billed is part of it (billing is all or nothing per
# call). Processing (online or batch) is last: the spend counters carry it as a label.
_OK = 0
_TOKENS_AT = 1
_IN, _CACHED, _TOOL, _OUT, _REASONING = range(_TOKENS_AT, _TOKENS_AT + len(TOKEN_TYPES))
_USD_AT = _TOKENS_AT + len(TOKEN_TYPES)
_USD_IN, _USD_CACHED, _USD_OUT, _USD_TOOL = range(_USD_AT, _USD_AT + len(COST_COMPONENTS))
# Unit-priced USD (images, video seconds) after the token components: (index, USD) in
# UnitCost.units; every USD column from _USD_AT on is cost.
_UNIT_AT = _USD_AT + len(COST_COMPONENTS)
_ROW_LENGTH = _UNIT_AT + len(UNIT_COMPONENTS)
_ALL_COMPONENTS = COST_COMPONENTS + UNIT_COMPONENTS
_CALL_KEYS = (A.GEN_AI_REQUEST_MODEL, A.GEN_AI_RESPONSE_MODEL, A.GEMINI_TIER)
# gcp.gemini.requests' attributes, in its keys' order.
_REQUEST_KEYS = (
    A.GEN_AI_OPERATION_NAME,
    A.GEN_AI_REQUEST_MODEL,
    A.GEMINI_TIER,
    A.HTTP_RESPONSE_STATUS_CODE,
    A.ERROR_TYPE,
    A.GEMINI_PROJECT,
)
# Series per metric: beyond this many attribute sets, further ones are counted together
# (the OTel SDK's own cardinality limit for synchronous instruments is 2000).
MAX_SERIES = 2000
_OVERFLOW: tuple[Any, ...] = ("__overflow__",)
_OVERFLOW_ATTRS = {"otel.metric.overflow": True}  # the OTel SDK's mark for the same thing


def label_caps(limit: int = MAX_LABEL_VALUES) -> dict[str, LabelCap]:
    """One process's caps on the labels whose values come from answers or from the app's
    clients (not models: the recorder's ModelCap), shared by every counter that carries them,
    so that a value beyond its cap is ``other`` on all of them alike. ``error.type`` of an
    exception without a status is its class name, the app's or a library's: beyond its cap it
    is semconv's ``_OTHER``."""
    caps = {
        label: LabelCap(limit, label)
        for label in (
            A.GEMINI_PROJECT,
            A.GEMINI_QUOTA_ID,
            A.GEMINI_QUOTA_WINDOW,
            A.GEMINI_QUOTA_LOCATION,
        )
    }
    caps[A.ERROR_TYPE] = LabelCap(limit, A.ERROR_TYPE, OTHER_ERROR_TYPE)
    return caps


def _attrs(keys: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    if values is _OVERFLOW:
        return dict(_OVERFLOW_ATTRS)
    return {k: v for k, v in zip(keys, values, strict=False) if v is not None}


class MonotonicSums:
    """Running totals keyed by a tuple of attribute values (names fixed per instance)."""

    __slots__ = ("_caps", "_lock", "_totals", "keys")

    def __init__(self, keys: tuple[str, ...], caps: Mapping[str, LabelCap] | None = None) -> None:
        self.keys = keys
        self._lock = threading.Lock()
        self._totals: dict[tuple[Any, ...], float] = {}
        # (position, cap) of the labels whose values are capped (``label_caps``).
        self._caps = tuple((i, caps[k]) for i, k in enumerate(keys) if caps and k in caps)

    def add(self, values: tuple[Any, ...], amount: float) -> None:
        if values not in self._totals and self._caps:  # a new series: its values within caps
            values = _capped(values, self._caps)
        with self._lock:
            totals = self._totals
            if values not in totals and len(totals) >= MAX_SERIES:
                values = _OVERFLOW
            totals[values] = totals.get(values, 0) + amount

    def snapshot(self) -> dict[tuple[Any, ...], float]:
        with self._lock:
            return dict(self._totals)

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(_total(total), _attrs(self.keys, values))
            for values, total in self.snapshot().items()
        ]

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._totals = {}


def _capped(values: tuple[Any, ...], caps: tuple[tuple[int, LabelCap], ...]) -> tuple[Any, ...]:
    """``values`` with each capped label's value admitted by its cap (``other`` beyond it)."""
    out = list(values)
    for i, cap in caps:
        if type(out[i]) is str:
            out[i] = cap.admit(out[i])
    return tuple(out)


def _total(value: float) -> float:
    """An exported total: integers saturate at int64 (OTLP's and Prometheus' integer)."""
    return int64(value) if type(value) is int else value


class CallLedger:
    """Running totals of finished calls, one row of numbers per (model, response model, tier,
    billed, operation), summed in place: the common call touches four or five columns.

    The quota windows are fed from the same totals: the first call of each new second (or a
    read, ``bank``) hands the windows what every model added since the last bank, stamped with
    the second it happened in. A call costs a clock read instead of its own window update, and
    the counters and the windows cannot disagree.
    """

    __slots__ = (
        "_banked",
        "_clock",
        "_lock",
        "_projects",
        "_rows",
        "_second",
        "_second_end",
        "_to_windows",
    )

    def __init__(
        self,
        to_windows: WindowSink | None = None,
        clock: Callable[[], float] = time.time,
        projects: LabelCap | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._projects = projects  # a new row's project within this cap (label_caps)
        self._rows: dict[tuple[Any, ...], list[float]] = {}
        self._to_windows = to_windows
        self._clock = clock
        self._second = 0.0  # when the calls not banked yet happened (within one second)
        self._second_end = -math.inf if to_windows is not None else math.inf
        self._banked: dict[str, tuple[float, float, float]] = {}  # per model, as last banked

    def add(
        self,
        model: str,
        response_model: str | None,
        tier: str,
        ok_attempts: int,
        usage: Usage | None,
        cost: CostBreakdown | None,
        operation: str = GENERATE_CONTENT,
        project: str | None = None,
        processing: str = A.PROCESSING_ONLINE,
    ) -> None:
        """A finished call: its successful attempts, tokens by type and (priced) USD."""
        if usage is None and not ok_attempts and cost is None:
            return
        key = (
            model,
            response_model,
            tier,
            cost is not None and cost.billed,
            operation,
            project,
            processing,
        )
        # Written out, not looped: this runs once per call, and a loop (or a C-level
        # element-wise sum over the whole row: ~4x slower here) costs more than the adds.
        with self._lock:
            now = self._clock()
            if now >= self._second_end:  # the calls before this one are a second old
                self._bank()
                self._second = now
                self._second_end = math.floor(now) + 1
            row = self._rows.get(key)
            if row is None:
                row = self._overflow_row(key)
            row[_OK] += ok_attempts
            if usage is not None:
                cached = usage.cached_tokens
                if usage.prompt_tokens > cached:
                    row[_IN] += usage.prompt_tokens - cached
                if cached:
                    row[_CACHED] += cached
                if usage.tool_use_prompt_tokens:
                    row[_TOOL] += usage.tool_use_prompt_tokens
                if usage.candidates_tokens:
                    row[_OUT] += usage.candidates_tokens
                if usage.thoughts_tokens:
                    row[_REASONING] += usage.thoughts_tokens
            if cost is not None:
                if cost.input:
                    row[_USD_IN] += cost.input
                if cost.cached_input:
                    row[_USD_CACHED] += cost.cached_input
                if cost.output:
                    row[_USD_OUT] += cost.output
                if cost.tool_use_input:
                    row[_USD_TOOL] += cost.tool_use_input
                if cost.units:  # unit-priced (UnitCost): images, video seconds
                    for index, usd in cost.units:
                        row[_UNIT_AT + index] += usd

    def _overflow_row(self, key: tuple[Any, ...]) -> list[float]:
        """Under the lock: the row of a key not seen yet. Past MAX_SERIES rows, the models'
        pairs are counted as ``other`` (models are capped; this caps their pairs); past twice
        that, the project too: projects are not capped (each Vertex client's, each consumer a
        429 names), and every row is summed on each bank, once a second."""
        rows = self._rows
        project = key[5]
        if self._projects is not None and project is not None:
            # Admitting takes no lock of ours that a caller could hold: LabelCap's own, briefly.
            admitted = self._projects.admit(project)
            if admitted is not project:
                key = (*key[:5], admitted, key[6])
                row = rows.get(key)
                if row is not None:
                    return row
        if len(rows) >= MAX_SERIES:
            _, _, tier, billed, operation, project, processing = key
            key = (OTHER_MODEL, OTHER_MODEL, tier, billed, operation, project, processing)
            if key not in rows and len(rows) >= 2 * MAX_SERIES:
                key = (OTHER_MODEL, OTHER_MODEL, tier, billed, operation, None, processing)
        row = rows.get(key)
        if row is None:
            row = rows[key] = [0] * _ROW_LENGTH
        return row

    def bank(self) -> None:
        """Hand the quota windows what the calls not banked yet added (before reading them)."""
        with self._lock:
            self._bank()

    def _bank(self) -> None:
        """Under the lock: per model, the successful attempts and input tokens (fresh, cached and
        tool-use prompt) of inference calls, and billed USD of every call, added since the last
        bank, to the windows."""
        if self._to_windows is None:
            return
        totals: dict[str, list[float]] = {}
        for (
            model,
            _response_model,
            _tier,
            billed,
            operation,
            _project,
            _,
        ), row in self._rows.items():
            t = totals.get(model)
            if t is None:
                t = totals[model] = [0, 0, 0.0]
            if operation in INFERENCE:  # count_tokens and the like are not in the model's quota
                t[0] += row[_OK]
                t[1] += row[_IN] + row[_CACHED] + row[_TOOL]
            if billed:
                t[2] += sum(row[_USD_AT:])  # every cost component
        for model, (requests, tokens, usd) in totals.items():
            before = self._banked.get(model, (0, 0, 0.0))
            if (requests, tokens, usd) != before:
                self._banked[model] = (requests, tokens, usd)
                self._to_windows(
                    model,
                    int(requests - before[0]),
                    int(tokens - before[1]),
                    usd - before[2],
                    self._second,
                )

    def snapshot(self) -> dict[tuple[Any, ...], tuple[float, ...]]:
        with self._lock:
            return {key: tuple(row) for key, row in self._rows.items()}

    def reset_after_fork(self) -> None:
        """The child starts from zero: its parent exports what was counted before the fork."""
        self._lock = threading.Lock()
        self._rows = {}
        self._banked = {}
        self._second = 0.0
        self._second_end = -math.inf if self._to_windows is not None else math.inf


class DashboardCounters:
    """gcp.gemini.requests, .tokens, .cost, .cost.list, .cost.unpriced_calls and
    .quota.exceeded: what the dashboards sum over time."""

    def __init__(
        self,
        meter: Meter,
        windows: QuotaWindows | None = None,
        before_collect: Callable[[], None] | None = None,
        caps: Mapping[str, LabelCap] | None = None,
    ) -> None:
        self._before_collect = before_collect
        # Spend that no call's row holds (cache storage by token-hour, grounding fees): each
        # source gives its own components' observations, billed (True) or list (False).
        self.cost_sources: list[Callable[[bool], list[Observation]]] = []
        # Per (model, response model, tier, billed); feeds the quota windows (CallLedger).
        caps = caps if caps is not None else label_caps()
        projects = caps.get(A.GEMINI_PROJECT)
        self._calls = (
            CallLedger(projects=projects)
            if windows is None
            else CallLedger(windows.record, windows.clock, projects)
        )
        # A finished call (model, response model, tier, successful attempts, usage, cost): one
        # row update, called straight from the recorder.
        self.call = self._calls.add
        # Usage counted after it happened (a Live session's turns, at the next collection): a
        # ledger of its own, which never feeds the windows (the caller records them at the
        # turn's own second), summed with the calls' rows at collection.
        self._accrued = CallLedger(projects=projects)
        self.accrue = self._accrued.add
        # Run before the windows are read (``bank``): what must reach them first (Live usage).
        self.before_bank: Callable[[], None] | None = None
        # Attempts counted at once: those that did not succeed (a 429 storm shows while it
        # lasts) and those of requests no call of ours holds; the successful attempts of a call
        # ride on its row.
        self._attempts = MonotonicSums(_REQUEST_KEYS, caps)
        self.unpriced = MonotonicSums(
            (
                A.GEN_AI_REQUEST_MODEL,
                A.GEN_AI_RESPONSE_MODEL,
                A.GEMINI_COST_UNPRICED_REASON,
                A.GEMINI_PROJECT,
            ),
            caps,
        )
        self.quota_exceeded = MonotonicSums(
            (
                A.GEN_AI_REQUEST_MODEL,
                A.GEMINI_TIER,
                A.GEMINI_QUOTA_ID,
                A.GEMINI_QUOTA_WINDOW,
                A.GEMINI_QUOTA_DIMENSION,
                A.GEMINI_QUOTA_LOCATION,
                A.GEMINI_PROJECT,
            ),
            caps,
        )
        counters = (  # (name, callback, unit, description)
            (
                A.METRIC_REQUESTS,
                self._observe_requests,
                "{request}",
                "HTTP attempts to Gemini, retries included, by response status.",
            ),
            (
                A.METRIC_TOKENS,
                self._observe_tokens,
                "{token}",
                "Tokens by disjoint type: input, cached_input, tool_use_input, output, reasoning.",
            ),
            (
                A.METRIC_COST,
                self._observe_cost,
                "USD",
                "Billed cost of Gemini calls in USD, by component (input, cached_input, output, "
                "tool_use_input); unbilled calls (free tier) add 0.",
            ),
            (
                A.METRIC_COST_LIST,
                self._observe_cost_list,
                "USD",
                "Pay-as-you-go price of the same calls, billed or not, by component.",
            ),
            (
                A.METRIC_UNPRICED_CALLS,
                self.unpriced.observe,
                "{call}",
                "Successful calls that carry no cost: unknown model or no usage.",
            ),
            (
                A.METRIC_QUOTA_EXCEEDED,
                self.quota_exceeded.observe,
                "{violation}",
                "Quota violations reported in 429 answers.",
            ),
        )
        for name, callback, unit, description in counters:
            meter.create_observable_counter(name, [callback], unit=unit, description=description)

    def bank(self) -> None:
        """Bring the quota windows up to date with every finished call (before reading them)."""
        if self.before_bank is not None:
            self.before_bank()
        self._calls.bank()

    def reset_after_fork(self) -> None:
        for sums in (
            self._calls,
            self._accrued,
            self._attempts,
            self.unpriced,
            self.quota_exceeded,
        ):
            sums.reset_after_fork()

    def attempt(
        self,
        operation: str,
        model: str | None,
        tier: str,
        status: int | None,
        error_type: str | None,
        project: str | None = None,
    ) -> None:
        """One HTTP attempt counted at once (see ``_attempts``)."""
        self._attempts.add((operation, model, tier, status, error_type, project), 1)

    # --- collection time ------------------------------------------------------------------
    def _observe_requests(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._before_collect is not None:  # the first of our callbacks in a collection
            self._before_collect()
        totals = self._attempts.snapshot()
        for (model, _resp, tier, _billed, op, project, _), row in self._rows():
            if row[_OK]:
                key = (op, model, tier, 200, None, project)
                totals[key] = totals.get(key, 0) + row[_OK]
        return [Observation(_total(n), _attrs(_REQUEST_KEYS, key)) for key, n in totals.items()]

    def _rows(self) -> list[tuple[tuple[Any, ...], tuple[float, ...]]]:
        """Every ledger row: the calls' and the accrued usage's (same keys add up)."""
        return [*self._calls.snapshot().items(), *self._accrued.snapshot().items()]

    def _observe_tokens(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._columns(
            A.GEMINI_TOKEN_TYPE, TOKEN_TYPES, _TOKENS_AT, unbilled_as_zero=False, processing=False
        )

    def _observe_cost(self, _options: CallbackOptions) -> Iterable[Observation]:
        # A component shows as soon as it has a list price: unbilled calls (free tier) give
        # the model's series a $0, not "no data".
        out = self._columns(
            A.GEMINI_COST_COMPONENT, _ALL_COMPONENTS, _USD_AT, unbilled_as_zero=True
        )
        for source in self.cost_sources:
            out.extend(source(True))
        return out

    def _observe_cost_list(self, _options: CallbackOptions) -> Iterable[Observation]:
        out = self._columns(
            A.GEMINI_COST_COMPONENT, _ALL_COMPONENTS, _USD_AT, unbilled_as_zero=False
        )
        for source in self.cost_sources:
            out.extend(source(False))
        return out

    def _columns(
        self,
        name: str,
        labels: tuple[str, ...],
        first: int,
        *,
        unbilled_as_zero: bool,
        processing: bool = True,
    ) -> list[Observation]:
        """One observation per (model, response model, tier) and label with a non-zero column
        (rows of billed and unbilled calls summed); ``unbilled_as_zero``: unbilled rows add 0;
        ``processing``: with the gcp.gemini.cost.processing label (the spend counters)."""
        totals: dict[tuple[Any, ...], float] = {}
        for (
            model,
            response_model,
            tier,
            billed,
            op,
            project,
            how,
        ), row in self._rows():
            for i, label in enumerate(labels):
                value = row[first + i]
                if value:
                    key = (
                        model,
                        response_model,
                        tier,
                        label,
                        op,
                        project,
                        how if processing else None,
                    )
                    add = 0.0 if unbilled_as_zero and not billed else value
                    totals[key] = totals.get(key, 0) + add
        return [
            Observation(
                _total(value),
                {
                    **_attrs(_CALL_KEYS, key[:3]),
                    name: key[3],
                    A.GEN_AI_OPERATION_NAME: key[4],
                    **({A.GEMINI_PROJECT: key[5]} if key[5] is not None else {}),
                    **({A.GEMINI_COST_PROCESSING: key[6]} if key[6] is not None else {}),
                },
            )
            for key, value in totals.items()
        ]
