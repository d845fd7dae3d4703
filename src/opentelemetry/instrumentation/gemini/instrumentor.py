"""GeminiInstrumentor: read settings, build the Recorder, wrap and unwrap the SDK."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.trace import get_tracer

from .billing.book import PriceBook
from .bounds import Secrets
from .config import Settings
from .package import _instruments
from .quota.limits import LimitTable
from .record import collecting
from .record.call import drain_abandoned
from .record.capture import content_sink
from .record.instruments import SCHEMA_URL, SCOPE, instruments_for
from .record.recorder import Recorder
from .record.streams import end_open_at_exit
from .sdk import seams
from .version import __version__

# The active recorder, for the small public status API (status.py); None when uninstrumented.
active_recorder: Recorder | None = None
# BaseInstrumentor checks and sets "instrumented" without a lock: two threads calling
# instrument() at once both patched the SDK, and the first one's hooks stayed after uninstrument().
_lifecycle = threading.RLock()


def _after_fork_in_child() -> None:
    global _lifecycle
    _lifecycle = threading.RLock()  # a fork during another thread's instrument() must not hang


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    end_open_at_exit()
    drain_abandoned()


class GeminiInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments google-genai's generate_content calls (sync, async, streaming).

    ``instrument()`` accepts ``tracer_provider``, ``meter_provider`` and these options, each
    overriding its environment variable: ``tier`` (free, tier_1, tier_2, tier_3),
    ``capture_content`` (bool, or NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT),
    ``prices_file`` (path), ``limits_file`` (path) and ``limits``
    ({model: {tier: {"rpm": n, "tpm": n, "rpd": n}}}), ``project``, ``daily_budget_usd`` /
    ``monthly_budget_usd`` (exported as gauges, never enforced), ``retry_policy`` (``"sdk"``, the
    default, or ``"respect_retry_info"``) and ``retry_max_wait`` (seconds); ``logger_provider``
    (content events) and ``content_uploader`` (a ContentUploader: content to it, references to
    telemetry).
    """

    _patches: seams.Patches | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def instrument(self, **kwargs: Any) -> Any:
        with _lifecycle:
            return super().instrument(**kwargs)

    def uninstrument(self, **kwargs: Any) -> Any:
        with _lifecycle:
            return super().uninstrument(**kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        global active_recorder
        settings = Settings.resolve(os.environ, kwargs)
        # Data files load first: a bad user file is an error here, before anything is patched.
        # genai-prices itself (~25 ms) loads in a thread so instrument() stays quick; the first
        # calls to finish before it is ready wait for it (benchmarks/README: start-up).
        prices = PriceBook.load(settings.prices_file, background=True)
        limits = LimitTable.load(settings.limits_file, settings.limits)
        tracer = get_tracer(
            SCOPE, __version__, kwargs.get("tracer_provider"), schema_url=SCHEMA_URL
        )
        # The provider's instruments outlive this recorder: a later instrument() on the same
        # provider counts on from here (instruments.py).
        instruments = instruments_for(kwargs.get("meter_provider"))
        # Keys known now; each client's own is added when it first makes a call (_patch).
        secrets = Secrets(os.environ.get(name) for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"))
        recorder = Recorder(tracer, instruments, settings, prices, limits, secrets)
        # Captured content's destinations (spans, events through logger_provider's logger, an
        # uploader): None unless content capture is on.
        recorder.content = content_sink(settings, kwargs.get("logger_provider"))
        self._patches = seams.patch(recorder)
        instruments.recorder = recorder
        active_recorder = recorder
        collecting.watch()  # quota_status() from a __del__ must not wait for our locks
        # Streams dropped, or still open, and not recorded yet are recorded at exit, before the
        # providers (usually created before this call) shut down: atexit runs the latest first.
        atexit.unregister(_at_exit)
        atexit.register(_at_exit)

    def _uninstrument(self, **kwargs: Any) -> None:
        global active_recorder
        if self._patches is not None:
            self._patches.unpatch()
            sink = self._patches.recorder.content
            if sink is not None and sink.uploads is not None:
                sink.uploads.flush()  # bounded: what is still queued after that is dropped
                atexit.unregister(sink.uploads.flush)
            self._patches.recorder.instruments.recorder = None
        self._patches = None
        active_recorder = None
        collecting.unwatch()
        drain_abandoned()
