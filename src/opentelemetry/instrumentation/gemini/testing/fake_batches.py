"""Batch API endpoints of the fake Gemini Developer API (delegated to from fake_gemini.py).

Shaped as the real API answers (google-genai's ``_BatchJob_from_mldev`` reads them): a job is a
long-running operation ``{"name": "batches/{id}", "metadata": {...GenerateContentBatch...},
"done": ..., "response": ...}`` whose ``metadata.state`` is a ``BATCH_STATE_*`` and whose
``metadata.output`` holds ``inlinedResponses.inlinedResponses[]`` (each a GenerateContentResponse,
or for embeddings ``{"embedding": ..., "tokenCount": ...}``) or a ``responsesFile``.

- ``POST models/{m}:batchGenerateContent`` and ``POST models/{m}:asyncBatchEmbedContent``
  create a job (pending); inline requests are answered one response each.
- ``GET batches/{id}``: each get moves the job on (pending, running, then succeeded after
  ``polls_to_finish`` gets); ``GET batches`` lists jobs; ``POST batches/{id}:cancel`` and
  ``DELETE batches/{id}``. Errors (429...) are scripted through FakeGemini.enqueue as for any
  method; an unknown job answers 404.

A job's responses carry the usage of the Reply scripted for its create (``Reply.usage``).
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DEFAULT_USAGE: dict[str, Any] = {"promptTokenCount": 12, "candidatesTokenCount": 8}
_GENERATE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
_EMBED_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.EmbedContentBatch"
_ENDED = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED")

Answer = tuple[int, dict[str, Any]]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: int, message: str) -> dict[str, Any]:
    status = {404: "NOT_FOUND", 400: "INVALID_ARGUMENT"}.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message, "status": status}}


@dataclass
class FakeJob:
    name: str
    model: str
    embed: bool
    requests: int  # inline requests (0: the input is a file)
    source_file: str | None
    usage: dict[str, Any]
    display_name: str = ""
    state: str = "BATCH_STATE_PENDING"
    gets: int = 0
    failed: set[int] = field(default_factory=set)  # indexes of requests answered with an error
    created: str = field(default_factory=_now)

    def response(self, i: int) -> dict[str, Any]:
        if self.embed:
            tokens = int(self.usage.get("promptTokenCount", 5))
            return {"embedding": {"values": [0.01, 0.02, 0.03]}, "tokenCount": str(tokens)}
        usage = dict(self.usage)
        usage.setdefault(
            "totalTokenCount",
            sum(
                usage.get(k, 0)
                for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
            ),
        )
        return {
            "candidates": [
                {
                    "content": {"parts": [{"text": f"answer {i}"}], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": f"{self.name.rpartition('/')[2]}-{i}",
        }

    def results_lines(self) -> list[dict[str, Any]]:
        """What the results file of this job holds, one dict per line (keyed as the input)."""
        lines = []
        for i in range(max(self.requests, 1)):
            if i in self.failed:
                lines.append({"key": f"request-{i}", "error": _error(400, "bad request")["error"]})
            else:
                lines.append({"key": f"request-{i}", "response": self.response(i)})
        return lines

    def body(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "@type": _EMBED_TYPE if self.embed else _GENERATE_TYPE,
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "createTime": self.created,
            "updateTime": _now(),
            "batchStats": {"requestCount": str(self.requests)},
            "state": self.state,
            "name": self.name,
        }
        done = self.state in _ENDED
        out: dict[str, Any] = {"name": self.name, "metadata": metadata, "done": done}
        if self.state == "BATCH_STATE_SUCCEEDED":
            if self.source_file is not None:
                output: dict[str, Any] = {"responsesFile": f"files/{self.name[8:]}-results"}
            else:
                responses = [
                    {"error": _error(400, "bad request")["error"], "metadata": {"key": str(i)}}
                    if i in self.failed
                    else {"response": self.response(i), "metadata": {"key": str(i)}}
                    for i in range(self.requests)
                ]
                output = {"inlinedResponses": {"inlinedResponses": responses}}
            metadata["output"] = output
            metadata["endTime"] = _now()
            out["response"] = {"@type": metadata["@type"] + "Output", **output}
        return out


class FakeBatches:
    """The jobs of one fake server. ``polls_to_finish``: gets answered before a job succeeds
    (the first ``polls_to_finish - 1`` see it running)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.jobs: dict[str, FakeJob] = {}
        self.polls_to_finish = 2

    def reset(self) -> None:
        with self._lock:
            self.jobs.clear()
            self.polls_to_finish = 2

    def job(self, name: str) -> FakeJob:
        return self.jobs[name]

    # --- HTTP ------------------------------------------------------------------------------
    def post(
        self, path: str, method: str, model: str, usage: dict[str, Any] | None, payload: Any
    ) -> Answer | None:
        """A POST this module answers (create, cancel); None for any other."""
        if method in ("batchGenerateContent", "asyncBatchEmbedContent"):
            return self._create(model, method == "asyncBatchEmbedContent", usage, payload)
        if method == "cancel" and "/batches/" in path:
            job = self._find(path.rpartition(":")[0])
            if job is None:
                return 404, _error(404, "batch not found")
            if job.state not in _ENDED:
                job.state = "BATCH_STATE_CANCELLED"
            return 200, {}
        return None

    def other(self, verb: str, path: str) -> Answer | None:
        """GET batches, GET/DELETE batches/{id}; None for any other path."""
        segments = path.strip("/").split("/")
        if "batches" not in segments:
            return None
        at = segments.index("batches")
        if len(segments) == at + 1:
            if verb != "GET":
                return None
            with self._lock:
                jobs = list(self.jobs.values())
            return 200, {"operations": [j.body() for j in jobs]}
        job = self._find(path)
        if job is None:
            return 404, _error(404, "batch not found")
        if verb == "DELETE":
            with self._lock:
                self.jobs.pop(job.name, None)
            return 200, {}
        if verb != "GET":
            return None
        with self._lock:
            job.gets += 1
            if job.state not in _ENDED:
                job.state = (
                    "BATCH_STATE_SUCCEEDED"
                    if job.gets >= self.polls_to_finish
                    else "BATCH_STATE_RUNNING"
                )
        return 200, job.body()

    def _find(self, path: str) -> FakeJob | None:
        name = "batches/" + path.rstrip("/").rpartition("/")[2]
        with self._lock:
            return self.jobs.get(name)

    def _create(
        self, model: str, embed: bool, usage: dict[str, Any] | None, payload: Any
    ) -> Answer:
        batch = payload.get("batch") if isinstance(payload, dict) else None
        config = (batch or {}).get("inputConfig") or {}
        requests = config.get("requests") or {}
        if embed:
            inline = requests.get("requests") if isinstance(requests, dict) else None
        else:
            inline = requests.get("requests") if isinstance(requests, dict) else None
        source_file = config.get("fileName") or config.get("file_name")
        if inline is None and source_file is None:
            return 400, _error(400, "batch.input_config is required")
        name = f"batches/fake{next(self._ids):06d}"
        job = FakeJob(
            name=name,
            model=model,
            embed=embed,
            requests=len(inline) if isinstance(inline, list) else 0,
            source_file=source_file if isinstance(source_file, str) else None,
            usage=dict(usage if usage is not None else DEFAULT_USAGE),
            display_name=str((batch or {}).get("displayName") or ""),
        )
        with self._lock:
            self.jobs[name] = job
        return 200, job.body()

    def results_jsonl(self, name: str) -> str:
        """The job's results file as the Batch API writes it (one JSON object per line)."""
        return "".join(json.dumps(line) + "\n" for line in self.jobs[name].results_lines())
