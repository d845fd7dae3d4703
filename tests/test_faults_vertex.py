"""Hostile inputs on calls made by a client in Vertex AI mode: the access token its credentials
send echoed back by the server, hostile project ids, Vertex 429s next to a Developer API
client; through the real client and the fake server, checked on the exported telemetry."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

MODEL = "gemini-2.5-flash"
# Shaped like a Google OAuth access token, and one of any shape (an API gateway's); built at
# run time so no token-shaped literal is committed.
GOOGLE_SHAPED_TOKEN = "ya29." + "a0AfB_byC" + "Q" * 150
GATEWAY_TOKEN = "gw-" + "7Zq81" * 6


def _vertex(fake: FakeGemini, token: str, project: str = "vertex-proj") -> genai.Client:
    return genai.Client(
        vertexai=True,
        project=project,
        location="us-central1",
        credentials=Credentials(token=token),
        http_options=types.HttpOptions(base_url=fake.url),
    )


def _exported(telemetry: Telemetry) -> str:
    """Everything the span and metric exporters would send, as text."""
    data = telemetry.reader.get_metrics_data()
    metrics = data.to_json() if data is not None else ""
    return "".join(s.to_json() for s in telemetry.all_spans()) + metrics


def _429_with(secret: str) -> dict[str, Any]:
    """A Vertex 429 with QuotaFailure and ErrorInfo, every field repeating ``secret``."""
    return {
        "error": {
            "code": 429,
            "message": f"Quota exceeded for aiplatform.googleapis.com/{secret}",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": f"aiplatform.googleapis.com/{secret}",
                            "quotaId": f"Q-{secret}",
                            "quotaDimensions": {"location": f"us-{secret}", "model": secret},
                            "quotaValue": "10",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": secret,
                    "domain": "aiplatform.googleapis.com",
                    "metadata": {"consumer": f"projects/{secret}", "quota_location": secret},
                },
            ],
        }
    }


# --- the credentials' access token is a secret, as an API key is -----------------------------
@pytest.mark.parametrize("token", [GOOGLE_SHAPED_TOKEN, GATEWAY_TOKEN], ids=["ya29", "any"])
def test_an_access_token_the_server_repeats_is_redacted(
    fake: FakeGemini, telemetry: Telemetry, token: str
) -> None:
    """A Vertex client sends its credentials' token, not a key: a server echoing it in a 401's
    message or a 429's details put it in the span status, the exception event and the quota
    events (only API keys were redacted)."""
    client = _vertex(fake, token)
    unauthenticated = {
        "error": {
            "code": 401,
            "message": f"Request had invalid authentication credentials: Bearer {token}",
            "status": "UNAUTHENTICATED",
        }
    }
    fake.enqueue(None, Reply(status=401, error_body=unauthenticated))
    fake.enqueue(None, Reply(status=429, error_body=_429_with(token)))
    fake.enqueue(None, Reply(status=401, error_body=unauthenticated))
    for _ in range(2):
        with pytest.raises(errors.ClientError) as raised:
            client.models.generate_content(model=MODEL, contents="x")
        assert token in str(raised.value)  # the app's exception is untouched
    with pytest.raises(errors.ClientError):
        list(client.models.generate_content_stream(model=MODEL, contents="x"))
    assert len(telemetry.spans()) == 3
    assert "[REDACTED]" in telemetry.spans()[0].status.description
    assert token not in _exported(telemetry)


def test_a_refreshed_token_is_redacted_too(fake: FakeGemini, telemetry: Telemetry) -> None:
    """The token is read when the text is cleaned, not when the client is first seen: the SDK
    loads credentials at the first request and refreshes the token hourly."""
    credentials = Credentials(token=GATEWAY_TOKEN)
    client = genai.Client(
        vertexai=True,
        project="vertex-proj",
        location="us-central1",
        credentials=credentials,
        http_options=types.HttpOptions(base_url=fake.url),
    )
    client.models.generate_content(model=MODEL, contents="x")
    credentials.token = GATEWAY_TOKEN[::-1]  # as a refresh would
    body = {"error": {"code": 401, "message": f"bad token {credentials.token}", "status": "X"}}
    fake.enqueue(None, Reply(status=401, error_body=body))
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=MODEL, contents="x")
    assert credentials.token not in _exported(telemetry)


# --- the project id: the app's own string, copied to every span and metric -------------------
def test_a_huge_project_id_is_cut_on_spans_and_metrics(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """A 1 MB project id (the SDK refuses the URL; the app sees that same error) went whole onto
    the span and every counter's series; one repeating the token went as it was."""
    huge = _vertex(fake, GATEWAY_TOKEN, project="p" * (1 << 20))
    with pytest.raises(Exception, match="URL too long"):
        huge.models.generate_content(model=MODEL, contents="x")
    pasted = _vertex(fake, GATEWAY_TOKEN, project=f"proj-{GATEWAY_TOKEN}")
    pasted.models.generate_content(model=MODEL, contents="x")
    projects = [s.attributes["gcp.gemini.project"] for s in telemetry.spans()]
    projects += [
        p.attributes["gcp.gemini.project"]
        for points in telemetry.metrics().values()
        for p in points
        if "gcp.gemini.project" in p.attributes
    ]
    assert projects and all(len(p) <= 256 for p in projects)
    assert "proj-[REDACTED]" in projects
    assert GATEWAY_TOKEN not in _exported(telemetry)


# --- a Vertex client's 429 names its own project, not the Developer API's ---------------------
def test_a_vertex_429_never_becomes_the_developer_api_project(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """A Vertex client's 429 (or 403) naming its consumer taught the process-wide project:
    every Developer API call after it, on any thread, was counted under the Vertex project."""
    vertex = _vertex(fake, GATEWAY_TOKEN)
    developer = make_client(fake)
    body = _429_with("x")
    body["error"]["details"][1]["metadata"]["consumer"] = "projects/555555"
    forbidden = {"error": {"code": 403, "status": "PERMISSION_DENIED", "details": [
        {**body["error"]["details"][1], "reason": "SERVICE_DISABLED"}]}}  # fmt: skip

    def turn(client: genai.Client, reply: Reply | None) -> None:
        if reply is not None:
            fake.enqueue(None, reply)  # any model: the next call of any thread takes it
        with contextlib.suppress(errors.ClientError):
            client.models.generate_content(model=MODEL, contents="x")

    turn(vertex, Reply(status=429, error_body=body))
    turn(vertex, Reply(status=403, error_body=forbidden))
    threads = [threading.Thread(target=turn, args=(c, None)) for c in (vertex, developer) * 10]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = [
        (s.attributes["gen_ai.provider.name"], s.attributes.get("gcp.gemini.project"))
        for s in telemetry.spans()
    ]
    assert seen.count(("gcp.vertex_ai", "vertex-proj")) == 12
    assert seen.count(("gcp.gemini", None)) == 10
    by_project: dict[Any, float] = {}
    for point in telemetry.points("gcp.gemini.requests"):
        key = point.attributes.get("gcp.gemini.project")
        by_project[key] = by_project.get(key, 0) + point.value
    assert by_project == {"vertex-proj": 12, None: 10}


def test_an_attempt_no_call_holds_carries_its_vertex_project(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """A request we have no adapter for (models.get) made by a Vertex client: its attempts
    and its 429 were counted without the client's project."""
    vertex = _vertex(fake, GATEWAY_TOKEN)
    shared = {
        "error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}
    }
    fake.enqueue(None, Reply(status=429, error_body=shared))
    with pytest.raises(errors.ClientError):
        vertex.models.get(model=MODEL)
    vertex.models.get(model=MODEL)
    requests = telemetry.points("gcp.gemini.requests")
    assert sorted(p.attributes["http.response.status_code"] for p in requests) == [200, 429]
    assert {p.attributes.get("gcp.gemini.project") for p in requests} == {"vertex-proj"}
    [hit] = telemetry.points("gcp.gemini.quota.exceeded")
    assert hit.attributes["gcp.gemini.project"] == "vertex-proj"


# --- a Vertex call is never billed at the Developer API's free tier ----------------------------
def test_a_free_developer_tier_never_makes_vertex_calls_free(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """The tier is the Developer API account's: Vertex AI has no free tier, so a process with a
    free API key bills its Vertex calls at pay-as-you-go rates (the Developer call: 0)."""
    telemetry = instrument(tier="free")
    usage = {"promptTokenCount": 1_000, "candidatesTokenCount": 100, "totalTokenCount": 1_100}
    for client in (_vertex(fake, GATEWAY_TOKEN), make_client(fake)):
        fake.enqueue(None, Reply(usage=usage))
        client.models.generate_content(model=MODEL, contents="x")
    vertex, developer = telemetry.spans()
    assert vertex.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    listed = vertex.attributes["gcp.gemini.cost.list_amount"]
    assert listed > 0 and vertex.attributes["gen_ai.usage.cost.amount"] == listed
    assert developer.attributes["gen_ai.usage.cost.amount"] == 0.0
    assert developer.attributes["gcp.gemini.cost.list_amount"] == pytest.approx(listed)
