"""What the app hands us, and how Python is configured: exceptions whose text cannot be read,
exception classes named oddly, a model given as a str subclass whose hash or equality raises,
and warnings the SDK raises for the app's own line (never ours)."""

# No `from __future__ import annotations` here: google-genai 2.x reads the tools' annotations
# as types to declare them to the model, and cannot read them as strings.

import warnings
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import types

from conftest import FAKE_KEY, Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini.bounds import MAX_NAME
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply
from test_cost import FUNCTION_CALL  # a first round asking for get_weather

MODEL = "gemini-2.5-flash"
EMBED = "gemini-embedding-001"


# --- exceptions the app's transport raises ---------------------------------------------------
class _StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _StrRecurses(Exception):
    def __str__(self) -> str:
        return str(self)


class _OddlyNamed(Exception):
    pass


_OddlyNamed.__module__ = 42  # type: ignore[assignment]  # any object: Python allows it
_OddlyNamed.__qualname__ = "E" * 100_000


def _client_raising(fake: FakeGemini, error: BaseException) -> genai.Client:
    """A client whose httpx transport (the app's own, through client_args) raises ``error``."""

    class Raising(httpx2.BaseTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            raise error

    options = types.HttpOptions(base_url=fake.url, client_args={"transport": Raising()})
    return genai.Client(api_key=FAKE_KEY, http_options=options)


@pytest.mark.parametrize("error_class", [_StrRaises, _StrRecurses])
def test_an_error_whose_text_cannot_be_read_is_still_recorded(
    fake: FakeGemini, telemetry: Telemetry, error_class: type[Exception]
) -> None:
    """Reading the error's text for the span's status raised (or recursed) inside the recording
    path: the call's span ended without its error, and its duration and attempt were never
    counted. The text is now what ``traceback`` shows for it."""
    error = error_class()
    client = _client_raising(fake, error)
    with pytest.raises(error_class) as caught:
        client.models.generate_content(model=MODEL, contents="x")
    assert caught.value is error  # the app's own exception, untouched
    span = telemetry.span()
    assert span.status.description == f"{error_class.__name__}: <exception str() failed>"
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.message"] == "<exception str() failed>"
    [duration] = telemetry.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == error_class.__qualname__
    assert telemetry.total("gcp.gemini.requests") == 1


def test_an_oddly_named_error_class_is_recorded_capped(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """A class whose ``__module__`` is not a string and whose name is 100,000 characters: its
    name is a span attribute and a metric attribute, capped like any name."""
    client = _client_raising(fake, _OddlyNamed("m"))
    with pytest.raises(_OddlyNamed):
        client.models.generate_content(model=MODEL, contents="x")
    span = telemetry.span()
    assert span.attributes["error.type"] == "E" * MAX_NAME
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "E" * MAX_NAME
    for point in telemetry.metrics()["gen_ai.client.operation.duration"]:
        assert len(point.attributes["error.type"]) == MAX_NAME
    assert telemetry.total("gcp.gemini.requests") == 1


def test_error_classes_beyond_the_cap_count_as_other_on_metrics(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """An app (or a library) raising a new exception class per call: each class name is an
    ``error.type`` series. Past 64 per process they count as semconv's ``_OTHER`` on every
    metric, so no series limit ever takes the other labels off; spans keep the class name."""
    classes = [type(f"Error{i}", (Exception,), {}) for i in range(70)]
    for error_class in classes:
        client = _client_raising(fake, error_class())  # held: a dropped client closes itself
        with pytest.raises(error_class):
            client.models.generate_content(model=MODEL, contents="x")
    spans = telemetry.spans()
    assert [s.attributes["error.type"] for s in spans] == [c.__qualname__ for c in classes]
    names = {c.__qualname__ for c in classes}
    for metric in ("gen_ai.client.operation.duration", "gcp.gemini.requests"):
        points = telemetry.metrics()[metric]
        seen = {p.attributes["error.type"] for p in points}
        assert len(seen) == 65 and seen - names == {"_OTHER"}, metric
        assert all(p.attributes["gen_ai.request.model"] == MODEL for p in points)
    assert telemetry.total("gcp.gemini.requests") == 70
    assert telemetry.total("gcp.gemini.requests", error__type="_OTHER") == 6


# --- a model name the app gives as its own str subclass --------------------------------------
class _HashRaises(str):
    def __hash__(self) -> int:
        raise RuntimeError("no hash")


class _EqualityRaises(str):
    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no equality")


@pytest.mark.parametrize("model_class", [_HashRaises, _EqualityRaises])
def test_a_model_str_subclass_is_recorded_and_never_kept(
    fake: FakeGemini, telemetry: Telemetry, model_class: type[str]
) -> None:
    """The SDK takes any str; we kept the app's object as the model name in our caches: one
    whose hash raises lost its call, one whose equality raises lost its call and every later
    call of the same model (their lookups compared against it)."""
    client = make_client(fake)
    client.models.generate_content(model=model_class(MODEL), contents="x")
    client.models.generate_content(model=MODEL, contents="x")
    spans = telemetry.spans()
    assert [s.name for s in spans] == [f"generate_content {MODEL}"] * 2
    assert all(s.attributes["gen_ai.usage.input_tokens"] for s in spans)
    [duration] = telemetry.points("gen_ai.client.operation.duration")
    assert duration.count == 2
    assert telemetry.total("gcp.gemini.requests") == 2


# --- warnings the SDK raises name the app's line ---------------------------------------------
def test_the_create_embeddings_warning_names_the_apps_line(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    """The SDK warns that batches.create_embeddings is experimental with stacklevel=2: our hook
    above it took the app's place (the warning named our module, and Python's once-per-line
    filters then showed it once for the whole process)."""
    fake.enqueue(EMBED, Reply(usage={"promptTokenCount": 7}))
    fake.enqueue(EMBED, Reply(usage={"promptTokenCount": 7}))
    src = {"inlined_requests": {"contents": ["first text"]}}

    async def create_async() -> Any:
        return await client.aio.batches.create_embeddings(model=EMBED, src=src)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        client.batches.create_embeddings(model=EMBED, src=src)
        run_async(create_async())
    experimental = [w for w in seen if "create_embeddings" in str(w.message)]
    assert len(experimental) == 2
    assert {w.filename for w in experimental} == {__file__}
    spans = [s for s in telemetry.spans() if s.attributes.get("gcp.gemini.batch.method")]
    assert [s.attributes["gcp.gemini.batch.method"] for s in spans] == ["create_embeddings"] * 2


# --- what a tool returns ---------------------------------------------------------------------
class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")

    __repr__ = __str__


def test_a_tool_result_whose_text_cannot_be_read_is_named(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """Content on spans: a tool's result that is not JSON and whose ``__str__`` raises left its
    span without a result (our fallback to its text raised too); now it is named as content
    capture names what it cannot serialize. The app's call fails as it does bare."""

    def get_weather(city: str) -> Any:
        """The weather in a city."""
        return _Unprintable()

    client = make_client(fake)

    def outcome() -> type[BaseException] | None:
        fake.reset()
        fake.enqueue(MODEL, Reply(extra=FUNCTION_CALL), Reply(text="Sunny"))
        try:
            config = {"tools": [get_weather]}
            client.models.generate_content(model=MODEL, contents="x", config=config)
        except Exception as error:  # google-genai 3.x: TypeError, not JSON serializable
            return type(error)
        return None

    bare = outcome()
    telemetry = instrument(capture_content="SPAN_ONLY")
    assert outcome() is bare
    [tool] = [s for s in telemetry.all_spans() if s.name == "execute_tool get_weather"]
    assert tool.attributes["gen_ai.tool.call.result"] == "[_Unprintable not serializable]"


# --- a config the app gives as its own dict subclass -----------------------------------------
class _HostileConfig(dict):  # type: ignore[type-arg]
    """The SDK's validation reads a dict's items directly: its own get() is never called."""

    def get(self, *args: Any) -> Any:
        raise RuntimeError("no get")

    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("no getitem")


def test_a_config_dict_subclass_whose_get_raises_is_read_as_the_sdk_reads_it(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    """We read the config's fields with its own get(): the call went without a span (and its
    duration, tokens and cost), and its tools' rounds were not counted apart. Now read as the
    SDK's validation reads a dict: its items."""
    fake.enqueue(MODEL, Reply(extra=FUNCTION_CALL), Reply(text="Sunny"))

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    config = _HostileConfig(tools=[get_weather], temperature=0.5)
    client = make_client(fake)
    response = client.models.generate_content(model=MODEL, contents="x", config=config)
    assert response.text == "Sunny"  # the SDK ran both rounds, as bare
    span = telemetry.span()
    assert span.attributes["gen_ai.request.temperature"] == 0.5
    assert span.attributes["gcp.gemini.attempts"] == 2
    assert [s.name for s in telemetry.all_spans()].count("execute_tool get_weather") == 1
    assert telemetry.total("gcp.gemini.requests") == 2
