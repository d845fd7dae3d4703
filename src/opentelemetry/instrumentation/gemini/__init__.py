"""OpenTelemetry instrumentation for Google's Gemini API (the ``google-genai`` SDK).

Usage::

    from opentelemetry.instrumentation.gemini import GeminiInstrumentor

    GeminiInstrumentor().instrument(tier="tier_1")
"""

from .instrumentor import GeminiInstrumentor
from .record.upload import ContentUploader, FileSystemUploader
from .status import QuotaStatus, quota_status
from .version import __version__

__all__ = [
    "ContentUploader",
    "FileSystemUploader",
    "GeminiInstrumentor",
    "QuotaStatus",
    "__version__",
    "quota_status",
]
