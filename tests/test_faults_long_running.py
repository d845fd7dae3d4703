"""A process that runs for weeks: the state and the metric series that answers and the app's
clients can grow one distinct value at a time (a project each 429 names, a quota id, a region),
through the real client and the fake server. Each must stay within a cap, its counts folded into
``other``, never lost, and never pushed past the OTel SDK's series limit, beyond which every later
point loses all its labels (``otel.metric.overflow``)."""

from __future__ import annotations

from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini import attributes as A
from opentelemetry.instrumentation.gemini import instrumentor
from opentelemetry.instrumentation.gemini.record import counters
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"
PROMPT_TOKENS = 12  # the fake server's default promptTokenCount
SERIES = 40  # the OTel SDK's series limit and ours (MAX_SERIES), small for the tests
CAP = 4  # our per-label cap (MAX_LABEL_VALUES), small for the tests


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """The conftest reader, with the OTel SDK's own series limit (2,000) made small."""
    limits = dict.fromkeys((Counter, Histogram, ObservableCounter, ObservableGauge), SERIES)
    return InMemoryMetricReader(cardinality_limits=limits)


@pytest.fixture
def small_caps(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counters, "MAX_SERIES", SERIES)
    recorder = instrumentor.active_recorder
    assert recorder is not None
    for cap in recorder.instruments.caps.values():
        monkeypatch.setattr(cap, "limit", CAP)


def _hostile_429(n: int) -> Reply:
    """A 429 naming its own quota id, region and consumer project (``n``)."""
    body = quota_error_body(quota_id=f"GenerateRequestsPerMinutePerProjectPerModel-FreeTier-{n}")
    body["error"]["details"][0]["violations"][0]["quotaDimensions"]["location"] = f"region-{n}"
    body["error"]["details"].append(
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {"consumer": f"projects/{1000 + n}"},
        }
    )
    return Reply(status=429, error_body=body)


def _assert_labelled(metrics: dict[str, Any], named: tuple[str, ...]) -> None:
    """No metric reached the SDK's overflow series, and every point of ``named`` kept its model."""
    for name, points in metrics.items():
        assert not [p for p in points if p.attributes.get("otel.metric.overflow")], name
    for name in named:
        assert all(p.attributes.get(A.GEN_AI_REQUEST_MODEL) == MODEL for p in metrics[name])


def _gemini_points(telemetry: Telemetry) -> dict[str, list[Any]]:
    return {k: v for k, v in telemetry.metrics().items() if k.startswith("gcp.gemini.")}


def test_429s_naming_ever_new_projects_and_quotas_keep_every_metric_labelled(
    fake: FakeGemini, telemetry: Telemetry, small_caps: None
) -> None:
    """Each 429 named a new project (its consumer), quota id and region. Those values were
    labels of every gcp.gemini.* counter and of the retry delay histogram, uncapped: a new series
    each, until the series limit, past which every later call of every model was counted with
    no label at all (requests, tokens, quota violations, retry delays)."""
    client = make_client(fake)  # no retry: each 429 reaches the app
    calls = 3 * SERIES
    for n in range(calls):
        fake.enqueue(None, _hostile_429(n))
        with pytest.raises(errors.ClientError):
            client.models.generate_content(model=MODEL, contents="x")
        fake.enqueue(None, Reply())
        client.models.generate_content(model=MODEL, contents="x")

    metrics = _gemini_points(telemetry)
    _assert_labelled(
        metrics, ("gcp.gemini.requests", "gcp.gemini.tokens", "gcp.gemini.quota.exceeded")
    )
    exceeded = metrics["gcp.gemini.quota.exceeded"]
    assert sum(p.value for p in exceeded) == calls  # folded, none lost
    for label in (A.GEMINI_PROJECT, A.GEMINI_QUOTA_ID, A.GEMINI_QUOTA_LOCATION):
        values = {p.attributes.get(label) for p in exceeded}
        assert len(values) <= CAP + 1 and "other" in values, (label, values)
    rejected = telemetry.points("gcp.gemini.requests", http__response__status_code=429)
    ok = telemetry.points("gcp.gemini.requests", http__response__status_code=200)
    assert sum(p.value for p in rejected) == sum(p.value for p in ok) == calls
    inputs = telemetry.points("gcp.gemini.tokens", gcp__gemini__token__type="input")
    assert sum(p.value for p in inputs) == calls * PROMPT_TOKENS
    assert len({p.attributes.get(A.GEMINI_PROJECT) for p in inputs}) <= CAP + 1
    delays = metrics["gcp.gemini.retry_delay"]
    assert sum(p.count for p in delays) == calls
    assert len(delays) <= CAP + 1
    # Spans keep the project as learned: only metrics fold it.
    assert telemetry.spans()[-1].attributes[A.GEMINI_PROJECT] == str(1000 + calls - 1)


def test_a_vertex_client_per_tenant_project_keeps_the_series_bounded(
    fake: FakeGemini, telemetry: Telemetry, small_caps: None
) -> None:
    """An app that makes a Vertex AI client for each tenant's own project: each project was a
    label of the call counters, uncapped, until the series limit took every label of later
    calls (their model too)."""
    calls = SERIES + 20  # a client each: slow to make
    for tenant in range(calls):
        client = genai.Client(
            vertexai=True,
            project=f"tenant-{tenant}",
            location="us-central1",
            credentials=Credentials(token="fake-token"),
            http_options=types.HttpOptions(base_url=fake.url),
        )
        client.models.generate_content(model=MODEL, contents="x")

    metrics = _gemini_points(telemetry)
    _assert_labelled(metrics, ("gcp.gemini.requests", "gcp.gemini.tokens", "gcp.gemini.cost.list"))
    for name in ("gcp.gemini.requests", "gcp.gemini.tokens", "gcp.gemini.cost.list"):
        projects = {p.attributes.get(A.GEMINI_PROJECT) for p in metrics[name]}
        assert len(projects) <= CAP + 1 and "other" in projects, (name, projects)
    ok = telemetry.points("gcp.gemini.requests", http__response__status_code=200)
    assert sum(p.value for p in ok) == calls
    inputs = telemetry.points("gcp.gemini.tokens", gcp__gemini__token__type="input")
    assert sum(p.value for p in inputs) == calls * PROMPT_TOKENS  # folded, none lost
    assert telemetry.spans()[-1].attributes[A.GEMINI_PROJECT] == f"tenant-{calls - 1}"
