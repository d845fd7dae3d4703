"""The per-model, per-tier limit table: seed 004's numbers, name matching, overrides."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from opentelemetry.instrumentation.gemini.quota import limits as limits_mod
from opentelemetry.instrumentation.gemini.quota.limits import (
    TIERS,
    LimitsFileError,
    LimitTable,
    TierLimits,
)

M = 1_000_000
B = 1_000_000_000


@pytest.fixture(scope="module")
def table() -> LimitTable:
    return LimitTable.load()


def raw_data() -> dict:
    ref = resources.files("opentelemetry.instrumentation.gemini.quota").joinpath("data/limits.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def test_table_is_dated_and_sourced(table: LimitTable) -> None:
    assert table.version == "2026-11-23"
    assert table.checked == "2026-11-23"
    assert table.source == "https://ai.google.dev/gemini-api/docs/rate-limits"


# (model, tier, (rpm, tpm, rpd, batch_enqueued_tokens)), read off seed 004 by hand.
SEED_CELLS = [
    ("gemini-2.5-pro", "free", (2, 125_000, 50, None)),
    ("gemini-2.5-pro", "tier_1", (150, 2 * M, 10_000, 5 * M)),
    ("gemini-2.5-pro", "tier_2", (1000, 5 * M, 50_000, 500 * M)),
    ("gemini-2.5-pro", "tier_3", (2000, 8 * M, None, B)),
    ("gemini-2.5-flash", "tier_1", (1000, M, 10_000, 3 * M)),
    ("gemini-2.5-flash", "tier_2", (2000, 3 * M, 100_000, 400 * M)),
    ("gemini-2.5-flash", "tier_3", (10_000, 8 * M, None, B)),
    ("gemini-2.5-flash-preview-09-2025", "free", (10, 250_000, 250, None)),
    ("gemini-2.5-flash-lite", "free", (15, 250_000, 1000, None)),
    ("gemini-2.5-flash-lite", "tier_1", (4000, 4 * M, None, 10 * M)),
    ("gemini-2.5-flash-lite", "tier_2", (10_000, 10 * M, None, 500 * M)),
    ("gemini-2.5-flash-lite", "tier_3", (30_000, 30 * M, None, B)),
    ("gemini-2.0-flash", "free", (15, M, 200, None)),
    ("gemini-2.0-flash", "tier_3", (30_000, 30 * M, None, 5 * B)),
    ("gemini-2.0-flash-lite", "tier_2", (20_000, 10 * M, None, B)),
    ("gemini-2.5-flash-preview-tts", "free", (3, 10_000, 15, None)),
    ("gemini-2.5-pro-preview-tts", "tier_2", (100, 25_000, 1000, None)),
    ("gemini-2.5-flash-image", "tier_2", (2000, 1_500_000, 50_000, None)),
    ("gemini-2.0-flash-preview-image-generation", "tier_1", (1000, M, 10_000, None)),
    ("imagen-4.0-generate-001", "tier_3", (20, None, 15_000, None)),
    ("imagen-4.0-ultra-generate-001", "tier_2", (10, None, 400, None)),
    ("imagen-3.0-generate-002", "tier_1", (20, None, None, None)),
    ("veo-3.1-generate-preview", "tier_1", (2, None, 10, None)),
    ("veo-3.0-fast-generate-001", "tier_3", (10, None, 500, None)),
    ("veo-2.0-generate-001", "tier_3", (2, None, 50, None)),
    ("gemma-3-27b-it", "free", (30, 15_000, 14_400, None)),
    ("gemma-3n-e4b-it", "tier_3", (30, 15_000, 14_400, None)),
    ("gemini-embedding-001", "free", (100, 30_000, 1000, None)),
    ("gemini-embedding-001", "tier_3", (10_000, 10 * M, None, None)),
    ("gemini-robotics-er-1.5-preview", "tier_2", (400, 3 * M, 100_000, None)),
    ("gemini-robotics-er-1.5-preview", "tier_3", (600, 8 * M, None, B)),
    ("gemini-2.5-computer-use-preview-10-2025", "tier_1", (150, 2 * M, 10_000, None)),
    ("gemini-1.5-flash-8b", "free", (15, 250_000, 50, None)),
    ("gemini-1.5-pro-002", "tier_2", (1000, 4 * M, None, None)),
]


@pytest.mark.parametrize(("model", "tier", "expected"), SEED_CELLS)
def test_seed_004_cells(table: LimitTable, model: str, tier: str, expected: tuple) -> None:
    assert table.lookup(model, tier) == TierLimits(*expected)


def test_free_tier_flash_rpd_follows_the_dec_2025_cut(table: LimitTable) -> None:
    assert table.lookup("gemini-2.5-flash", "free") == TierLimits(10, 250_000, 20, None)
    note = raw_data()["families"]["gemini-2.5-flash"]["limits"]["free"]["note"]
    assert "250" in note and "Dec 2025" in note


def test_star_is_none_never_zero(table: LimitTable) -> None:
    lite = table.lookup("gemini-2.5-flash-lite", "tier_1")
    assert lite is not None and lite.rpd is None
    imagen = table.lookup("imagen-4.0-generate-001", "tier_1")
    assert imagen is not None and imagen.tpm is None
    for _family, _tier, limits in table.rows():
        assert 0 not in (limits.rpm, limits.tpm, limits.rpd, limits.batch_enqueued_tokens)


@pytest.mark.parametrize(
    "model", ["gemini-live-2.5-flash-preview", "gemini-2.0-flash-live-001", "gemini-2.5-flash-live"]
)
@pytest.mark.parametrize("tier", TIERS)
def test_live_api_sessions_are_not_rpm(table: LimitTable, model: str, tier: str) -> None:
    limits = table.lookup(model, tier)
    assert limits is not None
    assert limits.rpm is None
    assert limits.tpm is not None


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
        (
            "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash",
            "gemini-2.5-flash",
        ),
        (" Gemini-2.5-Flash ", "gemini-2.5-flash"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("gemini-2.5-flash-latest", "gemini-2.5-flash"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash-preview"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash-preview"),
        ("gemini-2.5-flash-preview-tts", "gemini-2.5-flash-preview-tts"),
        ("gemini-2.5-flash-image-preview", "gemini-2.5-flash-image"),
        ("gemini-2.5-flash-preview-native-audio-dialog", "gemini-2.5-flash-native-audio"),
        ("gemini-2.5-flash-native-audio-preview-09-2025", "gemini-2.5-flash-native-audio"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
        ("gemini-2.5-pro-preview-tts", "gemini-2.5-pro-preview-tts"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
        ("gemini-2.0-flash-exp-image-generation", "gemini-2.0-flash-preview-image-generation"),
        ("gemini-embedding-exp-03-07", "gemini-embedding"),
        ("imagen-4.0-fast-generate-001", "imagen-4.0-generate"),
        ("imagen-4.0-ultra-generate-preview-06-06", "imagen-4.0-ultra-generate"),
        ("veo-3.1-fast-generate-preview", "veo-3.1-fast-generate"),
        ("gemma-3-1b-it", "gemma-3"),
        ("gemini-1.5-flash-8b-001", "gemini-1.5-flash-8b"),
        ("gemini-1.5-flash-002", "gemini-1.5-flash"),
    ],
)
def test_name_variants_map_to_their_family(table: LimitTable, model: str, family: str) -> None:
    assert table.family(model) == family


@pytest.mark.parametrize(
    "model",
    [
        "gemini-2.5-flash-lite",
        "models/gemini-2.5-flash-lite",
        "gemini-2.5-flash-lite-001",
        "gemini-2.5-flash-lite-preview-06-17",
        "publishers/google/models/gemini-2.5-flash-lite-preview-09-2025",
    ],
)
@pytest.mark.parametrize("tier", TIERS)
def test_flash_lite_never_gets_the_flash_row(table: LimitTable, model: str, tier: str) -> None:
    assert table.family(model).startswith("gemini-2.5-flash-lite")
    assert table.lookup(model, tier) != table.lookup("gemini-2.5-flash", tier)


@pytest.mark.parametrize(
    "model",
    [
        "gemini-3-pro-preview",
        "gemini-2.5-flashy",  # shares a prefix but not at a dash
        "gemini-2.5-flash-tts",  # a new variant, not a version of 2.5 Flash
        "gemini-2.5",
        "text-embedding-004",
        "tunedModels/my-tuned-model",
        "models/",
        "",
    ],
)
def test_unknown_models(table: LimitTable, model: str) -> None:
    assert table.family(model) is None
    assert table.lookup(model, "tier_1") is None


@pytest.mark.parametrize("tier", [None, "unknown", "tier_4", "Tier_1"])
def test_unknown_tier(table: LimitTable, tier: str | None) -> None:
    assert table.lookup("gemini-2.5-pro", tier) is None


def test_untabled_tier_of_a_known_model_is_none(table: LimitTable) -> None:
    for model in ("imagen-4.0-generate-001", "veo-3.1-generate-preview", "gemini-1.5-pro"):
        assert table.lookup(model, "free") is None
        assert table.lookup(model, "tier_1") is not None


def test_repeat_lookups_are_memoised(table: LimitTable) -> None:
    first = table.lookup("models/gemini-2.5-flash-001", "tier_2")
    assert table.lookup("models/gemini-2.5-flash-001", "tier_2") is first
    assert "models/gemini-2.5-flash-001" in table._by_tier["tier_2"]


def test_memo_is_bounded() -> None:
    fresh = LimitTable.load()
    for i in range(limits_mod._CACHE_MAX + 500):
        assert fresh.lookup(f"junk-model-{i}", "free") is None
    assert len(fresh._family_cache) == limits_mod._CACHE_MAX
    assert len(fresh._by_tier["free"]) == limits_mod._CACHE_MAX
    assert fresh.lookup("gemini-2.5-pro", "free") == TierLimits(2, 125_000, 50, None)


def test_spend_limit_10m(table: LimitTable) -> None:
    assert table.spend_limit_10m("tier_1") == 10.0
    assert table.spend_limit_10m("tier_2") == 50.0
    assert table.spend_limit_10m("tier_3") == 200.0
    assert table.spend_limit_10m("free") is None
    assert table.spend_limit_10m(None) is None
    assert table.spend_limit_10m("unknown") is None


def test_rows(table: LimitTable) -> None:
    rows = list(table.rows())
    assert ("gemini-2.5-pro", "tier_1", TierLimits(150, 2 * M, 10_000, 5 * M)) in rows
    assert {tier for _, tier, _ in rows} == set(TIERS)
    assert len(rows) == len(set((fam, tier) for fam, tier, _ in rows))
    assert ("imagen-4.0-generate", "free") not in {(fam, tier) for fam, tier, _ in rows}
    for fam, tier, limits in rows:
        assert table.lookup(fam, tier) == limits


def test_data_file_is_consistent() -> None:
    data = raw_data()
    seen: dict[str, str] = {}
    for fam, entry in data["families"].items():
        assert fam in entry["match"], f"{fam} must match its own id"
        assert entry["label"]
        for model_id in entry["match"]:
            assert model_id not in seen, f"{model_id} in {seen.get(model_id)} and {fam}"
            seen[model_id] = fam
        for tier, cell in entry["limits"].items():
            assert tier in TIERS
            assert set(cell) - {"note"} == {"rpm", "tpm", "rpd", "batch_enqueued_tokens"}
    assert data["checked"] == "2026-11-23"
    assert data["source"] == "https://ai.google.dev/gemini-api/docs/rate-limits"
    assert data["matching"]
    assert len(data["families"]) == 29


# --- overrides ---------------------------------------------------------------------------


def test_overrides_kwarg_replaces_given_fields_only() -> None:
    table = LimitTable.load(overrides={"gemini-2.5-pro": {"tier_1": {"rpm": 5}}})
    assert table.lookup("gemini-2.5-pro", "tier_1") == TierLimits(5, 2 * M, 10_000, 5 * M)
    assert table.lookup("gemini-2.5-pro-preview-06-05", "tier_1").rpm == 5
    assert table.lookup("gemini-2.5-pro", "tier_2") == TierLimits(1000, 5 * M, 50_000, 500 * M)
    assert table.version == "2026-11-23+overrides"
    # The packaged table is not touched.
    assert LimitTable.load().lookup("gemini-2.5-pro", "tier_1").rpm == 150


def test_overrides_star_and_null_clear_a_limit() -> None:
    table = LimitTable.load(
        overrides={"gemini-2.5-flash": {"free": {"rpd": None}, "tier_1": {"rpm": "*"}}}
    )
    assert table.lookup("gemini-2.5-flash", "free").rpd is None
    assert table.lookup("gemini-2.5-flash", "tier_1").rpm is None


def test_override_of_a_version_is_a_new_more_specific_row() -> None:
    table = LimitTable.load(
        overrides={"models/gemini-2.5-flash-preview-09-2025": {"tier_1": {"rpd": 7}}}
    )
    assert table.family("gemini-2.5-flash-preview-09-2025") == "gemini-2.5-flash-preview-09-2025"
    assert table.lookup("gemini-2.5-flash-preview-09-2025", "tier_1") == TierLimits(
        1000, M, 7, 3 * M
    )
    # Its family and siblings keep our numbers.
    assert table.lookup("gemini-2.5-flash-preview-05-20", "tier_1").rpd == 10_000
    assert table.lookup("gemini-2.5-flash-preview-09-2025", "tier_2").rpd == 100_000


def test_override_adds_an_unknown_model_and_a_missing_tier() -> None:
    table = LimitTable.load(
        overrides={
            "gemini-3-pro-preview": {"tier_1": {"rpm": 50, "tpm": 1_000_000}},
            "imagen-4.0-generate": {"free": {"rpm": 1}},
        }
    )
    assert table.lookup("gemini-3-pro-preview", "tier_1") == TierLimits(50, M, None, None)
    assert table.lookup("models/gemini-3-pro-preview", "free") is None
    assert table.lookup("imagen-4.0-fast-generate-001", "free") == TierLimits(1, None, None, None)
    assert ("gemini-3-pro-preview", "tier_1", TierLimits(50, M, None, None)) in table.rows()


def test_overrides_file_plain_shape(tmp_path) -> None:
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({"gemini-2.0-flash": {"tier_2": {"tpm": 123}}}))
    table = LimitTable.load(overrides_file=path)
    assert table.lookup("gemini-2.0-flash-001", "tier_2") == TierLimits(10_000, 123, None, B)
    assert table.version == "2026-11-23+file"


def test_overrides_file_wrapped_shape_and_kwarg_wins(tmp_path) -> None:
    path = tmp_path / "limits.json"
    path.write_text(
        json.dumps(
            {
                "version": "acme-2027-01",
                "models": {"gemini-2.5-flash": {"tier_1": {"rpm": 11, "rpd": 12}}},
                "spend_limit_10m_usd": {"tier_1": 25, "free": 1.5},
            }
        )
    )
    table = LimitTable.load(
        overrides_file=str(path), overrides={"gemini-2.5-flash": {"tier_1": {"rpm": 99}}}
    )
    assert table.lookup("gemini-2.5-flash", "tier_1") == TierLimits(99, M, 12, 3 * M)
    assert table.spend_limit_10m("tier_1") == 25.0
    assert table.spend_limit_10m("free") == 1.5
    assert table.spend_limit_10m("tier_2") == 50.0
    assert table.version == "2026-11-23+acme-2027-01+overrides"


BAD_FILES = [
    ("[1, 2]", "expected a JSON object"),
    ("{not json", "not valid JSON"),
    ('{"gemini-2.5-pro": {"tier_9": {"rpm": 1}}}', "unknown tier 'tier_9'"),
    ('{"gemini-2.5-pro": {"tier_1": {"qpm": 1}}}', "unknown field 'qpm'"),
    ('{"gemini-2.5-pro": {"tier_1": {"rpm": -1}}}', "non-negative integer"),
    ('{"gemini-2.5-pro": {"tier_1": {"rpm": "5"}}}', "non-negative integer"),
    ('{"gemini-2.5-pro": {"tier_1": {"rpm": 1.5}}}', "non-negative integer"),
    ('{"gemini-2.5-pro": {"tier_1": {"rpm": true}}}', "non-negative integer"),
    ('{"gemini-2.5-pro": {"tier_1": 5}}', "expected an object"),
    ('{"gemini-2.5-pro": [1]}', "expected {tier"),
    ('{"": {"tier_1": {"rpm": 1}}}', "non-empty"),
    ('{"version": "x", "modles": {}}', "unknown top-level key(s) modles"),
    ('{"version": 3, "models": {}}', "'version' must be a string"),
    ('{"version": "x", "models": []}', "expected {model"),
    ('{"models": {}, "spend_limit_10m_usd": {"tier_1": -5}}', "non-negative number"),
    ('{"models": {}, "spend_limit_10m_usd": {"tier_7": 5}}', "unknown tier"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_bad_override_files(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LimitsFileError) as info:
        LimitTable.load(overrides_file=path)
    assert message in str(info.value)
    assert "bad.json" in str(info.value)


def test_missing_override_file(tmp_path) -> None:
    with pytest.raises(LimitsFileError, match="not found"):
        LimitTable.load(overrides_file=tmp_path / "nope.json")


def test_bad_override_kwarg_values() -> None:
    with pytest.raises(LimitsFileError, match=r"overrides: \['gemini-2.5-pro'\]"):
        LimitTable.load(overrides={"gemini-2.5-pro": {"tier_1": {"rpm": -3}}})
    with pytest.raises(LimitsFileError, match="unknown tier"):
        LimitTable.load(overrides={"gemini-2.5-pro": {"paid": {"rpm": 3}}})


def test_limits_file_error_is_a_value_error() -> None:
    assert issubclass(LimitsFileError, ValueError)
