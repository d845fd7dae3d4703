"""genai-prices loads in a background thread at instrument(): nothing about prices may change.

The price book a background load gives must price exactly like a foreground one, whenever it is
first used; a bad prices file must still fail instrument(); a fork in the middle of the load
must leave a working book in the child; a genai-prices that cannot load must not break calls.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import Telemetry, call_gemini
from opentelemetry.instrumentation.gemini import instrumentor
from opentelemetry.instrumentation.gemini.billing import book as pricing
from opentelemetry.instrumentation.gemini.billing.book import PriceBook, PricesFileError
from opentelemetry.instrumentation.gemini.record.usage import Usage
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

USAGE = Usage(
    prompt_tokens=250_000,  # above the 2.5 Pro cliff
    cached_tokens=10_000,
    candidates_tokens=1_000,
    thoughts_tokens=500,
    total_tokens=251_500,
    prompt_by_modality={"text": 240_000, "audio": 10_000},
)
MODELS = ("gemini-2.5-flash", "models/gemini-2.5-pro", "gemini-2.5-flash-lite", "no-such-model")


def test_background_book_prices_like_a_foreground_one() -> None:
    foreground = PriceBook.load()
    background = PriceBook.load(background=True)
    # First use straight away: whatever the thread has done so far, the answer is the same.
    for model in MODELS:
        assert background.cost(model, USAGE) == foreground.cost(model, USAGE), model
        assert background.can_price(model) == foreground.can_price(model)
    assert background.prices_version == foreground.prices_version
    assert background.wait(timeout=0)


def test_background_load_still_checks_the_prices_file_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"version": "v", "models": {"m": {"output": 1}}}))
    with pytest.raises(PricesFileError, match="'input'"):
        PriceBook.load(bad, background=True)


def test_background_book_with_a_prices_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"version": "acme-1", "models": {"acme-model": {"input": 1.0}}}))
    book = PriceBook.load(path, background=True)
    cost = book.cost("acme-model", Usage(prompt_tokens=1_000_000, total_tokens=1_000_000))
    assert cost is not None and cost.total == pytest.approx(1.0)
    assert cost.prices_version.endswith("overrides acme-1 (prices.json)")


def test_genai_prices_failing_to_load_leaves_prices_files_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Any:
        raise ImportError("genai_prices is broken")

    monkeypatch.setattr(pricing, "_genai_prices", broken)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"version": "v1", "models": {"acme-model": {"input": 2.0}}}))
    with caplog.at_level(logging.WARNING, logger=pricing.__name__):
        book = PriceBook.load(path, background=True)
        assert book.wait(timeout=30)
    assert "cannot load genai-prices" in caplog.text
    assert book.cost("gemini-2.5-flash", USAGE) is None
    cost = book.cost("acme-model", Usage(prompt_tokens=1_000_000, total_tokens=1_000_000))
    assert cost is not None and cost.total == pytest.approx(2.0)


def test_first_call_after_instrument_is_priced(
    fake: FakeGemini, client: Any, instrument: Any
) -> None:
    # The conftest instrumentor loads prices in the background like any other; the very first
    # call (whenever it lands) carries the same cost a later one does.
    telemetry: Telemetry = instrument()
    fake.enqueue(None, Reply(usage={"promptTokenCount": 1000, "candidatesTokenCount": 100}))
    call_gemini(client, "sync")
    first = telemetry.span().attributes
    assert first["gen_ai.usage.cost.amount"] == pytest.approx(1000 * 0.30e-6 + 100 * 2.50e-6)
    assert str(first["gcp.gemini.cost.prices_version"]).startswith("genai-prices ")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_fork_while_prices_load_leaves_the_child_a_working_book() -> None:
    # A fresh interpreter, so genai-prices is not imported yet and the fork lands mid-load.
    script = textwrap.dedent(
        """
        import os, sys
        from opentelemetry.instrumentation.gemini.billing.book import PriceBook
        from opentelemetry.instrumentation.gemini.record.usage import Usage

        usage = Usage(prompt_tokens=1_000_000, total_tokens=1_000_000)
        book = PriceBook.load(background=True)
        pid = os.fork()
        if pid == 0:
            cost = book.cost("gemini-2.5-flash", usage)
            os._exit(0 if cost is not None and abs(cost.total - 0.30) < 1e-9 else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), book.cost("gemini-2.5-flash", usage).total)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    child, parent_total = result.stdout.split()
    assert child == "0"
    assert float(parent_total) == pytest.approx(0.30)


def test_a_stuck_price_load_bounds_the_wait_and_is_not_remembered(
    fake: FakeGemini, client: Any, instrument: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """genai-prices hangs (a stuck import): calls wait at most the load budget in all, are
    unpriced with reason prices_loading meanwhile, and priced once the data arrives."""
    release = threading.Event()
    real = pricing._genai_prices

    def stuck() -> Any:
        release.wait(30)
        return real()

    monkeypatch.setattr(pricing, "_genai_prices", stuck)
    monkeypatch.setattr(pricing, "_LOAD_WAIT_SECONDS", 0.2)
    telemetry: Telemetry = instrument()
    try:
        for _ in range(3):
            call_gemini(client, "sync")
        attrs = [s.attributes for s in telemetry.spans()]
        assert [a["gcp.gemini.cost.unpriced_reason"] for a in attrs] == ["prices_loading"] * 3
        assert all("gen_ai.usage.cost.amount" not in a for a in attrs)
        assert (
            telemetry.total(
                "gcp.gemini.cost.unpriced_calls",
                gcp__gemini__cost__unpriced_reason="prices_loading",
            )
            == 3
        )
    finally:
        release.set()
    active = instrumentor.active_recorder
    assert active is not None and active.prices is not None and active.prices.wait(timeout=30)
    call_gemini(client, "sync")
    assert "gen_ai.usage.cost.amount" in telemetry.spans()[-1].attributes
