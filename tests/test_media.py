"""Imagen and Veo through the real client in Vertex mode against the fake server: spans with
what was asked for and returned, cost per image and per video second from the dated unit
prices, a video operation priced once however often it is polled, 429s on every method."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from google.genai import errors, types

from conftest import Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini import quota_status
from opentelemetry.instrumentation.gemini.billing.units import unit_prices
from opentelemetry.instrumentation.gemini.record.long_running import LongRunning
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply

COST = "gcp.gemini.cost"
REQUESTS = "gcp.gemini.requests"
UNPRICED = "gcp.gemini.cost.unpriced_calls"
IMAGE = types.Image(image_bytes=b"\x89PNG fake", mime_type="image/png")
FAST = "imagen-4.0-fast-generate-001"
VEO = "veo-3.0-generate-001"
MODES = ("sync", "async")


def _rate(model: str, **conditions: Any) -> float:
    """The data's rate, read independently of the pricing code: the first matching entry."""
    found, _ = unit_prices().entry(model)
    assert found is not None
    for rate in found["rates"]:
        if all(conditions.get(k) == v for k, v in rate.items() if k != "usd"):
            return float(rate["usd"])
    raise AssertionError(f"no rate for {model} {conditions}")


def _run(client: Any, mode: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """client.models.<method> (client.operations.get for "get"), sync or async."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK's deprecation notices for Imagen methods
        if mode == "sync":
            owner = client.operations if method == "get" else client.models
            return getattr(owner, method)(*args, **kwargs)
        owner = client.aio.operations if method == "get" else client.aio.models

        async def run() -> Any:
            return await getattr(owner, method)(*args, **kwargs)

        return run_async(run())


# Each Imagen method: (method, model, kwargs, operation name on the span).
IMAGE_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "generate_images": (FAST, {"prompt": "a cat"}),
    "edit_image": (
        "imagen-3.0-capability-001",
        {
            "prompt": "a hat on the cat",
            "reference_images": [types.RawReferenceImage(reference_id=1, reference_image=IMAGE)],
        },
    ),
    "upscale_image": ("imagen-4.0-upscale-preview", {"image": IMAGE, "upscale_factor": "x2"}),
    "recontext_image": (
        "imagen-product-recontext-preview-06-30",
        {
            "source": types.RecontextImageSource(
                prompt="on a beach", product_images=[types.ProductImage(product_image=IMAGE)]
            )
        },
    ),
    "segment_image": (
        "image-segmentation-001",
        {"source": types.SegmentImageSource(image=IMAGE)},
    ),
}


@pytest.mark.parametrize("mode", MODES)
def test_generate_images_counts_and_cost_per_image_returned(
    fake: FakeGemini, telemetry: Telemetry, mode: str
) -> None:
    fake.enqueue(FAST, Reply(extra={"filtered": 1}))
    client = make_client(fake, vertexai=True)
    config = types.GenerateImagesConfig(
        number_of_images=3, aspect_ratio="16:9", image_size="1K", include_rai_reason=True
    )
    response = _run(client, mode, "generate_images", model=FAST, prompt="a cat", config=config)
    assert len(response.generated_images) == 3  # the app's answer, filtered one included
    span = telemetry.span()
    assert span.name == f"generate_images {FAST}"
    a = span.attributes
    assert a["gen_ai.operation.name"] == "generate_images"
    assert a["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert a["gen_ai.output.type"] == "image"
    assert a["gcp.gemini.images.requested"] == 3
    assert a["gcp.gemini.images.returned"] == 2
    assert a["gcp.gemini.images.filtered"] == 1
    assert a["gcp.gemini.image.aspect_ratio"] == "16:9"
    assert a["gcp.gemini.image.size"] == "1K"
    expected = 2 * _rate(FAST)
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(expected)
    assert a["gcp.gemini.cost.prices_version"].startswith("gemini-units ")
    assert telemetry.total(
        COST, gen_ai__operation__name="generate_images", gcp__gemini__cost__component="image_output"
    ) == pytest.approx(expected)
    assert telemetry.total("gcp.gemini.cost.list", gen_ai__request__model=FAST) == pytest.approx(
        expected
    )
    assert telemetry.total(REQUESTS, gen_ai__operation__name="generate_images") == 1
    assert not telemetry.points("gen_ai.client.token.usage")  # images carry no tokens
    status = quota_status(FAST)
    assert status is not None and status.usage["rpm"] == 1
    assert status.spend_10m_usd == pytest.approx(expected)  # unit costs are spend too


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", [m for m in IMAGE_CALLS if m != "generate_images"])
def test_other_image_methods_have_spans_and_unpriced_reasons(
    fake: FakeGemini, telemetry: Telemetry, method: str, mode: str
) -> None:
    model, kwargs = IMAGE_CALLS[method]
    client = make_client(fake, vertexai=True)
    _run(client, mode, method, model=model, **kwargs)
    span = telemetry.span()
    assert span.name == f"{method} {model}"
    a = span.attributes
    assert a["gen_ai.operation.name"] == method
    assert a["gcp.gemini.images.returned"] == 1
    assert "gen_ai.usage.cost.amount" not in a  # no verified price: no made-up figure
    assert a["gcp.gemini.cost.unpriced_reason"] == "no_verified_price"
    assert telemetry.total(UNPRICED, gcp__gemini__cost__unpriced_reason="no_verified_price") == 1
    assert telemetry.total(REQUESTS, gen_ai__operation__name=method) == 1
    if method == "upscale_image":
        assert a["gcp.gemini.images.requested"] == 1
        assert a["gcp.gemini.image.upscale_factor"] == "x2"


def test_unknown_and_unverified_image_models_are_unpriced_with_a_reason(
    fake: FakeGemini, telemetry: Telemetry
) -> None:
    client = make_client(fake, vertexai=True)
    _run(client, "sync", "generate_images", model="imagen-3.0-generate-002", prompt="a cat")
    _run(client, "sync", "generate_images", model="imagen-9.0-generate-001", prompt="a cat")
    reasons = {s.attributes["gen_ai.request.model"]: s.attributes for s in telemetry.spans()}
    assert reasons["imagen-3.0-generate-002"]["gcp.gemini.cost.unpriced_reason"] == (
        "no_verified_price"
    )
    assert reasons["imagen-9.0-generate-001"]["gcp.gemini.cost.unpriced_reason"] == (
        "unknown_model"
    )
    assert all("gen_ai.usage.cost.amount" not in a for a in reasons.values())
    assert telemetry.total(UNPRICED, gcp__gemini__cost__unpriced_reason="unknown_model") == 1
    assert telemetry.total(COST) == 0


def test_generate_images_on_the_developer_api_raises_as_the_sdk_does(
    client: Any, telemetry: Telemetry
) -> None:
    with pytest.raises(ValueError, match="only supported"):
        _run(client, "sync", "generate_images", model=FAST, prompt="a cat")
    span = telemetry.span()
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["gen_ai.usage.cost.amount"] == 0.0  # nothing was sent, nothing billed


def _submit(client: Any, mode: str, model: str = VEO, **config: Any) -> Any:
    return _run(
        client,
        mode,
        "generate_videos",
        model=model,
        source=types.GenerateVideosSource(prompt="a cat surfing"),
        config=types.GenerateVideosConfig(**config),
    )


@pytest.mark.parametrize("mode", MODES)
def test_video_operation_polled_several_times_is_priced_once(
    fake: FakeGemini, telemetry: Telemetry, mode: str
) -> None:
    fake.enqueue(VEO, Reply(extra={"polls": 3}))
    client = make_client(fake, vertexai=True)
    operation = _submit(
        client, mode, duration_seconds=6, number_of_videos=2, generate_audio=False,
        resolution="1080p", aspect_ratio="16:9",
    )  # fmt: skip
    assert operation.done is None
    polls = 0
    while not operation.done:
        operation = _run(client, mode, "get", operation)
        polls += 1
    for _ in range(3):  # the app keeps polling a done operation
        operation = _run(client, mode, "get", operation)
    assert polls == 4 and len(operation.result.generated_videos) == 2

    submit, *gets = telemetry.spans()
    assert submit.name == f"generate_videos {VEO}"
    s = submit.attributes
    assert s["gcp.gemini.video.duration_seconds"] == 6
    assert s["gcp.gemini.video.resolution"] == "1080p"
    assert s["gcp.gemini.video.generate_audio"] is False
    assert s["gcp.gemini.video.aspect_ratio"] == "16:9"
    assert s["gcp.gemini.videos.requested"] == 2
    assert s["gcp.gemini.operation.name"] == operation.name
    assert s["gcp.gemini.cost.unpriced_reason"] == "pending_operation"
    assert len(gets) == 7
    assert all(g.name == f"get_operation {VEO}" for g in gets)
    expected = 6 * 2 * _rate(VEO, audio=False, resolution="1080p")
    priced = [g for g in gets if g.attributes.get("gen_ai.usage.cost.amount")]
    assert len(priced) == 1
    p = priced[0].attributes
    assert p["gen_ai.usage.cost.amount"] == pytest.approx(expected)
    assert p["gcp.gemini.operation.done"] is True
    assert p["gcp.gemini.videos.returned"] == 2
    assert p["gcp.gemini.usage.video_seconds"] == 12
    assert sum(g.attributes["gen_ai.usage.cost.amount"] for g in gets) == pytest.approx(expected)
    # The cost is the video generation's, whichever poll saw it done.
    assert telemetry.total(
        COST, gen_ai__operation__name="generate_videos", gcp__gemini__cost__component="video_output"
    ) == pytest.approx(expected)
    assert telemetry.total(COST) == pytest.approx(expected)
    assert telemetry.total(UNPRICED) == 0  # a pending submit is not an unpriced call
    assert telemetry.total(REQUESTS, gen_ai__operation__name="generate_videos") == 1
    assert telemetry.total(REQUESTS, gen_ai__operation__name="get_operation") == 7
    status = quota_status(VEO)
    assert status is not None and status.usage["rpm"] == 1  # polls are not in the model's RPM
    assert status.spend_10m_usd == pytest.approx(expected)


def test_a_free_developer_tier_does_not_make_vertex_images_free(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    """The tier is the Developer API account's; Imagen runs on Vertex AI (google-genai 3.6),
    which has no free tier: billed at the list price whatever the process's tier."""
    telemetry = instrument(tier="free")
    client = make_client(fake, vertexai=True)
    _run(client, "sync", "generate_images", model=FAST, prompt="a cat")
    a = telemetry.span().attributes
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(_rate(FAST))
    assert a["gcp.gemini.cost.list_amount"] == pytest.approx(_rate(FAST))
    assert telemetry.total(COST) == pytest.approx(_rate(FAST))


def test_video_defaults_and_filtered_videos(fake: FakeGemini, telemetry: Telemetry) -> None:
    model = "veo-3.0-fast-generate-001"
    fake.enqueue(model, Reply(extra={"filtered": 1, "polls": 0}))
    client = make_client(fake, vertexai=True)
    operation = _submit(client, "sync", model, number_of_videos=2)  # duration and audio unset
    operation = _run(client, "sync", "get", operation)
    a = telemetry.spans()[-1].attributes
    assert a["gcp.gemini.videos.returned"] == 1
    assert a["gcp.gemini.videos.filtered"] == 1
    default = unit_prices().defaults(model)
    seconds = default["default_duration_seconds"]
    assert a["gcp.gemini.usage.video_seconds"] == seconds  # the filtered video is not billed
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(
        seconds * _rate(model, audio=default["default_audio"])
    )


def test_operation_submitted_elsewhere_is_unpriced_with_a_reason(
    fake: FakeGemini, instrument: Callable[..., Telemetry]
) -> None:
    fake.enqueue(VEO, Reply(extra={"polls": 0}))
    client = make_client(fake, vertexai=True)
    operation = _submit(client, "sync", duration_seconds=8)  # before instrument(): not seen
    telemetry = instrument()
    _run(client, "sync", "get", operation)
    a = telemetry.span().attributes
    assert a["gcp.gemini.videos.returned"] == 1
    assert a["gcp.gemini.cost.unpriced_reason"] == "unknown_duration"
    assert telemetry.total(UNPRICED, gcp__gemini__cost__unpriced_reason="unknown_duration") == 1


MEDIA_429: dict[str, tuple[str, Callable[[Any], tuple[tuple[Any, ...], dict[str, Any]]]]] = {
    **{
        method: (model, lambda _c, m=model, kw=kwargs: ((), {"model": m, **kw}))
        for method, (model, kwargs) in IMAGE_CALLS.items()
    },
    "generate_videos": (
        VEO,
        lambda _c: ((), {"model": VEO, "source": types.GenerateVideosSource(prompt="x")}),
    ),
    "get": (
        VEO,
        lambda c: ((_submit(c, "sync", duration_seconds=4),), {}),
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", list(MEDIA_429))
def test_429_on_each_media_method_is_counted_and_parsed(
    fake: FakeGemini, telemetry: Telemetry, method: str, mode: str
) -> None:
    model, arguments = MEDIA_429[method]
    client = make_client(fake, vertexai=True)
    args, kwargs = arguments(client)
    telemetry.exporter.clear()  # the submit that "get" needs is not under test
    fake.enqueue(model, Reply(status=429))
    with pytest.raises(errors.ClientError) as raised:
        _run(client, mode, method, *args, **kwargs)
    assert raised.value.code == 429
    span = telemetry.span()
    operation = span.attributes["gen_ai.operation.name"]
    assert operation == ("get_operation" if method == "get" else method)
    assert span.attributes["error.type"] == "429"
    assert span.attributes["gen_ai.usage.cost.amount"] == 0.0  # a refused request bills nothing
    assert any(e.name == "gcp.gemini.quota.exceeded" for e in span.events)
    assert (
        telemetry.total(
            REQUESTS, gen_ai__operation__name=operation, http__response__status_code=429
        )
        == 1
    )
    assert telemetry.total("gcp.gemini.quota.exceeded", gen_ai__request__model=model) >= 1


def test_generate_content_video_output_tokens_priced_where_the_data_has_them(
    fake: FakeGemini, client: Any, telemetry: Telemetry
) -> None:
    # Nothing media-specific: the token book prices output video tokens (genai-prices'
    # output_video_mtok) like any modality. 17.5 and 9 USD per 1M are genai-prices' figures.
    model = "gemini-omni-flash-preview"
    usage = {
        "promptTokenCount": 100,
        "candidatesTokenCount": 1_000,
        "candidatesTokensDetails": [
            {"modality": "VIDEO", "tokenCount": 900},
            {"modality": "TEXT", "tokenCount": 100},
        ],
    }
    fake.enqueue(model, Reply(usage=usage))
    client.models.generate_content(model=model, contents="a short clip")
    a = telemetry.span().attributes
    assert a["gcp.gemini.usage.output_tokens.video"] == 900
    expected = 100 * 1.5e-6 + 900 * 17.5e-6 + 100 * 9e-6
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(expected)


def test_long_running_memory_is_bounded() -> None:
    memory = LongRunning(max_pending=2, max_done=2)
    for name in ("a", "b", "c"):
        memory.submitted(name, {"seconds": 1})
    assert memory.pending("a") is None and memory.pending("c") == {"seconds": 1}
    assert memory.first_done("c") == (True, {"seconds": 1})
    assert memory.first_done("c") == (False, None)
    memory.first_done("d")
    memory.first_done("e")  # "c" is forgotten: a poll after that would price it again
    assert memory.first_done("c")[0] is True


_DEPRECATED_CALL = """
import sys
sys.path.insert(0, {tests!r})
from conftest import make_client
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini

if {instrumented!r}:
    from opentelemetry.instrumentation.gemini import GeminiInstrumentor

    GeminiInstrumentor().instrument()


class Fake:
    url = {url!r}


client = make_client(Fake(), vertexai=True)
client.models.generate_videos(model={model!r}, prompt="a cat")  # deprecated: prompt=
"""


def test_the_sdks_deprecation_warning_still_names_the_apps_line(
    fake: FakeGemini, tmp_path: Any
) -> None:
    """generate_videos(prompt=...) warns with stacklevel=2. Hooked above the SDK's method, the
    warning named our hook instead of the app's line, and Python's default filters (which show
    a DeprecationWarning only when __main__ triggers it) hid it from the app."""
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent)
    outputs = []
    for instrumented in (False, True):
        fake.enqueue(VEO, Reply())
        script = tmp_path / f"app_{instrumented}.py"
        script.write_text(
            _DEPRECATED_CALL.format(tests=tests, instrumented=instrumented, url=fake.url, model=VEO)
        )
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
        )
        lines = [ln for ln in done.stderr.splitlines() if "DeprecationWarning" in ln]
        outputs.append([ln.replace(str(script), "APP") for ln in lines])
    bare, ours = outputs
    assert bare and bare[0].startswith("APP:")  # shown, and at the app's line
    assert ours == bare
