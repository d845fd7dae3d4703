"""In-process monotonic sums, exported through observable counters.

A synchronous counter costs several microseconds per ``add`` in the OTel SDK; the dashboard
counters are summed here under one short lock and read by the SDK only at collection time.
Exported values are cumulative totals, exactly what a monotonic counter reports.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation


class MonotonicSums:
    """Running totals keyed by a tuple of attribute values (names fixed per instance)."""

    __slots__ = ("_keys", "_lock", "_totals")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = keys
        self._lock = threading.Lock()
        self._totals: dict[tuple[Any, ...], float] = {}

    def add(self, values: tuple[Any, ...], amount: float) -> None:
        with self._lock:
            self._totals[values] = self._totals.get(values, 0) + amount

    def snapshot(self) -> dict[tuple[Any, ...], float]:
        with self._lock:
            return dict(self._totals)

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        keys = self._keys
        return [
            Observation(total, {k: v for k, v in zip(keys, values, strict=False) if v is not None})
            for values, total in self.snapshot().items()
        ]
