"""OpenTelemetry instrumentation for Google's Gemini API (the ``google-genai`` SDK).

Usage::

    from opentelemetry.instrumentation.gemini import GeminiInstrumentor

    GeminiInstrumentor().instrument(tier="tier_1")
"""

from .batch_results import BatchResults, record_batch_results
from .instrumentor import GeminiInstrumentor
from .status import ProcessForecast, QuotaStatus, quota_status
from .version import __version__

__all__ = [
    "BatchResults",
    "GeminiInstrumentor",
    "ProcessForecast",
    "QuotaStatus",
    "__version__",
    "quota_status",
    "record_batch_results",
]
