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

The same workload first runs uninstrumented for ``--bare-seconds`` (its calls/s are the baseline;
its outcomes validate the expectations), then instrumented with ``GeminiInstrumentor`` on an
SDK TracerProvider (a processor that tracks every started span until it ends) and MeterProvider
(a PeriodicExportingMetricReader collecting every 10 ms into an exporter that keeps the latest
data). After the deadline the workers stop and are joined, then ``gc.collect()``, a final
metrics collection and a span flush, and the checks:

* no hang: every worker joined within 30 s (else HANG, stacks dumped, exit 1);
* exact counts: ``gcp.gemini.requests`` by ``http.response.status_code`` equals the workers'
  tally of HTTP answers per status (200, 429, 500) and, in total, the server's own request
  count; ended spans and ``gen_ai.client.operation.duration`` points equal the calls made;
* no open span: every span started has ended;
* the app saw what it sees bare: each call's outcome (chunks read, exception type and code)
  is the kind's expected one, and no exception leaked elsewhere (thread, event loop, or
  "Exception ignored" from garbage collection).

Exit 0 when clean, 1 with the failing checks. A watchdog bounds each phase (its seconds + 60):
past that it dumps every thread's stack (faulthandler) and exits 2. Quick try:
``python benchmarks/stress.py --seconds 10 --bare-seconds 5``; other flags: ``--threads``,
``--tasks``, ``--seed`` (same seed, same sequence of kinds per worker), ``--gc-threshold``,
``--full-gc-every``. A race may need several seeds or a longer run to show.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import logging
import os
import random
import sys
import threading
import time
import traceback
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

from opentelemetry.instrumentation.gemini import GeminiInstrumentor
from opentelemetry.instrumentation.gemini.testing.fake_gemini import (
    FakeGemini,
    Reply,
    quota_error_body,
    server_error_body,
)

PROMPT = "stress"
TEXT = Reply().text  # what the fake answers unscripted, whole or across a stream's chunks
JOIN_BOUND = 30.0  # s: a worker not back this long after the deadline is hung
WATCHDOG_MARGIN = 60.0  # s beyond a phase's own seconds before the watchdog kills the run
GC_EVERY = 0.003  # s between the side thread's gc.collect() calls
# cancel/timeout land long before the second chunk, unless the loop is starved that long (gc)
SLOW = Reply(chunks=3, chunk_delay=1.0)


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

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open[span.context.span_id] = (span.name, threading.current_thread().name)
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        if self.open.pop(span.context.span_id, None) is None:
            self.unknown_ends.append(span.name)
        attrs = span.attributes or {}
        self.ended.append((span.name, attrs.get("gcp.gemini.stream.end")))


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
        if (
            "already executing" in str(u.exc_value)
            and name
            and not name.startswith("async_items")
        ):
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

    def merge(self, other: Tally) -> None:
        self.calls.update(other.calls)
        self.done.update(other.done)
        self.answers.update(other.answers)
        self.outcomes.update(other.outcomes)
        self.surprises.extend(other.surprises)

    def by_status(self) -> Counter[int | str]:
        out: Counter[int | str] = Counter()
        for (_model, status), n in self.answers.items():
            out[status] += n
        return out


def _error(e: BaseException) -> str:
    code = getattr(e, "code", None)
    return f"{type(e).__name__} {code}" if code is not None else f"{type(e).__name__}: {e}"[:120]


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

    def __init__(self, fake: FakeGemini, client: genai.Client, seed: int) -> None:
        self.fake = fake
        self.client = client
        self.seed = seed
        self.stop = threading.Event()

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
        if answer is not None:
            tally.answers[(model, answer)] += 1
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
        self, tallies: list[Tally], deadline: float, leaks: Leaks, others: list[threading.Thread]
    ) -> None:
        asyncio.get_running_loop().set_exception_handler(leaks.loop_handler)
        await asyncio.gather(*(self._async_worker(i, t, deadline) for i, t in enumerate(tallies)))
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


# --- a phase: the workload for a time, then joined within a bound --------------------------------
@dataclass
class Phase:
    name: str
    tally: Tally
    elapsed: float
    server_requests: Counter[str]
    hung: list[str]

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
    fake: FakeGemini,
    client: genai.Client,
    leaks: Leaks,
) -> Phase:
    fake.reset()
    work = Workload(fake, client, args.seed)
    start = time.monotonic()
    deadline = start + seconds
    sync_tallies = [Tally() for _ in range(args.threads)]
    async_tallies = [Tally() for _ in range(args.tasks)]
    gc_thread = threading.Thread(
        target=_collector, args=(work.stop, args.full_gc_every), name="gc", daemon=True
    )
    workers = [
        threading.Thread(
            target=work.sync_worker, args=(i, t, deadline), name=f"sync-{i}", daemon=True
        )
        for i, t in enumerate(sync_tallies)
    ]
    others = [*workers, gc_thread]
    loop_thread = threading.Thread(
        target=lambda: asyncio.run(work.async_main(async_tallies, deadline, leaks, others)),
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
    for t in sync_tallies + async_tallies:
        tally.merge(t)
    with fake._lock:  # the server appends under this lock
        server = Counter(r["model"] for r in fake.requests)
    return Phase(name, tally, elapsed, server, [t.name for t in every if t.is_alive()])


def make_client(fake: FakeGemini) -> genai.Client:
    options = types.HttpOptions(
        base_url=fake.url,
        retry_options=types.HttpRetryOptions(attempts=1),  # retries off: one attempt per call
        timeout=15_000,  # ms: a stuck request fails (a surprise) instead of hanging the worker
    )
    return genai.Client(api_key="fake-stress-key", http_options=options)


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
    ended_by_model = Counter(name.rsplit(" ", 1)[-1] for name, _end in spans.ended)
    checks.append(
        (
            "ended spans == calls started",
            len(spans.ended) == calls,
            f"ended {len(spans.ended)}, calls {calls}; per model (spans vs calls): "
            f"{_diff(ended_by_model, t.calls)}",
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
    n_duration = sum(int(p.count) for p in duration)
    checks.append(
        (
            "operation.duration points == calls",
            n_duration == calls,
            f"histogram count {n_duration}, calls {calls}; per model (metric vs calls): "
            f"{_diff(_by_model(duration, lambda p: int(p.count)), t.calls)}",
        )
    )
    return checks


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
    for model, n in t.calls.items():
        per_kind[model.removeprefix("stress-")] += n
    print("   calls per kind: " + ", ".join(f"{k} {n}" for k, n in sorted(per_kind.items())))


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
    if args.full_gc_every < 1 or args.gc_threshold < 1 or args.threads < 0 or args.tasks < 0:
        parser.error("--full-gc-every and --gc-threshold must be >= 1, --threads/--tasks >= 0")
    # stress-* models have no price: one "no price known" warning each is expected noise.
    logging.getLogger("opentelemetry.instrumentation.gemini").setLevel(logging.ERROR)

    gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
    watchdog = Watchdog()
    leaks = Leaks()
    leaks.install()
    lifetime = args.bare_seconds + args.seconds + 3 * WATCHDOG_MARGIN
    fake = FakeGemini(max_lifetime=lifetime).start()
    ok = True
    try:
        client = make_client(fake)
        print(
            f"stress: seed {args.seed}, {args.threads} sync threads + {args.tasks} async tasks, "
            f"gc.collect() every {GC_EVERY * 1000:.0f} ms "
            f"(full every {args.full_gc_every}), gen-0 threshold {args.gc_threshold}; "
            f"fake Gemini at {fake.url}"
        )

        # Bare first: the baseline rate, and a check of the expectations themselves.
        if args.bare_seconds > 0:
            watchdog.arm(args.bare_seconds + WATCHDOG_MARGIN, "bare phase")
            bare = run_phase("bare", args.bare_seconds, args, fake, client, leaks)
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

        phase = run_phase("instrumented", args.seconds, args, fake, client, leaks)
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
    watchdog.disarm()
    print(f"\nstress: {'CLEAN' if ok else 'FAILED'}")
    return 0 if ok else 1


def _stream_ends(spans: SpanLedger) -> list[str]:
    per: dict[str, Counter[str]] = {}
    for name, end in spans.ended:
        if end is not None:
            kind = name.rsplit(" ", 1)[-1].removeprefix("stress-")
            per.setdefault(kind, Counter())[str(end)] += 1
    return [f"{k} {dict(c)}" for k, c in sorted(per.items())]


if __name__ == "__main__":
    sys.exit(main())
