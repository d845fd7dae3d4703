"""GeminiInstrumentor: read settings, build the Recorder, wrap and unwrap the SDK."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.metrics import get_meter
from opentelemetry.trace import get_tracer

from . import _patch
from .config import Settings
from .limits import LimitTable
from .package import _instruments
from .pricing import PriceBook
from .quota_windows import QuotaWindows
from .telemetry import Recorder
from .version import __version__

_SCOPE = "opentelemetry.instrumentation.gemini"
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"

# The active recorder, for the small public status API (status.py); None when uninstrumented.
active_recorder: Recorder | None = None


class GeminiInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments google-genai's generate_content calls (sync, async, streaming).

    ``instrument()`` accepts ``tracer_provider``, ``meter_provider`` and these options, each
    overriding its environment variable: ``tier`` (free, tier_1, tier_2, tier_3),
    ``capture_content`` (bool), ``prices_file`` (path), ``limits_file`` (path) and ``limits``
    ({model: {tier: {"rpm": n, "tpm": n, "rpd": n}}}).
    """

    _patches: _patch.Patches | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        global active_recorder
        settings = Settings.resolve(os.environ, kwargs)
        # Data files load first: a bad user file is an error here, before anything is patched.
        # genai-prices itself (~25 ms) loads in a thread so instrument() stays quick; the first
        # calls to finish before it is ready wait for it (benchmarks/README: start-up).
        prices = PriceBook.load(settings.prices_file, background=True)
        limits = LimitTable.load(settings.limits_file, settings.limits)
        tracer = get_tracer(
            _SCOPE, __version__, kwargs.get("tracer_provider"), schema_url=_SCHEMA_URL
        )
        meter = get_meter(_SCOPE, __version__, kwargs.get("meter_provider"), schema_url=_SCHEMA_URL)
        recorder = Recorder(tracer, meter, settings, prices, limits, QuotaWindows())
        self._patches = _patch.patch(recorder)
        active_recorder = recorder

    def _uninstrument(self, **kwargs: Any) -> None:
        global active_recorder
        if self._patches is not None:
            self._patches.unpatch()
        self._patches = None
        active_recorder = None
