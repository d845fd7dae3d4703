"""The fake server's Imagen and Veo endpoints, answered as Vertex answers them (google-genai
reads them into GenerateImagesResponse, EditImageResponse, UpscaleImageResponse,
RecontextImageResponse, SegmentImageResponse and GenerateVideosOperation):

- ``models/{imagen...}:predict``: ``{"predictions": [{"bytesBase64Encoded", "mimeType"}...]}``,
  one per ``parameters.sampleCount`` (default 1); an image the RAI filter removed is
  ``{"raiFilteredReason": ...}``. Segmentation models answer masks (``labels`` added).
- ``models/{veo...}:predictLongRunning``: ``{"name": ".../models/{model}/operations/{id}"}``.
- ``models/{veo...}:fetchPredictOperation`` (``{"operationName": ...}``): not done for the
  submit's ``polls`` first polls, then ``{"name", "done": true, "response": {"@type",
  "videos": [{"gcsUri", "mimeType"}...], "raiMediaFilteredCount"}}``.

Scripted replies (``FakeGemini.enqueue(model, Reply(...))``) choose errors (a 429 on any of
these) as for every method; ``Reply.extra`` sets ``filtered`` (images or videos removed by the
RAI filter) and, on a video submit, ``polls`` (not-done answers before done, default 1).
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fake_gemini import Reply

_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
_RAI_REASON = "Your current safety filter threshold filtered out a generated image."
_VIDEO_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
MAX_OPERATIONS = 4096  # operations remembered; a test server never needs more
# Images or videos answered per request at most: a hostile sampleCount (10**30) is answered
# with this many rather than building the list it asks for.
MAX_SAMPLES = 16


class FakeMedia:
    """The state of long-running video operations, per fake server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # name -> [polls left before done, videos, filtered]
        self._operations: dict[str, list[int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._operations.clear()

    def answer(
        self, path: str, model: str, method: str, reply: Reply, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The 200 body of a media method, or None when ``model``/``method`` is not one."""
        if method == "predict" and not _is_embedding(model):
            return reply.body if reply.body is not None else _predict(model, reply, payload)
        if method == "predictLongRunning":
            return reply.body if reply.body is not None else self._submit(path, reply, payload)
        if method == "fetchPredictOperation":
            return reply.body if reply.body is not None else self._poll(payload)
        return None

    def _submit(self, path: str, reply: Reply, payload: dict[str, Any]) -> dict[str, Any]:
        parameters = payload.get("parameters") or {}
        videos = min(int(parameters.get("sampleCount") or 1), MAX_SAMPLES)
        filtered = min(int(reply.extra.get("filtered", 0)), videos)
        polls = int(reply.extra.get("polls", 1))
        resource = path.strip("/").partition("/")[2].rpartition(":")[0]  # after the version
        name = f"{resource}/operations/op-{next(self._ids)}"
        with self._lock:
            if len(self._operations) >= MAX_OPERATIONS:
                self._operations.clear()
            self._operations[name] = [polls, videos - filtered, filtered]
        return {"name": name}

    def _poll(self, payload: dict[str, Any]) -> dict[str, Any]:
        name = str(payload.get("operationName") or "")
        with self._lock:
            state = self._operations.get(name)
            if state is not None and state[0] > 0:
                state[0] -= 1
                return {"name": name, "done": False, "metadata": {}}
        if state is None:
            return {
                "name": name,
                "done": True,
                "error": {"code": 5, "message": "Operation not found."},
            }
        _, videos, filtered = state
        response: dict[str, Any] = {
            "@type": _VIDEO_TYPE,
            "videos": [
                {
                    "gcsUri": f"gs://fake-bucket/{name.rpartition('/')[2]}/{i}.mp4",
                    "mimeType": "video/mp4",
                }
                for i in range(videos)
            ],
        }
        if filtered:
            response["raiMediaFilteredCount"] = filtered
            response["raiMediaFilteredReasons"] = ["Unable to show generated video."]
        return {"name": name, "done": True, "response": response}


def _is_embedding(model: str) -> bool:
    return "embedding" in model or model.startswith(("textembedding", "multimodalembedding"))


def _predict(model: str, reply: Reply, payload: dict[str, Any]) -> dict[str, Any]:
    parameters = payload.get("parameters") or {}
    n = min(int(parameters.get("sampleCount") or 1), MAX_SAMPLES)
    filtered = min(int(reply.extra.get("filtered", 0)), n)
    image = {"bytesBase64Encoded": _PNG, "mimeType": "image/png"}
    if "segmentation" in model:  # masks, each with its labels
        return {"predictions": [{**image, "labels": [{"label": "cat", "score": 0.9}]}] * n}
    predictions: list[dict[str, Any]] = [dict(image) for _ in range(n - filtered)]
    predictions += [{"raiFilteredReason": _RAI_REASON} for _ in range(filtered)]
    return {"predictions": predictions}
