"""Gemini traffic for the compose example, instrumented from outside by opentelemetry-instrument.

Like examples/auto/app.py this file has no OpenTelemetry code: docker-compose.yml runs it under
``opentelemetry-instrument`` with OTEL_* variables that export to the Collector.

Without GEMINI_API_KEY it talks to the fake Gemini server of the stack and, every
LOADGEN_QUOTA_EVERY calls, scripts 429 answers there (retried by the SDK, plus now and then a
per-day quota the caller sees) so that the quota panels and alerts have something to show. With
a real key it makes at most LOADGEN_MAX_CALLS small calls to GEMINI_MODEL, then idles.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
import urllib.request

from google import genai
from google.genai import types

from opentelemetry.instrumentation.gemini.testing.fake_gemini import quota_error_body

FAKE_MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro")
PROMPTS = ("Name a prime number.", "Say hello in French.", "Write a haiku about metrics.")


def _env_number(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _script_quota_errors(fake_url: str, model: str, per_day: bool) -> None:
    """Ask the fake server to answer the model's next calls with 429s of this app's tier."""
    free = os.environ.get("OTEL_INSTRUMENTATION_GEMINI_TIER", "").lower() == "free"
    suffix, kind = ("FreeTier", "free_tier") if free else ("PaidTier", "paid_tier")
    window = "PerDay" if per_day else "PerMinute"
    body = quota_error_body(
        quota_id=f"GenerateRequests{window}PerProjectPerModel-{suffix}",
        metric=f"generativelanguage.googleapis.com/generate_content_{kind}_requests",
        model=model,
        limit=20 if free else 1000,
        retry_delay="3600s" if per_day else "20s",
    )
    # A per-minute 429 is retried by the SDK (then a 200); a per-day one fails every retry.
    count = 3 if per_day else 2
    request = urllib.request.Request(
        f"{fake_url}/_fake/enqueue",
        data=json.dumps(
            {"model": model, "replies": [{"status": 429, "error_body": body}] * count}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def main() -> None:
    real = bool(os.environ.get("GEMINI_API_KEY"))
    fake_url = None if real else os.environ.get("FAKE_GEMINI_URL", "http://127.0.0.1:8765")
    models = (os.environ.get("GEMINI_MODEL", "gemini-2.5-flash-lite"),) if real else FAKE_MODELS
    interval = _env_number("LOADGEN_INTERVAL_SECONDS", 10 if real else 1)
    max_calls = int(_env_number("LOADGEN_MAX_CALLS", 100 if real else 0))  # 0: no end
    quota_every = int(_env_number("LOADGEN_QUOTA_EVERY", 15))

    client = genai.Client(
        api_key=os.environ.get("GEMINI_API_KEY") or "fake-key",
        http_options=types.HttpOptions(
            base_url=fake_url,
            retry_options=types.HttpRetryOptions(
                attempts=3, initial_delay=0.5, http_status_codes=[429, 503]
            ),
        ),
    )
    print(f"loadgen: {'Gemini API' if real else fake_url}, models {', '.join(models)}", flush=True)
    for n in itertools.count(1):
        if max_calls and n > max_calls:
            print(f"loadgen: done after {max_calls} calls", flush=True)
            return  # the OTel SDK exports the last metrics at exit
        model = random.choice(models)
        try:
            if fake_url and quota_every and n % quota_every == 0:
                _script_quota_errors(fake_url, model, per_day=n % (quota_every * 4) == 0)
            prompt = random.choice(PROMPTS)
            if n % 3 == 0:
                for _ in client.models.generate_content_stream(model=model, contents=prompt):
                    pass
            else:
                client.models.generate_content(model=model, contents=prompt)
        except Exception as error:  # keep the traffic going: errors are what the demo shows
            print(f"loadgen: call {n} to {model}: {type(error).__name__}: {error}"[:300])
            sys.stdout.flush()
        time.sleep(interval)


if __name__ == "__main__":
    main()
