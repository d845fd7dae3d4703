"""OpenTelemetry instrumentation for Google's Gemini API (the ``google-genai`` SDK).

Usage::

    from opentelemetry.instrumentation.gemini import GeminiInstrumentor

    GeminiInstrumentor().instrument(tier="tier_1")
"""

from .batch_results import BatchResults, record_batch_results
from .billing.overrides import PricesFileError
from .instrumentor import GeminiInstrumentor
from .quota.limits import LimitsFileError
from .record.upload import ContentUploader, FileSystemUploader
from .status import ProcessForecast, QuotaStatus, quota_status
from .version import __version__

# The public API: what README documents and the Stability section's rules cover. Everything
# else (billing/, quota/, record/, sdk/) may change in any release.
__all__ = [
    "BatchResults",
    "ContentUploader",
    "FileSystemUploader",
    "GeminiInstrumentor",
    "LimitsFileError",
    "PricesFileError",
    "ProcessForecast",
    "QuotaStatus",
    "__version__",
    "quota_status",
    "record_batch_results",
]
