"""Pricing: every billing rule in the reference is a case here.

Expected figures are worked by hand from the published table (USD per 1M tokens) in
shared/reference/gemini-billing-and-quotas.md, with the arithmetic in a comment beside each.
The genai-prices comparison at the end is the proof that resolving prices once into floats is
faithful to genai-prices' own calculation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from google.genai import types

from opentelemetry.instrumentation.gemini.billing import book as pricing
from opentelemetry.instrumentation.gemini.billing.book import (
    CostBreakdown,
    PriceBook,
    PricesFileError,
    cache_storage_cost,
    grounding_cost,
)
from opentelemetry.instrumentation.gemini.record.usage import Usage, usage_from_metadata

UTC = timezone.utc
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # when the reference table was gathered
TOL = 1e-9
M = 1_000_000


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.load()


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=0.0, abs_tol=TOL)


def assert_cost(
    cost: CostBreakdown | None, total: float, components: dict[str, float] | None = None
) -> None:
    assert cost is not None
    assert close(cost.total, total), (cost.total, total)
    assert close(sum(v for _, v in cost.components), cost.total)
    if components is not None:
        got = dict(cost.components)
        assert got.keys() == components.keys(), got
        for name, usd in components.items():
            assert close(got[name], usd), (name, got[name], usd)


# 2.5 Flash: 10,000 prompt tokens of which 4,000 from cache, 500 candidates + 1,500 thinking.
FLASH_USAGE = Usage(
    prompt_tokens=10_000,
    cached_tokens=4_000,
    candidates_tokens=500,
    thoughts_tokens=1_500,
    total_tokens=12_000,
)
FLASH_INPUT = 6_000 * 0.30 / M  # prompt - cached, at the input rate = 0.0018
FLASH_CACHED = 4_000 * 0.03 / M  # cache read = 0.00012
FLASH_OUTPUT = 2_000 * 2.50 / M  # candidates + thoughts = 0.005
FLASH_TOTAL = 0.00692


# --- the per-call rules -----------------------------------------------------------------------


def test_flash_cached_and_thinking(book: PriceBook) -> None:
    cost = book.cost("gemini-2.5-flash", FLASH_USAGE, at=AT)
    assert_cost(
        cost,
        FLASH_TOTAL,
        {"input": FLASH_INPUT, "cached_input": FLASH_CACHED, "output": FLASH_OUTPUT},
    )
    assert cost is not None
    assert cost.list_total == cost.total
    assert cost.list_components == cost.components
    assert cost.by_modality == ()  # no per-modality counts reported
    assert cost.prices_version.startswith(f"genai-prices {genai_prices.__version__}; gemini-extras")


def test_thinking_tokens_are_output(book: PriceBook) -> None:
    no_thoughts = dataclasses.replace(FLASH_USAGE, thoughts_tokens=0, total_tokens=10_500)
    cost = book.cost("gemini-2.5-flash", no_thoughts, at=AT)
    # 6,000 x 0.30 + 4,000 x 0.03 + 500 x 2.50 = 0.0018 + 0.00012 + 0.00125
    assert_cost(cost, 0.00317)


ONE_K_OUT = {"candidates_tokens": 1_000}


@pytest.mark.parametrize(
    ("model", "prompt", "expected"),
    [
        # 2.5 Pro: 1.25 / 10 up to 200k prompt tokens, 2.50 / 15 above, for every token.
        ("gemini-2.5-pro", 100_000, 100_000 * 1.25 / M + 1_000 * 10 / M),  # 0.135
        ("gemini-2.5-pro", 200_000, 200_000 * 1.25 / M + 1_000 * 10 / M),  # 0.26: not above
        ("gemini-2.5-pro", 200_001, 200_001 * 2.50 / M + 1_000 * 15 / M),  # 0.5150025
        # 3 Pro Preview: 2 / 12 up to 200k, 4 / 18 above.
        ("gemini-3-pro-preview", 100_000, 100_000 * 2 / M + 1_000 * 12 / M),  # 0.212
        ("gemini-3-pro-preview", 200_000, 200_000 * 2 / M + 1_000 * 12 / M),  # 0.412
        ("gemini-3-pro-preview", 200_001, 200_001 * 4 / M + 1_000 * 18 / M),  # 0.818004
    ],
)
def test_long_context_cliff(book: PriceBook, model: str, prompt: int, expected: float) -> None:
    usage = Usage(prompt_tokens=prompt, candidates_tokens=1_000, total_tokens=prompt + 1_000)
    assert_cost(book.cost(model, usage, at=AT), expected)


def test_cliff_prices_cached_tokens_at_the_higher_rate_too(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=250_000, cached_tokens=50_000, candidates_tokens=1_000)
    cost = book.cost("gemini-2.5-pro", usage, at=AT)
    # 200,000 x 2.50 + 50,000 x 0.25 + 1,000 x 15 = 0.5 + 0.0125 + 0.015
    assert_cost(cost, 0.5275, {"input": 0.5, "cached_input": 0.0125, "output": 0.015})
    # Cached tokens count toward the cliff: 150k fresh + 60k cached = 210k prompt > 200k.
    usage = Usage(prompt_tokens=210_000, cached_tokens=60_000)
    assert_cost(book.cost("gemini-3-pro-preview", usage, at=AT), 150_000 * 4 / M + 60_000 * 0.4 / M)


def test_tool_use_tokens_count_toward_the_cliff(book: PriceBook) -> None:
    # genai-prices decides Google's tier on promptTokenCount + toolUsePromptTokenCount; so do we.
    usage = Usage(prompt_tokens=199_000, tool_use_prompt_tokens=2_000, candidates_tokens=1_000)
    cost = book.cost("gemini-3-pro-preview", usage, at=AT)
    # 201,000 > 200,000: 199,000 x 4 + 2,000 x 4 + 1,000 x 18 = 0.796 + 0.008 + 0.018
    assert_cost(cost, 0.822, {"input": 0.796, "tool_use_input": 0.008, "output": 0.018})
    usage = Usage(prompt_tokens=199_000, tool_use_prompt_tokens=1_000)  # exactly 200,000
    assert_cost(book.cost("gemini-3-pro-preview", usage, at=AT), 200_000 * 2 / M)


def test_audio_input_on_flash_lite(book: PriceBook) -> None:
    usage = Usage(
        prompt_tokens=10_000,
        cached_tokens=2_000,
        candidates_tokens=100,
        prompt_by_modality={"text": 4_000, "audio": 6_000},
        cached_by_modality={"audio": 2_000},
    )
    cost = book.cost("gemini-2.5-flash-lite", usage, at=AT)
    text = 4_000 * 0.10 / M  # 0.0004
    audio = 4_000 * 0.30 / M  # 6,000 audio - 2,000 of them cached = 0.0012
    cached_audio = 2_000 * 0.03 / M  # 0.00006
    output = 100 * 0.40 / M  # 0.00004
    assert_cost(
        cost,
        0.0017,
        {"input": text + audio, "cached_input": cached_audio, "output": output},
    )
    assert cost is not None
    by_modality = dict(cost.by_modality)
    assert close(by_modality["text"], text)
    assert close(by_modality["audio"], audio + cached_audio)


@pytest.mark.parametrize(
    ("model", "text_rate", "audio_rate"),
    [
        ("gemini-2.5-flash", 0.30, 1.00),
        ("gemini-2.5-flash-lite", 0.10, 0.30),
        ("gemini-2.0-flash", 0.10, 0.70),
        ("gemini-3-flash-preview", 0.50, 1.00),
    ],
)
def test_audio_rate_per_model(
    book: PriceBook, model: str, text_rate: float, audio_rate: float
) -> None:
    usage = Usage(prompt_tokens=10_000, prompt_by_modality={"text": 4_000, "audio": 6_000})
    expected = 4_000 * text_rate / M + 6_000 * audio_rate / M
    assert_cost(book.cost(model, usage, at=AT), expected)


def test_audio_has_no_own_rate_on_pro(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=10_000, prompt_by_modality={"text": 4_000, "audio": 6_000})
    assert_cost(book.cost("gemini-2.5-pro", usage, at=AT), 10_000 * 1.25 / M)


def test_tool_use_prompt_tokens_bill_as_input(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000, tool_use_prompt_tokens=3_000, candidates_tokens=200)
    cost = book.cost("gemini-2.5-flash", usage, at=AT)
    # 1,000 x 0.30 + 3,000 x 0.30 + 200 x 2.50 = 0.0003 + 0.0009 + 0.0005
    assert_cost(cost, 0.0017, {"input": 0.0003, "tool_use_input": 0.0009, "output": 0.0005})
    # Tool-use tokens reported as audio take the audio rate: 2,000 x 0.30 + 1,000 x 1.00
    usage = dataclasses.replace(usage, tool_use_by_modality={"text": 2_000, "audio": 1_000})
    assert_cost(
        book.cost("gemini-2.5-flash", usage, at=AT),
        0.0003 + 0.0016 + 0.0005,
        {"input": 0.0003, "tool_use_input": 0.0016, "output": 0.0005},
    )


def test_unreported_output_in_total_bills_as_output(book: PriceBook) -> None:
    # totalTokenCount 1,500 but only 1,000 prompt tokens itemised: 500 are output.
    usage = Usage(prompt_tokens=1_000, total_tokens=1_500)
    assert_cost(book.cost("gemini-2.5-flash", usage, at=AT), 0.0003 + 500 * 2.50 / M)
    # A total below the itemised sum changes nothing.
    usage = dataclasses.replace(FLASH_USAGE, total_tokens=5)
    assert_cost(book.cost("gemini-2.5-flash", usage, at=AT), FLASH_TOTAL)


def test_embedding_input_only(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=20_000)
    assert_cost(book.cost("gemini-embedding-001", usage, at=AT), 20_000 * 0.15 / M, None)


def test_model_without_caching_bills_cached_tokens_as_input(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=10_000, cached_tokens=4_000, candidates_tokens=1_000)
    # 2.0 Flash-Lite has no cache price: 10,000 x 0.075 + 1,000 x 0.30
    cost = book.cost("gemini-2.0-flash-lite", usage, at=AT)
    assert_cost(cost, 0.00075 + 0.0003, {"input": 0.00075, "output": 0.0003})


# --- tiers and traffic types ------------------------------------------------------------------


def test_free_tier_bills_nothing_but_keeps_the_list_price(book: PriceBook) -> None:
    cost = book.cost("gemini-2.5-flash", FLASH_USAGE, tier="free", at=AT)
    assert cost is not None
    assert cost.total == 0.0
    assert cost.components == ()
    assert close(cost.list_total, FLASH_TOTAL)
    assert dict(cost.list_components).keys() == {"input", "cached_input", "output"}
    # Free tier on flex traffic: the list figure is the flex figure.
    flex = book.cost("gemini-2.5-flash", FLASH_USAGE, tier="free", traffic_type="ON_DEMAND_FLEX")
    assert flex is not None and flex.total == 0.0 and close(flex.list_total, FLASH_TOTAL / 2)


@pytest.mark.parametrize("tier", [None, "unknown", "tier_1", "tier_2", "tier_3", "tier_9"])
def test_paid_and_unknown_tiers_bill_pay_as_you_go(book: PriceBook, tier: str | None) -> None:
    assert_cost(book.cost("gemini-2.5-flash", FLASH_USAGE, tier=tier, at=AT), FLASH_TOTAL)


@pytest.mark.parametrize("traffic", [None, "ON_DEMAND", "TRAFFIC_TYPE_UNSPECIFIED", "NEW_KIND"])
def test_standard_traffic(book: PriceBook, traffic: str | None) -> None:
    # Unrecognised values price as standard: a new enum value must not drop cost.
    assert_cost(book.cost("gemini-2.5-flash", FLASH_USAGE, traffic_type=traffic), FLASH_TOTAL)


def test_flex_is_half_of_standard(book: PriceBook) -> None:
    cost = book.cost("gemini-2.5-flash", FLASH_USAGE, traffic_type="ON_DEMAND_FLEX", at=AT)
    # 0.0018/2 + 0.00012/2 + 0.005/2 (cache reads halved too: documented assumption)
    assert_cost(cost, 0.00346, {"input": 0.0009, "cached_input": 0.00006, "output": 0.0025})
    assert cost is not None and cost.list_total == cost.total


def test_traffic_type_defaults_to_the_usage_record(book: PriceBook) -> None:
    usage = dataclasses.replace(FLASH_USAGE, traffic_type="ON_DEMAND_FLEX")
    assert_cost(book.cost("gemini-2.5-flash", usage, at=AT), 0.00346)
    # An explicit argument wins over the record.
    assert_cost(book.cost("gemini-2.5-flash", usage, traffic_type="ON_DEMAND", at=AT), FLASH_TOTAL)


def test_priority_uses_the_published_multiplier(book: PriceBook) -> None:
    cost = book.cost("gemini-2.5-flash", FLASH_USAGE, traffic_type="ON_DEMAND_PRIORITY", at=AT)
    # 1.8 x (0.0018 + 0.00012 + 0.005) = 0.003240 + 0.000216 + 0.009
    assert_cost(cost, 0.012456, {"input": 0.00324, "cached_input": 0.000216, "output": 0.009})
    usage = Usage(prompt_tokens=100_000, candidates_tokens=1_000)
    cost = book.cost("gemini-2.5-pro", usage, traffic_type="ON_DEMAND_PRIORITY", at=AT)
    assert_cost(cost, 1.8 * 0.135)


def test_priority_default_multiplier_is_a_marked_assumption(book: PriceBook) -> None:
    extras = json.loads(
        Path(pricing.__file__).with_name("data").joinpath("gemini_prices.json").read_text()
    )
    priority = extras["traffic_classes"]["priority"]
    assert priority["default_multiplier"] == 1.8 and priority["default_is_assumption"] is True
    assert "priority_multiplier" not in extras["models"]["gemini-2.5-flash-lite"]
    usage = Usage(prompt_tokens=M)
    cost = book.cost("gemini-2.5-flash-lite", usage, traffic_type="ON_DEMAND_PRIORITY", at=AT)
    assert_cost(cost, 1.8 * 0.10)


def test_provisioned_throughput_is_prepaid(book: PriceBook) -> None:
    cost = book.cost("gemini-2.5-flash", FLASH_USAGE, traffic_type="PROVISIONED_THROUGHPUT", at=AT)
    assert cost is not None
    assert cost.total == 0.0 and cost.components == ()
    assert close(cost.list_total, FLASH_TOTAL)


@pytest.mark.parametrize("at", [AT, datetime(2026, 6, 1, tzinfo=UTC)])
def test_batch_is_half_price_without_cache_discount(book: PriceBook, at: datetime) -> None:
    # From 2026-10-14 genai-prices carries batch rates; before that our 50% rule gives the same.
    cost = book.cost("gemini-2.5-flash", FLASH_USAGE, traffic_type="batch", at=at)
    # 6,000 x 0.15 + 4,000 x 0.03 (not discounted) + 2,000 x 1.25
    assert_cost(cost, 0.00352, {"input": 0.0009, "cached_input": 0.00012, "output": 0.0025})


# --- model names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "gemini-2.5-flash",
        "models/gemini-2.5-flash",
        "publishers/google/models/gemini-2.5-flash",
        "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash-001",
        "gemini-2.5-flash-001",
        "gemini-2.5-flash@001",
        " GEMINI-2.5-Flash ",
        "gemini-2.5-flash-preview-09-2025",
    ],
)
def test_flash_name_variants(book: PriceBook, name: str) -> None:
    assert book.can_price(name)
    assert_cost(book.cost(name, FLASH_USAGE, at=AT), FLASH_TOTAL)


@pytest.mark.parametrize(
    "name",
    [
        "gemini-2.5-flash-lite",
        "models/gemini-2.5-flash-lite",
        "gemini-2.5-flash-lite-001",
        "gemini-2.5-flash-lite-preview-09-2025",
    ],
)
def test_flash_lite_never_gets_flash_prices(book: PriceBook, name: str) -> None:
    # 6,000 x 0.10 + 4,000 x 0.01 + 2,000 x 0.40
    assert_cost(book.cost(name, FLASH_USAGE, at=AT), 0.0006 + 0.00004 + 0.0008)


@pytest.mark.parametrize(
    "name",
    [
        "gemini-unknown-9",
        "text-embedding-004",
        "tunedModels/my-tuned-model",
        "",
        # genai-prices matches these with a loose `contains` rule to another model's prices:
        "gemini-2.0-flash-exp-image-generation",  # 'contains gemini-2.0-flash-exp' -> 2.0 Flash
        "gemini-1.5-flash-8b",  # 'contains gemini-1.5-flash' -> 1.5 Flash
        "gemini-3.6-flash-lite",  # 'starts with gemini-3.6-flash' -> 3.6 Flash
    ],
)
def test_unknown_models_are_not_priced(book: PriceBook, name: str) -> None:
    assert book.cost(name, FLASH_USAGE, at=AT) is None
    assert not book.can_price(name)


def test_genai_prices_loose_matches_we_refuse() -> None:
    google = genai_prices.data_snapshot.get_snapshot().find_provider(None, "google", None)
    assert google.find_model("gemini-1.5-flash-8b").id == "gemini-1.5-flash"
    assert google.find_model("gemini-2.0-flash-exp-image-generation").id == "gemini-2.0-flash"
    assert google.find_model("models/gemini-2.5-flash") is None


def test_2_0_flash_versions(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=M, candidates_tokens=M)
    assert_cost(book.cost("gemini-2.0-flash-001", usage, at=AT), 0.10 + 0.40)
    assert_cost(book.cost("gemini-2.0-flash-lite-001", usage, at=AT), 0.075 + 0.30)


# --- date-bounded prices ----------------------------------------------------------------------

# genai-prices: gemini-4-argon is 2 / 10 until 2026-11-30 and 4 / 20 from 2026-12-01 (UTC).
ARGON_USAGE = Usage(prompt_tokens=M, candidates_tokens=100_000)
ARGON_BEFORE = 2.0 + 1.0
ARGON_AFTER = 4.0 + 2.0


def test_date_bounded_price(book: PriceBook) -> None:
    before = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    after = datetime(2026, 12, 1, tzinfo=UTC)
    assert_cost(book.cost("gemini-4-argon", ARGON_USAGE, at=before), ARGON_BEFORE)
    assert_cost(book.cost("gemini-4-argon", ARGON_USAGE, at=after), ARGON_AFTER)
    assert_cost(book.cost("gemini-4-argon", ARGON_USAGE, at=before), ARGON_BEFORE)
    # Naive datetimes are UTC; aware ones are converted.
    assert_cost(book.cost("gemini-4-argon", ARGON_USAGE, at=datetime(2026, 12, 1)), ARGON_AFTER)
    eastern = timezone(timedelta(hours=-5))
    late_evening = datetime(2026, 11, 30, 20, 0, tzinfo=eastern)  # 2026-12-01 01:00 UTC
    assert_cost(book.cost("gemini-4-argon", ARGON_USAGE, at=late_evening), ARGON_AFTER)


def test_prices_resolve_once_per_validity_window(monkeypatch: pytest.MonkeyPatch) -> None:
    book = PriceBook.load()
    calls: list[str] = []
    resolve = book._resolve

    def counting(model: str, ts: float) -> Any:
        calls.append(model)
        return resolve(model, ts)

    monkeypatch.setattr(book, "_resolve", counting)
    for day in (1, 5, 20, 30):
        book.cost("gemini-4-argon", ARGON_USAGE, at=datetime(2026, 11, day, tzinfo=UTC))
    assert calls == ["gemini-4-argon"]  # one window: up to 2026-12-01
    book.cost("gemini-4-argon", ARGON_USAGE, at=datetime(2026, 12, 2, tzinfo=UTC))
    book.cost("gemini-4-argon", ARGON_USAGE, at=datetime(2027, 3, 2, tzinfo=UTC))
    assert len(calls) == 2
    for _ in range(3):
        book.cost("no-such-model", ARGON_USAGE)
    assert calls.count("no-such-model") == 1  # misses are remembered too


# --- user overrides ---------------------------------------------------------------------------


def write(tmp_path: Path, doc: Any, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


OVERRIDES = {
    "version": "acme-2026-10",
    "notes": ["negotiated"],
    "models": {
        "gemini-2.5-flash": {"input": 0.20, "cached_input": 0.02, "output": 2.00},
        "models/Gemini-9-Ultra": {
            "input": 5.0,
            "cached_input": 0.5,
            "output": 20.0,
            "priority_multiplier": 1.5,
            "notes": "not in genai-prices yet",
            "long_context": {"above_prompt_tokens": 100_000, "input": 10.0, "output": 40.0},
        },
    },
}


@pytest.fixture
def override_book(tmp_path: Path) -> PriceBook:
    return PriceBook.load(write(tmp_path, OVERRIDES))


def test_override_adds_a_new_model(override_book: PriceBook) -> None:
    usage = Usage(prompt_tokens=10_000, cached_tokens=2_000, candidates_tokens=1_000)
    cost = override_book.cost("gemini-9-ultra", usage)
    # 8,000 x 5 + 2,000 x 0.5 + 1,000 x 20 = 0.04 + 0.001 + 0.02
    assert_cost(cost, 0.061, {"input": 0.04, "cached_input": 0.001, "output": 0.02})
    assert cost is not None
    assert cost.prices_version.endswith("; overrides acme-2026-10 (prices.json)")
    # Long context: 100,001 > 100,000 -> 10 / 40; cached input keeps its 0.5.
    usage = Usage(prompt_tokens=100_001, cached_tokens=1, candidates_tokens=1_000)
    assert_cost(override_book.cost("gemini-9-ultra", usage), 100_000 * 10 / M + 0.5 / M + 0.04)
    usage = Usage(prompt_tokens=100_000, candidates_tokens=1_000)
    assert_cost(override_book.cost("gemini-9-ultra", usage), 0.5 + 0.02)
    # Its own priority multiplier.
    usage = Usage(prompt_tokens=10_000)
    cost = override_book.cost("gemini-9-ultra", usage, traffic_type="ON_DEMAND_PRIORITY")
    assert_cost(cost, 1.5 * 0.05)


@pytest.mark.parametrize(
    "name",
    ["gemini-2.5-flash", "models/gemini-2.5-flash-001", "gemini-2.5-flash-preview-09-2025"],
)
def test_override_negotiated_rate_wins(override_book: PriceBook, name: str) -> None:
    cost = override_book.cost(name, FLASH_USAGE, at=AT)
    # 6,000 x 0.20 + 4,000 x 0.02 + 2,000 x 2.00
    assert_cost(cost, 0.0012 + 0.00008 + 0.004)
    # Traffic rules still apply on top: flex halves it, 2.5 Flash priority is 1.8x.
    flex = override_book.cost(name, FLASH_USAGE, traffic_type="ON_DEMAND_FLEX", at=AT)
    assert_cost(flex, (0.0012 + 0.00008 + 0.004) / 2)
    prio = override_book.cost(name, FLASH_USAGE, traffic_type="ON_DEMAND_PRIORITY", at=AT)
    assert_cost(prio, (0.0012 + 0.00008 + 0.004) * 1.8)


def test_override_leaves_other_models_alone(override_book: PriceBook) -> None:
    assert_cost(override_book.cost("gemini-2.5-flash-lite", FLASH_USAGE, at=AT), 0.00144)
    usage = Usage(prompt_tokens=100_000)
    assert_cost(override_book.cost("gemini-2.5-pro", usage, at=AT), 100_000 * 1.25 / M)


def test_override_modality_rates(tmp_path: Path) -> None:
    doc = {
        "version": "v1",
        "models": {
            "gemini-2.5-flash": {
                "input": 0.30,
                "output": 2.50,
                "cached_input": 0.03,
                "input_audio": 1.00,
                "cached_input_audio": 0.10,
                "output_image": 30.0,
            }
        },
    }
    book = PriceBook.load(write(tmp_path, doc))
    usage = Usage(
        prompt_tokens=10_000,
        cached_tokens=3_000,
        candidates_tokens=1_500,
        prompt_by_modality={"text": 5_000, "audio": 5_000},
        cached_by_modality={"text": 1_000, "audio": 2_000},
        candidates_by_modality={"text": 210, "image": 1_290},
    )
    # text 4,000 x 0.30 + audio 3,000 x 1.00; cached text 1,000 x 0.03 + audio 2,000 x 0.10;
    # output 210 x 2.50 + 1,290 x 30.
    assert_cost(
        book.cost("gemini-2.5-flash", usage),
        0.0012 + 0.003 + 0.00003 + 0.0002 + 0.000525 + 0.0387,
        {"input": 0.0042, "cached_input": 0.00023, "output": 0.039225},
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[]", "top level must be a JSON object"),
        ({"models": {}}, "'version' must be a non-empty string"),
        ({"version": "v", "models": {}, "extra": 1}, "top level: unknown key(s) 'extra'"),
        ({"version": "v"}, "'models' must be an object"),
        ({"version": "v", "models": []}, "'models' must be an object"),
        ({"version": "v", "models": {"m": 1.0}}, "models.m: must be an object"),
        ({"version": "v", "models": {"m": {"output": 1}}}, "models.m: 'input'"),
        ({"version": "v", "models": {"m": {"input": 1, "inptu": 2}}}, "unknown key(s) 'inptu'"),
        ({"version": "v", "models": {"m": {"input": -1}}}, "models.m.input: must be a non-neg"),
        ({"version": "v", "models": {"m": {"input": "0.3"}}}, "models.m.input: must be a non-neg"),
        ({"version": "v", "models": {"m": {"input": True}}}, "models.m.input: must be a non-neg"),
        ({"version": "v", "models": {"m": {"input": None}}}, "models.m.input: must be a non-neg"),
        ('{"version": "v", "models": {"m": {"input": NaN}}}', "models.m.input: must be a non-neg"),
        (
            {"version": "v", "models": {"m": {"input": 1, "cached_input_audio": 0.1}}},
            "cached_input_audio: needs 'cached_input'",
        ),
        (
            {"version": "v", "models": {"m": {"input": 1, "priority_multiplier": 0}}},
            "priority_multiplier: must be a number > 0",
        ),
        (
            {"version": "v", "models": {"m": {"input": 1, "long_context": {"input": 2}}}},
            "long_context.above_prompt_tokens: must be an integer",
        ),
        (
            {
                "version": "v",
                "models": {"m": {"input": 1, "long_context": {"above_prompt_tokens": 1.5}}},
            },
            "long_context.above_prompt_tokens: must be an integer",
        ),
        (
            {"version": "v", "models": {"m": {"input": 1, "long_context": {"above": 1}}}},
            "long_context: unknown key(s) 'above'",
        ),
        (
            {
                "version": "v",
                "models": {"m": {"input": 1, "long_context": {"above_prompt_tokens": 5}}},
            },
            "long_context: gives no prices",
        ),
        (
            {"version": "v", "models": {"gemini-x": {"input": 1}, "models/gemini-x": {"input": 2}}},
            "duplicates another entry",
        ),
        ({"version": "v", "notes": 5, "models": {}}, "notes: must be a string"),
    ],
)
def test_bad_prices_file(tmp_path: Path, doc: Any, message: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(PricesFileError) as info:
        PriceBook.load(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_unreadable_prices_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(PricesFileError, match="cannot read prices file"):
        PriceBook.load(missing)
    with pytest.raises(PricesFileError, match="cannot read prices file"):
        PriceBook.load(tmp_path)  # a directory
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PricesFileError, match="not UTF-8"):
        PriceBook.load(binary)
    assert issubclass(PricesFileError, ValueError)


def test_docstring_example_is_a_valid_prices_file(tmp_path: Path) -> None:
    doc = pricing.__doc__ or ""
    start = doc.index("    {\n")
    end = doc.index("\n    }\n", start) + len("\n    }\n")
    book = PriceBook.load(write(tmp_path, doc[start:end]))
    assert book.can_price("gemini-9-pro-preview")
    assert "overrides acme-2026-10" in book.prices_version


# --- helpers off the per-call path --------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "tokens", "hours", "expected"),
    [
        ("gemini-2.5-pro", 100_000, 2, 0.1 * 4.50 * 2),
        ("gemini-2.5-flash", M, 1, 1.00),
        ("models/gemini-2.5-flash-lite-001", 500_000, 3, 0.5 * 1.00 * 3),
        ("gemini-2.0-flash", M, 0.5, 0.5),
        ("gemini-3-pro-preview", 250_000, 4, 0.25 * 4.50 * 4),
        ("gemini-3-flash-preview-12-2025", M, 1, 1.00),
        ("gemini-2.5-pro", 0, 10, 0.0),
    ],
)
def test_cache_storage_cost(model: str, tokens: int, hours: float, expected: float) -> None:
    result = cache_storage_cost(model, tokens, hours)
    assert result is not None and close(result, expected)


def test_cache_storage_cost_unknown() -> None:
    assert cache_storage_cost("gemini-2.0-flash-lite", M, 1) is None  # no caching
    assert cache_storage_cost("gemini-unknown", M, 1) is None
    with pytest.raises(ValueError):
        cache_storage_cost("gemini-2.5-pro", -1, 1)


@pytest.mark.parametrize(
    ("family", "prompts", "expected"),
    [
        ("gemini-2.5", 1_500, 0.0),  # 1,500 a day free
        ("gemini-2.5", 1_501, 0.035),  # then $35 per 1,000
        ("gemini-2.5", 2_500, 35.0),
        ("gemini-2.5-flash-lite", 2_000, 17.5),
        ("models/gemini-2.5-pro", 11_500, 350.0),
        ("gemini-3", 5_000, 0.0),  # 5,000 a month free
        ("gemini-3", 6_000, 14.0),  # then $14 per 1,000
        ("gemini-3-pro-preview", 7_000, 28.0),
        ("gemini-3.1-flash-lite", 5_500, 7.0),
        ("gemini-3", 0, 0.0),
    ],
)
def test_grounding_cost(family: str, prompts: int, expected: float) -> None:
    assert close(grounding_cost(family, prompts), expected)


def test_grounding_cost_unknown_family() -> None:
    with pytest.raises(ValueError, match="no grounding price"):
        grounding_cost("gemini-1.5", 10)
    with pytest.raises(ValueError):
        grounding_cost("gemini-2.5", -1)


# --- faithful to genai-prices -----------------------------------------------------------------


def metadata(**fields: Any) -> dict[str, Any]:
    """A usageMetadata dict as the API sends it; totalTokenCount is the sum of the parts."""
    meta = {k: v for k, v in fields.items() if v}
    meta["totalTokenCount"] = sum(
        meta.get(k, 0)
        for k in (
            "promptTokenCount",
            "toolUsePromptTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
        )
    )
    return meta


def details(**counts: int) -> list[dict[str, Any]]:
    return [{"modality": m.upper(), "tokenCount": n} for m, n in counts.items()]


USAGES = {
    "text": metadata(promptTokenCount=12_345, candidatesTokenCount=678, thoughtsTokenCount=901),
    "cached_audio": metadata(
        promptTokenCount=50_000,
        promptTokensDetails=details(text=30_000, audio=20_000),
        cachedContentTokenCount=10_000,
        cacheTokensDetails=details(text=6_000, audio=4_000),
        candidatesTokenCount=1_000,
        thoughtsTokenCount=500,
    ),
    "tool_use": metadata(
        promptTokenCount=3_000,
        toolUsePromptTokenCount=7_000,
        toolUsePromptTokensDetails=details(text=5_000, audio=2_000),
        candidatesTokenCount=100,
    ),
    "long": metadata(
        promptTokenCount=250_000,
        cachedContentTokenCount=100_000,
        candidatesTokenCount=5_000,
        thoughtsTokenCount=2_000,
    ),
    "cliff_at": metadata(promptTokenCount=199_990, toolUsePromptTokenCount=10),
    "cliff_above": metadata(promptTokenCount=199_991, toolUsePromptTokenCount=10),
    "media": metadata(
        promptTokenCount=4_000,
        promptTokensDetails=details(text=1_000, image=1_500, document=500, video=1_000),
        candidatesTokenCount=1_340,
        candidatesTokensDetails=details(text=50, image=1_290),
    ),
}
MODELS = [
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-pro",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-3.1-pro-preview",
    "gemini-3.1-flash-lite",
    "gemini-2.5-flash-image",
    "gemini-3.1-flash-live-preview",
    "gemini-embedding-2",
    "gemini-1.5-flash",
    "gemini-4-argon",
    "gemini-3.6-flash",
]
WHEN = [datetime(2026, 6, 1, tzinfo=UTC), AT, datetime(2027, 2, 1, tzinfo=UTC)]


def genai_prices_total(model: str, meta: dict[str, Any], at: datetime, **kw: Any) -> float:
    extracted = genai_prices.extract_usage(
        {"modelVersion": model, "usageMetadata": meta}, provider_id="google"
    )
    return float(extracted.calc_price(genai_request_timestamp=at, **kw).total_price)


def our_usage(meta: dict[str, Any]) -> Usage:
    response = types.GenerateContentResponse.model_validate({"usageMetadata": meta})
    usage = usage_from_metadata(response.usage_metadata)
    assert usage is not None
    return usage


@pytest.mark.parametrize("at", WHEN, ids=lambda d: d.date().isoformat())
@pytest.mark.parametrize("usage_name", list(USAGES))
@pytest.mark.parametrize("model", MODELS)
def test_equals_genai_prices(book: PriceBook, model: str, usage_name: str, at: datetime) -> None:
    meta = USAGES[usage_name]
    cost = book.cost(model, our_usage(meta), at=at)
    assert cost is not None
    assert close(cost.total, genai_prices_total(model, meta, at))


@pytest.mark.parametrize("usage_name", list(USAGES))
@pytest.mark.parametrize(
    "model", ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3.1-flash-lite", "gemini-4-argon"]
)
def test_batch_equals_genai_prices_variant(book: PriceBook, model: str, usage_name: str) -> None:
    meta = USAGES[usage_name]
    cost = book.cost(model, our_usage(meta), traffic_type="batch", at=AT)
    expected = genai_prices_total(model, meta, AT, price_context={"processing": "batch"})
    assert cost is not None and close(cost.total, expected)


@pytest.mark.parametrize(
    ("traffic", "context"),
    [
        ("ON_DEMAND_FLEX", {"service_tier": "flex"}),
        ("ON_DEMAND_PRIORITY", {"service_tier": "priority"}),
    ],
)
def test_genai_prices_flex_and_priority_variants_win(
    book: PriceBook, traffic: str, context: dict[str, str]
) -> None:
    # genai-prices carries flex/priority rates for the Gemini 3.8 TTS models: use them.
    meta = USAGES["text"]
    expected = genai_prices_total("gemini-3.8-flash-tts", meta, AT, price_context=context)
    if expected == genai_prices_total("gemini-3.8-flash-tts", meta, AT):
        # An older genai-prices (0.1.x, the last for Python 3.10) has no such variant.
        pytest.skip(f"genai-prices {genai_prices.__version__} has no {traffic} rates for it")
    cost = book.cost("gemini-3.8-flash-tts", our_usage(meta), traffic_type=traffic, at=AT)
    assert cost is not None and close(cost.total, expected)
    # Flex: 12,345 x 0.25 + 1,579 x 4.5 per 1M (introductory rates, 2026-10-15 to 2026-12-31)
    if traffic == "ON_DEMAND_FLEX":
        assert close(cost.total, 12_345 * 0.25 / M + 1_579 * 4.5 / M)


# --- completeness ------------------------------------------------------------------------------

FULL = Usage(
    prompt_tokens=10_000,
    cached_tokens=2_000,
    candidates_tokens=1_000,
    thoughts_tokens=500,
    tool_use_prompt_tokens=1_000,
    total_tokens=12_500,
    traffic_type=None,
    prompt_by_modality={"text": 10_000},
    cached_by_modality={"text": 2_000},
    candidates_by_modality={"text": 1_000},
    tool_use_by_modality={"text": 1_000},
)
PERTURB = {
    "prompt_tokens": 11_000,
    "cached_tokens": 3_000,
    "candidates_tokens": 2_000,
    "thoughts_tokens": 1_500,
    "tool_use_prompt_tokens": 2_000,
    "total_tokens": 13_500,
    "traffic_type": "ON_DEMAND_FLEX",
    "prompt_by_modality": {"text": 9_000, "audio": 1_000},
    "cached_by_modality": {"text": 1_000, "audio": 1_000},
    "candidates_by_modality": {"text": 500, "image": 500},
    "tool_use_by_modality": {"text": 500, "audio": 500},
}


def test_every_usage_field_changes_the_price(tmp_path: Path) -> None:
    assert PERTURB.keys() == {f.name for f in dataclasses.fields(Usage)}, (
        "a Usage field is not covered by pricing: price it and add it here"
    )
    doc = {
        "version": "complete",
        "models": {
            "all-units": {
                "input": 1.0,
                "cached_input": 0.1,
                "output": 4.0,
                "input_audio": 3.0,
                "cached_input_audio": 0.3,
                "output_image": 30.0,
            }
        },
    }
    book = PriceBook.load(write(tmp_path, doc))
    base = book.cost("all-units", FULL)
    assert base is not None
    for name, value in PERTURB.items():
        changed = book.cost("all-units", dataclasses.replace(FULL, **{name: value}))
        assert changed is not None
        assert not close(changed.list_total, base.list_total), name


# --- robustness ---------------------------------------------------------------------------------


def test_inconsistent_usage_never_raises_or_goes_negative(book: PriceBook) -> None:
    odd = Usage(
        prompt_tokens=100,
        cached_tokens=500,  # more cached than prompt
        prompt_by_modality={"audio": 900},  # more than the prompt
        cached_by_modality={"audio": 700, "text": 10},
        tool_use_prompt_tokens=5,
        tool_use_by_modality={"audio": 50},
        candidates_by_modality={"image": 5},
    )
    for model in ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash-lite"):
        cost = book.cost(model, odd, traffic_type="ON_DEMAND_PRIORITY", tier="free")
        assert cost is not None
        assert cost.total == 0.0 and cost.list_total >= 0.0
        assert all(v >= 0 for _, v in cost.list_components + cost.by_modality)


def test_zero_usage_costs_zero(book: PriceBook) -> None:
    cost = book.cost("gemini-2.5-flash", Usage())
    assert cost is not None and cost.total == 0.0 and cost.components == ()


def test_free_of_charge_models_price_as_zero(book: PriceBook) -> None:
    # genai-prices lists Gemma on the Gemini API with an empty (free) price table.
    cost = book.cost("gemma-3-27b-it", FLASH_USAGE)
    assert cost is not None and cost.list_total == 0.0


def test_load_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access during price loading")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    book = PriceBook.load()
    assert book.cost("gemini-2.5-pro", FLASH_USAGE) is not None
