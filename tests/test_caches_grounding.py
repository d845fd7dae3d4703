"""Context caches (create, update, delete, get, list; storage billed by token-hour as it
accrues) and grounding (Google Search, Maps, URL context, code execution), through the real
client against the fake server, sync and async, Developer API and Vertex where they differ.

Storage time runs on the storage meter's clock, which these tests drive (no sleeps): the fake
server's expiries are on its own (real) clock, and the meter counts a lifetime from the
answer's create/update time to its expire time, so the two never need to agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.genai import errors, types

from conftest import Telemetry, call_gemini, make_client, run_async
from opentelemetry.instrumentation.gemini import instrumentor, quota_status
from opentelemetry.instrumentation.gemini.billing.grounding import GroundingRule
from opentelemetry.instrumentation.gemini.record import grounding as grounding_module
from opentelemetry.instrumentation.gemini.record import storage as storage_module
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
)
from opentelemetry.instrumentation.gemini.testing.fake_grounding import (
    grounding_metadata,
    url_context_metadata,
)

FLASH = "gemini-2.5-flash"
TOKENS = 100_000
PER_HOUR = TOKENS * 1.00e-6  # gemini-2.5-flash storage: $1.00 per 1M tokens per hour (data)
REQUESTS = "gcp.gemini.requests"
COST = "gcp.gemini.cost"
COST_LIST = "gcp.gemini.cost.list"
SEARCH = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(telemetry: Telemetry) -> FakeClock:
    """The storage and grounding meters' clock, for the live recorder's instruments."""
    import time

    fake_clock = FakeClock(time.time())
    recorder = instrumentor.active_recorder
    assert recorder is not None
    recorder.instruments.storage.clock = fake_clock
    recorder.instruments.grounding.clock = fake_clock
    return fake_clock


def _run(mode: str, sync: Callable[[], Any], async_: Callable[[], Any]) -> Any:
    if mode == "sync":
        return sync()
    return run_async(async_())


def _create(client: Any, mode: str, ttl: str = "3600s", model: str = FLASH) -> Any:
    config = types.CreateCachedContentConfig(contents=["a long document"], ttl=ttl)
    return _run(
        mode,
        lambda: client.caches.create(model=model, config=config),
        lambda: client.aio.caches.create(model=model, config=config),
    )


def _update(client: Any, mode: str, name: str, ttl: str) -> Any:
    config = types.UpdateCachedContentConfig(ttl=ttl)
    return _run(
        mode,
        lambda: client.caches.update(name=name, config=config),
        lambda: client.aio.caches.update(name=name, config=config),
    )


def _delete(client: Any, mode: str, name: str) -> Any:
    return _run(
        mode,
        lambda: client.caches.delete(name=name),
        lambda: client.aio.caches.delete(name=name),
    )


def _get(client: Any, mode: str, name: str) -> Any:
    return _run(
        mode,
        lambda: client.caches.get(name=name),
        lambda: client.aio.caches.get(name=name),
    )


def _list(client: Any, mode: str, page_size: int = 50) -> list[Any]:
    config = types.ListCachedContentsConfig(page_size=page_size)

    async def run() -> list[Any]:
        return [c async for c in await client.aio.caches.list(config=config)]

    return _run(mode, lambda: list(client.caches.list(config=config)), run)


def _scripted_create(fake: FakeGemini, tokens: int = TOKENS) -> None:
    fake.enqueue("cachedContents", Reply(usage={"totalTokenCount": tokens}))


def _storage(telemetry: Telemetry, billed: bool = True, **attrs: Any) -> float:
    return telemetry.total(
        COST if billed else COST_LIST, gcp__gemini__cost__component="cache_storage", **attrs
    )


def _gauge(telemetry: Telemetry, name: str, **attrs: Any) -> float:
    return sum(p.value for p in telemetry.points(name, **attrs))


# --- caches: spans, and what the answers say ----------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_each_cache_method_has_its_span_and_none_is_in_inference_quota(
    fake: FakeGemini, client: Any, telemetry: Telemetry, clock: FakeClock, mode: str
) -> None:
    _scripted_create(fake)
    created = _create(client, mode)
    assert created.usage_metadata.total_token_count == TOKENS  # the app's answer, untouched
    name = created.name
    assert _get(client, mode, name).name == name
    _update(client, mode, name, "7200s")
    assert [c.name for c in _list(client, mode)] == [name]
    _delete(client, mode, name)

    spans = {s.name: s for s in telemetry.spans()}
    assert list(spans) == [
        f"create_cache {FLASH}",
        f"get_cache {FLASH}",  # the model this process created the cache with
        f"update_cache {FLASH}",
        "list_caches",  # names no model
        f"delete_cache {FLASH}",
    ]
    create = spans[f"create_cache {FLASH}"].attributes
    assert create["gen_ai.operation.name"] == "create_cache"
    assert create["gen_ai.response.model"] == FLASH
    assert create["gcp.gemini.cache.name"] == name
    assert create["gcp.gemini.cache.tokens"] == TOKENS
    assert create["gcp.gemini.cache.ttl"] == pytest.approx(3600)
    assert create["gcp.gemini.cache.expire_time"] == created.expire_time.isoformat()
    assert create["gcp.gemini.cache.storage_usd_per_hour"] == pytest.approx(PER_HOUR)
    assert create["gen_ai.usage.cost.amount"] == 0.0  # storage is billed by time, not per call
    assert spans[f"update_cache {FLASH}"].attributes["gcp.gemini.cache.ttl"] == pytest.approx(7200)
    assert "gen_ai.request.model" not in spans["list_caches"].attributes
    assert spans["list_caches"].attributes["gcp.gemini.cache.listed"] == 1
    assert spans[f"delete_cache {FLASH}"].attributes["gcp.gemini.cache.name"] == name

    for operation in ("create_cache", "get_cache", "update_cache", "list_caches", "delete_cache"):
        assert telemetry.total(REQUESTS, gen_ai__operation__name=operation) == 1, operation
    status = quota_status(FLASH)
    assert status is not None and status.usage["rpm"] == 0  # none counts against inference


def test_a_list_span_per_page(fake: FakeGemini, client: Any, telemetry: Telemetry) -> None:
    for _ in range(3):
        _create(client, "sync")
    assert len(_list(client, "sync", page_size=2)) == 3
    pages = [s for s in telemetry.spans() if s.name == "list_caches"]
    assert [s.attributes["gcp.gemini.cache.listed"] for s in pages] == [2, 1]


# --- storage: accrues with time, stops at delete or expiry, moves with an update -----------
def test_storage_accrues_as_time_passes_and_stops_at_expiry(
    fake: FakeGemini, client: Any, telemetry: Telemetry, clock: FakeClock
) -> None:
    _scripted_create(fake)
    _create(client, "sync", ttl="3600s")
    clock.advance(1800)
    assert _storage(telemetry) == pytest.approx(PER_HOUR / 2)
    assert _gauge(telemetry, "gcp.gemini.cache.tokens", gen_ai__request__model=FLASH) == TOKENS
    assert _gauge(telemetry, "gcp.gemini.cache.storage_rate") == pytest.approx(PER_HOUR)
    clock.advance(7200)  # an hour past its expiry: no more than its lifetime is billed
    assert _storage(telemetry) == pytest.approx(PER_HOUR)
    assert _storage(telemetry, billed=False) == pytest.approx(PER_HOUR)
    assert _gauge(telemetry, "gcp.gemini.cache.tokens") == 0  # expired: nothing live
    attrs = telemetry.points(COST, gcp__gemini__cost__component="cache_storage")[0].attributes
    assert attrs["gen_ai.request.model"] == FLASH
    assert attrs["gen_ai.operation.name"] == "create_cache"
    assert instrumentor.active_recorder is not None
    assert instrumentor.active_recorder.spend_10m() == pytest.approx(PER_HOUR)  # spend window


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_delete_stops_the_meter(
    fake: FakeGemini, client: Any, telemetry: Telemetry, clock: FakeClock, mode: str
) -> None:
    _scripted_create(fake)
    name = _create(client, mode, ttl="3600s").name
    clock.advance(900)
    _delete(client, mode, name)
    delete = next(s for s in telemetry.spans() if s.name.startswith("delete_cache"))
    assert delete.attributes["gcp.gemini.cache.storage_amount"] == pytest.approx(PER_HOUR / 4)
    clock.advance(3600)
    assert _storage(telemetry) == pytest.approx(PER_HOUR / 4)
    assert _gauge(telemetry, "gcp.gemini.cache.tokens") == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_update_moves_the_expiry(
    fake: FakeGemini, client: Any, telemetry: Telemetry, clock: FakeClock, mode: str
) -> None:
    _scripted_create(fake)
    name = _create(client, mode, ttl="600s").name  # would expire 10 minutes in
    clock.advance(300)
    _update(client, mode, name, "3600s")  # an hour from the update
    clock.advance(1800)
    assert _storage(telemetry) == pytest.approx(PER_HOUR * (300 + 1800) / 3600)
    clock.advance(7200)
    assert _storage(telemetry) == pytest.approx(PER_HOUR * (300 + 3600) / 3600)


@pytest.mark.parametrize("how", ["get", "list"])
def test_an_expiry_moved_by_another_process_is_followed_when_read_back(
    fake: FakeGemini, client: Any, telemetry: Telemetry, clock: FakeClock, how: str
) -> None:
    """Another process extends our cache to an hour (on the server's clock, right after the
    create); our next get or list reads the new expiry and the meter follows it."""
    _scripted_create(fake)
    name = _create(client, "sync", ttl="600s").name
    status, _ = fake.caches.handle("PATCH", f"/v1beta/{name}", {}, {"ttl": "3600s"})
    assert status == 200
    clock.advance(300)
    if how == "get":
        _get(client, "sync", name)
    else:
        _list(client, "sync")
    clock.advance(1500)  # 30 minutes after the create: the old expiry (10) long past
    assert _storage(telemetry) == pytest.approx(PER_HOUR / 2, rel=1e-3)
    clock.advance(7200)
    assert _storage(telemetry) == pytest.approx(PER_HOUR, rel=1e-3)


def test_free_tier_storage_bills_nothing_but_keeps_its_list_price(
    fake: FakeGemini, client: Any, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(tier="free")
    recorder = instrumentor.active_recorder
    assert recorder is not None
    fake_clock = FakeClock(recorder.instruments.storage.clock())
    recorder.instruments.storage.clock = fake_clock
    _scripted_create(fake)
    _create(client, "sync")
    fake_clock.advance(3600)
    assert _storage(telemetry) == 0
    assert _storage(telemetry, billed=False) == pytest.approx(PER_HOUR)
    assert _gauge(telemetry, "gcp.gemini.cache.storage_rate") == 0


def test_a_model_without_a_storage_price_is_metered_in_tokens_only(
    fake: FakeGemini, client: Any, telemetry: Telemetry, clock: FakeClock
) -> None:
    _scripted_create(fake)
    _create(client, "sync", model="gemini-9-unknown")
    clock.advance(1800)
    a = telemetry.span().attributes
    assert a["gcp.gemini.cache.storage_unpriced_reason"] == "no_storage_price"
    assert "gcp.gemini.cache.storage_usd_per_hour" not in a
    assert _storage(telemetry, billed=False) == 0
    assert _gauge(telemetry, "gcp.gemini.cache.tokens") == TOKENS


def test_caches_made_elsewhere_get_spans_but_no_meter(
    fake: FakeGemini, client: Any, telemetry: Telemetry, clock: FakeClock
) -> None:
    """Another process created it: that process meters it; here get/update/delete are spans
    with no model and no storage (metering it here too would count it twice)."""
    status, body = fake.caches.handle(
        "POST", "/v1beta/cachedContents", {}, {"model": f"models/{FLASH}"}, TOKENS
    )
    assert status == 200
    _update(client, "sync", body["name"], "7200s")
    clock.advance(3600)
    _delete(client, "sync", body["name"])
    assert [s.name for s in telemetry.spans()] == ["update_cache", "delete_cache"]
    assert "gcp.gemini.cache.storage_amount" not in telemetry.spans()[1].attributes
    assert _storage(telemetry, billed=False) == 0


def test_the_number_of_metered_caches_is_capped(
    fake: FakeGemini,
    client: Any,
    telemetry: Telemetry,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage_module, "MAX_CACHES", 2)
    for _ in range(3):
        _scripted_create(fake)
        _create(client, "sync")
    assert _gauge(telemetry, "gcp.gemini.cache.tokens") == 2 * TOKENS
    clock.advance(7200)  # the two expire: room again
    _scripted_create(fake)
    _create(client, "sync")
    assert _gauge(telemetry, "gcp.gemini.cache.tokens") == TOKENS


def test_vertex_caches_carry_full_names_and_the_clients_project(
    fake: FakeGemini, telemetry: Telemetry, clock: FakeClock
) -> None:
    client = make_client(fake, vertexai=True)
    _scripted_create(fake)
    created = _create(client, "sync")
    assert created.name.startswith("projects/fake-project/locations/us-central1/cachedContents/")
    clock.advance(1800)
    _delete(client, "sync", created.name)
    create, delete = telemetry.spans()
    assert create.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert create.attributes["gen_ai.response.model"] == FLASH  # from the publisher path
    assert delete.name == f"delete_cache {FLASH}"
    assert delete.attributes["gcp.gemini.cache.storage_amount"] == pytest.approx(PER_HOUR / 2)
    assert _storage(telemetry, gcp__gemini__project="fake-project") == pytest.approx(PER_HOUR / 2)


@pytest.mark.parametrize("method", ["create", "get", "list", "update", "delete"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_429_on_each_cache_method_is_counted_and_parsed(
    fake: FakeGemini, client: Any, telemetry: Telemetry, method: str, mode: str
) -> None:
    fake.enqueue(None, Reply(status=429, error_body=quota_error_body(model=FLASH)))
    name = "cachedContents/fake-cache-x"
    calls: dict[str, Callable[[], Any]] = {
        "create": lambda: _create(client, mode),
        "get": lambda: _get(client, mode, name),
        "list": lambda: _list(client, mode),
        "update": lambda: _update(client, mode, name, "60s"),
        "delete": lambda: _delete(client, mode, name),
    }
    with pytest.raises(errors.ClientError) as raised:
        calls[method]()
    assert raised.value.code == 429
    operation = {"list": "list_caches"}.get(method, f"{method}_cache")
    span = telemetry.span()
    assert span.attributes["gen_ai.operation.name"] == operation
    assert span.attributes["error.type"] == "429"
    assert [e.name for e in span.events].count("gcp.gemini.quota.exceeded") == 1
    assert (
        telemetry.total(
            REQUESTS, gen_ai__operation__name=operation, http__response__status_code=429
        )
        == 1
    )
    assert telemetry.total("gcp.gemini.quota.exceeded") == 1
    assert _gauge(telemetry, "gcp.gemini.cache.tokens") == 0  # a failed create meters nothing


# --- grounding ---------------------------------------------------------------------------------
def _grounded(**fields: Any) -> Reply:
    return Reply(candidate_fields=fields or {"groundingMetadata": grounding_metadata()})


def _grounding_units(telemetry: Telemetry, **attrs: Any) -> float:
    return telemetry.total("gcp.gemini.grounding", **attrs)


def test_google_search_grounding_on_every_entry_point(
    fake: FakeGemini, client: Any, telemetry: Telemetry, entrypoint: str
) -> None:
    fake.enqueue(None, _grounded())
    call_gemini(client, entrypoint, config=SEARCH)
    a = telemetry.span().attributes
    assert a["gcp.gemini.grounding.search_queries"] == 1
    assert a["gcp.gemini.grounding.chunks"] == 1
    assert a["gcp.gemini.grounding.sources"] == ("google_search",)
    assert a["gcp.gemini.grounding.unit"] == "grounded_prompt"
    # Within the free daily allowance (as this process counts it): list $35/1000, billed 0.
    assert a["gcp.gemini.cost.grounding.list_amount"] == pytest.approx(0.035)
    assert a["gcp.gemini.cost.grounding.amount"] == 0
    assert a["gcp.gemini.grounding.billable_units"] == 0
    tokens_list = 12 * 0.30e-6 + 8 * 2.50e-6
    assert a["gcp.gemini.cost.list_amount"] == pytest.approx(tokens_list + 0.035)
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(tokens_list)
    assert (
        _grounding_units(
            telemetry, gcp__gemini__grounding__source="google_search", gen_ai__request__model=FLASH
        )
        == 1
    )
    grounding_list = telemetry.total(COST_LIST, gcp__gemini__cost__component="grounding")
    assert grounding_list == pytest.approx(0.035)


def test_grounded_prompts_beyond_the_allowance_are_billed_until_the_next_pacific_day(
    fake: FakeGemini,
    client: Any,
    telemetry: Telemetry,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An allowance of 1 a day (the data says 1,500: the rule is data, the arithmetic ours)."""
    rule = GroundingRule("gemini-2.5", "grounded prompt", 1, "day", 0.035, "test")
    monkeypatch.setattr(grounding_module, "grounding_rule", lambda model: rule)
    for _ in range(3):
        fake.enqueue(None, _grounded())
        client.models.generate_content(model=FLASH, contents="x", config=SEARCH)
    clock.advance(86_400)  # a day later: a new allowance
    fake.enqueue(None, _grounded())
    client.models.generate_content(model=FLASH, contents="x", config=SEARCH)
    billed = [s.attributes["gcp.gemini.cost.grounding.amount"] for s in telemetry.spans()]
    assert billed == [0, pytest.approx(0.035), pytest.approx(0.035), 0]
    assert telemetry.total(COST, gcp__gemini__cost__component="grounding") == pytest.approx(0.07)
    assert telemetry.total(COST_LIST, gcp__gemini__cost__component="grounding") == pytest.approx(
        4 * 0.035
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gemini_3_is_billed_per_search_query(
    fake: FakeGemini, client: Any, telemetry: Telemetry, mode: str
) -> None:
    queries = ("a", "b", "c")
    fake.enqueue(None, _grounded(groundingMetadata=grounding_metadata(queries=queries)))
    call_gemini(client, mode, model="gemini-3-flash-preview", config=SEARCH)
    a = telemetry.span().attributes
    assert a["gcp.gemini.grounding.unit"] == "search_query"
    assert a["gcp.gemini.cost.grounding.list_amount"] == pytest.approx(3 * 0.014)
    assert _grounding_units(telemetry, gcp__gemini__grounding__unit="search_query") == 3


def test_maps_url_context_and_code_execution_are_counted(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    code = {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
    fields = {
        "groundingMetadata": grounding_metadata(
            queries=(), web=(), maps=(("https://maps.google.com/?cid=1", "Cafe"),)
        ),
        "urlContextMetadata": url_context_metadata("https://a.example", "https://b.example"),
        "content": {"parts": [code, {"text": "1"}], "role": "model"},
    }
    fake.enqueue(None, _grounded(**fields))
    tools = [
        types.Tool(google_maps=types.GoogleMaps()),
        types.Tool(url_context=types.UrlContext()),
        types.Tool(code_execution=types.ToolCodeExecution()),
    ]
    client.models.generate_content(
        model=FLASH, contents="x", config=types.GenerateContentConfig(tools=tools)
    )
    a = telemetry.span().attributes
    assert set(a["gcp.gemini.grounding.sources"]) == {
        "google_maps",
        "url_context",
        "code_execution",
    }
    assert a["gcp.gemini.grounding.urls"] == 2
    assert a["gcp.gemini.grounding.code_executions"] == 1
    assert a["gcp.gemini.grounding.unpriced_reason"] == "no_maps_price"
    assert "gcp.gemini.cost.grounding.list_amount" not in a
    by_source = {
        p.attributes["gcp.gemini.grounding.source"]: p.value
        for p in telemetry.points("gcp.gemini.grounding")
    }
    assert by_source == {"google_maps": 1, "url_context": 2, "code_execution": 1}


def test_vertex_grounding_is_counted_not_priced(fake: FakeGemini, telemetry: Telemetry) -> None:
    client = make_client(fake, vertexai=True)
    fake.enqueue(None, _grounded())
    client.models.generate_content(model=FLASH, contents="x", config=SEARCH)
    a = telemetry.span().attributes
    assert a["gcp.gemini.grounding.unpriced_reason"] == "no_vertex_price"
    assert _grounding_units(telemetry, gcp__gemini__project="fake-project") == 1


def test_free_tier_grounding_bills_nothing_and_keeps_its_list_price(
    fake: FakeGemini, client: Any, instrument: Callable[..., Telemetry]
) -> None:
    telemetry = instrument(tier="free")
    fake.enqueue(None, _grounded())
    client.models.generate_content(model=FLASH, contents="x", config=SEARCH)
    a = telemetry.span().attributes
    assert a["gcp.gemini.cost.grounding.amount"] == 0
    assert a["gcp.gemini.cost.grounding.list_amount"] == pytest.approx(0.035)


def test_a_call_without_tools_reads_no_grounding(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    """Only calls whose config carries tools are read: plain calls pay nothing for this."""
    fake.enqueue(None, _grounded())
    client.models.generate_content(model=FLASH, contents="x")
    assert not any(k.startswith("gcp.gemini.grounding") for k in telemetry.span().attributes)
    assert telemetry.points("gcp.gemini.grounding") == []


def test_a_family_without_a_grounding_rule_is_counted_not_priced(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    fake.enqueue(None, _grounded())
    client.models.generate_content(model="gemini-2.0-flash", contents="x", config=SEARCH)
    a = telemetry.span().attributes
    assert a["gcp.gemini.grounding.unpriced_reason"] == "unknown_model"
    assert "gcp.gemini.cost.grounding.list_amount" not in a
    assert _grounding_units(telemetry, gcp__gemini__grounding__unit="grounded_prompt") == 1


def test_reading_grounding_never_raises_on_odd_answers() -> None:
    class Odd:
        @property
        def candidates(self) -> Any:
            raise RuntimeError("boom")

    class NoQueries:
        candidates = [type("C", (), {"grounding_metadata": object(), "content": None})()]

    assert grounding_module.read_grounding(Odd()) is None
    assert grounding_module.read_grounding(NoQueries()) is None
    assert grounding_module.read_grounding(None) is None
