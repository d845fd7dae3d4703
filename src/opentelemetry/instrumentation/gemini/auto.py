"""What ``opentelemetry-instrument`` loads: GeminiInstrumentor, made safe for zero-code start-up.

The auto-instrumentation loop (opentelemetry-instrumentation's ``_load_instrumentors``) re-raises
any exception an instrumentor's ``instrument()`` raises, and that stops the whole loop: every
instrumentor after ours is skipped and the app runs with no telemetry at all. From code a bad
prices or limits file should fail loudly (``instrument()`` raises ``PricesFileError`` /
``LimitsFileError``, as documented), but under ``opentelemetry-instrument`` the only place to
say so is the log, and one user's typo must never switch off their other instrumentations.

So the entry point names this subclass. Its ``instrument()`` drives the one GeminiInstrumentor
singleton (the same object user code gets from ``GeminiInstrumentor()``, so nothing is ever
patched twice) and, when a file named in the environment is bad, logs one error naming the
environment variable, the file and the problem, then instruments with our bundled data in place
of that file. Anything else that goes wrong is logged once and leaves google-genai
uninstrumented; it is never raised into the start-up loop.
"""

from __future__ import annotations

import logging
from typing import Any

from .billing.overrides import PricesFileError
from .config import ENV_LIMITS_FILE, ENV_PRICES_FILE
from .instrumentor import GeminiInstrumentor
from .quota.limits import LimitsFileError

_logger = logging.getLogger(__name__)

# A bad file -> the setting that names it and what we use instead. An empty string given as the
# keyword wins over the environment variable and means "no file" (config.Settings.resolve).
_FALLBACKS: dict[type[Exception], tuple[str, str, str]] = {
    PricesFileError: ("prices_file", ENV_PRICES_FILE, "the bundled prices"),
    LimitsFileError: ("limits_file", ENV_LIMITS_FILE, "the bundled rate limits"),
}


class GeminiAutoInstrumentor(GeminiInstrumentor):
    """The ``opentelemetry_instrumentor`` entry point: never raises out of ``instrument()``."""

    # BaseInstrumentor keeps one instance per class; this class only forwards to the
    # GeminiInstrumentor singleton, so it gets its own (unused) slot.
    _instance = None

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        return bool(GeminiInstrumentor().is_instrumented_by_opentelemetry)

    def instrument(self, **kwargs: Any) -> Any:
        target = GeminiInstrumentor()
        # At most one retry per file: each retry drops one bad file for good.
        for _ in range(len(_FALLBACKS) + 1):
            try:
                return target.instrument(**kwargs)
            except (PricesFileError, LimitsFileError) as error:
                key, env, fallback = next(v for k, v in _FALLBACKS.items() if isinstance(error, k))
                if key in kwargs:  # already dropped (or given by a distro): give up below
                    _logger.error(
                        "opentelemetry-instrumentation-gemini: not instrumenting google-genai: %s",
                        error,
                    )
                    return None
                _logger.error(
                    "opentelemetry-instrumentation-gemini: ignoring %s: %s. Instrumenting "
                    "google-genai with %s instead; fix the file and restart to use it.",
                    env,
                    error,
                    fallback,
                )
                kwargs = {**kwargs, key: ""}
            except Exception:
                _logger.exception(
                    "opentelemetry-instrumentation-gemini: not instrumenting google-genai"
                )
                return None
        return None

    def uninstrument(self, **kwargs: Any) -> Any:
        return GeminiInstrumentor().uninstrument(**kwargs)
