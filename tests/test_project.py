"""gcp.gemini.project on spans and on every gcp.gemini.* metric: configured, a Vertex client's
own, or learned from the consumer an ErrorInfo names (never anything derived from the key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.genai import errors

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)

MODEL = "gemini-2.5-flash"


def _gemini_points(telemetry: Telemetry) -> dict[str, list[Any]]:
    return {name: points for name, points in telemetry.metrics().items() if name.startswith("gcp.")}


def _assert_project_everywhere(telemetry: Telemetry, project: str) -> None:
    for span in telemetry.spans():
        assert span.attributes["gcp.gemini.project"] == project
    metrics = _gemini_points(telemetry)
    for name in ("gcp.gemini.requests", "gcp.gemini.tokens", "gcp.gemini.cost"):
        assert metrics.get(name), name
    for name, points in metrics.items():
        for point in points:
            assert point.attributes.get("gcp.gemini.project") == project, (name, point)


def _error_info(consumer: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "googleapis.com",
        "metadata": {"consumer": consumer, "service": "generativelanguage.googleapis.com"},
    }


@pytest.mark.parametrize("how", ["kwarg", "env"])
def test_a_configured_project_is_on_every_signal(
    fake: FakeGemini,
    instrument: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    if how == "env":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_PROJECT", "team-a-prod")
        telemetry = instrument(tier="tier_1")
    else:
        telemetry = instrument(tier="tier_1", project="team-a-prod")
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    fake.enqueue(None, Reply(status=429))
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=MODEL, contents="x")
    _assert_project_everywhere(telemetry, "team-a-prod")


def test_a_vertex_client_carries_its_own_project(fake: FakeGemini, telemetry: Telemetry) -> None:
    client = make_client(fake, vertexai=True)
    client.models.generate_content(model=MODEL, contents="x")
    span = telemetry.span()
    assert span.attributes["gcp.gemini.project"] == "fake-project"
    for point in telemetry.points("gcp.gemini.tokens"):
        assert point.attributes["gcp.gemini.project"] == "fake-project"


def test_calls_from_clients_in_turn_each_carry_their_own_client(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """What a call reads of its client (Vertex mode, project, endpoint) is kept per client,
    not per process: a Developer API client and a Vertex one taking turns, on threads too."""
    import threading

    developer, vertex = make_client(fake), make_client(fake, vertexai=True)
    order = [developer, vertex, developer, vertex, vertex, developer]
    for client in order:
        client.models.generate_content(model=MODEL, contents="x")
    threads = [
        threading.Thread(target=c.models.generate_content, kwargs={"model": MODEL, "contents": "x"})
        for c in order * 5
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = [
        (s.attributes["gen_ai.provider.name"], s.attributes.get("gcp.gemini.project"))
        for s in telemetry.spans()
    ]
    assert seen.count(("gcp.gemini", None)) == 18
    assert seen.count(("gcp.vertex_ai", "fake-project")) == 18


@pytest.mark.parametrize("status", [429, 403])
def test_the_project_is_learned_from_an_error_info_consumer(
    fake: FakeGemini, client: Any, telemetry: Telemetry, status: int
) -> None:
    body = quota_error_body() if status == 429 else {"error": {"code": 403, "details": []}}
    body["error"]["status"] = "RESOURCE_EXHAUSTED" if status == 429 else "PERMISSION_DENIED"
    body["error"]["details"].append(_error_info("projects/987654321"))
    fake.enqueue(None, Reply(status=status, error_body=body))
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=MODEL, contents="x")
    client.models.generate_content(model=MODEL, contents="x")
    assert telemetry.spans()[-1].attributes["gcp.gemini.project"] == "987654321"
    by_status = {
        p.attributes["http.response.status_code"]: p.attributes.get("gcp.gemini.project")
        for p in telemetry.points("gcp.gemini.requests")
    }
    # The failed attempt that revealed it already carries it.
    assert by_status == {status: "987654321", 200: "987654321"}


def test_a_configured_project_is_never_replaced(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(project="mine")
    body = quota_error_body()
    body["error"]["details"].append(_error_info("projects/111"))
    fake.enqueue(None, Reply(status=429, error_body=body))
    client = make_client(fake)
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=MODEL, contents="x")
    assert telemetry.span().attributes["gcp.gemini.project"] == "mine"


def test_no_project_no_attribute(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    client.models.generate_content(model=MODEL, contents="x")
    assert "gcp.gemini.project" not in telemetry.span().attributes
    for points in _gemini_points(telemetry).values():
        for point in points:
            assert "gcp.gemini.project" not in point.attributes
