"""Adapters for Batch API jobs (``client.batches`` and ``client.aio.batches``): create,
create_embeddings, get, list, cancel, delete. One span per SDK call (operation ``batches``),
control flow only; what the span and the counters get is read from the SDK's objects by the
per-call reader below, and recorded by the Recorder as for any call.

Pricing rule: a job's results are priced once, at batch rates, by the first ``get`` that sees
the job succeeded with inline responses (the sum of each response's ``usage_metadata``); a later
``get`` of the same job in this process records no cost (record/batches.py remembers it). Jobs
whose results go to a file are priced by ``record_batch_results`` (batch_results.py).

Enqueued tokens: at ``create`` the tokens of inline requests are estimated from their text (the
API does not say): ``ceil(characters / CHARS_PER_TOKEN)``; they leave the gauge when a ``get``
sees the job ended, or on ``delete``. File-sourced jobs enqueue tokens we cannot see: not counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..bounds import MAX_NAME, count
from ..record import operations as ops
from ..record.batches import (
    ENDED_STATES,
    SUCCEEDED_STATES,
    BatchJobs,
    Results,
    embed_results,
    generate_results,
)
from ..record.call import Answer, Call
from ..record.usage import enum_text
from .hooks import HookFactory, answered_once
from .models import _start

if TYPE_CHECKING:
    from .seams import Patches, Targets

_logger = logging.getLogger(__name__)

# Google's rule of thumb for Gemini models: a token is about 4 characters
# (https://ai.google.dev/gemini-api/docs/tokens, checked 2026-11). Used only for the estimate of
# tokens enqueued in a batch job, which the API does not report.
CHARS_PER_TOKEN = 4
_MAX_ITEMS = 100_000  # list items walked per level when estimating (a bounded walk)
_MAX_DEPTH = 8

_NO_ANSWER: Answer = (None, None, None, None)


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else getattr(value, key, None)


def _chars(value: Any, depth: int = 0) -> int:
    """Characters of text in a batch's inline requests (contents, parts, ``text``), walked
    without copying; other fields (roles, configs, inline data) are not text."""
    if depth > _MAX_DEPTH or value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(_chars(item, depth + 1) for item in value[:_MAX_ITEMS])
    text = _get(value, "text")
    if isinstance(text, str):
        return len(text)
    return sum(
        _chars(_get(value, key), depth + 1)
        for key in ("inlined_requests", "contents", "parts", "request")
    )


def _source(src: Any) -> tuple[int | None, str | None, Any]:
    """(inline request count, source file or table, the inline requests) of a batch's src."""
    if isinstance(src, str):
        return None, src[:MAX_NAME], None
    if isinstance(src, (list, tuple)):
        return len(src), None, src
    inline = _get(src, "inlined_requests")
    if inline is not None:
        contents = _get(inline, "contents")  # embeddings: one EmbedContentBatch of contents
        if contents is not None:
            n = len(contents) if isinstance(contents, (list, tuple)) else 1
            return n, None, contents
        return (len(inline) if isinstance(inline, (list, tuple)) else None), None, inline
    for key in ("file_name", "gcs_uri", "bigquery_uri", "vertex_dataset_name"):
        found = _get(src, key)
        if isinstance(found, (list, tuple)) and found:
            found = found[0]
        if isinstance(found, str) and found:
            return None, found[:MAX_NAME], None
    return None, None, None


def _state(job: Any) -> str | None:
    text = enum_text(_get(job, "state"))
    return text[:MAX_NAME] if text else None


def _name(value: Any) -> str | None:
    return value[:MAX_NAME] if isinstance(value, str) and value else None


class _Request:
    """What the span learns from the request, before the SDK runs."""

    __slots__ = ("attrs", "job", "model", "tokens")

    def __init__(self, method: str, kwargs: dict[str, Any], jobs: BatchJobs) -> None:
        self.attrs: dict[str, Any] = {A.GEMINI_BATCH_METHOD: method}
        self.job = _name(kwargs.get("name"))
        self.model: str | None = (
            kwargs.get("model") if isinstance(kwargs.get("model"), str) else None
        )
        self.tokens = 0
        if self.job is not None:
            self.attrs[A.GEMINI_BATCH_JOB_NAME] = self.job
            if self.model is None:
                self.model = jobs.model_of(self.job)  # a job this process created
        if method.startswith("create"):
            requests, file, inline = _source(kwargs.get("src"))
            if requests is not None:
                self.attrs[A.GEMINI_BATCH_REQUEST_COUNT] = requests
            if file is not None:
                self.attrs[A.GEMINI_BATCH_SOURCE_FILE] = file
            if inline is not None:
                chars = _chars(inline)
                self.tokens = count(math.ceil(chars / CHARS_PER_TOKEN))


def _reader(
    patches: Patches, jobs: BatchJobs, method: str, request: _Request
) -> Callable[[Any], Answer]:
    """The call's reader: runs once, when the call is recorded (Recorder.record). Stateful by
    design: it enqueues a created job's tokens, ends a finished one's, and claims a succeeded
    job's results so they are priced once."""

    def read(answer: Any) -> Answer:
        attrs: dict[str, Any] = {}
        if method == "list":
            page = getattr(answer, "page", None)
            if isinstance(page, list):
                attrs[A.GEMINI_BATCH_JOB_COUNT] = len(page)
                for job in page:  # jobs seen ended leave the enqueued gauge
                    name = _name(_get(job, "name"))
                    if name is not None and _state(job) in ENDED_STATES:
                        jobs.finished(name)
            return None, None, None, attrs
        if method == "delete":
            if request.job is not None:
                jobs.finished(request.job)
            return _NO_ANSWER
        name = _name(_get(answer, "name")) or request.job
        state = _state(answer)
        model = _name(_get(answer, "model")) or request.model
        if name is not None and name != request.job:
            attrs[A.GEMINI_BATCH_JOB_NAME] = name
        if state is not None:
            attrs[A.GEMINI_BATCH_JOB_STATE] = state
        if method.startswith("create"):
            if name is not None and model:
                admitted = patches.recorder.models.admit(_short(model))
                if request.tokens and state not in ENDED_STATES:
                    attrs[A.GEMINI_BATCH_ENQUEUED_TOKENS] = request.tokens
                    jobs.enqueue(name, admitted, request.tokens)
                else:
                    jobs.remember(name, admitted)
            return None, model, None, attrs
        # get
        if name is not None and model and request.model is None:
            jobs.remember(name, patches.recorder.models.admit(_short(model)))
        if name is not None and state in ENDED_STATES:
            jobs.finished(name)
        dest = _get(answer, "dest")
        file = None
        if dest is not None:  # Developer API: a file; Vertex AI: Cloud Storage or BigQuery
            file = _name(
                _get(dest, "file_name") or _get(dest, "gcs_uri") or _get(dest, "bigquery_uri")
            )
        if file is not None:
            attrs[A.GEMINI_BATCH_RESULTS_FILE] = file
        if state not in SUCCEEDED_STATES or dest is None or name is None:
            return None, model, None, attrs
        results = _inline_results(dest)
        if results is None:
            return None, model, None, attrs
        if not jobs.claim(name):
            attrs[A.GEMINI_BATCH_RESULTS_PRICED] = False  # priced by an earlier get
            return None, model, None, attrs
        attrs[A.GEMINI_BATCH_RESULTS_PRICED] = True
        attrs[A.GEMINI_BATCH_RESPONSES] = results.responses
        if results.failed:
            attrs[A.GEMINI_BATCH_FAILED_RESPONSES] = results.failed
        attrs[A.GEMINI_COST_PROCESSING] = A.PROCESSING_BATCH
        return results.usage, model or results.model, None, attrs

    return read


def _short(model: str) -> str:
    return model.rpartition("/")[2] or model


def _inline_results(dest: Any) -> Results | None:
    """The summed usage of a job's inline responses; None when the job wrote them to a file."""
    generated = _get(dest, "inlined_responses")
    if generated:
        return generate_results(generated)
    embedded = _get(dest, "inlined_embed_content_responses")
    if embedded:
        return embed_results(embedded)
    return None


def _open(
    patches: Patches, instance: Any, method: str, kwargs: dict[str, Any], is_async: bool
) -> Call | None:
    """Open the call's span (None: let the SDK run untouched)."""
    if patches.closed:
        return None
    try:
        jobs = patches.recorder.instruments.batches
        request = _Request(method, kwargs, jobs)
        call = _start(
            patches,
            instance,
            {"model": request.model},
            stream=False,
            is_async=is_async,
            operation=ops.BATCHES,
            reader=_reader(patches, jobs, method, request),
        )
        if call is not None:
            call.span.set_attributes(request.attrs)  # known from the request, before it runs
            call.texts = None  # content capture does not cover batch jobs (README)
        return call
    except Exception:
        _logger.debug("gemini instrumentation: could not open a batch call", exc_info=True)
        return None


def _hooks(method: str) -> tuple[HookFactory, HookFactory]:
    """Hook factories (sync, async) for one Batches method."""

    def open_call(
        patches: Patches, instance: Any, _args: Any, kwargs: dict[str, Any], is_async: bool
    ) -> tuple[Call, None] | None:
        call = _open(patches, instance, method, kwargs, is_async=is_async)
        return None if call is None else (call, None)

    return answered_once(open_call)


def _targets() -> Targets:
    out = []
    for method in ("create", "create_embeddings", "get", "list", "cancel", "delete"):
        sync_factory, async_factory = _hooks(method)
        # create_embeddings warns that it is experimental with stacklevel=2: hooked below the
        # public method where the SDK has it, so the warning still names the app's line (a
        # hook above would take its place, as for generate_videos in media.py).
        for owner, factory in (("Batches", sync_factory), ("AsyncBatches", async_factory)):
            dotted = f"{owner}.{method}"
            if method == "create_embeddings":
                dotted = f"{owner}._{method}|{dotted}"
            out.append(("google.genai.batches", dotted, factory))
    return tuple(out)


BATCH_TARGETS: Targets = _targets()
