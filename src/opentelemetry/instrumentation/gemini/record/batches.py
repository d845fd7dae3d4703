"""What this process knows about Batch API jobs: the tokens it has enqueued in jobs not finished
yet (against the tier's ``batch_enqueued_tokens`` limit), and which jobs' results it has already
priced (so a job polled again is never counted twice).

Both are bounded: a process that creates or polls an unbounded number of jobs keeps the latest
``MAX_JOBS`` of each; older ones are forgotten (an old enqueued job leaves the gauge; an old
priced job, seen again, would be priced again: README says so). The state lives with the meter
provider's instruments (instruments.py), so ``uninstrument()`` and a later ``instrument()`` keep
it: a job priced before is not priced again after re-instrumentation.

Pure bookkeeping: no SDK, no OpenTelemetry. The readers below turn the SDK's objects (or a
results file's JSON) into our ``Usage`` records.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any, Final

from ..bounds import MAX_COUNT, count
from .long_running import LongRunning
from .usage import Usage, sum_usages, usage_from_metadata

MAX_JOBS: Final = 10_000  # job names remembered per kind (enqueued, priced), oldest dropped
BATCH_TRAFFIC: Final = "batch"  # the PriceBook's traffic type for Batch API prices

# JobState names that end a job (google-genai's JOB_STATES_ENDED, and the Developer API's
# BATCH_STATE_* spellings the SDK maps onto them).
ENDED_STATES: Final = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)
SUCCEEDED_STATES: Final = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})


class BatchJobs:
    """Enqueued tokens per job (and per model), and the jobs whose results are priced."""

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self._lock = threading.Lock()
        self._max = max_jobs
        # job name -> (model, estimated tokens), oldest first
        self._enqueued: OrderedDict[str, tuple[str, int]] = OrderedDict()
        # job name -> model, for the jobs this process created: a later get, cancel or delete
        # names only the job, and its span and metrics should still name the model.
        self._model_of: OrderedDict[str, str] = OrderedDict()
        # Names whose results were priced: the same bounded "first seen done" memory as video
        # operations' (long_running.py); only its done half is used here.
        self._priced = LongRunning(max_pending=0, max_done=max_jobs)
        # Models that ever had a job enqueued: their gauge reports 0 once every job is done,
        # rather than vanishing. Names come capped (the recorder's ModelCap).
        self._models: set[str] = set()

    # --- enqueued tokens --------------------------------------------------------------------
    def enqueue(self, job: str, model: str, tokens: int) -> None:
        """A job this process created, with the tokens it enqueued (an estimate, see
        sdk/batches.py). A name seen again replaces its entry."""
        with self._lock:
            self._enqueued.pop(job, None)
            self._enqueued[job] = (model, tokens)
            self._models.add(model)
            while len(self._enqueued) > self._max:
                self._enqueued.popitem(last=False)
        self.remember(job, model)

    def remember(self, job: str, model: str) -> None:
        """The model a job runs, for later calls that name only the job."""
        with self._lock:
            self._model_of[job] = model
            while len(self._model_of) > self._max:
                self._model_of.popitem(last=False)

    def model_of(self, job: str) -> str | None:
        """The model of a job this process created and still remembers."""
        with self._lock:
            return self._model_of.get(job)

    def finished(self, job: str) -> None:
        """The job ended (or was deleted): its tokens leave the gauge."""
        with self._lock:
            self._enqueued.pop(job, None)

    def enqueued_by_model(self) -> dict[str, int]:
        """Tokens in jobs not finished yet, per model: what the gauge reports."""
        with self._lock:
            entries = list(self._enqueued.values())
            out = dict.fromkeys(self._models, 0)
        for model, tokens in entries:
            out[model] = min(out.get(model, 0) + tokens, MAX_COUNT)
        return out

    # --- results priced once ----------------------------------------------------------------
    def claim(self, job: str) -> bool:
        """True the first time a job's results are to be priced in this process; False after
        (the caller then records nothing)."""
        return self._priced.first_done(job)[0]

    def reset_after_fork(self) -> None:
        """The child keeps which jobs were priced (its parent counted them) but reports no
        enqueued tokens: they are the parent's to report."""
        self._lock = threading.Lock()
        self._priced.reset_after_fork()
        self._enqueued = OrderedDict()
        self._models = set()


# --- usage of a job's results ----------------------------------------------------------------
class Results:
    """The summed usage of a batch's responses, how many there were and how many failed."""

    __slots__ = ("failed", "model", "responses", "usage")

    def __init__(self, usage: Usage | None, responses: int, failed: int, model: str | None):
        self.usage = usage
        self.responses = responses
        self.failed = failed
        self.model = model  # modelVersion the responses carry, when they name one


def batch_usage(usages: list[Usage]) -> Usage | None:
    """The responses' usage summed (each request is billed on its own), marked as batch
    traffic so the PriceBook applies batch rates."""
    if not usages:
        return None
    total = sum_usages(usages) if len(usages) > 1 else usages[0]
    total.traffic_type = BATCH_TRAFFIC
    return total


def generate_results(items: Iterable[Any]) -> Results:
    """google-genai's ``InlinedResponse`` objects: each ``response.usage_metadata``."""
    usages: list[Usage] = []
    responses = failed = 0
    model = None
    for item in items:
        responses += 1
        response = getattr(item, "response", None)
        if response is None or getattr(item, "error", None) is not None:
            failed += 1
            continue
        usage = usage_from_metadata(getattr(response, "usage_metadata", None))
        if usage is not None:
            usages.append(usage)
        version = getattr(response, "model_version", None)
        if model is None and isinstance(version, str) and version:
            model = version
    return Results(batch_usage(usages), responses, failed, model)


def embed_results(items: Iterable[Any]) -> Results:
    """google-genai's ``InlinedEmbedContentResponse`` objects: each ``response.token_count``
    (input tokens; embeddings have no output)."""
    usages: list[Usage] = []
    responses = failed = 0
    for item in items:
        responses += 1
        response = getattr(item, "response", None)
        if response is None or getattr(item, "error", None) is not None:
            failed += 1
            continue
        tokens = _int(getattr(response, "token_count", None))
        if tokens:
            usages.append(Usage(prompt_tokens=tokens, total_tokens=tokens))
    return Results(batch_usage(usages), responses, failed, None)


# --- a results JSONL file, as the Batch API writes it ----------------------------------------
_COUNTS: Final = (
    ("promptTokenCount", "prompt_token_count"),
    ("cachedContentTokenCount", "cached_content_token_count"),
    ("candidatesTokenCount", "candidates_token_count"),
    ("thoughtsTokenCount", "thoughts_token_count"),
    ("toolUsePromptTokenCount", "tool_use_prompt_token_count"),
    ("totalTokenCount", "total_token_count"),
)
_DETAILS: Final = (
    ("promptTokensDetails", "prompt_tokens_details"),
    ("cacheTokensDetails", "cache_tokens_details"),
    ("candidatesTokensDetails", "candidates_tokens_details"),
    ("toolUsePromptTokensDetails", "tool_use_prompt_tokens_details"),
)
_MAX_DETAILS: Final = 16  # modality entries read per list (there are five modalities)


def _int(value: Any) -> int:
    """A token count as JSON carries it: a number, or (int64 fields) a decimal string."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        value = int(value)
    return count(value)


def _json_metadata(meta: Any) -> Any:
    """``usageMetadata`` as JSON has it (camelCase) -> the attribute shape usage_from_metadata
    reads."""
    if not isinstance(meta, dict):
        return None
    out = SimpleNamespace(traffic_type=None)
    for json_name, name in _COUNTS:
        setattr(out, name, _int(meta.get(json_name)))
    for json_name, name in _DETAILS:
        details = meta.get(json_name)
        items = []
        if isinstance(details, list):
            for d in details[:_MAX_DETAILS]:
                if isinstance(d, dict) and isinstance(d.get("modality"), str):
                    items.append(
                        SimpleNamespace(
                            modality=d["modality"], token_count=_int(d.get("tokenCount"))
                        )
                    )
        setattr(out, name, items)
    return out


def line_usage(line: Any) -> tuple[Usage | None, str | None, bool]:
    """One parsed line of a results file: (usage, modelVersion, failed).

    The Developer API writes one ``GenerateContentResponse`` per line, wrapped with the
    request's key as ``{"key": ..., "response": {...}}`` (or ``{"key": ..., "error": {...}}``
    / a status for a request that failed); Vertex AI writes ``{"request": ..., "response":
    ..., "status": ""}``. A bare response (``usageMetadata`` at the top) is read too, and an
    embeddings response (``tokenCount``, or ``usageMetadata.promptTokenCount``)."""
    if not isinstance(line, dict):
        return None, None, True
    response = line.get("response")
    if not isinstance(response, dict):
        if "usageMetadata" in line or "candidates" in line:
            response = line
        else:
            return None, None, True  # an error or a status: a request that was not answered
    status = line.get("status")
    if line.get("error") or (isinstance(status, str) and status):
        return None, None, True
    version = response.get("modelVersion")
    model = version if isinstance(version, str) and version else None
    meta = response.get("usageMetadata")
    if meta is None and "tokenCount" in response:
        tokens = _int(response.get("tokenCount"))
        return (Usage(prompt_tokens=tokens, total_tokens=tokens) if tokens else None), model, False
    return usage_from_metadata(_json_metadata(meta)), model, False
