"""A bad prices or limits file named in the environment, under ``opentelemetry-instrument``:
one error naming the file, google-genai still instrumented with the bundled data, and the
instrumentors loaded after ours still run. From code, ``instrument()`` still raises.

A second instrumentor is installed for the run as a tiny distribution in a temp dir (a
``dist-info`` with an ``opentelemetry_instrumentor`` entry point and its module), placed on
``PYTHONPATH`` after our site-packages so the start-up loop reaches it after us (the test checks
that order from the log).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from opentelemetry.instrumentation.gemini import (
    GeminiInstrumentor,
    LimitsFileError,
    PricesFileError,
)
from opentelemetry.instrumentation.gemini.auto import GeminiAutoInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

PROBE_MODULE = """
import sys
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class ProbeInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ()

    def _instrument(self, **kwargs):
        print("PROBE INSTRUMENTED", file=sys.stderr, flush=True)

    def _uninstrument(self, **kwargs):
        pass
"""

APP = """
import os
from google import genai
from google.genai import types
options = types.HttpOptions(base_url=os.environ["FAKE_URL"])
client = genai.Client(api_key="fake-key", http_options=options)
client.models.generate_content(model="gemini-2.5-flash", contents="hello")
print("CALL DONE")
"""


def _probe_dist(root: Path) -> Path:
    """A second instrumentor, installed as a distribution of its own in ``root``."""
    root.mkdir()
    (root / "zz_probe_instrumentation.py").write_text(PROBE_MODULE)
    info = root / "zz_probe_instrumentation-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zz-probe-instrumentation\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\nzz_probe = zz_probe_instrumentation:ProbeInstrumentor\n"
    )
    return root


def _run(fake: FakeGemini, tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    probe = _probe_dist(tmp_path / "probe_site")
    site = sysconfig.get_paths()["purelib"]
    env = {
        **os.environ,
        # site-packages first, so our entry point comes before the probe's in the start-up loop.
        "PYTHONPATH": os.pathsep.join([site, str(probe)]),
        "FAKE_URL": fake.url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "auto-bad-file",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "httpx,requests,urllib3,urllib,asyncio,threading",
        **env_extra,
    }
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    if not launcher.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    return subprocess.run(
        [str(launcher), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_probe_ran_after(out: subprocess.CompletedProcess[str], our_error: str) -> None:
    assert out.returncode == 0, out.stderr
    assert "CALL DONE" in out.stdout
    assert "PROBE INSTRUMENTED" in out.stderr, out.stderr
    # The probe was loaded after us: before this fix it was skipped in exactly this order.
    assert out.stderr.index(our_error) < out.stderr.index("PROBE INSTRUMENTED"), out.stderr


def test_bad_prices_file_under_opentelemetry_instrument(fake: FakeGemini, tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text('{"version": "x", "models": {"gemini-2.5-flash": {"input": -1}}}')
    out = _run(fake, tmp_path, OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE=str(bad))
    _assert_probe_ran_after(out, "ignoring OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE")
    # One error, naming the file and the problem.
    errors = [
        line for line in out.stderr.splitlines() if "opentelemetry-instrumentation-gemini" in line
    ]
    assert len(errors) == 1, out.stderr
    assert str(bad) in errors[0] and "must be a non-negative number" in errors[0]
    assert "Traceback" not in out.stderr
    # Still instrumented, priced from the bundled data.
    assert '"name": "generate_content gemini-2.5-flash"' in out.stdout
    assert '"gen_ai.usage.cost.amount"' in out.stdout
    assert "acme" not in out.stdout


def test_bad_limits_file_under_opentelemetry_instrument(fake: FakeGemini, tmp_path: Path) -> None:
    bad = tmp_path / "limits.json"
    bad.write_text("{not json")
    out = _run(fake, tmp_path, OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE=str(bad))
    _assert_probe_ran_after(out, "ignoring OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE")
    assert str(bad) in out.stderr and "not valid JSON" in out.stderr
    assert '"name": "generate_content gemini-2.5-flash"' in out.stdout


def test_both_files_bad_and_one_missing(fake: FakeGemini, tmp_path: Path) -> None:
    bad_limits = tmp_path / "limits.json"
    bad_limits.write_text(json.dumps({"gemini-2.5-flash": {"tier_9": {"rpm": 1}}}))
    missing = tmp_path / "no-such-prices.json"
    out = _run(
        fake,
        tmp_path,
        OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE=str(missing),
        OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE=str(bad_limits),
    )
    _assert_probe_ran_after(out, "ignoring OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE")
    assert "ignoring OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE" in out.stderr
    assert str(missing) in out.stderr and "tier_9" in out.stderr
    assert '"name": "generate_content gemini-2.5-flash"' in out.stdout


def test_from_code_a_bad_env_file_still_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text("[]")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE", str(bad))
    with pytest.raises(PricesFileError, match=r"prices\.json"):
        GeminiInstrumentor().instrument()
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE", str(bad))
    with pytest.raises(LimitsFileError):
        GeminiInstrumentor().instrument()
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


def test_the_entry_point_drives_the_one_singleton(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text("[]")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE", str(bad))
    auto = GeminiAutoInstrumentor()
    try:
        auto.instrument()
        assert "ignoring OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE" in caplog.text
        # What user code gets is the same, already instrumented: never patched twice.
        assert GeminiInstrumentor().is_instrumented_by_opentelemetry
        assert auto.is_instrumented_by_opentelemetry
    finally:
        auto.uninstrument()
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry
