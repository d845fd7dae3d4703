"""Grounding (Google Search, Google Maps, URL context, code execution): what a generate_content
answer says it used, read once per call by the Recorder, and the Google Search fee.

Read from the answer's candidates (duck-typed, as usage.py reads usage): ``grounding_metadata``
(``web_search_queries``, ``grounding_chunks`` by kind), ``url_context_metadata`` and the
``executable_code`` parts of code execution. Only calls whose config carries tools are read
(the Recorder decides), so plain calls pay nothing for this.

The Google Search fee, per the model family's dated rule (billing/units.py): Gemini 2.5 bills
each *grounded prompt* (a request that searched: one, however many queries ran), Gemini 3 each
*search query*, beyond a free allowance per project per period. The allowance is shared by
every process of the project and no answer says how much of it is left, so:

- ``gcp.gemini.grounding`` counts the units (prompts or queries) and the ``grounding`` component
  of ``gcp.gemini.cost.list`` prices every one of them at the list rate (no allowance);
- the ``grounding`` component of ``gcp.gemini.cost`` (and the span's cost) assumes this process
  is the project's only user of the allowance: its first ``free_per_period`` units of a period
  (Pacific day or month) bill 0. With several processes per project that is an upper bound on
  the free part, so the billed figure is a lower bound; the list figure is the upper bound.

Maps grounding is counted, not priced (no dated price in our data); URL context and code
execution have no fee of their own (their tokens are billed as tokens) and are counted.
On Vertex AI the Google Search fee is not priced (our data holds the Developer API's rules).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Meter, Observation

from .. import attributes as A
from ..billing.extras import tier_billed
from ..billing.grounding import GroundingRule, grounding_rule
from ..quota.windows import pacific_day_bounds
from .counters import MonotonicSums
from .operations import GENERATE_CONTENT

if TYPE_CHECKING:
    from ..bounds import LabelCap
    from ..quota.windows import QuotaWindows

_MAX_ALLOWANCES = 64  # (family, project) pairs whose in-process allowance is followed
_COST_KEYS = (A.GEN_AI_REQUEST_MODEL, A.GEMINI_TIER, A.GEMINI_PROJECT)
_UNIT_KEYS = (
    A.GEN_AI_REQUEST_MODEL,
    A.GEMINI_GROUNDING_SOURCE,
    A.GEMINI_GROUNDING_UNIT,
    A.GEMINI_TIER,
    A.GEMINI_PROJECT,
)
_UNPRICED_MAPS = "no_maps_price"
_UNPRICED_VERTEX = "no_vertex_price"


class Grounding:
    """What one answer used: search queries, grounding chunks by source, URLs read, code
    executions."""

    __slots__ = ("chunks", "code_executions", "queries", "sources", "urls")

    def __init__(self) -> None:
        self.queries = 0
        self.chunks = 0
        self.urls = 0
        self.code_executions = 0
        self.sources: list[str] = []

    def used(self, source: str) -> None:
        if source not in self.sources:
            self.sources.append(source)


def read_grounding(response: Any) -> Grounding | None:
    """The grounding an answer reports; None when it reports none. Never raises."""
    try:
        candidates = getattr(response, "candidates", None)
        if not candidates:
            return None
        found = Grounding()
        for candidate in candidates:
            meta = getattr(candidate, "grounding_metadata", None)
            if meta is not None:
                # Candidates of one request share its searches: the most any one reports.
                queries = getattr(meta, "web_search_queries", None) or ()
                found.queries = max(found.queries, len(queries))
                if queries:
                    found.used(A.GROUNDING_GOOGLE_SEARCH)
                for chunk in getattr(meta, "grounding_chunks", None) or ():
                    found.chunks += 1
                    if getattr(chunk, "web", None) is not None:
                        found.used(A.GROUNDING_GOOGLE_SEARCH)
                    elif getattr(chunk, "maps", None) is not None:
                        found.used(A.GROUNDING_GOOGLE_MAPS)
                    elif getattr(chunk, "retrieved_context", None) is not None:
                        found.used(A.GROUNDING_RETRIEVAL)
            urls = getattr(getattr(candidate, "url_context_metadata", None), "url_metadata", None)
            if urls:
                found.urls += len(urls)
                found.used(A.GROUNDING_URL_CONTEXT)
            parts = getattr(getattr(candidate, "content", None), "parts", None) or ()
            runs = sum(1 for p in parts if getattr(p, "executable_code", None) is not None)
            if runs:
                found.code_executions += runs
                found.used(A.GROUNDING_CODE_EXECUTION)
        return found if found.sources or found.chunks else None
    except Exception:
        return None


def _period_key(period: str, now: float) -> Any:
    """The allowance period ``now`` falls in: the Pacific day (as RPD resets), or its month."""
    day_start = pacific_day_bounds(now)[0]
    if period == "month":
        day = datetime.fromtimestamp(day_start, timezone.utc).date()  # Pacific midnight: same date
        return (day.year, day.month)
    return day_start


class GroundingMeter:
    """``gcp.gemini.grounding`` (units by source), the ``grounding`` cost component, and the
    in-process allowance per (model family, project)."""

    def __init__(
        self,
        meter: Meter,
        windows: QuotaWindows | None = None,
        clock: Callable[[], float] = time.time,
        caps: Mapping[str, LabelCap] | None = None,
    ) -> None:
        self.clock = clock
        self._windows = windows
        self._lock = threading.Lock()
        self._units = MonotonicSums(_UNIT_KEYS, caps)
        self._billed = MonotonicSums(_COST_KEYS, caps)
        self._list = MonotonicSums(_COST_KEYS, caps)
        # (family, project) -> (period key, units used in it by this process)
        self._allowance: dict[tuple[str, str | None], tuple[Any, int]] = {}
        meter.create_observable_counter(
            A.METRIC_GROUNDING,
            [self._units.observe],
            unit="{unit}",
            description="Grounding used by generate_content answers: Google Search grounded "
            "prompts or search queries (the billed unit of the model's family), Google Maps "
            "grounded prompts, URLs read by URL context, code executions.",
        )

    def record(
        self,
        found: Grounding,
        model: str,
        priced_model: str,
        tier: str,
        project: str | None,
        vertex: bool,
        attrs: dict[str, Any],
    ) -> tuple[float, float]:
        """Count one answer's grounding, set its span attributes in ``attrs``; the (billed,
        list) USD of its Google Search fee (0, 0 when none or unpriced)."""
        if found.queries:
            attrs[A.GEMINI_GROUNDING_SEARCH_QUERIES] = found.queries
        if found.chunks:
            attrs[A.GEMINI_GROUNDING_CHUNKS] = found.chunks
        if found.urls:
            attrs[A.GEMINI_GROUNDING_URLS] = found.urls
        if found.code_executions:
            attrs[A.GEMINI_GROUNDING_CODE_EXECUTIONS] = found.code_executions
        if found.sources:
            attrs[A.GEMINI_GROUNDING_SOURCES] = list(found.sources)
        sources = found.sources
        if A.GROUNDING_GOOGLE_MAPS in sources:
            self._units.add((model, A.GROUNDING_GOOGLE_MAPS, "grounded_prompt", tier, project), 1)
        if found.urls:
            self._units.add((model, A.GROUNDING_URL_CONTEXT, "url", tier, project), found.urls)
        if found.code_executions:
            self._units.add(
                (model, A.GROUNDING_CODE_EXECUTION, "execution", tier, project),
                found.code_executions,
            )
        searched = A.GROUNDING_GOOGLE_SEARCH in sources
        if not searched:
            if A.GROUNDING_GOOGLE_MAPS in sources:
                attrs[A.GEMINI_GROUNDING_UNPRICED_REASON] = _UNPRICED_MAPS
            return 0.0, 0.0
        rule = grounding_rule(priced_model)
        unit = "grounded_prompt" if rule is None else rule.unit.replace(" ", "_")
        units = max(found.queries, 1) if unit == "search_query" else 1
        attrs[A.GEMINI_GROUNDING_UNIT] = unit
        self._units.add((model, A.GROUNDING_GOOGLE_SEARCH, unit, tier, project), units)
        if vertex or rule is None:
            attrs[A.GEMINI_GROUNDING_UNPRICED_REASON] = (
                _UNPRICED_VERTEX if vertex else A.UNPRICED_UNKNOWN_MODEL
            )
            return 0.0, 0.0
        list_usd = units * rule.usd_per_unit
        billable = self._billable(rule, project, units) if tier_billed(tier) else 0
        billed = billable * rule.usd_per_unit
        key = (model, tier, project)
        self._list.add(key, list_usd)
        self._billed.add(key, billed)
        if billed and self._windows is not None:
            self._windows.record(model, cost_usd=billed)
        attrs[A.GEMINI_GROUNDING_BILLABLE] = billable
        attrs[A.GEMINI_COST_GROUNDING_AMOUNT] = billed
        attrs[A.GEMINI_COST_GROUNDING_LIST_AMOUNT] = list_usd
        return billed, list_usd

    def _billable(self, rule: GroundingRule, project: str | None, units: int) -> int:
        """How many of ``units`` lie beyond this process's share of the free allowance (see
        the module docstring: the process is assumed to be the project's only user)."""
        now = self.clock()
        period = _period_key(rule.period, now)
        key = (rule.family, project)
        with self._lock:
            held, used = self._allowance.get(key, (period, 0))
            if held != period:
                used = 0
            if key not in self._allowance and len(self._allowance) >= _MAX_ALLOWANCES:
                self._allowance.clear()  # many projects: forget the oldest counts (over-bills)
            self._allowance[key] = (period, used + units)
        free_left = max(0, rule.free_per_period - used)
        return max(0, units - free_left)

    def cost_observations(self, billed: bool) -> list[Observation]:
        """The ``grounding`` component of gcp.gemini.cost (``billed``) or .cost.list."""
        sums = self._billed if billed else self._list
        return [
            Observation(
                total,
                {
                    **{k: v for k, v in zip(_COST_KEYS, values, strict=False) if v is not None},
                    A.GEMINI_COST_COMPONENT: A.COST_COMPONENT_GROUNDING,
                    A.GEN_AI_OPERATION_NAME: GENERATE_CONTENT,
                },
            )
            for values, total in sums.snapshot().items()
        ]

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._allowance = {}
        for sums in (self._units, self._billed, self._list):
            sums.reset_after_fork()
