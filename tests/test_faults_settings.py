"""Hostile settings: what a user configures (environment variables, ``instrument()`` keyword
arguments, prices files) and the command line. A bad value warns in a bounded line that never
repeats an API key and falls back to the default, a bad file is a ``PricesFileError``, nothing
configured reaches an export that OTLP cannot encode, and the CLI answers a bad command line
with exit code 2, never a traceback."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import opentelemetry.instrumentation.gemini as package
from conftest import Telemetry, make_client
from opentelemetry.instrumentation.gemini import (
    GeminiInstrumentor,
    LimitsFileError,
    PricesFileError,
)
from opentelemetry.instrumentation.gemini.auto import GeminiAutoInstrumentor
from opentelemetry.instrumentation.gemini.billing.overrides import MAX_MULTIPLIER, MAX_PRICE
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

MODEL = "gemini-2.5-flash"
# Shaped like a Google API key, built at run time so no key-shaped literal is committed.
GOOGLE_SHAPED_KEY = "AIza" + "K" * 35
# Our src directory: subprocesses import the package from where this test run imports it.
SRC = str(Path(package.__file__).resolve().parents[3])

# Every setting read from the environment that warns on a value it cannot use.
WARNING_SETTINGS = (
    "OTEL_INSTRUMENTATION_GEMINI_TIER",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "OTEL_INSTRUMENTATION_GEMINI_MAX_MODELS",
    "OTEL_INSTRUMENTATION_GEMINI_DAILY_BUDGET_USD",
    "OTEL_INSTRUMENTATION_GEMINI_MONTHLY_BUDGET_USD",
    "OTEL_INSTRUMENTATION_GEMINI_RETRY_POLICY",
    "OTEL_INSTRUMENTATION_GEMINI_RETRY_MAX_WAIT",
)


def _exported_strings(telemetry: Telemetry) -> str:
    parts: list[str] = []
    for span in telemetry.spans():
        parts.append(json.dumps(dict(span.attributes or {}), default=str))
    for points in telemetry.metrics().values():
        for point in points:
            parts.append(json.dumps(dict(point.attributes), default=str))
    return "\n".join(parts)


# --- a key pasted into the wrong setting ----------------------------------------------------------
@pytest.mark.parametrize("env", WARNING_SETTINGS)
def test_a_key_pasted_into_a_setting_is_never_repeated_in_its_warning(
    fake: FakeGemini,
    instrument: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    env: str,
) -> None:
    monkeypatch.setenv(env, f"  {GOOGLE_SHAPED_KEY}  ")
    with caplog.at_level(logging.WARNING):
        telemetry = instrument()
    client = make_client(fake)  # held: a dropped client closes its HTTP client
    client.models.generate_content(model=MODEL, contents="x")
    assert telemetry.span().attributes["gcp.gemini.tier"] == "unknown"
    # One warning naming the setting, bounded, and without the key (logs may be exported).
    [warning] = [r.getMessage() for r in caplog.records if env in r.getMessage()]
    assert len(warning) < 500
    assert "AIza" not in caplog.text and "[REDACTED]" in warning


def test_a_non_google_key_from_the_environment_is_not_repeated_either(
    instrument: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "proxy-secret-0123456789"
    monkeypatch.setenv("GEMINI_API_KEY", secret)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_TIER", secret)
    with caplog.at_level(logging.WARNING):
        instrument(retry_policy=f"retry {secret}")
    assert "OTEL_INSTRUMENTATION_GEMINI_TIER" in caplog.text
    assert "instrument(retry_policy=...)" in caplog.text
    assert secret not in caplog.text


# --- the project setting, exported on every span and series --------------------------------------
def test_a_project_that_is_not_utf8_is_exported_as_otlp_can_carry_it(
    fake: FakeGemini, instrument: Callable[..., Telemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project name set in a Latin-1 shell: os.environ reads the byte 0xE9 as "\udce9".
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_PROJECT", "caf\udce9-prod")
    telemetry = instrument()
    client = make_client(fake)  # held: a dropped client closes its HTTP client
    client.models.generate_content(model=MODEL, contents="x")
    span = telemetry.span()
    assert span.attributes["gcp.gemini.project"] == "caf\ufffd-prod"
    # Encoding raised UnicodeEncodeError before: the whole batch of spans (and every metric
    # export, the project being a label of each series) was lost.
    encode_spans([span])  # type: ignore[list-item]
    encode_metrics(telemetry.reader.get_metrics_data())


def test_a_key_given_as_the_project_is_never_exported(
    fake: FakeGemini,
    instrument: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_PROJECT", GOOGLE_SHAPED_KEY)
    with caplog.at_level(logging.WARNING):
        telemetry = instrument(daily_budget_usd=5)
    client = make_client(fake)  # held: a dropped client closes its HTTP client
    client.models.generate_content(model=MODEL, contents="x")
    telemetry.metrics()  # the budget gauge carries the project too
    assert "AIza" not in _exported_strings(telemetry)
    assert "gcp.gemini.project" not in telemetry.span().attributes
    assert "OTEL_INSTRUMENTATION_GEMINI_PROJECT" in caplog.text and "AIza" not in caplog.text


# --- prices files ---------------------------------------------------------------------------------
def _prices(tmp_path: Path, text: str, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_prices_file_with_an_integer_beyond_the_parser_is_a_prices_file_error(
    tmp_path: Path,
) -> None:
    path = _prices(
        tmp_path, '{"version": "v", "models": {"gemini-2.5-flash": {"input": %s}}}' % ("9" * 5000)
    )
    # A plain ValueError before: neither the documented error nor, under
    # opentelemetry-instrument, a fallback to the bundled prices (google-genai went
    # uninstrumented).
    with pytest.raises(PricesFileError, match=r"prices\.json"):
        GeminiInstrumentor().instrument(prices_file=str(path))
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry
    with pytest.raises(PricesFileError):
        GeminiInstrumentor().instrument(prices_file=f"{tmp_path}/a\0b.json")
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


def test_under_the_entry_point_a_huge_integer_falls_back_to_the_bundled_prices(
    fake: FakeGemini,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = _prices(
        tmp_path, '{"version": "v", "models": {"gemini-2.5-flash": {"input": %s}}}' % ("9" * 5000)
    )
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE", str(path))
    auto = GeminiAutoInstrumentor()
    try:
        auto.instrument()
        assert "ignoring OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE" in caplog.text
        assert GeminiInstrumentor().is_instrumented_by_opentelemetry
    finally:
        auto.uninstrument()


@pytest.mark.parametrize(
    "version",
    ["v" * 100_000, "\udcff", f"rates for {GOOGLE_SHAPED_KEY}"],
    ids=["1e5-chars", "lone-surrogate", "key"],
)
def test_a_prices_file_version_that_cannot_go_on_every_span_is_refused(
    tmp_path: Path, version: str
) -> None:
    doc = json.dumps({"version": version, "models": {MODEL: {"input": 1}}})
    path = _prices(tmp_path, doc)
    # Loaded before, and put on every span as gcp.gemini.cost.prices_version: 100 KB per
    # span, a key in telemetry, or a lone surrogate that fails every span export.
    with pytest.raises(PricesFileError, match="'version' must be") as raised:
        GeminiInstrumentor().instrument(prices_file=str(path))
    assert len(str(raised.value)) < 500 and "AIza" not in str(raised.value)


def test_a_prices_file_whose_name_is_not_utf8_still_exports(
    fake: FakeGemini, instrument: Callable[..., Telemetry], tmp_path: Path
) -> None:
    # A file name in Latin-1 on disk: os.fsdecode gives a lone surrogate.
    name = os.fsdecode(b"tarifs-\xe9t\xe9.json")
    path = _prices(tmp_path, json.dumps({"version": "acme", "models": {MODEL: {"input": 1}}}), name)
    telemetry = instrument(prices_file=str(path))
    client = make_client(fake)  # held: a dropped client closes its HTTP client
    client.models.generate_content(model=MODEL, contents="x")
    span = telemetry.span()
    assert "acme" in span.attributes["gcp.gemini.cost.prices_version"]
    encode_spans([span])  # type: ignore[list-item]  # raised UnicodeEncodeError before


@pytest.mark.parametrize(
    "prices",
    [{"input": 1e300}, {"input": 1, "priority_multiplier": 1e300}],
    ids=["price-1e300", "multiplier-1e300"],
)
def test_a_price_that_could_make_an_infinite_cost_is_refused(
    tmp_path: Path, prices: dict[str, float]
) -> None:
    path = _prices(tmp_path, json.dumps({"version": "v", "models": {MODEL: prices}}))
    # Loaded before: a priority call (or a long one) then cost inf, on the span and added to
    # the cost counter, which read inf from then on.
    with pytest.raises(PricesFileError, match="up to"):
        GeminiInstrumentor().instrument(prices_file=str(path))


def test_the_highest_prices_accepted_still_cost_a_finite_amount(
    fake: FakeGemini, instrument: Callable[..., Telemetry], tmp_path: Path
) -> None:
    top = {"input": MAX_PRICE, "output": MAX_PRICE, "priority_multiplier": MAX_MULTIPLIER}
    path = _prices(tmp_path, json.dumps({"version": "v", "models": {MODEL: top}}))
    telemetry = instrument(prices_file=str(path))
    huge = {"promptTokenCount": 10**30, "candidatesTokenCount": 10**30, "totalTokenCount": 1}
    headers = {"x-gemini-service-tier": "priority"}
    fake.enqueue(None, Reply(usage=huge, headers=headers), Reply(usage=huge, headers=headers))
    client = make_client(fake)
    for _ in range(2):
        client.models.generate_content(model=MODEL, contents="x")
    for span in telemetry.spans():
        assert math.isfinite(span.attributes["gen_ai.usage.cost.amount"])
    costs = telemetry.points("gcp.gemini.cost")
    assert costs and all(math.isfinite(p.value) and p.value > 0 for p in costs)


@pytest.mark.parametrize("limit", ["5e-324", "1" + "0" * 400], ids=["denormal", "1e400-int"])
def test_a_spend_limit_that_makes_no_finite_ratio_is_a_limits_file_error(
    tmp_path: Path, limit: str
) -> None:
    path = tmp_path / "limits.json"
    path.write_text(
        '{"version": "v", "models": {}, "spend_limit_10m_usd": {"tier_1": ' + limit + "}}"
    )
    # 5e-324 was accepted, and the spend utilization gauge (spend / limit) read inf; 10**400
    # raised OverflowError, which under opentelemetry-instrument left google-genai
    # uninstrumented instead of falling back to the bundled limits.
    with pytest.raises(LimitsFileError, match="spend_limit_10m_usd"):
        GeminiInstrumentor().instrument(limits_file=str(path))
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


def test_a_bad_file_is_named_in_a_bounded_error_under_opentelemetry_instrument(
    fake: FakeGemini,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "m" * 1_000_000  # a model name of 1 MB with a bad price, and a 100 KB path
    prices = _prices(tmp_path, json.dumps({"version": "v", "models": {name: {"input": -1}}}))
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({name: {"tier_1": {"rpm": -1}}}))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE", str(prices))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE", str(limits))
    auto = GeminiAutoInstrumentor()
    try:
        auto.instrument()
        assert GeminiInstrumentor().is_instrumented_by_opentelemetry
    finally:
        auto.uninstrument()
    errors = [r.getMessage() for r in caplog.records if "ignoring OTEL_" in r.getMessage()]
    # Each repeated the whole 1 MB name before.
    assert len(errors) == 2 and all(len(e) < 2000 for e in errors)
    assert "must be a non-negative number" in errors[0] and "rpm" in errors[1]
    with pytest.raises(LimitsFileError, match="File name too long") as raised:
        GeminiInstrumentor().instrument(prices_file="", limits_file=f"{tmp_path}/{'x' * 100_000}")
    assert len(str(raised.value)) < 2000


def test_minus_zero_is_exported_as_zero(
    fake: FakeGemini,
    instrument: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_DAILY_BUDGET_USD", "-0")
    zero = {"input": -0.0, "output": -0.0}
    path = _prices(tmp_path, json.dumps({"version": "v", "models": {MODEL: zero}}))
    telemetry = instrument(prices_file=str(path))
    client = make_client(fake)
    client.models.generate_content(model=MODEL, contents="x")
    # Both read -0.0 before: "-0" on the span and on the budget gauge.
    cost = telemetry.span().attributes["gen_ai.usage.cost.amount"]
    assert cost == 0 and math.copysign(1, cost) == 1
    [budget] = telemetry.points("gcp.gemini.budget", gcp__gemini__budget__period="day")
    assert math.copysign(1, budget.value) == 1


# --- the command line -----------------------------------------------------------------------------
def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opentelemetry.instrumentation.gemini", *args],
        env={**os.environ, "PYTHONPATH": SRC, **env},
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("count", [str(10**320), str(10**30), "-1", "nan", "1e3"])
def test_cli_estimate_refuses_counts_beyond_a_call_without_a_traceback(count: str) -> None:
    out = _cli("estimate", "--model", MODEL, "--input", count, "--output", count, "--json")
    # 10**320 raised OverflowError (a traceback, exit 1) before.
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr) < 2000
    assert out.stdout == ""


def test_cli_echoes_a_name_that_is_not_utf8_on_a_strict_stdout() -> None:
    # Under a UTF-8 locale (not C/POSIX) stdout is strict: a model name from argv that is not
    # UTF-8 raised UnicodeEncodeError (a traceback) before.
    for args in (["prices", "m\udcff"], ["limits", "m\udcff"], ["doctor"]):
        out = _cli(
            *args,
            PYTHONIOENCODING="utf-8:strict",
            OTEL_INSTRUMENTATION_GEMINI_TIER="t\udcff",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
        )
        assert "Traceback" not in out.stderr, out.stderr
        assert out.returncode in (0, 1), out.stderr
        assert "\\udcff" in out.stdout


# --- the same under opentelemetry-instrument ------------------------------------------------------
APP = """
import os
from google import genai
from google.genai import types
options = types.HttpOptions(base_url=os.environ["FAKE_URL"])
client = genai.Client(api_key="fake-key", http_options=options)
print(client.models.generate_content(model="gemini-2.5-flash", contents="hello").text)
print("CALL DONE")
"""


def test_hostile_settings_under_opentelemetry_instrument(fake: FakeGemini, tmp_path: Path) -> None:
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    if not launcher.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    hostile = {
        "OTEL_INSTRUMENTATION_GEMINI_TIER": GOOGLE_SHAPED_KEY,
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "x" * 100_000,
        "OTEL_INSTRUMENTATION_GEMINI_MAX_MODELS": "9" * 5000,
        "OTEL_INSTRUMENTATION_GEMINI_DAILY_BUDGET_USD": "nan",
        "OTEL_INSTRUMENTATION_GEMINI_MONTHLY_BUDGET_USD": "1e400",
        "OTEL_INSTRUMENTATION_GEMINI_RETRY_POLICY": "\udcff",
        "OTEL_INSTRUMENTATION_GEMINI_RETRY_MAX_WAIT": "-inf",
        "OTEL_INSTRUMENTATION_GEMINI_PROJECT": "p\udcff",
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, sysconfig.get_paths()["purelib"]]),
        "FAKE_URL": fake.url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "httpx,requests,urllib3,urllib,asyncio,threading",
        **hostile,
    }
    bare = subprocess.run(
        [sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=120
    )
    out = subprocess.run(
        [str(launcher), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 == bare.returncode, out.stderr
    assert bare.stdout in out.stdout  # the app's own output, as bare
    assert '"name": "generate_content gemini-2.5-flash"' in out.stdout
    assert "Traceback" not in out.stderr and "AIza" not in out.stderr + out.stdout
    ours = [line for line in out.stderr.splitlines() if "OTEL_INSTRUMENTATION_GEMINI" in line]
    assert len(ours) >= 6 and all(len(line) < 500 for line in ours), out.stderr
    assert '"gcp.gemini.project": "p\\ufffd"' in out.stdout
