"""Adapters for Imagen and Veo: ``client.models.generate_images`` / ``edit_image`` /
``upscale_image`` / ``recontext_image`` / ``segment_image``, ``generate_videos`` and
``client.operations.get`` (and their ``client.aio`` twins). google-genai 3.6 runs all of them
in Vertex mode only (``:predict``, ``:predictLongRunning``, ``:fetchPredictOperation``).

Control flow, plus the pure readers of requests and answers below it. An image call is priced
per image returned; a video submit opens its span and is priced later, when a poll first sees
its operation done (once per operation name, however often it is polled): seconds asked for x
videos returned x the model's rate (billing/units.py, data/unit_prices.json).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..billing.units import IMAGE, VIDEO_SECOND, UnitUsage, unit_prices
from ..bounds import MAX_NAME, count
from ..record import operations as ops
from ..record.call import Answer, Call
from ..record.request import config_field, normalize_model
from .hooks import HookFactory, answered_once
from .models import _start

if TYPE_CHECKING:
    from .seams import Patches, Targets

_logger = logging.getLogger(__name__)

# A request as read before the SDK runs: the span attributes it gives, and for a video what the
# price depends on ("seconds", "audio", "resolution").
Request = dict[str, Any]
# (the request, the SDK's answer, the call) -> what the call bills by unit, or None.
UnitsReader = Callable[[Request, Any, Call], "UnitUsage | None"]


def _text(value: Any) -> str | None:
    """An option as a short string (enums by their value), or None."""
    value = getattr(value, "value", value)
    return value[:MAX_NAME] if isinstance(value, str) and value else None


def _positive(value: Any, what: str) -> int | None:
    """A count the caller asked for (images, videos, seconds), clamped as token counts are:
    the SDK sends any int, and one beyond int64 on a span would break its OTLP export."""
    return count(value, what) or None


# --- requests: pure, read before the SDK runs -------------------------------------------------
def image_request(kwargs: dict[str, Any], operation: str) -> Request:
    config = kwargs.get("config")
    attrs: dict[str, Any] = {A.GEN_AI_OUTPUT_TYPE: "image"}
    # upscale_image always asks for one image (the SDK sets it); segment_image answers masks.
    requested = (
        1
        if operation == ops.UPSCALE_IMAGE
        else _positive(config_field(config, "number_of_images"), "number_of_images")
    )
    if requested is not None:
        attrs[A.GEMINI_IMAGES_REQUESTED] = requested
    for field, key in (
        ("image_size", A.GEMINI_IMAGE_SIZE),
        ("aspect_ratio", A.GEMINI_IMAGE_ASPECT_RATIO),
    ):
        value = _text(config_field(config, field))
        if value is not None:
            attrs[key] = value
    factor = _text(kwargs.get("upscale_factor"))
    if factor is not None:
        attrs[A.GEMINI_IMAGE_UPSCALE_FACTOR] = factor
    return {"attrs": attrs}


def video_request(kwargs: dict[str, Any], model: Any) -> Request:
    config = kwargs.get("config")
    attrs: dict[str, Any] = {}
    seconds = _positive(config_field(config, "duration_seconds"), "duration_seconds")
    if seconds is None and isinstance(model, str):
        # The API's default duration (an assumption kept in the price data, per model).
        seconds = _positive(
            unit_prices().defaults(model).get("default_duration_seconds"), "duration_seconds"
        )
    audio = config_field(config, "generate_audio")
    audio = audio if isinstance(audio, bool) else None
    resolution = _text(config_field(config, "resolution"))
    resolution = resolution.lower() if resolution else None
    if seconds is not None:
        attrs[A.GEMINI_VIDEO_DURATION] = seconds
    if resolution is not None:
        attrs[A.GEMINI_VIDEO_RESOLUTION] = resolution
    if audio is not None:
        attrs[A.GEMINI_VIDEO_GENERATE_AUDIO] = audio
    aspect = _text(config_field(config, "aspect_ratio"))
    if aspect is not None:
        attrs[A.GEMINI_VIDEO_ASPECT_RATIO] = aspect
    requested = _positive(config_field(config, "number_of_videos"), "number_of_videos")
    if requested is not None:
        attrs[A.GEMINI_VIDEOS_REQUESTED] = requested
    return {"attrs": attrs, "seconds": seconds, "audio": audio, "resolution": resolution}


# --- answers: pure, duck-typed, called once per call --------------------------------------------
def _images(response: Any) -> tuple[int, int]:
    """(images returned, images the RAI filter removed) of an Imagen answer."""
    items = getattr(response, "generated_images", None)
    if items is None:
        items = getattr(response, "generated_masks", None)  # segment_image
    returned = filtered = 0
    for item in items or ():
        # The SDK builds an Image even for a filtered prediction (from the same object): an
        # image is returned when it carries bytes or a Cloud Storage URI.
        image = getattr(item, "image", None) or getattr(item, "mask", None)
        if getattr(image, "image_bytes", None) or getattr(image, "gcs_uri", None):
            returned += 1
        elif getattr(item, "rai_filtered_reason", None):
            filtered += 1
    return returned, filtered


def read_images(request: Request, response: Any) -> Answer:
    returned, filtered = _images(response)
    attrs = {**request["attrs"], A.GEMINI_IMAGES_RETURNED: returned}
    if filtered:
        attrs[A.GEMINI_IMAGES_FILTERED] = filtered
    return None, None, None, attrs


def image_units(_request: Request, response: Any, _call: Call) -> UnitUsage:
    """Billed per image returned; filtered images are not (see data/unit_prices.json)."""
    return UnitUsage(IMAGE, _images(response)[0])


def _operation_name(operation: Any) -> str | None:
    name = getattr(operation, "name", None)
    return name if isinstance(name, str) and name else None


def read_video_submit(request: Request, response: Any) -> Answer:
    attrs = dict(request["attrs"])
    name = _operation_name(response)
    if name is not None:
        attrs[A.GEMINI_OPERATION_NAME] = name[:1024]
    return None, None, None, attrs


def video_submit_units(request: Request, response: Any, call: Call) -> UnitUsage:
    """A submit bills nothing yet: remember what it asked for, priced when first seen done."""
    name = _operation_name(response)
    if name is not None:
        call.recorder.long_running.submitted(name, request)
    return UnitUsage(VIDEO_SECOND, 0, unpriced=A.UNPRICED_PENDING)


def _videos(operation: Any) -> tuple[int, int]:
    """(videos returned, videos the RAI filter removed) of a done operation."""
    result = getattr(operation, "response", None) or getattr(operation, "result", None)
    videos = getattr(result, "generated_videos", None) or ()
    return len(videos), count(getattr(result, "rai_media_filtered_count", None))


def read_operation(request: Request, operation: Any) -> Answer:
    """A poll's answer; on the poll that priced the operation, also what its submit asked for
    and the seconds billed (``operation_units``, which runs first, put them in ``request``)."""
    done = bool(getattr(operation, "done", False))
    attrs: dict[str, Any] = {**request["attrs"], A.GEMINI_OPERATION_DONE: done}
    name = _operation_name(operation)
    if name is not None:
        attrs[A.GEMINI_OPERATION_NAME] = name[:1024]
    if done:
        returned, filtered = _videos(operation)
        attrs[A.GEMINI_VIDEOS_RETURNED] = returned
        if filtered:
            attrs[A.GEMINI_VIDEOS_FILTERED] = filtered
    return None, None, None, attrs


def operation_units(request: Request, operation: Any, call: Call) -> UnitUsage | None:
    """The first poll that sees an operation done bills it: seconds x videos returned x
    rate; later polls of the same operation bill nothing (None: a known zero). Leaves the
    submit's attributes and the seconds billed in ``request`` for ``read_operation``."""
    name = _operation_name(operation)
    if name is None or not getattr(operation, "done", False):
        return None
    first, submit = call.recorder.long_running.first_done(name)
    if not first:
        return None
    returned, _ = _videos(operation)
    seconds = submit.get("seconds") if submit is not None else None
    if seconds is None:  # submitted by another process, or no duration known for the model
        return UnitUsage(VIDEO_SECOND, 0, unpriced=A.UNPRICED_UNKNOWN_DURATION)
    billed = count(seconds * returned, "video seconds")  # both clamped, not their product
    request["attrs"].update(submit["attrs"])
    request["attrs"][A.GEMINI_USAGE_VIDEO_SECONDS] = billed
    conditions = {"audio": submit["audio"], "resolution": submit["resolution"]}
    return UnitUsage(VIDEO_SECOND, billed, conditions, bills=ops.GENERATE_VIDEOS)


def _model_of_operation(operation: Any) -> str | None:
    """``.../publishers/google/models/{model}/operations/{id}`` -> the model. Normalized here:
    the name is the server's, and the recorder keeps what it is given as a cache key."""
    name = _operation_name(operation)
    if name is None or "/operations/" not in name:
        return None
    path = name.rpartition("/operations/")[0]
    return normalize_model(path) if path else None


# --- hooks ------------------------------------------------------------------------------------
Factories = tuple[HookFactory, HookFactory]
# The SDK method's (args, kwargs) -> what _start and the request reader read (model, config...).
CallArgs = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]


def _keywords(_args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs  # the models methods take keywords only


def _operation_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """operations.get(operation, *, config): the model from the operation's name."""
    operation = args[0] if args else kwargs.get("operation")
    return {"model": _model_of_operation(operation), "config": kwargs.get("config")}


def _hooks(
    operation: str,
    request_of: Callable[[dict[str, Any]], Request],
    answer: Callable[[Request, Any], Answer],
    units: UnitsReader,
    call_args: CallArgs = _keywords,
) -> Factories:
    """Hook factories (sync, async) for a media call that answers once: the span opens before
    the SDK runs and ends with its answer (units read first) or its exception."""

    def open_call(
        patches: Patches,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
    ) -> tuple[Call, Request] | None:
        try:
            read = call_args(args, kwargs)
            request = request_of(read)
        except Exception:
            _logger.debug("gemini instrumentation: could not read a media request", exc_info=True)
            return None
        call = _start(
            patches,
            instance,
            read,
            stream=False,
            is_async=is_async,
            operation=operation,
            reader=functools.partial(answer, request),
        )
        return None if call is None else (call, request)

    def close(call: Call, request: Request, response: Any, _is_async: bool) -> None:
        try:
            call.units = units(request, response, call)
        except Exception:
            _logger.debug("gemini instrumentation: could not read media units", exc_info=True)
        call.complete(response)

    return answered_once(open_call, close)


def _image_hooks(operation: str) -> Factories:
    return _hooks(operation, lambda kw: image_request(kw, operation), read_images, image_units)


def _no_request(_kwargs: dict[str, Any]) -> Request:
    return {"attrs": {}}


_images_sync, _images_async = _image_hooks(ops.GENERATE_IMAGES)
_edit_sync, _edit_async = _image_hooks(ops.EDIT_IMAGE)
_upscale_sync, _upscale_async = _image_hooks(ops.UPSCALE_IMAGE)
_recontext_sync, _recontext_async = _image_hooks(ops.RECONTEXT_IMAGE)
_segment_sync, _segment_async = _image_hooks(ops.SEGMENT_IMAGE)
_videos_sync, _videos_async = _hooks(
    ops.GENERATE_VIDEOS,
    lambda kw: video_request(kw, kw.get("model")),
    read_video_submit,
    video_submit_units,
)
_get_sync, _get_async = _hooks(
    ops.GET_OPERATION, _no_request, read_operation, operation_units, _operation_args
)

_M = "google.genai.models"
MEDIA_TARGETS: Targets = (
    (_M, "Models.generate_images", _images_sync),
    (_M, "AsyncModels.generate_images", _images_async),
    (_M, "Models.edit_image", _edit_sync),
    (_M, "AsyncModels.edit_image", _edit_async),
    (_M, "Models.upscale_image", _upscale_sync),
    (_M, "AsyncModels.upscale_image", _upscale_async),
    (_M, "Models.recontext_image", _recontext_sync),
    (_M, "AsyncModels.recontext_image", _recontext_async),
    (_M, "Models.segment_image", _segment_sync),
    (_M, "AsyncModels.segment_image", _segment_async),
    # Below the public method where the SDK has it (2.x on): generate_videos warns about its
    # deprecated arguments with stacklevel=2, and a hook above it would take the app's place in
    # the warning (hiding it: Python shows DeprecationWarning for __main__ only).
    (_M, "Models._generate_videos|Models.generate_videos", _videos_sync),
    (_M, "AsyncModels._generate_videos|AsyncModels.generate_videos", _videos_async),
    ("google.genai.operations", "Operations.get", _get_sync),
    ("google.genai.operations", "AsyncOperations.get", _get_async),
)
