"""A fake Gemini Live API (BidiGenerateContent over websockets) on 127.0.0.1, for tests.

It speaks the Developer API's Live protocol closely enough for the real ``google-genai`` client:
the client's ``setup`` is answered with ``setupComplete``; each client message that ends a
turn (``clientContent`` with ``turnComplete``, ``realtimeInput`` with text, ``audioStreamEnd``
or ``activityEnd``, ``toolResponse``) is answered by the next scripted turn: ``serverContent``
with the model's parts and ``turnComplete``, ``usageMetadata``, ``toolCall``, ``goAway``, or a
close with a code. A handshake can be refused with an HTTP status (a 429 with Google's JSON
error body). Messages are JSON text frames with the API's camelCase names, as Google sends them.

The SDK always connects with ``wss://`` (it swaps the base URL's scheme), so the server speaks
TLS with a certificate made for 127.0.0.1 at start-up; ``client_ssl`` trusts it::

    with FakeLive() as fake:
        client = genai.Client(api_key="fake-key", http_options=types.HttpOptions(
            base_url=fake.url, async_client_args={"ssl": fake.client_ssl}))
        fake.enqueue(LiveScript([turn("Hi", usage(prompt=10, response=5))]))

Bounded and self-stopping: loopback only, at most ``max_sessions`` connections at once, frames
up to 1 MiB, ``max_messages`` client messages per session, sessions idle for ``idle_timeout``
seconds are closed, and the server stops itself after ``max_lifetime`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import ssl
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .fake_gemini import quota_error_body

# A step of a script: ("expect",) waits for the client's next turn-ending message; ("send",
# message) sends one server message; ("raw", text) sends a frame as it is (not JSON: a broken
# server); ("close", code, reason) closes the connection; ("abort",) drops the TCP connection
# without a close frame; ("sleep", seconds) pauses; ("hold",) waits until the client closes.
Step = tuple[Any, ...]

_TURN_KEYS = ("text", "audioStreamEnd", "activityEnd")


def usage(
    prompt: int = 0,
    response: int = 0,
    *,
    thoughts: int = 0,
    tool_use: int = 0,
    cached: int = 0,
    prompt_audio: int = 0,
    response_audio: int = 0,
    total: int | None = None,
    vertex: bool = False,
) -> dict[str, Any]:
    """A ``usageMetadata`` as the Live API sends it: the Developer API names the output
    ``responseTokenCount``, Vertex ``candidatesTokenCount`` (``vertex=True``; the SDK reads both
    into ``response_token_count``). ``prompt_audio``/``response_audio``: how many of
    ``prompt``/``response`` are audio."""
    out_name = "candidates" if vertex else "response"
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        f"{out_name}TokenCount": response,
        "totalTokenCount": prompt + response + thoughts + tool_use if total is None else total,
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if tool_use:
        meta["toolUsePromptTokenCount"] = tool_use
    if cached:
        meta["cachedContentTokenCount"] = cached
    meta["promptTokensDetails"] = _details(prompt, prompt_audio)
    meta[f"{out_name}TokensDetails"] = _details(response, response_audio)
    return meta


def _details(n: int, audio: int) -> list[dict[str, Any]]:
    out = []
    if n - audio > 0:
        out.append({"modality": "TEXT", "tokenCount": n - audio})
    if audio:
        out.append({"modality": "AUDIO", "tokenCount": audio})
    return out


def turn(
    text: str = "Hello from the fake Live API.",
    meta: dict[str, Any] | None = None,
    *,
    chunks: int = 1,
    usage_on: str = "complete",
) -> list[Step]:
    """Steps of one model turn: wait for the client's turn, send ``chunks`` content messages,
    then ``turnComplete``. ``usage_on``: "complete" puts ``usageMetadata`` on the turnComplete
    message; "separate" sends it as a message of its own right after; "each" on every content
    message as well (a server reporting the turn's running usage)."""
    steps: list[Step] = [("expect",)]
    for i in range(chunks):
        message: dict[str, Any] = {
            "serverContent": {"modelTurn": {"role": "model", "parts": [{"text": f"{text}"}]}}
        }
        if meta is not None and usage_on == "each":
            message["usageMetadata"] = _scaled(meta, (i + 1) / (chunks + 1))
        steps.append(("send", message))
    done: dict[str, Any] = {"serverContent": {"turnComplete": True}}
    if meta is not None and usage_on in ("complete", "each"):
        done["usageMetadata"] = meta
    steps.append(("send", done))
    if meta is not None and usage_on == "separate":
        steps.append(("send", {"usageMetadata": meta}))
    return steps


def _scaled(meta: dict[str, Any], fraction: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, int):
            out[key] = int(value * fraction)
        elif isinstance(value, list):
            out[key] = [{**d, "tokenCount": int(d["tokenCount"] * fraction)} for d in value]
    return out


def tool_call(name: str = "get_weather", args: dict[str, Any] | None = None, id: str = "call-1"):
    """Steps of a tool round: wait for the client's turn, ask for one function call."""
    return [
        ("expect",),
        ("send", {"toolCall": {"functionCalls": [{"id": id, "name": name, "args": args or {}}]}}),
    ]


def go_away(time_left: str = "10s") -> Step:
    return ("send", {"goAway": {"timeLeft": time_left}})


def close(code: int = 1000, reason: str = "") -> Step:
    return ("close", code, reason)


@dataclass
class LiveScript:
    """What one session does. ``refuse``: answer the handshake with this HTTP status (429: with
    Google's RESOURCE_EXHAUSTED body) instead of opening. ``close_on_setup``: (code, reason) to
    close right after reading ``setup``; ``silent_setup``: never answer it. ``steps`` run after
    ``setupComplete``; when they run out, the server waits for the client to close (bounded by
    ``idle_timeout``)."""

    steps: list[Step] = field(default_factory=list)
    refuse: int | None = None
    close_on_setup: tuple[int, str] | None = None
    session_id: str | None = None
    silent_setup: bool = False  # never answer ``setup`` (until the client leaves, or idle)

    @classmethod
    def turns(cls, *turns: list[Step], **kwargs: Any) -> LiveScript:
        return cls([step for t in turns for step in t], **kwargs)


class FakeLive:
    def __init__(
        self,
        *,
        max_lifetime: float = 900.0,
        max_sessions: int = 32,
        max_messages: int = 10_000,
        idle_timeout: float = 30.0,
    ) -> None:
        self.max_lifetime = max_lifetime
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.received: deque[dict[str, Any]] = deque(maxlen=1000)  # client messages, parsed
        self.paths: deque[str] = deque(maxlen=100)
        self.handshakes = 0  # every handshake answered (opened or refused), since start
        self._scripts: deque[LiveScript] = deque()
        self._lock = threading.Lock()
        self._open = 0
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server_ssl, self.client_ssl = _tls_contexts()

    # --- lifecycle --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The base URL for ``HttpOptions``: the SDK turns it into ``wss://127.0.0.1:port``."""
        return f"https://127.0.0.1:{self._port}"

    def start(self) -> FakeLive:
        self._thread = threading.Thread(target=self._run, name="fake-live", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Live server did not start")
        return self

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeLive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting --------------------------------------------------------------------------
    def enqueue(self, *scripts: LiveScript) -> None:
        """Scripts for the next sessions, in order; a session with none gets one text turn
        (with usage) per client turn."""
        with self._lock:
            self._scripts.extend(scripts)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
        self.received.clear()
        self.paths.clear()

    @property
    def open_sessions(self) -> int:
        return self._open

    def _next_script(self) -> LiveScript:
        with self._lock:
            if self._scripts:
                return self._scripts.popleft()
        return LiveScript([step for _ in range(50) for step in turn(meta=usage(12, 8))])

    # --- the server -------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(
            self._session,
            "127.0.0.1",
            0,
            ssl=self._server_ssl,
            process_request=self._process_request,
            max_size=1 << 20,
            ping_interval=None,
        ) as server:
            self._port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            # Stops itself: a forgotten server must not outlive its tests.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop, self.max_lifetime)

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.paths.append(request.path)
        with self._lock:
            self.handshakes += 1
        if self._open >= self.max_sessions:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many sessions\n")
        with self._lock:
            script = self._scripts[0] if self._scripts else None
            if script is not None and script.refuse is not None:
                self._scripts.popleft()
            else:
                script = None
        if script is None:
            return None
        status = script.refuse
        assert status is not None
        body = quota_error_body() if status == 429 else {"error": {"code": status}}
        response = connection.respond(HTTPStatus(status), json.dumps(body))
        del response.headers["Content-Type"]  # respond() wrote text/plain; Headers add, not set
        response.headers["Content-Type"] = "application/json"
        return response

    async def _session(self, ws: ServerConnection) -> None:
        self._open += 1
        try:
            await self._play(ws, self._next_script())
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        finally:
            self._open -= 1

    async def _recv(self, ws: ServerConnection) -> dict[str, Any]:
        raw = await asyncio.wait_for(ws.recv(), self.idle_timeout)
        message = json.loads(raw)
        self.received.append(message)
        return message if isinstance(message, dict) else {}

    async def _play(self, ws: ServerConnection, script: LiveScript) -> None:
        setup = await self._recv(ws)
        if "setup" not in setup:
            await ws.close(1007, "Request contains an invalid argument.")
            return
        if script.close_on_setup is not None:
            await ws.close(*script.close_on_setup)
            return
        if script.silent_setup:
            await self._recv(ws)  # bounded by idle_timeout
            return
        done: dict[str, Any] = {}
        if script.session_id is not None:
            done["sessionId"] = script.session_id
        await ws.send(json.dumps({"setupComplete": done}))
        messages = 0
        for step in script.steps:
            kind = step[0]
            if kind == "expect":
                while True:
                    messages += 1
                    if messages > self.max_messages:
                        await ws.close(1008, "too many messages")
                        return
                    if _ends_turn(await self._recv(ws)):
                        break
            elif kind == "send":
                await ws.send(json.dumps(step[1]))
            elif kind == "raw":
                await ws.send(step[1])
            elif kind == "close":
                await ws.close(step[1], step[2])
                return
            elif kind == "abort":
                ws.transport.abort()  # no close frame: the client sees 1006
                return
            elif kind == "sleep":
                await asyncio.sleep(min(float(step[1]), self.idle_timeout))
            elif kind == "hold":
                break
        while messages <= self.max_messages:  # until the client closes (or goes idle)
            messages += 1
            await self._recv(ws)


def _ends_turn(message: dict[str, Any]) -> bool:
    """Whether a client message ends the client's turn. The SDK writes some top-level keys in
    snake_case (``client_content``), as the API's JSON parser accepts both spellings."""
    if "toolResponse" in message or "tool_response" in message:
        return True
    content = message.get("clientContent", message.get("client_content"))
    if isinstance(content, dict):
        return bool(content.get("turnComplete", content.get("turn_complete")))
    realtime = message.get("realtimeInput", message.get("realtime_input"))
    if isinstance(realtime, dict):
        return any(key in realtime or _snake(key) in realtime for key in _TURN_KEYS)
    return False


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts only it. ``cryptography`` comes with google-auth, which the SDK needs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads files only: written to a private temporary file, then removed.
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_pem + key_pem)
        server.load_cert_chain(path)
    finally:
        os.unlink(path)
    client = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return server, client
