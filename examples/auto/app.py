"""Zero-code instrumentation: this app has no OpenTelemetry code at all.

``opentelemetry-instrument`` (from opentelemetry-distro) finds GeminiInstrumentor through its
entry point, builds the tracer and meter providers from OTEL_* environment variables and
instruments google-genai before this file runs.

Install (from a clone of this repository: the package is not on an index yet)::

    pip install '.[examples]'     # google-genai, opentelemetry-distro and the OTLP exporters

Run against a real key, exporting to an OTLP endpoint (a Collector, Jaeger, Grafana Alloy...)::

    export GEMINI_API_KEY=...                      # read by google-genai, never recorded
    export OTEL_SERVICE_NAME=gemini-auto-example
    export OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp OTEL_LOGS_EXPORTER=none
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318
    export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
    export OTEL_INSTRUMENTATION_GEMINI_TIER=tier_1  # free, tier_1, tier_2, tier_3
    opentelemetry-instrument python examples/auto/app.py

No key? Start the fake Gemini server in another shell and point the SDK at it (README's
"Try it locally" does the same with console exporters, in one shell)::

    python -m opentelemetry.instrumentation.gemini.testing.fake_gemini 8765
    GEMINI_API_KEY=fake GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:8765 \\
        opentelemetry-instrument python examples/auto/app.py

To look at spans without any backend, use ``OTEL_TRACES_EXPORTER=console``. Other switches:
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true records prompts and answers (off by
default), OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE / _LIMITS_FILE override prices and limits.
Metrics are exported every OTEL_METRIC_EXPORT_INTERVAL milliseconds and once more at exit.
"""

from __future__ import annotations

import os

from google import genai

MODEL = os.environ.get("GEMINI_MODEL", "gemini-2.5-flash")


def main() -> None:
    client = genai.Client()  # GEMINI_API_KEY (and GOOGLE_GEMINI_BASE_URL, if set) from env
    answer = client.models.generate_content(model=MODEL, contents="Name three prime numbers.")
    print(answer.text)
    for chunk in client.models.generate_content_stream(
        model=MODEL, contents="Count from one to five."
    ):
        print(chunk.text or "", end="", flush=True)
    print()


if __name__ == "__main__":
    main()
