"""Price a Batch API job's results file, for jobs whose results go to a file rather than inline.

A job created from an input file (``src="files/..."``, or on Vertex AI a Cloud Storage or
BigQuery source) writes its results to a JSONL file, one response per line, that the application
downloads itself (``client.files.download(file=job.dest.file_name)``). The instrumentation never
sees those responses; hand the file to this helper and it is recorded as an inline job's results
are: one ``batches {model}`` span, tokens and cost at batch rates on the counters
(``gcp.gemini.cost.processing="batch"``), once per job name in this process::

    from opentelemetry.instrumentation.gemini import record_batch_results

    job = client.batches.get(name=job.name)
    if job.state.name == "JOB_STATE_SUCCEEDED" and job.dest.file_name:
        data = client.files.download(file=job.dest.file_name)
        summary = record_batch_results(data, job=job.name, model=job.model)
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import attributes as A
from . import instrumentor
from .bounds import MAX_NAME
from .record.batches import BATCH_TRAFFIC, batch_usage, line_usage
from .record.operations import BATCHES
from .record.request import normalize_model
from .record.usage import Usage

__all__ = ["BatchResults", "record_batch_results"]

_logger = logging.getLogger(__name__)

Source = str | os.PathLike[str] | bytes | Iterable[Any]


@dataclass(frozen=True, slots=True)
class BatchResults:
    """What a results file held and what it was recorded as."""

    job: str | None
    model: str | None
    """The model priced: ``model=`` if given, else the first ``modelVersion`` in the file."""
    responses: int
    """Lines read (blank lines aside)."""
    failed: int
    """Lines that are an error or status rather than a response, or are not JSON."""
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    """At batch rates; None when the model has no known price (or no usage was found)."""
    recorded: bool
    """False when this job's results were already recorded in this process (nothing was
    recorded again)."""


def _lines(source: Source) -> Iterable[Any]:
    """Each line of the file as text (or a dict already parsed)."""
    if isinstance(source, bytes):
        yield from source.decode("utf-8", errors="replace").splitlines()
    elif isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8", errors="replace") as fh:
            yield from fh
    else:
        for line in source:
            yield line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line


def _read(source: Source) -> tuple[list[Usage], str | None, int, int]:
    usages: list[Usage] = []
    model = None
    responses = failed = 0
    for raw in _lines(source):
        if isinstance(raw, str):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                responses += 1
                failed += 1
                continue
        else:
            line = raw
        responses += 1
        usage, version, bad = line_usage(line)
        if bad:
            failed += 1
        if usage is not None:
            usages.append(usage)
        if model is None and version is not None:
            model = version
    return usages, model, responses, failed


def record_batch_results(
    results: Source,
    *,
    model: str | None = None,
    job: str | None = None,
    vertex: bool = False,
) -> BatchResults | None:
    """Record a Batch API results file: its usage summed and priced at batch rates.

    ``results``: a path, the file's bytes (as ``client.files.download`` returns them), or an
    iterable of lines (text, bytes or parsed dicts). ``model``: the job's model (``job.model``);
    without it, the ``modelVersion`` the responses carry. ``job``: the job's name, so a second
    call for the same job in this process records nothing (``recorded=False``). ``vertex``: a
    Vertex AI job (the provider on the span).

    None when the instrumentation is not active. Raises only what reading ``results`` raises
    (a missing file, say): nothing is recorded then.
    """
    recorder = instrumentor.active_recorder
    if recorder is None:
        return None
    usages, found_model, responses, failed = _read(results)
    job_name = job[:MAX_NAME] if isinstance(job, str) and job else None
    name = normalize_model(model or found_model) if (model or found_model) else None
    usage = batch_usage(usages)
    # What the caller gets back, less the cost and whether this call recorded it.
    result = functools.partial(
        BatchResults,
        job_name,
        name,
        responses,
        failed,
        usage.input_tokens if usage else 0,
        usage.output_tokens if usage else 0,
    )
    jobs = recorder.instruments.batches
    if job_name is not None and not jobs.claim(job_name):
        return result(None, False)  # this job was recorded before
    cost = None
    if usage is not None and name is not None and recorder.prices is not None:
        try:
            breakdown = recorder.prices.cost(
                name, usage, tier=recorder.tier, traffic_type=BATCH_TRAFFIC
            )
            cost = breakdown.total if breakdown is not None else None
        except Exception:
            _logger.debug("gemini instrumentation: could not price a results file", exc_info=True)
    attrs: dict[str, Any] = {
        A.GEMINI_BATCH_METHOD: "record_results",
        A.GEMINI_BATCH_RESPONSES: responses,
        A.GEMINI_BATCH_RESULTS_PRICED: True,
        A.GEMINI_COST_PROCESSING: A.PROCESSING_BATCH,
    }
    if failed:
        attrs[A.GEMINI_BATCH_FAILED_RESPONSES] = failed
    if job_name is not None:
        attrs[A.GEMINI_BATCH_JOB_NAME] = job_name
    call = recorder.start(
        name,
        None,
        None,
        vertex=vertex,
        base_url=None,
        stream=False,
        operation=BATCHES,
        reader=lambda _answer: (usage, None, None, attrs),
    )
    if call is not None:
        call.texts = None  # no content is captured from a results file
        call.complete(results)  # the reader ignores it; the call records once
    return result(cost, True)
