"""Instrumentor lifecycle, configuration, and both ways users enable us."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from google.genai import _api_client, models
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from conftest import Telemetry, call_gemini
from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.config import ENV_TIER, Settings
from opentelemetry.instrumentation.gemini.sdk import seams as _patch
from opentelemetry.instrumentation.gemini.sdk.attempts import _sync_attempt
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

# Wrapped by instrument().
ORIGINALS = {
    (models.Models, "generate_content"): models.Models.generate_content,
    (models.Models, "generate_content_stream"): models.Models.generate_content_stream,
    (models.AsyncModels, "generate_content"): models.AsyncModels.generate_content,
    (models.AsyncModels, "generate_content_stream"): models.AsyncModels.generate_content_stream,
    (_api_client.BaseApiClient, "_request_once"): _api_client.BaseApiClient._request_once,
    (_api_client.BaseApiClient, "_async_request_once"): (
        _api_client.BaseApiClient._async_request_once
    ),
}
# Wrapped by the first call that carries tools (automatic function calling's requests).
REQUEST_ORIGINALS = {
    (models.Models, "_generate_content"): models.Models._generate_content,
    (models.AsyncModels, "_generate_content"): models.AsyncModels._generate_content,
    (models.Models, "_generate_content_stream_with_continuation"): (
        models.Models._generate_content_stream_with_continuation
    ),
    (models.AsyncModels, "_generate_content_stream_with_continuation"): (
        models.AsyncModels._generate_content_stream_with_continuation
    ),
}


def _wrapped(originals: dict[tuple[Any, str], Any]) -> list[str]:
    return [name for (owner, name), f in originals.items() if owner.__dict__[name] is not f]


def say_hi() -> str:
    """A tool: its presence is what can start automatic function calling."""
    return "hi"


@pytest.mark.parametrize("tools_call", [False, True])
def test_uninstrument_restores_every_original(
    fake: FakeGemini, client: Any, instrument: Any, tools_call: bool
) -> None:
    telemetry = instrument()
    for (owner, name), original in ORIGINALS.items():
        assert getattr(owner, name) is not original, name
        assert hasattr(getattr(owner, name), "__wrapped__"), name
    assert _wrapped(REQUEST_ORIGINALS) == []
    call_gemini(client, "sync")
    call_gemini(client, "sync", config={"temperature": 0.5})
    assert _wrapped(REQUEST_ORIGINALS) == []  # calls without tools never pay for those hooks
    if tools_call:
        call_gemini(client, "sync", config={"tools": [say_hi]})
        assert len(_wrapped(REQUEST_ORIGINALS)) == len(REQUEST_ORIGINALS)
    GeminiInstrumentor().uninstrument()
    for (owner, name), original in {**ORIGINALS, **REQUEST_ORIGINALS}.items():
        assert owner.__dict__[name] is original, name
    spans_before = len(telemetry.spans())
    call_gemini(client, "sync", config={"tools": [say_hi]})
    assert len(telemetry.spans()) == spans_before
    assert _wrapped(REQUEST_ORIGINALS) == []  # nothing wraps itself again once uninstrumented


def _other_library_hook(seen: list[str]) -> Any:
    """What another OpenTelemetry instrumentation puts on a method (wrapt, as contrib's do)."""

    def hook(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(type(instance).__name__)
        return wrapped(*args, **kwargs)

    return hook


def test_hooks_keep_the_sdk_methods_name_and_signature(instrument: Any) -> None:
    import inspect

    instrument()
    for (owner, name), original in ORIGINALS.items():
        hook = getattr(owner, name)
        assert hook.__name__ == original.__name__
        assert inspect.signature(hook) == inspect.signature(original), name
        assert inspect.iscoroutinefunction(hook) == inspect.iscoroutinefunction(original), name


def test_another_instrumentation_wrapped_first_still_runs_and_is_put_back(
    client: Any, instrument: Any
) -> None:
    import wrapt
    from opentelemetry.instrumentation.utils import unwrap

    seen: list[str] = []
    wrapt.wrap_function_wrapper(models.Models, "generate_content", _other_library_hook(seen))
    theirs = models.Models.__dict__["generate_content"]
    try:
        telemetry = instrument()
        call_gemini(client, "sync")
        assert seen == ["Models"]  # theirs got the instance, as without us
        assert telemetry.span().attributes["gen_ai.usage.input_tokens"] > 0
        GeminiInstrumentor().uninstrument()
        assert models.Models.__dict__["generate_content"] is theirs
    finally:
        unwrap(models.Models, "generate_content")
    assert (
        models.Models.__dict__["generate_content"] is ORIGINALS[(models.Models, "generate_content")]
    )


def test_another_instrumentation_wrapped_after_us_keeps_working_once_we_leave(
    client: Any, instrument: Any
) -> None:
    import wrapt
    from opentelemetry.instrumentation.utils import unwrap

    telemetry = instrument()
    seen: list[str] = []
    wrapt.wrap_function_wrapper(models.Models, "generate_content", _other_library_hook(seen))
    try:
        call_gemini(client, "sync")
        GeminiInstrumentor().uninstrument()  # ours is under theirs: it stays, passing through
        call_gemini(client, "sync")
        assert seen == ["Models", "Models"]
        assert len(telemetry.spans()) == 1
    finally:
        unwrap(models.Models, "generate_content")  # theirs off: what is left is our stale hook
        stale = models.Models.__dict__["generate_content"]
        models.Models.generate_content = stale.__wrapped__
    assert (
        models.Models.__dict__["generate_content"] is ORIGINALS[(models.Models, "generate_content")]
    )


def test_instrument_twice_is_a_no_op(client: Any, instrument: Any) -> None:
    telemetry = instrument()
    GeminiInstrumentor().instrument()
    call_gemini(client, "sync")
    assert len(telemetry.spans()) == 1
    assert not hasattr(models.Models.generate_content.__wrapped__, "__wrapped__")


def test_dependency_range_accepts_the_installed_sdk() -> None:
    assert GeminiInstrumentor()._check_dependency_conflicts() is None
    assert any("google-genai" in d for d in GeminiInstrumentor().instrumentation_dependencies())


def test_tier_from_env_and_kwarg_beats_env() -> None:
    assert Settings.resolve({ENV_TIER: "tier_2"}, {}).tier == "tier_2"
    assert Settings.resolve({ENV_TIER: "Tier2"}, {}).tier == "tier_2"
    assert Settings.resolve({ENV_TIER: "tier_2"}, {"tier": "free"}).tier == "free"
    assert Settings.resolve({}, {}).tier == "unknown"


def test_bad_tier_warns_and_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert Settings.resolve({ENV_TIER: "platinum"}, {}).tier == "unknown"
    assert "platinum" in caplog.text


def test_capture_content_env_and_kwarg() -> None:
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    assert Settings.resolve(env, {}).capture_content is True
    assert Settings.resolve(env, {"capture_content": False}).capture_content is False
    assert Settings.resolve({}, {}).capture_content is False


def test_configured_tier_is_on_every_span_and_metric(client: Any, instrument: Any) -> None:
    telemetry = instrument(tier="tier_1")
    call_gemini(client, "sync")
    assert telemetry.span().attributes["gcp.gemini.tier"] == "tier_1"
    assert telemetry.span().attributes["gcp.gemini.tier.source"] == "config"
    assert telemetry.total("gcp.gemini.requests", gcp__gemini__tier="tier_1") == 1


def test_non_recording_spans_still_give_metrics(
    client: Any, metric_reader: Any, spans: InMemorySpanExporter
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[metric_reader])
    )
    try:
        for entrypoint in ("sync", "async", "sync_stream", "async_stream"):
            call_gemini(client, entrypoint)
    finally:
        instrumentor.uninstrument()
    telemetry = Telemetry(spans, metric_reader)
    assert telemetry.spans() == ()
    assert telemetry.total("gcp.gemini.requests") == 4


def test_missing_sdk_seam_warns_naming_the_version(
    client: Any, instrument: Any, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    # Simulate an SDK that renamed its retry internals: our table names a method it lacks.
    monkeypatch.setattr(
        _patch,
        "ATTEMPT_TARGETS",
        (("google.genai._api_client", "BaseApiClient._no_such_method", _sync_attempt),),
    )
    with caplog.at_level(logging.WARNING):
        telemetry = instrument()
    assert "BaseApiClient._no_such_method" in caplog.text
    assert _patch.sdk_version() in caplog.text
    call_gemini(client, "sync")
    # Still one attempt counted per call, from the call's outcome.
    assert telemetry.total("gcp.gemini.requests", http__response__status_code=200) == 1


SCRIPT = """
from google import genai
from google.genai import types
import os
options = types.HttpOptions(base_url=os.environ["FAKE_URL"])
client = genai.Client(api_key="fake-key", http_options=options)
client.models.generate_content(model="gemini-2.5-flash", contents="hello")
print("CALL DONE")
"""


def test_opentelemetry_instrument_loads_us_with_no_code_change(
    fake: FakeGemini, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(SCRIPT))
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "FAKE_URL": fake.url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "auto-test",
        "OTEL_INSTRUMENTATION_GEMINI_TIER": "tier_2",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "httpx,requests,urllib3,urllib,asyncio,threading",
    }
    out = subprocess.run(
        [str(bindir / "opentelemetry-instrument"), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "CALL DONE" in out.stdout
    assert '"name": "generate_content gemini-2.5-flash"' in out.stdout
    assert '"gcp.gemini.tier": "tier_2"' in out.stdout
    assert '"gen_ai.usage.input_tokens": 12' in out.stdout
