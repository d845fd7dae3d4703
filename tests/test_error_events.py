"""The span's exception event: the server's answers carry no stack trace, other errors do.

A 429 or a 500 is Google's answer, and its stack is always the SDK's own HTTP path; formatting
it cost more than all the rest of a failed call's telemetry (benchmarks/). An error raised in
this process (a refused connection, a bug) keeps the full ``record_exception`` event.
"""

from __future__ import annotations

import socket

import pytest
from google import genai
from google.genai import errors, types

from conftest import FAKE_KEY, Telemetry, call_gemini, make_client
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply


@pytest.mark.parametrize(("status", "error_class"), [(429, "ClientError"), (500, "ServerError")])
def test_server_answer_is_an_exception_event_without_stack(
    fake: FakeGemini, telemetry: Telemetry, status: int, error_class: str
) -> None:
    fake.enqueue(None, Reply(status=status))
    with pytest.raises(errors.APIError) as caught:
        call_gemini(make_client(fake), "sync")
    span = telemetry.span()
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == f"google.genai.errors.{error_class}"
    assert event.attributes["exception.message"] == str(caught.value)
    assert "exception.stacktrace" not in event.attributes
    assert span.attributes["error.type"] == str(status)


def test_error_raised_here_keeps_its_stack_trace(telemetry: Telemetry) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = genai.Client(
        api_key=FAKE_KEY, http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{port}")
    )
    with pytest.raises(Exception) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert not isinstance(caught.value, errors.APIError)
    [event] = [e for e in telemetry.span().events if e.name == "exception"]
    assert event.attributes is not None
    assert "Traceback" in str(event.attributes["exception.stacktrace"])
