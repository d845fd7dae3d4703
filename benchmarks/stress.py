"""Stress test under concurrency and faults: ``python benchmarks/stress.py [--seconds 120]``.

A bounded, self-stopping script (not a pytest test). It starts the fake Gemini server
(testing/fake_gemini.py) on 127.0.0.1 and drives the real ``google-genai`` client at it from
``--threads`` threads making sync calls and ``--tasks`` asyncio tasks (one event loop thread)
making async calls, while a side thread runs ``gc.collect()`` every few milliseconds (young
generations; every ``--full-gc-every``-th full) and a low gen-0 threshold (``--gc-threshold``)
makes automatic collections land inside any allocation, in any thread, under any lock. Every
worker picks, from its own seeded RNG (``--seed``), one outcome kind per call, each on a model
of its own (``stress-<kind>-<sync|async>``) so that concurrent workers cannot take each other's
scripted replies:

    ok        200 generate_content           429     quota error (SDK retries off)
    500       server error                   stream  stream read to the end
    break     stream broken out of after one chunk
    drop      stream dropped unread inside a reference cycle (the SDK sends nothing then)
    dropread  stream dropped after one chunk inside a reference cycle
    instream  stream with an in-stream error event after one chunk
    cancel    async only: task.cancel() after the first chunk of a slow stream
    timeout   async only: asyncio.wait_for(tiny timeout) on the next chunk of a slow stream

Beside them, ``--surface-threads`` sync threads and ``--surface-tasks`` async tasks (2 each by
default) call the other surfaces, each pick from its own seeded RNG:

    embed     embed_content                  count     count_tokens
    chat      a chat turn with automatic function calling (a function call, the tool, the answer;
              a model per worker, so its two scripted replies are its own)
    cache     caches.create then caches.delete
    batch     batches.create, then 3 pollers at once (threads, or coroutines) get the job until
              it has succeeded, and once more each
    interact  interactions.create            istream   interactions.create(stream=True), read out
    image     generate_images (Vertex mode: google-genai 3.6 has Imagen only there)
    video     generate_videos (Vertex), then 3 pollers at once poll the operation until done
    live      async only: a Live session on the websocket fake (connect, one turn, close)
    retry     embed_content on a client with the SDK's own retries on (HttpRetryOptions,
              attempts=2): its first attempt is answered 429 or 500, the retry 200

One surface call in four gets a fault: one of its requests is answered 429 (QuotaFailure,
RetryInfo) or 500, scripted on the fake under the request's key (the embedding model, the
Flash model for count_tokens or a batch create, ``cachedContents`` for a cache's create or
delete, ``""`` for a batch job's get, ``interactions``, the Imagen model, the Veo model for a
submit or a poll, a refused Live handshake; a chat's first round on its own model). Keys are
shared by the workers, so a fault may land on another worker's request: every request tallies
the status it got, and pollers poll on after a failed poll (a job or operation whose poll
failed once is still priced once).
and a side thread calls ``quota_status()`` for a few models every 5 ms. ``--surface-threads 0
--surface-tasks 0`` gives back the generate_content-only mix of the runs before 2026-12-03.

The same workload first runs uninstrumented for ``--bare-seconds`` (its calls/s are the baseline;
its outcomes validate the expectations), then instrumented with ``GeminiInstrumentor`` on an
SDK TracerProvider (a processor that tracks every started span until it ends) and MeterProvider
(a PeriodicExportingMetricReader collecting every 10 ms into an exporter that keeps the latest
data). After the deadline the workers stop and are joined, then ``gc.collect()``, a final
metrics collection and a span flush, and the checks:

* no hang: every worker joined within 30 s (else HANG, stacks dumped, exit 1);
* exact counts: ``gcp.gemini.requests`` by ``http.response.status_code`` equals the workers'
  tally of HTTP answers per status (200, 429, 500) and, in total, the server's own request
  count (the Live fake's handshakes included); by ``gen_ai.operation.name`` and status it
  equals what the fake servers answered, read from their request logs (the status each request
  got: the SDK's retried attempts included) by the script's own map (and so does the workers'
  tally, bare too); ``gcp.gemini.quota.exceeded`` equals the 429s answered times the
  violations in each; every surface span of a call answered 429/500 carries ``error.type``
  (per span name), and no span ends ERROR without it; ended spans equal the spans expected,
  per span name (one per call, two generate_content and one execute_tool per chat turn, one
  per poll);
  ``gen_ai.client.operation.duration`` points equal them per operation (tool runs aside);
* priced once: each batch job has exactly one span with ``gcp.gemini.batch.results.priced``
  true, and each video operation exactly one poll carrying ``gcp.gemini.usage.video_seconds``
  (its cost may be 0: the 429 kind's free-tier quota id sets the tier to free), however many
  pollers saw it done at once;
* the ``live_sessions`` quota gauge is back to 0 at the end; ``quota_status()`` never raised;
* no open span: every span started has ended;
* the app saw what it sees bare: each call's outcome (chunks read, exception type and code)
  is the kind's expected one, and no exception leaked elsewhere (thread, event loop, or
  "Exception ignored" from garbage collection).

Exit 0 when clean, 1 with the failing checks. A watchdog bounds each phase (its seconds + 60):
past that it dumps every thread's stack (faulthandler) and exits 2. Quick try:
``python benchmarks/stress.py --seconds 10 --bare-seconds 5``; other flags: ``--threads``,
``--tasks``, ``--surface-threads``, ``--surface-tasks``, ``--seed`` (same seed, same sequence
of kinds per worker), ``--gc-threshold``,
``--full-gc-every``. A race may need several seeds or a longer run to show.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import random
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google import genai
from google.genai import errors, types
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import StatusCode

from opentelemetry.instrumentation.gemini import GeminiInstrumentor, quota_status
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeCredentials,
    FakeGemini,
    Reply,
    quota_error_body,
    server_error_body,
)
from opentelemetry.instrumentation.gemini.testing.fake_live import FakeLive, LiveScript

PROMPT = "stress"
TEXT = Reply().text  # what the fake answers unscripted, whole or across a stream's chunks
JOIN_BOUND = 30.0  # s: a worker not back this long after the deadline is hung
WATCHDOG_MARGIN = 60.0  # s beyond a phase's own seconds before the watchdog kills the run
GC_EVERY = 0.003  # s between the side thread's gc.collect() calls
# cancel/timeout land long before the second chunk, unless the loop is starved that long (gc,
# and the CPU shared with every other worker: 1 s was seen overrun with the full mix)
SLOW = Reply(chunks=3, chunk_delay=2.0)


@dataclass(frozen=True)
class Kind:
    """One outcome kind: the scripted reply (None: the fake's default 200), the HTTP status
    the call gets (None: no request is sent) and the outcome the app sees, bare."""

    name: str
    reply: Reply | None
    status: int | None
    expect: str


KINDS = {
    k.name: k
    for k in (
        Kind("ok", None, 200, "response"),
        Kind("429", Reply(status=429, error_body=quota_error_body()), 429, "ClientError 429"),
        Kind("500", Reply(status=500, error_body=server_error_body(500)), 500, "ServerError 500"),
        Kind("stream", None, 200, "3 chunks, exhausted"),
        Kind("break", None, 200, "1 chunks, broke out"),
        Kind("drop", None, None, "0 chunks, dropped"),
        Kind("dropread", None, 200, "1 chunks, dropped"),
        Kind("instream", Reply(chunks=3, error_after_chunks=1), 200, "1 chunks, ServerError 500"),
        Kind("cancel", SLOW, 200, "cancelled mid-stream"),
        Kind("timeout", SLOW, 200, "timed out mid-stream"),
    )
}
SYNC_KINDS = [k for k in KINDS.values() if k.name not in ("cancel", "timeout")]
ASYNC_KINDS = list(KINDS.values())

# The other surfaces, each call a 200 on priced models (batches and videos must be priced once).
FLASH = "gemini-2.5-flash"
EMBED = "gemini-embedding-001"
IMAGEN = "imagen-4.0-fast-generate-001"  # Vertex only in google-genai 3.6
VEO = "veo-3.0-generate-001"  # Vertex only
LIVE = "gemini-live-2.5-flash-preview"
TOOL = "stress_tool"
VIOLATIONS_PER_429 = len(
    next(
        d["violations"]
        for d in quota_error_body()["error"]["details"]
        if d.get("@type", "").endswith("QuotaFailure")
    )
)
POLLERS = 3  # threads (sync) or coroutines (async) polling one video operation or batch job
MAX_POLLS = 20  # gets per poller before the job or operation counts as stuck (a surprise)
SURFACES_SYNC = [
    "embed",
    "count",
    "chat",
    "cache",
    "batch",
    "interact",
    "istream",
    "image",
    "video",
    "retry",
]
SURFACES_ASYNC = [*SURFACES_SYNC, "live"]
# A surface call's fault: None (all 200), or one of its requests answered 429 (QuotaFailure,
# RetryInfo) or 500. It is scripted on the server under the request's key (a model name,
# "cachedContents", "interactions", "" for a batch job's get), which concurrent workers share:
# another worker's request may take it, so every request records the status it got.
FAULTS: list[int | None] = [None] * 6 + [429, 500]
FAULT_REPLIES = {
    429: Reply(status=429, error_body=quota_error_body()),
    500: Reply(status=500, error_body=server_error_body(500)),
}
QUOTA_MODELS = ["stress-ok-sync", FLASH, EMBED, IMAGEN, VEO, LIVE]
QUOTA_EVERY = 0.005  # s between the side thread's quota_status() rounds
# The fake's request log -> the operation the request is (independent of the code under test).
SERVER_OPERATIONS = {
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
    "countTokens": "count_tokens",
    "batchGenerateContent": "batches",
    "predict": "generate_images",
    "predictLongRunning": "generate_videos",
    "fetchPredictOperation": "get_operation",
}


def stress_tool(city: str) -> str:
    """Looks a city up (the chat's automatic function calling runs it)."""
    return f"found {city}"


def _function_call() -> dict[str, Any]:
    part = {"functionCall": {"name": TOOL, "args": {"city": "Paris"}, "id": "call-1"}}
    return {
        "candidates": [
            {"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}
        ]
    }


def server_operation(request: dict[str, Any]) -> str:
    """The operation a request the fake logged is (``?`` for one the script never makes)."""
    method, model = str(request["method"]), str(request["model"])
    if model == "interactions":
        return "interactions"
    if "/cachedContents" in method:
        return "create_cache" if method.startswith("POST ") else "delete_cache"
    if "/batches/" in method:
        return "batches"
    return SERVER_OPERATIONS.get(method, f"? {method}")


# --- telemetry sinks ---------------------------------------------------------------------------
class SpanLedger(SpanProcessor):
    """Every span started and ended, and those still open.

    No lock on purpose: spans of dropped streams end from garbage-collection callbacks, which
    can run in any thread, even this one while it is inside on_start; a lock here could
    deadlock the harness itself. Single dict and list operations are atomic under the GIL.
    """

    def __init__(self) -> None:
        self.open: dict[int, tuple[str, str]] = {}
        self.started: list[str] = []
        self.ended: list[tuple[str, Any]] = []  # (span name, gcp.gemini.stream.end)
        self.unknown_ends: list[str] = []  # ended without a start seen (or ended twice)
        self.priced: list[tuple[str, str]] = []  # ("batch", job) or ("video", operation)
        self.errored: Counter[str] = Counter()  # ended with error.type, per span name
        self.error_untyped: list[str] = []  # ended with an ERROR status but no error.type

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open[span.context.span_id] = (span.name, threading.current_thread().name)
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        if self.open.pop(span.context.span_id, None) is None:
            self.unknown_ends.append(span.name)
        attrs = span.attributes or {}
        self.ended.append((span.name, attrs.get("gcp.gemini.stream.end")))
        if "error.type" in attrs:
            self.errored[span.name] += 1
        elif span.status.status_code is StatusCode.ERROR:
            self.error_untyped.append(span.name)
        if attrs.get("gcp.gemini.batch.results.priced") is True:
            self.priced.append(("batch", str(attrs.get("gcp.gemini.batch.job.name"))))
        elif "gcp.gemini.usage.video_seconds" in attrs:  # the poll that billed the operation
            # (its cost may be 0: a free-tier 429 of another worker sets the tier to free)
            self.priced.append(("video", str(attrs.get("gcp.gemini.operation.name"))))


class LatestMetrics(MetricExporter):
    """Keeps the latest export (cumulative temporality: the totals so far)."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: MetricsData | None = None
        self.exports = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.latest = metrics_data
        self.exports += 1
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass

    def points(self, name: str) -> list[Any]:
        found: list[Any] = []
        data = self.latest
        if data is None:
            return found
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


class Leaks:
    """Exceptions the app never sees directly: in threads, the event loop, or raised from
    finalizers and weakref callbacks during garbage collection ("Exception ignored in")."""

    def __init__(self) -> None:
        self.found: list[str] = []
        # The SDK's and httpx's own async generators, dropped in a cycle, are closed by the
        # loop's finalizer hook one task each; closing an outer one closes an inner one that
        # its own task is closing too: "aclose(): asynchronous generator is already running".
        # Seen bare (gen-0 threshold 10): the app's own, reported apart, not a failure.
        self.bare_too: list[str] = []

    def install(self) -> None:
        sys.unraisablehook = self._unraisable
        threading.excepthook = self._thread

    def _unraisable(self, u: Any) -> None:
        where = ""
        if u.exc_traceback is not None:  # the innermost frames say whose generator it was
            frames = traceback.extract_tb(u.exc_traceback)[-3:]
            where = " at " + " <- ".join(
                f"{f.name} ({f.filename.rsplit('/', 1)[-1]}:{f.lineno})" for f in reversed(frames)
            )
        text = f"unraisable {u.exc_type.__name__}: {u.exc_value} ({u.err_msg}, {u.object!r}){where}"
        # The same race off the loop: the GC thread finalizes httpx's async generators
        # (Response.aiter_raw, AsyncResponseStream.__aiter__) while a task is closing them:
        # "async generator already executing". Seen bare too; ours is async_items.
        name = getattr(u.object, "__qualname__", "")
        if "already executing" in str(u.exc_value) and name and not name.startswith("async_items"):
            self.bare_too.append(text)
            return
        self.found.append(text)

    def _thread(self, a: threading.ExceptHookArgs) -> None:
        name = a.thread.name if a.thread else "?"
        self.found.append(f"thread {name}: {a.exc_type.__name__}: {a.exc_value}")

    def loop_handler(self, _loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        text = f"event loop: {ctx.get('message')} {ctx.get('exception')!r}"
        agen = ctx.get("asyncgen")
        if agen is not None and "already running" in str(ctx.get("exception")):
            name = getattr(agen, "__qualname__", "")
            if not name.startswith("async_items"):  # not the instrumentation's wrapper
                self.bare_too.append(text)
                return
        self.found.append(text)


class Watchdog:
    """Kills the run (exit 2, every thread's stack dumped) once a phase overruns its budget.
    Waiting on a lock releases the GIL, so this thread still runs when the workers deadlock."""

    def __init__(self) -> None:
        self._deadline = float("inf")
        self._label = ""
        threading.Thread(target=self._run, name="watchdog", daemon=True).start()

    def arm(self, budget: float, label: str) -> None:
        self._label = f"{label} (budget {budget:.0f} s)"
        self._deadline = time.monotonic() + budget

    def disarm(self) -> None:
        self._deadline = float("inf")

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            if time.monotonic() > self._deadline:
                sys.stdout.flush()
                print(f"\nWATCHDOG: {self._label} overran; all thread stacks:", flush=True)
                faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
                sys.stdout.flush()
                os._exit(2)


# --- one worker's exact record ------------------------------------------------------------------
@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter)  # started, per model
    done: Counter[str] = field(default_factory=Counter)  # returned to the worker, per model
    answers: Counter[tuple[str, int | str]] = field(default_factory=Counter)  # (model, status)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (model, outcome)
    surprises: list[str] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)  # HTTP answers per operation
    spans: Counter[str] = field(default_factory=Counter)  # spans expected, per span name
    batch_jobs: list[str] = field(default_factory=list)  # jobs created (each priced once)
    video_ops: list[str] = field(default_factory=list)  # video operations submitted (same)
    failed: Counter[str] = field(default_factory=Counter)  # spans expected with error.type
    op_status: Counter[tuple[str, int | str]] = field(default_factory=Counter)  # HTTP answers

    def merge(self, other: Tally) -> None:
        self.calls.update(other.calls)
        self.done.update(other.done)
        self.answers.update(other.answers)
        self.outcomes.update(other.outcomes)
        self.surprises.extend(other.surprises)
        self.ops.update(other.ops)
        self.spans.update(other.spans)
        self.batch_jobs.extend(other.batch_jobs)
        self.video_ops.extend(other.video_ops)
        self.failed.update(other.failed)
        self.op_status.update(other.op_status)

    def hit(self, operation: str, server_model: str, span: str, status: int = 200) -> None:
        """One request answered ``status`` (the fake logs it under ``server_model``) and its
        call's span (which must carry error.type when the status is not a 200)."""
        self.answers[(server_model, status)] += 1
        self.ops[operation] += 1
        self.op_status[(operation, status)] += 1
        self.spans[span] += 1
        if status != 200:
            self.failed[span] += 1

    def by_status(self) -> Counter[int | str]:
        out: Counter[int | str] = Counter()
        for (_model, status), n in self.answers.items():
            out[status] += n
        return out


def _error(e: BaseException) -> str:
    code = getattr(e, "code", None)
    return f"{type(e).__name__} {code}" if code is not None else f"{type(e).__name__}: {e}"[:120]


def _status(e: BaseException) -> int | None:
    """The HTTP status of a failed surface call (google-genai's APIError ``code``, the
    Interactions client's ``status_code``, a refused Live handshake's response)."""
    for value in (
        getattr(e, "code", None),
        getattr(e, "status_code", None),
        getattr(getattr(e, "response", None), "status_code", None),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _answer(chunks: int, error: BaseException | None) -> int | str | None:
    """The HTTP status the call got, as the app can tell: any chunk or response means a 200; an
    APIError before any means its code; neither (a stream never read) means no request."""
    if chunks:
        return 200
    if error is not None:
        code = getattr(error, "code", None)
        return code if isinstance(code, int) else "unknown"
    return None


class Workload:
    """The calls, the same bare and instrumented. Each outcome string is what the app saw."""

    def __init__(self, fake: FakeGemini, clients: Clients, seed: int) -> None:
        self.fake = fake
        self.client = clients.developer
        self.vertex = clients.vertex
        self.live = clients.live
        self.seed = seed
        self.stop = threading.Event()
        self.quota_calls = 0
        self.quota_errors: list[str] = []
        self.live_server = clients.live_server
        self.retrying = clients.retrying
        self.live_refusals: Counter[int] = Counter()  # Live handshakes scripted to be refused

    def _begin(self, tally: Tally, kind: Kind, mode: str) -> str:
        model = f"stress-{kind.name}-{mode}"
        if kind.reply is not None and kind.status is not None:
            self.fake.enqueue(model, kind.reply)  # this model's replies are all alike
        tally.calls[model] += 1
        return model

    @staticmethod
    def _end(tally: Tally, kind: Kind, model: str, outcome: str, answer: int | str | None) -> None:
        tally.done[model] += 1
        tally.outcomes[(model, outcome)] += 1
        tally.spans[f"generate_content {model}"] += 1  # every call has its span
        if answer is not None:
            tally.answers[(model, answer)] += 1
            tally.ops["generate_content"] += 1
            tally.op_status[("generate_content", answer)] += 1
        if outcome != kind.expect:
            tally.surprises.append(f"{model}: {outcome!r}, expected {kind.expect!r}")

    # --- sync -----------------------------------------------------------------------------------
    def sync_worker(self, index: int, tally: Tally, deadline: float) -> None:
        rng = random.Random(f"{self.seed}:sync:{index}")  # str seeds hash deterministically
        while not self.stop.is_set() and time.monotonic() < deadline:
            kind = rng.choice(SYNC_KINDS)
            model = self._begin(tally, kind, "sync")
            outcome, answer = self._sync_call(kind, model)
            self._end(tally, kind, model, outcome, answer)

    def _sync_call(self, kind: Kind, model: str) -> tuple[str, int | str | None]:
        models = self.client.models
        chunks = 0
        try:
            if kind.name in ("ok", "429", "500"):
                response = models.generate_content(model=model, contents=PROMPT)
                return ("response" if response.text == TEXT else "response, text differs"), 200
            stream = models.generate_content_stream(model=model, contents=PROMPT)
            if kind.name == "drop":
                holder: list[Any] = [stream]
                holder.append(holder)  # a cycle: only the collector frees it
                del stream, holder
                return "0 chunks, dropped", None
            if kind.name == "dropread":
                next(stream)
                holder = [stream]
                holder.append(holder)
                del stream, holder
                return "1 chunks, dropped", 200
            text = ""
            for chunk in stream:
                chunks += 1
                text += chunk.text or ""
                if kind.name == "break":
                    break
            del stream  # a broken-out-of stream is dropped here, unfinished
            if kind.name == "break":
                return f"{chunks} chunks, broke out", 200
            end = "exhausted" if text == TEXT else "exhausted, text differs"
            return f"{chunks} chunks, {end}", _answer(chunks, None)
        except errors.APIError as e:
            return (f"{chunks} chunks, {_error(e)}" if chunks else _error(e)), _answer(chunks, e)
        except Exception as e:
            return f"{chunks} chunks, {_error(e)}", _answer(chunks, e)

    # --- async ----------------------------------------------------------------------------------
    async def async_main(
        self,
        tallies: list[Tally],
        surface_tallies: list[Tally],
        deadline: float,
        leaks: Leaks,
        others: list[threading.Thread],
    ) -> None:
        asyncio.get_running_loop().set_exception_handler(leaks.loop_handler)
        await asyncio.gather(
            *(self._async_worker(i, t, deadline) for i, t in enumerate(tallies)),
            *(self._async_surface_worker(i, t, deadline) for i, t in enumerate(surface_tallies)),
        )
        # Dropped async streams are closed by the loop (asyncgen finalizer hook): keep it
        # running until no other thread can still collect one, then collect the rest here.
        until = time.monotonic() + JOIN_BOUND - 5
        while any(t.is_alive() for t in others) and time.monotonic() < until:
            await asyncio.sleep(0.05)
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0.01)

    async def _async_worker(self, index: int, tally: Tally, deadline: float) -> None:
        rng = random.Random(f"{self.seed}:async:{index}")
        while not self.stop.is_set() and time.monotonic() < deadline:
            kind = rng.choice(ASYNC_KINDS)
            model = self._begin(tally, kind, "async")
            outcome, answer = await self._async_call(kind, model)
            self._end(tally, kind, model, outcome, answer)

    async def _async_call(self, kind: Kind, model: str) -> tuple[str, int | str | None]:
        models = self.client.aio.models
        counted = [0]  # chunks read, shared with the inner task of the cancel kind
        try:
            if kind.name in ("ok", "429", "500"):
                response = await models.generate_content(model=model, contents=PROMPT)
                return ("response" if response.text == TEXT else "response, text differs"), 200
            if kind.name == "cancel":
                return await self._cancelled(model, counted)
            stream = await models.generate_content_stream(model=model, contents=PROMPT)
            if kind.name == "drop":
                holder: list[Any] = [stream]
                holder.append(holder)
                del stream, holder
                return "0 chunks, dropped", None
            if kind.name in ("dropread", "timeout"):
                await anext(stream)
                counted[0] = 1
                if kind.name == "timeout":
                    try:
                        await asyncio.wait_for(anext(stream), 0.01)
                    except asyncio.TimeoutError:  # TimeoutError from 3.11; distinct in 3.10
                        return "timed out mid-stream", 200
                    return "1 chunks, not timed out", 200
                holder = [stream]
                holder.append(holder)
                del stream, holder
                return "1 chunks, dropped", 200
            text = ""
            async for chunk in stream:
                counted[0] += 1
                text += chunk.text or ""
                if kind.name == "break":
                    break
            del stream
            if kind.name == "break":
                return f"{counted[0]} chunks, broke out", 200
            end = "exhausted" if text == TEXT else "exhausted, text differs"
            return f"{counted[0]} chunks, {end}", _answer(counted[0], None)
        except errors.APIError as e:
            n = counted[0]
            return (f"{n} chunks, {_error(e)}" if n else _error(e)), _answer(n, e)
        except Exception as e:
            return f"{counted[0]} chunks, {_error(e)}", _answer(counted[0], e)

    async def _cancelled(self, model: str, counted: list[int]) -> tuple[str, int | str | None]:
        """Cancel a task reading a slow stream once its first chunk is in: the request was
        answered (a 200, deterministically), the second chunk is a second away."""
        first = asyncio.Event()

        async def consume() -> None:
            stream = await self.client.aio.models.generate_content_stream(
                model=model, contents=PROMPT
            )
            async for _chunk in stream:
                counted[0] += 1
                first.set()

        task = asyncio.create_task(consume())
        waiter = asyncio.create_task(first.wait())
        await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():  # finished or failed before the cancel: not the outcome expected
            error = task.exception()
            outcome = f"{counted[0]} chunks, " + ("done" if error is None else _error(error))
            return outcome, _answer(counted[0], error)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Which chunk it lands after is timing: mid-stream is the outcome.
            mid = 0 < counted[0] < SLOW.chunks
            outcome = "cancelled mid-stream" if mid else f"{counted[0]} chunks, cancelled"
            return outcome, _answer(counted[0], None)
        return f"{counted[0]} chunks, not cancelled", _answer(counted[0], None)

    # --- the other surfaces -----------------------------------------------------------------------
    def quota_poller(self) -> None:
        """quota_status() for a few models, over and over, while the workers run."""
        while not self.stop.is_set():
            for model in QUOTA_MODELS:
                try:
                    quota_status(model)
                except Exception as e:  # the app's own call must never raise
                    if len(self.quota_errors) < 20:
                        self.quota_errors.append(f"quota_status({model!r}): {_error(e)}")
                self.quota_calls += 1
            self.stop.wait(QUOTA_EVERY)

    def _surface_end(self, tally: Tally, key: str, outcome: str) -> None:
        tally.done[key] += 1
        tally.outcomes[(key, outcome)] += 1
        if outcome not in SURFACE_OUTCOMES:
            tally.surprises.append(f"{key}: {outcome!r}, expected one of {SURFACE_OUTCOMES}")

    def _fault(self, rng: random.Random, key: str) -> None:
        """Maybe script a 429 or a 500 under ``key`` for the next request there."""
        status = rng.choice(FAULTS)
        if status is not None:
            self.fake.enqueue(key, FAULT_REPLIES[status])

    def surface_worker(self, index: int, tally: Tally, deadline: float) -> None:
        rng = random.Random(f"{self.seed}:surface-sync:{index}")
        while not self.stop.is_set() and time.monotonic() < deadline:
            name = rng.choice(SURFACES_SYNC)
            key = f"{name}-sync"
            tally.calls[key] += 1
            try:
                outcome = self._sync_surface(name, index, tally, rng)
            except Failed as e:
                outcome = f"failed {e.status}"
            except Exception as e:
                outcome = _error(e)
            self._surface_end(tally, key, outcome)

    def _sync_surface(self, name: str, index: int, tally: Tally, rng: random.Random) -> str:
        c, v = self.client, self.vertex
        if name == "embed":
            self._fault(rng, EMBED)
            embedding = _req(
                tally,
                "embeddings",
                EMBED,
                f"embeddings {EMBED}",
                lambda: c.models.embed_content(model=EMBED, contents=PROMPT),
            )
            return _ok(len((embedding.embeddings or [None])[0].values or ()) == 8)
        if name == "count":
            self._fault(rng, FLASH)
            counted = _req(
                tally,
                "count_tokens",
                FLASH,
                f"count_tokens {FLASH}",
                lambda: c.models.count_tokens(model=FLASH, contents=PROMPT),
            )
            return _ok(counted.total_tokens == 12)
        if name == "chat":
            model, _fault = self._script_chat("sync", index, rng)
            chat = c.chats.create(model=model, config={"tools": [stress_tool]})
            try:
                text = chat.send_message(PROMPT).text
            except Exception as e:
                raise _chat_failed(tally, model, e) from e
            _chat_hits(tally, model)
            return _ok(text == "done")
        if name == "cache":
            first = rng.random() < 0.5  # the fault (if any) on the create, else on the delete
            if first:
                self._fault(rng, "cachedContents")
            cache = _req(
                tally,
                "create_cache",
                "",
                f"create_cache {FLASH}",
                lambda: c.caches.create(model=FLASH, config=_cache_config()),
            )
            if not first:
                self._fault(rng, "cachedContents")
            _req(
                tally,
                "delete_cache",
                "",
                f"delete_cache {FLASH}",
                lambda: c.caches.delete(name=str(cache.name)),
            )
            return "ok"
        if name == "batch":
            self._fault(rng, rng.choice([FLASH, ""]))  # the create, or one of the gets
            job = _req(
                tally,
                "batches",
                FLASH,
                f"batches {FLASH}",
                lambda: c.batches.create(model=FLASH, src=_batch_requests()),
            )
            tally.batch_jobs.append(str(job.name))
            return self._poll_in_threads(tally, lambda t: _poll_batch(c, str(job.name), t))
        if name in ("interact", "istream"):
            self._fault(rng, "interactions")
            span = f"interactions {FLASH}"
            if name == "interact":
                answer = _req(
                    tally,
                    "interactions",
                    "interactions",
                    span,
                    lambda: c.interactions.create(model=FLASH, input=PROMPT),
                )
                return _ok(answer.status == "completed")
            events = _req(
                tally,
                "interactions",
                "interactions",
                span,
                lambda: list(c.interactions.create(model=FLASH, input=PROMPT, stream=True)),
            )
            return _ok(getattr(events[-1], "event_type", None) == "interaction.completed")
        if name == "image":
            self._fault(rng, IMAGEN)
            images = _req(
                tally,
                "generate_images",
                IMAGEN,
                f"generate_images {IMAGEN}",
                lambda: v.models.generate_images(model=IMAGEN, prompt=PROMPT),
            )
            return _ok(len(images.generated_images or ()) == 1)
        if name == "retry":
            model = self._script_retry("sync", index, tally, rng)
            embedding = self.retrying.models.embed_content(model=model, contents=PROMPT)
            tally.hit("embeddings", model, f"embeddings {model}")
            return _ok(len((embedding.embeddings or [None])[0].values or ()) == 8)
        if name == "video":
            first = rng.random() < 0.5  # the fault (if any) on the submit, else on a poll
            if first:
                self._fault(rng, VEO)
            operation = _req(
                tally,
                "generate_videos",
                VEO,
                f"generate_videos {VEO}",
                lambda: v.models.generate_videos(**_video_request()),
            )
            tally.video_ops.append(str(operation.name))
            if not first:
                self._fault(rng, VEO)
            return self._poll_in_threads(tally, lambda t: _poll_video(v, operation, t))
        return f"unknown surface {name}"

    def _poll_in_threads(self, tally: Tally, poll: Callable[[Tally], str]) -> str:
        """``POLLERS`` threads poll one job or operation at once, until each has seen it done."""
        tallies = [Tally() for _ in range(POLLERS)]
        outcomes = ["not run"] * POLLERS

        def run(i: int) -> None:
            try:
                outcomes[i] = poll(tallies[i])
            except Exception as e:
                outcomes[i] = _error(e)

        threads = [
            threading.Thread(target=run, args=(i,), name=f"poller-{i}", daemon=True)
            for i in range(POLLERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_BOUND)
        for t in tallies:
            tally.merge(t)
        bad = [o for o in outcomes if o != "ok"]
        return bad[0] if bad else "ok"

    def _script_retry(self, mode: str, index: int, tally: Tally, rng: random.Random) -> str:
        """A 429 or a 500 the SDK's own retry (HttpRetryOptions) answers with its second attempt:
        the app sees a 200 and one span; the server saw both requests, and so must the metrics.
        A model of this worker's own: the fault cannot be taken by another worker."""
        model = f"stress-retry-{mode}-{index}"
        fault = rng.choice([429, 500])
        self.fake.enqueue(model, FAULT_REPLIES[fault])
        tally.answers[(model, fault)] += 1  # the attempt the app never sees
        tally.ops["embeddings"] += 1
        tally.op_status[("embeddings", fault)] += 1
        return model

    def _script_chat(self, mode: str, index: int, rng: random.Random) -> tuple[str, int | None]:
        """A model of this worker's own: its two scripted replies (a function call, then the
        answer) cannot be taken by another worker's chat. A fault: the first round fails."""
        model = f"stress-chat-{mode}-{index}"
        fault = rng.choice(FAULTS)
        if fault is not None:
            self.fake.enqueue(model, FAULT_REPLIES[fault])
        else:
            self.fake.enqueue(model, Reply(extra=_function_call()), Reply(text="done"))
        return model, fault

    async def _async_surface_worker(self, index: int, tally: Tally, deadline: float) -> None:
        rng = random.Random(f"{self.seed}:surface-async:{index}")
        while not self.stop.is_set() and time.monotonic() < deadline:
            name = rng.choice(SURFACES_ASYNC)
            key = f"{name}-async"
            tally.calls[key] += 1
            try:
                outcome = await self._async_surface(name, index, tally, rng)
            except Failed as e:
                outcome = f"failed {e.status}"
            except Exception as e:
                outcome = _error(e)
            self._surface_end(tally, key, outcome)

    async def _async_surface(self, name: str, index: int, tally: Tally, rng: random.Random) -> str:
        c, v = self.client.aio, self.vertex.aio
        if name == "embed":
            self._fault(rng, EMBED)
            embedding = await _areq(
                tally,
                "embeddings",
                EMBED,
                f"embeddings {EMBED}",
                c.models.embed_content(model=EMBED, contents=PROMPT),
            )
            return _ok(len((embedding.embeddings or [None])[0].values or ()) == 8)
        if name == "count":
            self._fault(rng, FLASH)
            counted = await _areq(
                tally,
                "count_tokens",
                FLASH,
                f"count_tokens {FLASH}",
                c.models.count_tokens(model=FLASH, contents=PROMPT),
            )
            return _ok(counted.total_tokens == 12)
        if name == "chat":
            model, _fault = self._script_chat("async", index, rng)
            chat = c.chats.create(model=model, config={"tools": [stress_tool]})
            try:
                text = (await chat.send_message(PROMPT)).text
            except Exception as e:
                raise _chat_failed(tally, model, e) from e
            _chat_hits(tally, model)
            return _ok(text == "done")
        if name == "cache":
            first = rng.random() < 0.5
            if first:
                self._fault(rng, "cachedContents")
            cache = await _areq(
                tally,
                "create_cache",
                "",
                f"create_cache {FLASH}",
                c.caches.create(model=FLASH, config=_cache_config()),
            )
            if not first:
                self._fault(rng, "cachedContents")
            await _areq(
                tally,
                "delete_cache",
                "",
                f"delete_cache {FLASH}",
                c.caches.delete(name=str(cache.name)),
            )
            return "ok"
        if name == "batch":
            self._fault(rng, rng.choice([FLASH, ""]))
            job = await _areq(
                tally,
                "batches",
                FLASH,
                f"batches {FLASH}",
                c.batches.create(model=FLASH, src=_batch_requests()),
            )
            tally.batch_jobs.append(str(job.name))
            return await _gather_polls(tally, lambda t: _apoll_batch(c, str(job.name), t))
        if name in ("interact", "istream"):
            self._fault(rng, "interactions")
            span = f"interactions {FLASH}"
            if name == "interact":
                answer = await _areq(
                    tally,
                    "interactions",
                    "interactions",
                    span,
                    c.interactions.create(model=FLASH, input=PROMPT),
                )
                return _ok(answer.status == "completed")

            async def read() -> list[Any]:
                stream = await c.interactions.create(model=FLASH, input=PROMPT, stream=True)
                return [event async for event in stream]

            events = await _areq(tally, "interactions", "interactions", span, read())
            return _ok(getattr(events[-1], "event_type", None) == "interaction.completed")
        if name == "image":
            self._fault(rng, IMAGEN)
            images = await _areq(
                tally,
                "generate_images",
                IMAGEN,
                f"generate_images {IMAGEN}",
                v.models.generate_images(model=IMAGEN, prompt=PROMPT),
            )
            return _ok(len(images.generated_images or ()) == 1)
        if name == "retry":
            model = self._script_retry("async", index, tally, rng)
            embedding = await self.retrying.aio.models.embed_content(model=model, contents=PROMPT)
            tally.hit("embeddings", model, f"embeddings {model}")
            return _ok(len((embedding.embeddings or [None])[0].values or ()) == 8)
        if name == "video":
            first = rng.random() < 0.5
            if first:
                self._fault(rng, VEO)
            operation = await _areq(
                tally,
                "generate_videos",
                VEO,
                f"generate_videos {VEO}",
                v.models.generate_videos(**_video_request()),
            )
            tally.video_ops.append(str(operation.name))
            if not first:
                self._fault(rng, VEO)
            return await _gather_polls(tally, lambda t: _apoll_video(v, operation, t))
        if name == "live":
            fault = rng.choice(FAULTS)
            if fault is not None:
                self.live_refusals[fault] += 1
                self.live_server.enqueue(LiveScript(refuse=fault))
            return await self._live_session(tally)
        return f"unknown surface {name}"

    async def _live_session(self, tally: Tally) -> str:
        """A short Live session: connect, one turn, its answer to turnComplete, close."""
        config: Any = {"response_modalities": ["TEXT"]}
        span = f"generate_live_content {LIVE}"
        try:
            connecting = self.live.aio.live.connect(model=LIVE, config=config)
            session = await connecting.__aenter__()
        except Exception as e:
            status = _status(e)
            if status not in FAULT_REPLIES:
                raise
            tally.hit("generate_live_content", LIVE, span, status)
            raise Failed(status) from e
        try:
            tally.hit("generate_live_content", LIVE, span)
            turn = types.Content(role="user", parts=[types.Part(text=PROMPT)])
            await session.send_client_content(turns=turn, turn_complete=True)
            messages = [m async for m in session.receive()]
        finally:
            await connecting.__aexit__(None, None, None)
        last = messages[-1].server_content if messages else None
        return _ok(last is not None and bool(last.turn_complete))


class Failed(Exception):
    """A surface call answered 429 or 500 (recorded in the tally already)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


SURFACE_OUTCOMES = ("ok", "failed 429", "failed 500")


def _recorded(tally: Tally, op: str, model: str, span: str, e: BaseException) -> Failed:
    status = _status(e)
    if status not in FAULT_REPLIES:
        raise e
    assert status is not None
    tally.hit(op, model, span, status)
    return Failed(status)


def _req(tally: Tally, op: str, model: str, span: str, call: Callable[[], Any]) -> Any:
    """One request of a surface call: its answer is tallied (200, or the fault it got)."""
    try:
        result = call()
    except Exception as e:
        raise _recorded(tally, op, model, span, e) from e
    tally.hit(op, model, span)
    return result


async def _areq(tally: Tally, op: str, model: str, span: str, call: Any) -> Any:
    try:
        result = await call
    except Exception as e:
        raise _recorded(tally, op, model, span, e) from e
    tally.hit(op, model, span)
    return result


def _chat_failed(tally: Tally, model: str, e: BaseException) -> Failed:
    """The chat's first round got the fault: one generate_content span, no tool run."""
    return _recorded(tally, "generate_content", model, f"generate_content {model}", e)


def _ok(condition: bool) -> str:
    return "ok" if condition else "answer differs"


def _chat_hits(tally: Tally, model: str) -> None:
    """A chat turn with automatic function calling: two generate_content rounds, a tool run."""
    tally.hit("generate_content", model, f"generate_content {model}")
    tally.spans[f"execute_tool {TOOL}"] += 1
    tally.hit("generate_content", model, f"generate_content {model}")


def _cache_config() -> types.CreateCachedContentConfig:
    return types.CreateCachedContentConfig(contents=["a long document"], ttl="60s")


def _batch_requests() -> list[Any]:
    return [{"contents": [{"parts": [{"text": t}], "role": "user"}]} for t in ("a", "b")]


def _video_request() -> dict[str, Any]:
    return {
        "model": VEO,
        "source": types.GenerateVideosSource(prompt=PROMPT),
        "config": types.GenerateVideosConfig(duration_seconds=4, number_of_videos=1),
    }


# Pollers poll on after a failed get (429 or 500): the job or operation is priced once all the
# same, by the poll that first sees it done.
def _poll_batch(c: genai.Client, name: str, tally: Tally) -> str:
    """Get the job until it has succeeded, then once more (the app polling on)."""
    span = f"batches {FLASH}"
    for _ in range(MAX_POLLS):
        try:
            state = _req(tally, "batches", "", span, lambda: c.batches.get(name=name)).state
        except Failed:
            continue
        if state is not None and state.name == "JOB_STATE_SUCCEEDED":
            with contextlib.suppress(Failed):
                _req(tally, "batches", "", span, lambda: c.batches.get(name=name))
            return "ok"
    return f"batch {name} not done after {MAX_POLLS} gets"


def _poll_video(v: genai.Client, operation: Any, tally: Tally) -> str:
    span = f"get_operation {VEO}"
    for _ in range(MAX_POLLS):
        try:
            polled = _req(
                tally, "get_operation", VEO, span, lambda op=operation: v.operations.get(op)
            )
        except Failed:
            continue
        operation = polled
        if operation.done:
            videos = operation.result.generated_videos if operation.result else None
            return _ok(len(videos or ()) == 1)
    return f"video {operation.name} not done after {MAX_POLLS} polls"


async def _apoll_batch(c: Any, name: str, tally: Tally) -> str:
    span = f"batches {FLASH}"
    for _ in range(MAX_POLLS):
        try:
            state = (await _areq(tally, "batches", "", span, c.batches.get(name=name))).state
        except Failed:
            continue
        if state is not None and state.name == "JOB_STATE_SUCCEEDED":
            with contextlib.suppress(Failed):
                await _areq(tally, "batches", "", span, c.batches.get(name=name))
            return "ok"
    return f"batch {name} not done after {MAX_POLLS} gets"


async def _apoll_video(v: Any, operation: Any, tally: Tally) -> str:
    span = f"get_operation {VEO}"
    for _ in range(MAX_POLLS):
        try:
            operation = await _areq(tally, "get_operation", VEO, span, v.operations.get(operation))
        except Failed:
            continue
        if operation.done:
            videos = operation.result.generated_videos if operation.result else None
            return _ok(len(videos or ()) == 1)
    return f"video {operation.name} not done after {MAX_POLLS} polls"


async def _gather_polls(tally: Tally, poll: Callable[[Tally], Any]) -> str:
    """``POLLERS`` coroutines poll one job or operation at once (interleaved on the loop)."""
    tallies = [Tally() for _ in range(POLLERS)]
    outcomes = await asyncio.gather(*(poll(t) for t in tallies), return_exceptions=True)
    for t in tallies:
        tally.merge(t)
    bad = [o if isinstance(o, str) else _error(o) for o in outcomes if o != "ok"]
    return bad[0] if bad else "ok"


@dataclass
class Clients:
    developer: genai.Client  # the Developer API, on the fake
    vertex: genai.Client  # Vertex mode on the same fake: Imagen and Veo
    live: genai.Client  # the Developer API on the Live fake (websockets, TLS)
    live_server: FakeLive
    retrying: genai.Client  # the Developer API with the SDK's own retries on (429, 5xx)


# --- a phase: the workload for a time, then joined within a bound --------------------------------
@dataclass
class Phase:
    name: str
    tally: Tally
    elapsed: float
    server_requests: Counter[str]  # per model (the Live fake's handshakes under LIVE)
    server_ops: Counter[str]  # per operation, as the script reads the fake's request log
    server_status: Counter[tuple[str, int | str]]  # per (operation, status it answered)
    hung: list[str]
    quota_calls: int = 0
    quota_errors: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(self.tally.done.values())


def _collector(stop: threading.Event, full_every: int) -> None:
    """gc.collect() every few ms. A full collection of this process takes tens of ms with the
    GIL held, so most are young-generation ones (where just-dropped cycles are) and every
    ``full_every``-th is full (cycles that aged before being dropped): the workers still run."""
    n = 0
    while not stop.is_set():
        n += 1
        gc.collect(2 if n % full_every == 0 else n % 2)
        stop.wait(GC_EVERY)


def run_phase(
    name: str,
    seconds: float,
    args: argparse.Namespace,
    servers: tuple[FakeGemini, FakeLive],
    clients: Clients,
    leaks: Leaks,
) -> Phase:
    fake, live = servers
    fake.reset()
    live.reset()
    handshakes = live.handshakes
    work = Workload(fake, clients, args.seed)
    start = time.monotonic()
    deadline = start + seconds
    sync_tallies = [Tally() for _ in range(args.threads)]
    async_tallies = [Tally() for _ in range(args.tasks)]
    surface_tallies = [Tally() for _ in range(args.surface_threads)]
    async_surface_tallies = [Tally() for _ in range(args.surface_tasks)]
    gc_thread = threading.Thread(
        target=_collector, args=(work.stop, args.full_gc_every), name="gc", daemon=True
    )
    workers = [
        threading.Thread(
            target=work.sync_worker, args=(i, t, deadline), name=f"sync-{i}", daemon=True
        )
        for i, t in enumerate(sync_tallies)
    ] + [
        threading.Thread(
            target=work.surface_worker, args=(i, t, deadline), name=f"surface-{i}", daemon=True
        )
        for i, t in enumerate(surface_tallies)
    ]
    others = [*workers, gc_thread]
    if args.surface_threads or args.surface_tasks:
        others.append(threading.Thread(target=work.quota_poller, name="quota", daemon=True))
    loop_thread = threading.Thread(
        target=lambda: asyncio.run(
            work.async_main(async_tallies, async_surface_tallies, deadline, leaks, others)
        ),
        name="asyncio-loop",
        daemon=True,
    )
    every = [*others, loop_thread]
    for t in every:
        t.start()
    work.stop.wait(max(0.0, deadline - time.monotonic()))
    work.stop.set()
    bound = time.monotonic() + JOIN_BOUND  # one bound for all: the run stays bounded
    for t in every:
        t.join(max(0.0, bound - time.monotonic()))
    elapsed = time.monotonic() - start
    tally = Tally()
    for t in sync_tallies + async_tallies + surface_tallies + async_surface_tallies:
        tally.merge(t)
    with fake._lock:  # the server appends under this lock
        server = Counter(r["model"] for r in fake.requests)
        server_ops = Counter(server_operation(r) for r in fake.requests)
        server_status = Counter(
            (server_operation(r), r["status"] if r["status"] is not None else "unanswered")
            for r in fake.requests
        )
    sessions = live.handshakes - handshakes
    if sessions:
        server[LIVE] += sessions
        server_ops["generate_live_content"] += sessions
        # Refusals scripted and not left over (only this phase's workers script them).
        with live._lock:
            left = Counter(s.refuse for s in live._scripts if s.refuse is not None)
        refused = {st: n - left[st] for st, n in work.live_refusals.items()}
        for st, n in refused.items():
            server_status[("generate_live_content", st)] += n
        server_status[("generate_live_content", 200)] += sessions - sum(refused.values())
    return Phase(
        name,
        tally,
        elapsed,
        server,
        server_ops,
        server_status,
        [t.name for t in every if t.is_alive()],
        work.quota_calls,
        work.quota_errors,
    )


def make_clients(fake: FakeGemini, live: FakeLive) -> Clients:
    options = types.HttpOptions(
        base_url=fake.url,
        retry_options=types.HttpRetryOptions(attempts=1),  # retries off: one attempt per call
        timeout=15_000,  # ms: a stuck request fails (a surprise) instead of hanging the worker
    )
    vertex = genai.Client(
        vertexai=True,
        project="fake-project",
        location="us-central1",
        http_options=options,
        credentials=FakeCredentials(),  # type: ignore[arg-type]
    )
    live_options = types.HttpOptions(base_url=live.url, async_client_args={"ssl": live.client_ssl})
    return Clients(
        developer=genai.Client(api_key="fake-stress-key", http_options=options),
        vertex=vertex,
        live=genai.Client(api_key="fake-stress-key", http_options=live_options),
        live_server=live,
        retrying=genai.Client(
            api_key="fake-stress-key",
            http_options=types.HttpOptions(
                base_url=fake.url,
                retry_options=types.HttpRetryOptions(
                    attempts=2, initial_delay=0.01, max_delay=0.05, jitter=0
                ),
                timeout=15_000,
            ),
        ),
    )


# --- checks ------------------------------------------------------------------------------------
Check = tuple[str, bool, str]


def _status_sums(points: list[Any]) -> Counter[int | str]:
    out: Counter[int | str] = Counter()
    for p in points:
        key = p.attributes.get("http.response.status_code", p.attributes.get("error.type"))
        out[key] += int(p.value)
    return out


def _by_model(points: list[Any], value: Callable[[Any], int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for p in points:
        out[str(p.attributes.get("gen_ai.request.model"))] += value(p)
    return out


def _per_model(t: Tally) -> Counter[str]:
    out: Counter[str] = Counter()
    for (model, _status), n in t.answers.items():
        out[model] += n
    return out


def _diff(a: Counter[Any], b: Counter[Any]) -> str:
    keys = sorted(set(a) | set(b), key=str)
    return ", ".join(f"{k}: {a[k]} vs {b[k]}" for k in keys if a[k] != b[k]) or "none"


def common_checks(phase: Phase, leaks: list[str]) -> list[Check]:
    t = phase.tally
    checks: list[Check] = []
    checks.append(("no hang", not phase.hung, f"still running: {phase.hung}"))
    unfinished = t.calls - t.done
    checks.append(("every call returned", not unfinished, f"unfinished: {dict(unfinished)}"))
    server_total = sum(phase.server_requests.values())
    answered = sum(t.by_status().values())
    checks.append(
        (
            "tally of HTTP answers == server's request count",
            answered == server_total,
            f"tally {answered}, server {server_total}; per model "
            f"(tally vs server): {_diff(_per_model(t), phase.server_requests)}",
        )
    )
    checks.append(
        (
            "tally of HTTP answers per operation == server's",
            t.ops == phase.server_ops,
            f"(tally vs server) {_diff(t.ops, phase.server_ops)}",
        )
    )
    checks.append(
        (
            "tally of HTTP answers per operation and status == server's",
            t.op_status == phase.server_status,
            f"(tally vs server) {_diff(t.op_status, phase.server_status)}",
        )
    )
    shown = "; ".join(t.surprises[:8]) + (
        f" (+{len(t.surprises) - 8} more)" if len(t.surprises) > 8 else ""
    )
    checks.append(("every outcome as expected", not t.surprises, shown))
    checks.append(("no leaked exception", not leaks, "; ".join(leaks[:8])))
    return checks


def print_bare_too(leaks: Leaks) -> None:
    if leaks.bare_too:
        print(
            f"  [NOTE] {len(leaks.bare_too)} SDK/httpx async generator(s) dropped in a cycle "
            f"failed to close (the app's own, seen bare too): {leaks.bare_too[0]}"
        )
    leaks.bare_too.clear()


def telemetry_checks(phase: Phase, spans: SpanLedger, metrics: LatestMetrics) -> list[Check]:
    t = phase.tally
    checks: list[Check] = []
    calls = sum(t.calls.values())
    want = t.by_status()
    got = _status_sums(metrics.points("gcp.gemini.requests"))
    checks.append(
        (
            "gcp.gemini.requests by status == tally",
            got == want,
            f"(metric vs tally) {_diff(got, want)}; per model (metric vs tally): "
            + _diff(
                _by_model(metrics.points("gcp.gemini.requests"), lambda p: int(p.value)),
                _per_model(t),
            ),
        )
    )
    server_total = sum(phase.server_requests.values())
    checks.append(
        (
            "gcp.gemini.requests total == server's count",
            sum(got.values()) == server_total,
            f"metric {sum(got.values())}, server {server_total}",
        )
    )
    by_op = _by_operation(metrics.points("gcp.gemini.requests"), lambda p: int(p.value))
    checks.append(
        (
            "gcp.gemini.requests by operation == server's",
            by_op == phase.server_ops,
            f"(metric vs server) {_diff(by_op, phase.server_ops)}",
        )
    )
    by_op_status: Counter[tuple[str, int | str]] = Counter()
    for p in metrics.points("gcp.gemini.requests"):
        a = p.attributes
        status = a.get("http.response.status_code", a.get("error.type"))
        by_op_status[(str(a.get("gen_ai.operation.name")), status)] += int(p.value)
    checks.append(
        (
            "gcp.gemini.requests by operation and status == server's",
            by_op_status == phase.server_status,
            f"(metric vs server) {_diff(by_op_status, phase.server_status)}",
        )
    )
    served_429 = sum(n for (_op, st), n in phase.server_status.items() if st == 429)
    exceeded = sum(int(p.value) for p in metrics.points("gcp.gemini.quota.exceeded"))
    checks.append(
        (
            f"gcp.gemini.quota.exceeded == violations per 429 x 429s ({served_429})",
            exceeded == served_429 * VIOLATIONS_PER_429,
            f"metric {exceeded}, expected {served_429 * VIOLATIONS_PER_429}",
        )
    )
    surface_spans = {n for n in t.spans if not _kind_span(n)}
    got_failed = Counter({n: c for n, c in spans.errored.items() if n in surface_spans})
    want_failed = Counter({n: c for n, c in t.failed.items() if n in surface_spans})
    checks.append(
        (
            "surface spans with error.type == calls answered 429/500, per span name",
            got_failed == want_failed,
            f"(spans vs tally) {_diff(got_failed, want_failed)}",
        )
    )
    checks.append(
        (
            "no span ended ERROR without error.type",
            not spans.error_untyped,
            f"{len(spans.error_untyped)}: {spans.error_untyped[:5]}",
        )
    )
    ended = Counter(name for name, _end in spans.ended)
    checks.append(
        (
            "ended spans == spans expected, per span name",
            ended == t.spans,
            f"ended {len(spans.ended)}, expected {sum(t.spans.values())}, calls {calls}; "
            f"(ended vs expected) {_diff(ended, t.spans)}",
        )
    )
    checks.append(
        (
            "every started span ended",
            not spans.open and len(spans.started) == len(spans.ended),
            f"started {len(spans.started)}, ended {len(spans.ended)}, open {len(spans.open)}: "
            + "; ".join(f"{n} (started in {th})" for n, th in list(spans.open.values())[:8]),
        )
    )
    checks.append(
        (
            "no span ended twice or unseen",
            not spans.unknown_ends,
            f"{len(spans.unknown_ends)}: {spans.unknown_ends[:5]}",
        )
    )
    duration = metrics.points("gen_ai.client.operation.duration")
    # One point per span of an SDK call (a tool run's span is not a client operation).
    want_duration: Counter[str] = Counter()
    for name, n in t.spans.items():
        operation = name.split(" ", 1)[0]
        if operation != "execute_tool":
            want_duration[operation] += n
    got_duration = _by_operation(duration, lambda p: int(p.count))
    checks.append(
        (
            "operation.duration points == client spans, per operation",
            got_duration == want_duration,
            f"(metric vs spans) {_diff(got_duration, want_duration)}",
        )
    )
    if t.batch_jobs or t.video_ops:
        priced = Counter(spans.priced)
        for kind, made in (("batch", t.batch_jobs), ("video", t.video_ops)):
            names = set(made) | {name for k, name in priced if k == kind}
            wrong = [f"{n}: {priced[(kind, n)]}" for n in sorted(names) if priced[(kind, n)] != 1]
            checks.append(
                (
                    f"each {'batch job' if kind == 'batch' else 'video operation'} "
                    f"priced exactly once ({len(made)})",
                    not wrong and len(set(made)) == len(made),
                    f"{len(wrong)} not priced once; priced spans per name: {'; '.join(wrong[:8])}",
                )
            )
    if t.ops["generate_live_content"]:
        live = [
            p.value
            for p in metrics.points("gcp.gemini.quota.usage")
            if p.attributes.get("gcp.gemini.quota.dimension") == "live_sessions"
        ]
        checks.append(
            (
                "live_sessions gauge back to 0",
                bool(live) and all(v == 0 for v in live),
                f"gauge points {live}",
            )
        )
    if phase.quota_calls:
        checks.append(
            (
                f"quota_status() from a side thread never raised ({phase.quota_calls} calls)",
                not phase.quota_errors,
                "; ".join(phase.quota_errors[:5]),
            )
        )
    return checks


def _kind_span(name: str) -> bool:
    """A span of the generate_content mix (``generate_content stress-<kind>-<mode>``)."""
    model = name.rsplit(" ", 1)[-1]
    return any(model in (f"stress-{k}-sync", f"stress-{k}-async") for k in KINDS)


def _by_operation(points: list[Any], value: Callable[[Any], int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for p in points:
        out[str(p.attributes.get("gen_ai.operation.name"))] += value(p)
    return out


def print_checks(title: str, checks: list[Check]) -> bool:
    print(f"\n{title}")
    for name, ok, detail in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}" + ("" if ok else f": {detail}"))
    return all(ok for _name, ok, _detail in checks)


def print_phase(phase: Phase) -> None:
    t = phase.tally
    rate = phase.calls / phase.elapsed if phase.elapsed else 0.0
    print(
        f"\n== {phase.name}: {phase.calls} calls in {phase.elapsed:.1f} s "
        f"({rate:.0f} calls/s); HTTP answers {dict(sorted(t.by_status().items(), key=str))}; "
        f"server saw {sum(phase.server_requests.values())} requests"
    )
    per_kind: Counter[str] = Counter()
    per_surface: Counter[str] = Counter()
    for key, n in t.calls.items():
        if key.startswith("stress-"):
            per_kind[key.removeprefix("stress-")] += n
        else:
            per_surface[key] += n
    print("   generate_content calls per kind: " + _counts(per_kind))
    if per_surface:
        print("   other surfaces, calls: " + _counts(per_surface))
        print("   HTTP answers per operation: " + _counts(t.ops))
        faults: dict[str, Counter[int | str]] = {}
        for (op, status), n in phase.server_status.items():
            if status != 200:
                faults.setdefault(op, Counter())[status] += n
        print(
            "   server's non-200 answers per operation: "
            + ", ".join(
                f"{op} {dict(sorted(c.items(), key=str))}" for op, c in sorted(faults.items())
            )
        )
        print(
            f"   batch jobs {len(t.batch_jobs)}, video operations {len(t.video_ops)} "
            f"(each polled by {POLLERS} pollers at once); quota_status() calls {phase.quota_calls}"
        )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items()))


def hang_exit(phase: Phase) -> None:
    print(
        f"\nHANG: {phase.name}: threads not back {JOIN_BOUND:.0f} s after the deadline: "
        f"{phase.hung}; all thread stacks:",
        flush=True,
    )
    faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
    sys.stdout.flush()
    os._exit(1)  # stuck threads may hold locks the SDK's exit-time shutdown would wait for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="instrumented run")
    parser.add_argument("--bare-seconds", type=float, default=15.0, help="uninstrumented run")
    parser.add_argument("--threads", type=int, default=4, help="sync worker threads")
    parser.add_argument("--tasks", type=int, default=8, help="async worker tasks")
    parser.add_argument(
        "--surface-threads",
        type=int,
        default=2,
        help="sync threads calling the other surfaces (0 and --surface-tasks 0: the "
        "generate_content-only mix of the runs before 2026-12-03)",
    )
    parser.add_argument(
        "--surface-tasks", type=int, default=2, help="async tasks calling the other surfaces"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=100,
        help="gen-0 threshold (Python's default: 700): automatic collections land more often "
        "inside any allocation, in any thread, with whatever locks it holds",
    )
    parser.add_argument(
        "--full-gc-every", type=int, default=20, help="every Nth side-thread gc.collect() is full"
    )
    args = parser.parse_args(argv)
    counts = (args.threads, args.tasks, args.surface_threads, args.surface_tasks)
    if args.full_gc_every < 1 or args.gc_threshold < 1 or min(counts) < 0:
        parser.error("--full-gc-every and --gc-threshold must be >= 1, thread/task counts >= 0")
    # stress-* models have no price: one "no price known" warning each is expected noise.
    logging.getLogger("opentelemetry.instrumentation.gemini").setLevel(logging.ERROR)
    # The SDK's own deprecation notice for Imagen, once per call site: noise in the summary.
    warnings.filterwarnings("ignore", message="The generate_images method is deprecated")

    gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
    watchdog = Watchdog()
    leaks = Leaks()
    leaks.install()
    lifetime = args.bare_seconds + args.seconds + 3 * WATCHDOG_MARGIN
    fake = FakeGemini(max_lifetime=lifetime).start()
    live = FakeLive(max_lifetime=lifetime, idle_timeout=20).start()
    servers = (fake, live)
    ok = True
    try:
        clients = make_clients(fake, live)
        print(
            f"stress: seed {args.seed}, {args.threads} sync threads + {args.tasks} async tasks "
            f"(generate_content), {args.surface_threads} sync threads + {args.surface_tasks} "
            "async tasks (other surfaces), "
            f"gc.collect() every {GC_EVERY * 1000:.0f} ms "
            f"(full every {args.full_gc_every}), gen-0 threshold {args.gc_threshold}; "
            f"fake Gemini at {fake.url}"
        )

        # Bare first: the baseline rate, and a check of the expectations themselves.
        if args.bare_seconds > 0:
            watchdog.arm(args.bare_seconds + WATCHDOG_MARGIN, "bare phase")
            bare = run_phase("bare", args.bare_seconds, args, servers, clients, leaks)
            if bare.hung:
                hang_exit(bare)
            gc.collect()
            print_phase(bare)
            ok &= print_checks("bare checks (expectations):", common_checks(bare, leaks.found))
            print_bare_too(leaks)
            leaks.found.clear()
        else:
            bare = None

        watchdog.arm(args.seconds + WATCHDOG_MARGIN, "instrumented phase")
        spans = SpanLedger()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(spans)
        metrics = LatestMetrics()
        reader = PeriodicExportingMetricReader(metrics, export_interval_millis=10)
        meter_provider = MeterProvider(metric_readers=[reader])
        instrumentor = GeminiInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

        phase = run_phase("instrumented", args.seconds, args, servers, clients, leaks)
        if phase.hung:
            hang_exit(phase)
        # Dropped streams' spans may end lazily: collect, then at least one more collection.
        gc.collect()
        meter_provider.force_flush()
        tracer_provider.force_flush()
        gc.collect()
        meter_provider.force_flush()
        print_phase(phase)
        print(
            f"   metric exports: {metrics.exports}; stream ends per kind: "
            + "; ".join(_stream_ends(spans))
        )
        ok &= print_checks(
            "instrumented checks:",
            common_checks(phase, leaks.found) + telemetry_checks(phase, spans, metrics),
        )
        print_bare_too(leaks)
        if bare is not None and bare.calls and phase.calls:
            b = bare.calls / bare.elapsed
            i = phase.calls / phase.elapsed
            print(
                f"\nthroughput (rough: loopback fake server, gc every {GC_EVERY * 1000:.0f} ms, "
                f"shared CPUs): bare {b:.0f} calls/s, instrumented {i:.0f} calls/s "
                f"({i / b:.2f}x)"
            )
        instrumentor.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()
    finally:
        fake.stop()
        live.stop()
    watchdog.disarm()
    print(f"\nstress: {'CLEAN' if ok else 'FAILED'}")
    return 0 if ok else 1


def _stream_ends(spans: SpanLedger) -> list[str]:
    per: dict[str, Counter[str]] = {}
    for name, end in spans.ended:
        if end is not None:
            model = name.rsplit(" ", 1)[-1]
            kind = model.removeprefix("stress-") if model.startswith("stress-") else name
            per.setdefault(kind, Counter())[str(end)] += 1
    return [f"{k} {dict(c)}" for k, c in sorted(per.items())]


if __name__ == "__main__":
    sys.exit(main())
