"""``python -m opentelemetry.instrumentation.gemini``: each command run as a script would run it,
in a subprocess, its output and exit code checked (text and ``--json``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from opentelemetry.instrumentation.gemini.billing.book import PriceBook
from opentelemetry.instrumentation.gemini.record.usage import Usage

_ENV_DROP = (
    "OTEL_INSTRUMENTATION_GEMINI_TIER",
    "OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE",
    "OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    return subprocess.run(
        [sys.executable, "-m", "opentelemetry.instrumentation.gemini", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_json(*args: str, code: int = 0, **env: str) -> Any:
    out = run(*args, "--json", **env)
    assert out.returncode == code, (out.stdout, out.stderr)
    return json.loads(out.stdout)


def test_prices_text_and_json() -> None:
    out = run("prices", "gemini-2.5-pro")
    assert out.returncode == 0, out.stderr
    assert "gemini-2.5-pro: USD per 1M tokens (genai-prices" in out.stdout
    assert "prompts above 200,000 tokens:" in out.stdout
    data = run_json("prices", "models/gemini-2.5-pro")
    assert data["model"] == "gemini-2.5-pro"
    assert data["priced"] is True
    prices = data["prices"]
    # The rates are what cost() bills: check them against the book directly.
    book = PriceBook.load()
    short = book.cost("gemini-2.5-pro", Usage(prompt_tokens=100_000, total_tokens=100_000))
    assert short is not None
    assert prices["input"] == pytest.approx(short.input * 10)
    assert prices["long_context"]["above_prompt_tokens"] == 200_000
    assert prices["long_context"]["input"] > prices["input"]
    assert data["prices_version"].startswith("genai-prices ")
    assert data["data_date"] == data["prices_version"].split("gemini-extras ")[1][:10]


def test_prices_free_tier_is_not_billed() -> None:
    data = run_json("prices", "gemini-2.5-flash", "--tier", "free")
    assert data["billed"] is False and data["tier_from"] == "--tier"
    data = run_json("prices", "gemini-2.5-flash", OTEL_INSTRUMENTATION_GEMINI_TIER="tier_1")
    assert data["billed"] is True and data["tier"] == "tier_1"
    assert data["tier_from"] == "OTEL_INSTRUMENTATION_GEMINI_TIER"


def test_prices_unknown_model_exits_1() -> None:
    out = run("prices", "no-such-model-1")
    assert out.returncode == 1
    assert "no price known" in out.stdout
    assert run_json("prices", "no-such-model-1", code=1)["priced"] is False


def test_prices_from_a_user_file(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"version": "acme-1", "models": {"gemini-9-pro": {"input": 2, "output": 12}}})
    )
    data = run_json("prices", "gemini-9-pro", "--prices-file", str(prices))
    assert data["prices"]["input"] == 2 and data["prices"]["output"] == 12
    assert "overrides acme-1" in data["prices_version"]
    # The same file through the environment, as instrument() reads it.
    data = run_json("prices", "gemini-9-pro", OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE=str(prices))
    assert data["prices"]["input"] == 2


def test_a_bad_prices_file_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text("{")
    out = run("prices", "gemini-2.5-flash", "--prices-file", str(bad))
    assert out.returncode == 3
    assert str(bad) in out.stderr
    data = run_json("estimate", "--model", "m", "--input", "1", "--output", "1",
                    "--prices-file", str(bad), code=3)  # fmt: skip
    assert data["exit_code"] == 3 and str(bad) in data["error"]


def test_limits() -> None:
    data = run_json("limits", "gemini-2.5-flash", "--tier", "tier_1")
    assert list(data["limits"]) == ["tier_1"]
    tier_1 = data["limits"]["tier_1"]
    assert set(tier_1) >= {"rpm", "tpm", "rpd", "spend_limit_10m_usd"}
    assert tier_1["rpm"] > 0
    assert data["source"].startswith("https://")
    every = run_json("limits", "gemini-2.5-flash")
    assert set(every["limits"]) >= {"free", "tier_1"}
    out = run("limits", "gemini-2.5-flash", "--tier", "tier-1")
    assert out.returncode == 0 and "tier_1: rpm=" in out.stdout
    assert run("limits", "no-such-model-1").returncode == 1


def test_limits_file_override(tmp_path: Path) -> None:
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"gemini-2.5-flash": {"tier_1": {"rpm": 2345}}}))
    data = run_json("limits", "gemini-2.5-flash", "--tier", "tier_1", "--limits-file", str(limits))
    assert data["limits"]["tier_1"]["rpm"] == 2345
    limits.write_text("[1")
    assert run("limits", "gemini-2.5-flash", "--limits-file", str(limits)).returncode == 3


def test_estimate() -> None:
    data = run_json(
        "estimate", "--model", "gemini-2.5-flash", "--input", "1200", "--cached", "1000",
        "--output", "124",
    )  # fmt: skip
    book = PriceBook.load()
    usage = Usage(prompt_tokens=1200, cached_tokens=1000, candidates_tokens=124, total_tokens=1324)
    expected = book.cost("gemini-2.5-flash", usage)
    assert expected is not None
    assert data["cost"] == pytest.approx(expected.total)
    assert data["components"]["cached_input"] == pytest.approx(expected.cached_input)
    assert data["billed"] is True and data["currency"] == "USD"
    out = run("estimate", "--model", "gemini-2.5-flash", "--input", "1200", "--output", "124")
    assert out.returncode == 0 and "$0.00" in out.stdout


def test_estimate_free_tier_long_context_and_flex() -> None:
    free = run_json("estimate", "--model", "gemini-2.5-pro", "--input", "250000",
                    "--output", "1000", "--tier", "free")  # fmt: skip
    assert free["cost"] == 0 and free["list_cost"] > 0 and free["billed"] is False
    short = run_json("estimate", "--model", "gemini-2.5-pro", "--input", "200000",
                     "--output", "0")  # fmt: skip
    long = run_json("estimate", "--model", "gemini-2.5-pro", "--input", "200001",
                    "--output", "0")  # fmt: skip
    assert long["cost"] > 1.9 * short["cost"]  # the cliff: every token at the higher rate
    flex = run_json("estimate", "--model", "gemini-2.5-flash", "--input", "1000000",
                    "--output", "0", "--traffic-type", "ON_DEMAND_FLEX")  # fmt: skip
    standard = run_json("estimate", "--model", "gemini-2.5-flash", "--input", "1000000",
                        "--output", "0")  # fmt: skip
    assert flex["cost"] == pytest.approx(standard["cost"] / 2)


def test_estimate_bad_arguments_exit_2() -> None:
    out = run("estimate", "--model", "gemini-2.5-flash", "--input", "10", "--output", "1",
              "--cached", "11")  # fmt: skip
    assert out.returncode == 2 and "--cached" in out.stderr
    assert run("estimate", "--model", "m", "--input", "-1", "--output", "1").returncode == 2
    assert run("estimate", "--input", "1", "--output", "1").returncode == 2
    assert (
        run("estimate", "--model", "no-such-model-1", "--input", "1", "--output", "1").returncode
        == 1
    )
    assert run().returncode == 2
    out = run("estimate", "--model", "gemini-2.5-flash", "--input", "1", "--output", "1",
              "--tier", "tier_9")  # fmt: skip
    assert out.returncode == 2 and "--tier 'tier_9'" in out.stderr


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on loopback that accepts connections, standing in for a collector."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _checks(data: Any) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in data["checks"]}


def test_doctor_all_good(listener: int) -> None:
    data = run_json(
        "doctor",
        OTEL_INSTRUMENTATION_GEMINI_TIER="tier_2",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{listener}",
    )
    checks = _checks(data)
    assert data["ok"] is True
    assert checks["google-genai"]["status"] == "ok"
    assert checks["entry point"]["status"] == "ok"
    assert "GeminiAutoInstrumentor" in checks["entry point"]["detail"]
    assert checks["tier"] == {
        "name": "tier",
        "status": "ok",
        "detail": "tier_2 (from OTEL_INSTRUMENTATION_GEMINI_TIER)",
    }
    assert checks["price data"]["status"] == "ok"
    assert "days old" in checks["price data"]["detail"]
    otlp = {ep.name for ep in entry_points(group="opentelemetry_traces_exporter")}
    if "otlp" in otlp:  # the SDK-matrix venvs carry no exporters
        assert checks["traces exporter"]["status"] == "ok"
        assert "reachable" in checks["metrics exporter"]["detail"]
    else:
        assert "no exporter named otlp" in checks["traces exporter"]["detail"]
    text = run("doctor", OTEL_INSTRUMENTATION_GEMINI_TIER="tier_2",
               OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="console")  # fmt: skip
    assert text.returncode == 0 and "no check failed" in text.stdout


def test_doctor_warns_and_fails(tmp_path: Path, listener: int) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    data = run_json("doctor", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    checks = _checks(data)
    assert data["ok"] is True  # warnings only
    assert checks["tier"]["status"] == "warn"
    assert checks["traces exporter"]["status"] == "warn"
    assert "not reachable" in checks["traces exporter"]["detail"] or (
        "no exporter named otlp" in checks["traces exporter"]["detail"]
    )
    data = run_json("doctor", OTEL_TRACES_EXPORTER="zipkin_json", OTEL_METRICS_EXPORTER="none")
    assert "no exporter named zipkin_json" in _checks(data)["traces exporter"]["detail"]

    bad = tmp_path / "limits.json"
    bad.write_text("{")
    data = run_json(
        "doctor",
        code=1,
        OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE=str(bad),
        OTEL_INSTRUMENTATION_GEMINI_TIER="tier_9",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="gemini",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
    )
    checks = _checks(data)
    assert data["ok"] is False
    assert checks["limits file"]["status"] == "fail" and str(bad) in checks["limits file"]["detail"]
    assert checks["tier"]["status"] == "fail"
    assert checks["entry point"]["status"] == "fail"
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in checks["entry point"]["detail"]
    assert checks["traces exporter"]["status"] == "warn"
    out = run("doctor", OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE=str(bad))
    assert out.returncode == 1 and "[fail] prices file" in out.stdout
