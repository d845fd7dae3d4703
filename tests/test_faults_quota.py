"""Quota state under hostile 429s and hostile clocks: what a 429 body, a stream of projects or a
wall clock stepped back can grow or skew in the per-model, per-project and per-tier state (the
ledger's rows, the quota windows, the parser's work), through the real client and the fake
server."""

from __future__ import annotations

import pytest
from google.genai import types

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini.record import counters
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"
PROMPT_TOKENS = 12  # the fake server's default promptTokenCount
RETRY = types.HttpRetryOptions(attempts=2, initial_delay=0.01, max_delay=0.02)


def _consumer_429(project: int) -> Reply:
    """A 429 whose ErrorInfo names ``projects/<project>`` as its consumer."""
    body = quota_error_body()
    body["error"]["details"].append(
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {"consumer": f"projects/{project}"},
        }
    )
    return Reply(status=429, error_body=body)


# --- per-project state is bounded -------------------------------------------------------------
def test_the_ledger_stays_bounded_when_429s_name_ever_new_projects(
    fake: FakeGemini, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each consumer a 429 names becomes the project of the calls after it. Past the series cap
    the ledger folded the model pair into ``other`` but kept the project, so every new project
    still made a row (summed on every bank, once a second): rows grew with the projects."""
    cap = 10
    monkeypatch.setattr(counters, "MAX_SERIES", cap)  # our own cap, small for the test
    client = make_client(fake, retry=RETRY)
    calls = 6 * cap
    for project in range(calls):
        fake.enqueue(None, _consumer_429(1000 + project), Reply())
        client.models.generate_content(model=MODEL, contents="x")  # the SDK retries the 429

    inputs = telemetry.points("gcp.gemini.tokens", gcp__gemini__token__type="input")
    assert len(inputs) <= 2 * cap + 1  # was one series per project: 60
    assert sum(p.value for p in inputs) == calls * PROMPT_TOKENS  # none lost to the cap
    ok = telemetry.points("gcp.gemini.requests", http__response__status_code=200)
    assert sum(p.value for p in ok) == calls
