"""A fake Gemini Developer API on 127.0.0.1, for examples, tests and dashboard trials.

It answers the real ``google-genai`` client over HTTP with bodies shaped like the real API's:
``generateContent`` JSON, ``streamGenerateContent?alt=sse`` server-sent events with cumulative
usage, ``countTokens``, context caches (``cachedContents``: fake_caches.py), grounding on demand
(``Reply.candidate_fields``: fake_grounding.py), and error bodies (429 RESOURCE_EXHAUSTED with
QuotaFailure/RetryInfo, 500...). Replies can be scripted per model, in process (``enqueue``) or
from another process (``POST /_fake/enqueue``). ``requests`` logs every request with the
``status`` it was answered (None while unanswered). The server binds loopback only and stops
itself after ``max_lifetime`` seconds.

    with FakeGemini() as fake:
        client = genai.Client(api_key="fake-key",
                              http_options=types.HttpOptions(base_url=fake.url))
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from .fake_batches import FakeBatches
from .fake_caches import FakeCaches
from .fake_interactions import FakeInteractions
from .fake_media import FakeMedia

DEFAULT_USAGE: dict[str, Any] = {"promptTokenCount": 12, "candidatesTokenCount": 8}


def quota_error_body(
    *,
    quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    metric: str = "generativelanguage.googleapis.com/generate_content_free_tier_requests",
    model: str = "gemini-2.5-flash",
    limit: int = 10,
    retry_delay: str = "26s",
) -> dict[str, Any]:
    """A Developer API 429 body with QuotaFailure, Help and RetryInfo, as Google sends it."""
    seconds = retry_delay.rstrip("s")
    return {
        "error": {
            "code": 429,
            "message": (
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, head to: "
                "https://ai.google.dev/gemini-api/docs/rate-limits.\n"
                f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}\n"
                f"Please retry in {seconds}s."
            ),
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": metric,
                            "quotaId": quota_id,
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": str(limit),
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
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
            ],
        }
    }


def server_error_body(code: int = 500) -> dict[str, Any]:
    status = {500: "INTERNAL", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": "An internal error has occurred.", "status": status}}


class FakeCredentials:
    """Just enough of google.auth credentials for a client in Vertex mode against the fake
    server (it checks no token)."""

    token = "fake-token"
    valid = True
    expired = False
    quota_project_id = None

    def refresh(self, request: Any) -> None:
        pass

    def before_request(self, *args: Any) -> None:
        pass


@dataclass
class Reply:
    """One scripted answer. ``status`` != 200 sends ``error_body`` (or a default error)."""

    status: int = 200
    error_body: dict[str, Any] | None = None
    text: str = "Hello from the fake Gemini."
    usage: dict[str, Any] | None = None
    model_version: str | None = None
    finish_reason: str = "STOP"
    chunks: int = 3  # stream replies: how many SSE events
    chunk_delay: float = 0.0
    error_after_chunks: int | None = None  # stream replies: an in-stream error after N chunks
    response_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw_body: str | None = None  # sent as text/html instead of a JSON body (a proxy's page)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. x-gemini-service-tier
    body: dict[str, Any] | None = None  # a whole 200 body, for methods beyond generateContent
    # Fields added to the answer's candidate (a stream's last chunk): groundingMetadata,
    # urlContextMetadata... (see fake_grounding.py)
    candidate_fields: dict[str, Any] = field(default_factory=dict)
    # A broken or hostile transport, for stream replies: ``sse_body`` is sent as it is after a
    # 200 ``text/event-stream`` head (malformed lines, a BOM, an HTML page, nothing at all);
    # ``trickle`` sends the body one byte at a time with this pause (seconds) between bytes;
    # ``reset_after`` resets the TCP connection (RST, no clean end) after that many body bytes.
    sse_body: bytes | None = None
    trickle: float = 0.0
    reset_after: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _candidate(text: str, finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


def _usage(reply: Reply) -> dict[str, Any]:
    usage = dict(reply.usage if reply.usage is not None else DEFAULT_USAGE)
    if "totalTokenCount" not in usage:
        usage["totalTokenCount"] = sum(
            usage.get(k, 0)
            for k in (
                "promptTokenCount",
                "candidatesTokenCount",
                "thoughtsTokenCount",
                "toolUsePromptTokenCount",
            )
        )
    if "promptTokenCount" in usage and "promptTokensDetails" not in usage:
        usage["promptTokensDetails"] = [
            {"modality": "TEXT", "tokenCount": usage["promptTokenCount"]}
        ]
    return usage


def _scaled_usage(usage: dict[str, Any], fraction: float) -> dict[str, Any]:
    """Cumulative usage part-way through a stream: prompt known at once, output grows."""
    out = dict(usage)
    for key in ("candidatesTokenCount", "thoughtsTokenCount"):
        if key in out:
            out[key] = int(out[key] * fraction)
    out["totalTokenCount"] = sum(
        out.get(k, 0)
        for k in (
            "promptTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
            "toolUsePromptTokenCount",
        )
    )
    return out


def _embedding(dims: int, tokens: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"values": [round(0.01 * i, 2) for i in range(dims)]}
    if tokens is not None:  # Vertex: each embedding's own statistics
        out["statistics"] = {"token_count": tokens, "truncated": False}  # as Vertex spells it
    return out


def _method_body(method: str, reply: Reply, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The 200 body of a method other than (stream)generateContent, shaped as the real API's;
    None for those two. ``reply.body`` replaces it whole; ``reply.usage`` sets the counts."""
    if reply.body is not None and method not in ("generateContent", "streamGenerateContent"):
        return reply.body
    usage = reply.usage if reply.usage is not None else {"promptTokenCount": 5}
    if method == "countTokens":
        return {"totalTokens": 12, **reply.extra}
    if method == "computeTokens":
        return {"tokensInfo": [{"tokenIds": ["1", "2", "3"], "tokens": ["YQ==", "Yg==", "Yw=="]}]}
    if method == "batchEmbedContents":  # Developer API: one embedding per request
        n = max(len(payload.get("requests") or []), 1)
        return {"embeddings": [_embedding(8) for _ in range(n)], "usageMetadata": usage}
    if method == "embedContent":  # Developer API single, and Vertex's gemini embeddings
        return {"embedding": _embedding(8), "usageMetadata": usage}
    if method == "predict":  # Vertex text embeddings: statistics per instance
        n = max(len(payload.get("instances") or []), 1)
        tokens = int(usage.get("promptTokenCount", 5))
        return {
            "predictions": [{"embeddings": _embedding(8, tokens)} for _ in range(n)],
            "metadata": {"billableCharacterCount": 11 * n},
        }
    if method in ("generateContent", "streamGenerateContent"):
        return None
    return {}


def sse_events(reply: Reply, version: str, response_id: str) -> Iterator[bytes]:
    """A stream reply's server-sent events, each as the bytes sent: cumulative usage on each,
    the finish reason on the last, or an error event after ``error_after_chunks``."""
    usage = _usage(reply)
    if "candidates" in reply.extra:  # e.g. a function call: one event, as scripted
        event = {
            "usageMetadata": usage,
            "modelVersion": version,
            "responseId": response_id,
            **reply.extra,
        }
        yield f"data: {json.dumps(event)}\r\n\r\n".encode()
        return
    n = max(reply.chunks, 1)
    words = reply.text.split(" ")
    per = max(len(words) // n, 1)
    for i in range(n):
        if reply.error_after_chunks is not None and i >= reply.error_after_chunks:
            err = reply.error_body or server_error_body(500)
            yield f"data: {json.dumps(err)}\r\n\r\n".encode()
            return
        last = i == n - 1
        piece = " ".join(words[i * per : None if last else (i + 1) * per])
        if not last:
            piece += " "
        event = {
            "candidates": [
                {
                    **_candidate(piece, reply.finish_reason if last else None),
                    **(reply.candidate_fields if last else {}),
                }
            ],
            "usageMetadata": _scaled_usage(usage, (i + 1) / n),
            "modelVersion": version,
            "responseId": response_id,
        }
        yield f"data: {json.dumps(event)}\r\n\r\n".encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses bursts of concurrent test clients


class FakeGemini:
    """The server. ``enqueue(model, *replies)`` scripts the next answers for a model
    (``model=None``: for any model); unscripted requests get ``Reply()``."""

    def __init__(self, port: int = 0, *, max_lifetime: float = 900.0) -> None:
        self._scripts: dict[str | None, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.caches = FakeCaches()  # cachedContents: create, get, list, update, delete
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._max_lifetime = max_lifetime
        self._timer: threading.Timer | None = None
        self.batches = FakeBatches()  # Batch API jobs (fake_batches.py)
        self.interactions = FakeInteractions()  # Interactions API (fake_interactions.py)
        self.media = FakeMedia()  # Imagen and Veo endpoints (fake_media.py)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeGemini:
        self._thread.start()
        self._timer = threading.Timer(self._max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, model: str | None, *replies: Reply) -> None:
        with self._lock:
            self._scripts[model].extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
        self.batches.reset()
        self.interactions.reset()
        self.media.reset()
        self.caches.reset()

    def _next_reply(self, model: str) -> Reply:
        with self._lock:
            for key in (model, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return Reply()

    # --- HTTP ------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle's algorithm on, a kept-alive
            # connection waits ~40 ms for the client's delayed ACK before sending the body.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send_json(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self._answered(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _log(self, entry: dict[str, Any]) -> None:
                """Log a request; its ``status`` is stamped once answered (None until then)."""
                entry["status"] = None
                self._entry = entry
                with fake._lock:
                    fake.requests.append(entry)

            def _answered(self, status: int) -> None:
                entry = getattr(self, "_entry", None)
                if entry is not None and entry["status"] is None:
                    entry["status"] = status

            def _send_scripted_error(self, reply: Reply, model: str) -> bool:
                """Send ``reply`` if it is not a 200 (or is a raw page); whether it was sent."""
                if reply.raw_body is not None:
                    data = reply.raw_body.encode()
                    self._answered(reply.status)
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/html; charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return True
                if reply.status == 200:
                    return False
                body = reply.error_body
                if body is None:
                    body = (
                        quota_error_body(model=model)
                        if reply.status == 429
                        else server_error_body(reply.status)
                    )
                self._send_json(reply.status, body, reply.headers)
                return True

            def _caches(self, verb: str, payload: dict[str, Any]) -> None:
                """cachedContents (fake_caches.py): a scripted error first (``model=None``
                scripts, or scripts for "cachedContents"), as for every method; a scripted
                200's ``usage`` totalTokenCount is what a create reports."""
                path, _, query = self.path.partition("?")
                self._log(
                    {"model": "", "method": f"{verb} {path}", "body": payload, "at": time.time()}
                )
                reply = fake._next_reply("cachedContents")
                if self._send_scripted_error(reply, ""):
                    return
                tokens = (reply.usage or {}).get("totalTokenCount")
                status, body = fake.caches.handle(
                    verb, path, dict(parse_qsl(query)), payload, tokens
                )
                self._send_json(status, body, reply.headers)

            def _other_method(self, verb: str) -> None:
                """GET, PATCH, DELETE (caches, files, models.list...): a scripted error for the
                first path segment after the version (``model=None`` scripts: any), else ``{}``."""
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if FakeCaches.owns(self.path):
                    try:
                        self._caches(verb, json.loads(raw or b"{}"))
                    except ValueError:
                        self._caches(verb, {})
                    return
                path = self.path.split("?", 1)[0]
                self._log({"model": "", "method": f"{verb} {path}", "body": {}, "at": time.time()})
                reply = fake._next_reply("")
                if self._send_scripted_error(reply, ""):
                    return
                batch = fake.batches.other(verb, path) or fake.interactions.other(verb, path)
                if batch is not None:
                    self._send_json(*batch)
                    return
                self._send_json(200, reply.body or {}, reply.headers)

            def do_GET(self) -> None:
                self._other_method("GET")

            def do_PATCH(self) -> None:
                self._other_method("PATCH")

            def do_DELETE(self) -> None:
                self._other_method("DELETE")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {}
                path = self.path.split("?", 1)[0]
                if path == "/_fake/enqueue":
                    replies = [Reply.from_json(r) for r in payload.get("replies", [])]
                    fake.enqueue(payload.get("model"), *replies)
                    self._send_json(200, {"enqueued": len(replies)})
                    return
                if FakeCaches.owns(path):
                    self._caches("POST", payload)
                    return
                model, _, method = path.rsplit("/", 1)[-1].partition(":")
                self._log({"model": model, "method": method, "body": payload, "at": time.time()})
                reply = fake._next_reply(model)
                if self._send_scripted_error(reply, model):
                    return
                media = fake.media.answer(path, model, method, reply, payload)
                if media is not None:
                    self._send_json(200, media, reply.headers)
                    return
                batch = fake.batches.post(path, method, model, reply.usage, payload)
                if batch is not None:
                    self._send_json(*batch)
                    return
                interaction = fake.interactions.post(
                    path, payload, reply.usage, reply.text, reply.chunks, reply.extra
                )
                if isinstance(interaction, list):
                    self._events(interaction, reply)
                    return
                if interaction is not None:
                    self._send_json(*interaction, reply.headers)
                    return
                other = _method_body(method, reply, payload)
                if other is not None:
                    self._send_json(200, other, reply.headers)
                    return
                if method not in ("generateContent", "streamGenerateContent"):
                    self._send_json(404, server_error_body(404))
                    return
                version = reply.model_version or model
                response_id = reply.response_id or f"fake-{len(fake.requests)}"
                if method == "generateContent":
                    self._send_json(
                        200,
                        {
                            "candidates": [
                                {
                                    **_candidate(reply.text, reply.finish_reason),
                                    **reply.candidate_fields,
                                }
                            ],
                            "usageMetadata": _usage(reply),
                            "modelVersion": version,
                            "responseId": response_id,
                            **reply.extra,
                        },
                        reply.headers,
                    )
                    return
                self._stream(reply, version, response_id)

            def _events(self, events: list[dict[str, Any]], reply: Reply) -> None:
                """Server-sent events, one JSON object each (the Interactions API's stream)."""
                delay = reply.chunk_delay
                self._answered(200)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                if reply.sse_body is not None or reply.trickle or reply.reset_after is not None:
                    body = reply.sse_body
                    if body is None:
                        body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
                    self._raw_stream(reply, body)
                    return
                try:
                    for event in events:
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                        if delay:
                            time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def _raw_stream(self, reply: Reply, body: bytes) -> None:
                """A stream reply's body as bytes, as ``reply``'s transport options say."""
                try:
                    if reply.reset_after is not None:
                        body = body[: reply.reset_after]
                    if reply.trickle:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(body)
                        self.wfile.flush()
                    if reply.reset_after is not None:
                        # SO_LINGER 0: close() sends a RST, the client sees a reset connection.
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.connection.close()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                self.close_connection = True

            def _stream(self, reply: Reply, version: str, response_id: str) -> None:
                if reply.sse_body is not None or reply.trickle or reply.reset_after is not None:
                    self._answered(200)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    body = reply.sse_body
                    if body is None:
                        body = b"".join(sse_events(reply, version, response_id))
                    self._raw_stream(reply, body)
                    return
                self._answered(200)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for event in sse_events(reply, version, response_id):
                        self.wfile.write(event)
                        self.wfile.flush()
                        if reply.chunk_delay:
                            time.sleep(reply.chunk_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: a closed or abandoned stream
                self.close_connection = True

        return Handler


def main() -> None:
    """``python -m opentelemetry.instrumentation.gemini.testing.fake_gemini [port]``."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    fake = FakeGemini(port, max_lifetime=float(sys.argv[2]) if len(sys.argv) > 2 else 3600)
    fake.start()
    print(f"fake Gemini listening on {fake.url}", flush=True)
    try:
        fake._thread.join()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
