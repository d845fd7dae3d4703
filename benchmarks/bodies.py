"""Realistic Gemini answers served in process through an httpx(2) ``MockTransport``.

The bodies have the shape the real API sends (candidates, usageMetadata with per-modality
details, modelVersion, responseId; SSE events with cumulative usage; a 429 with QuotaFailure,
Help and RetryInfo), so the SDK parses as much as it does in production. No socket is opened:
what is left is the SDK's own work and the instrumentation's.

The request picks the answer through two headers the benchmark client sets (the real API ignores
unknown headers): ``x-bench-status`` (200 or 429) and ``x-bench-chunks`` (SSE events per stream).

This file runs in the benchmark's worker processes, possibly in another virtualenv (peer
instrumentations), so it imports nothing from this repository.
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "gemini-2.5-flash"
TEXT = (
    "Benchmarks should be boring: the same answer every time, shaped like the real thing, so "
    "that only the instrumentation differs between runs and nothing else moves the numbers."
)
USAGE: dict[str, Any] = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 32,
    "totalTokenCount": 44,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
}


def _candidate(text: str, finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


def generate_body() -> bytes:
    return json.dumps(
        {
            "candidates": [_candidate(TEXT, "STOP")],
            "usageMetadata": USAGE,
            "modelVersion": MODEL,
            "responseId": "bench-response-0001",
        }
    ).encode()


def stream_body(chunks: int) -> bytes:
    """``chunks`` SSE events; usage is cumulative, the last event carries the finish reason."""
    words = TEXT.split(" ")
    per = max(len(words) // chunks, 1)
    events = []
    for i in range(chunks):
        last = i == chunks - 1
        piece = " ".join(words[i * per : None if last else (i + 1) * per]) or "."
        usage = dict(USAGE)
        usage["candidatesTokenCount"] = max(1, USAGE["candidatesTokenCount"] * (i + 1) // chunks)
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        event = {
            "candidates": [_candidate(piece, "STOP" if last else None)],
            "usageMetadata": usage,
            "modelVersion": MODEL,
            "responseId": "bench-response-0001",
        }
        events.append(f"data: {json.dumps(event)}\r\n\r\n")
    return "".join(events).encode()


EMBED_MODEL = "gemini-embedding-001"


def embed_body() -> bytes:
    """A batchEmbedContents answer: one 768-dimension vector and its usage."""
    values = [round(0.001 * i, 3) for i in range(768)]
    return json.dumps(
        {"embeddings": [{"values": values}], "usageMetadata": {"promptTokenCount": 12}}
    ).encode()


def quota_body() -> bytes:
    metric = "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count"
    return json.dumps(
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota, please check your plan and billing "
                f"details.\n* Quota exceeded for metric: {metric}, limit: 1000000, model: "
                f"{MODEL}\nPlease retry in 26.5s.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": metric,
                                "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute",
                                "quotaDimensions": {"location": "global", "model": MODEL},
                                "quotaValue": "1000000",
                            }
                        ],
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.Help",
                        "links": [
                            {
                                "description": "Learn more about Gemini API quotas",
                                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                            }
                        ],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26.5s"},
                ],
            }
        }
    ).encode()


_JSON = {"content-type": "application/json; charset=UTF-8"}
_SSE = {"content-type": "text/event-stream"}


def mock_transport(httpx: Any) -> Any:
    """A MockTransport of the given httpx module (``httpx`` or ``httpx2``) answering like Gemini.

    Bodies are built once; a request costs the transport a header lookup and a Response object.
    """
    generate = generate_body()
    embed = embed_body()
    quota = quota_body()
    streams: dict[int, bytes] = {}

    def handler(request: Any) -> Any:
        if request.headers.get("x-bench-status") == "429":
            return httpx.Response(429, headers=_JSON, content=quota)
        if request.url.path.endswith(":batchEmbedContents"):
            return httpx.Response(200, headers=_JSON, content=embed)
        if request.url.path.endswith(":streamGenerateContent"):
            chunks = int(request.headers.get("x-bench-chunks", "1"))
            body = streams.get(chunks)
            if body is None:
                body = streams[chunks] = stream_body(chunks)
            return httpx.Response(200, headers=_SSE, content=body)
        return httpx.Response(200, headers=_JSON, content=generate)

    return httpx.MockTransport(handler)
