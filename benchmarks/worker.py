"""One benchmark variant in its own process, driven by run.py over stdin/stdout (JSON lines).

Every variant (bare, floor, ours, or a peer instrumentation from another virtualenv) gets the
same OpenTelemetry SDK set-up, the same clients and the same calls; only what is installed on
top differs. A process per variant means nothing is patched and unpatched between blocks, each
variant's memory is its own, and a peer runs with its own dependencies.

Commands (one JSON object per line):
  {"op": "block", "scenario": S, "transport": "inproc"|"loopback", "n": N}
      -> {"seconds": wall-clock, "cpu": process CPU time}
  {"op": "memory", "n": N, "warmup": W, "every": E} -> {"calls": [...], "rss": [...], ...}
  {"op": "stats"} -> spans exported and metric names, to check the variant recorded something
  {"op": "exit"}
Scenarios: sync, async, stream_1, stream_n (--chunks), sync_429, and parsed_1/parsed_n: streams
of chunks parsed once (--parsed-chunks), which isolate the per-chunk cost (see _clients).

Runs under any Python with google-genai, the OpenTelemetry SDK and httpx2 or httpx; imports
nothing from this repository except, for the "ours" variant, the installed instrumentation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bodies

PROMPT = "Say hello in one sentence."


class CountingExporter:
    """A span exporter that keeps nothing: counts spans, so memory is the pipeline's alone."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _httpx_module() -> Any:
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


class Bench:
    def __init__(
        self,
        variant: str,
        peer: str | None,
        loopback_url: str | None,
        chunks: int,
        parsed_chunks: int = 100,
    ) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from opentelemetry import metrics, trace

        self.exporter = CountingExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter))  # type: ignore[arg-type]
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        # Globals too, for peers that ignore the providers they are given.
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        self.chunks = chunks
        self.parsed_chunks = parsed_chunks
        self._install(variant, peer)
        self.clients = self._clients(loopback_url)
        self.loop = asyncio.new_event_loop()

    def _install(self, variant: str, peer: str | None) -> None:
        providers = {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}
        if variant == "bare":
            return
        if variant == "floor":
            import floor

            floor.install(self.tracer_provider, self.meter_provider)
            return
        if variant == "ours":
            from opentelemetry.instrumentation.gemini import GeminiInstrumentor

            GeminiInstrumentor().instrument(**providers)
            return
        if variant == "peer" and peer:
            module_name, _, attr = peer.partition(":")
            module = importlib.import_module(module_name)
            if attr.endswith("()"):  # a function, e.g. openlit.init()
                getattr(module, attr[:-2])(**providers)
            else:
                # Same SDK for every variant: a peer whose declared range stops below this
                # google-genai is asked to instrument it anyway (the spans check in run.py
                # catches one that then records nothing).
                getattr(module, attr)().instrument(skip_dep_check=True, **providers)
            return
        raise SystemExit(f"unknown variant {variant!r}")

    def _clients(self, loopback_url: str | None) -> dict[tuple[str, str], Any]:
        from google import genai
        from google.genai import types

        httpx = _httpx_module()
        transport = bodies.mock_transport(httpx)
        headers = {
            "sync": {},
            "async": {},
            "stream_1": {"x-bench-chunks": "1"},
            "stream_n": {"x-bench-chunks": str(self.chunks)},
            "sync_429": {"x-bench-status": "429"},
            "embed": {},
        }
        clients: dict[tuple[str, str], Any] = {}
        # Streams of chunks parsed once: the SDK's public stream method and everything above it
        # run as usual, but no HTTP or JSON parsing happens per chunk, so the instrumentation's
        # per-chunk cost is not lost in the SDK's (~150 us a chunk here).
        for scenario, chunks in (("parsed_1", 1), ("parsed_n", self.parsed_chunks)):
            options = types.HttpOptions(
                base_url="https://generativelanguage.googleapis.com",
                headers={"x-bench-chunks": str(chunks)},
                client_args={"transport": transport},
            )
            client = genai.Client(api_key="bench-key", http_options=options)
            parsed = list(client.models._generate_content_stream(model=bodies.MODEL, contents="x"))
            client.models._generate_content_stream = _replay(parsed)
            clients[scenario, "inproc"] = client
        for scenario, extra in headers.items():
            inproc = types.HttpOptions(
                base_url="https://generativelanguage.googleapis.com",
                headers=extra,
                client_args={"transport": transport},
                async_client_args={"transport": transport},
            )
            clients[scenario, "inproc"] = genai.Client(api_key="bench-key", http_options=inproc)
            if loopback_url:
                # The fake server is scripted per block by run.py; headers would be ignored.
                loop = types.HttpOptions(base_url=loopback_url)
                clients[scenario, "loopback"] = genai.Client(api_key="bench-key", http_options=loop)
        return clients

    # --- the calls ----------------------------------------------------------------------------
    def runner(self, scenario: str, transport: str) -> Callable[[int], float]:
        client = self.clients[scenario, transport]
        model = bodies.MODEL

        if scenario == "sync":

            def run(n: int) -> float:
                call = client.models.generate_content
                t0 = time.perf_counter()
                for _ in range(n):
                    call(model=model, contents=PROMPT)
                return time.perf_counter() - t0

        elif scenario == "sync_429":
            from google.genai.errors import ClientError

            def run(n: int) -> float:
                call = client.models.generate_content
                t0 = time.perf_counter()
                for _ in range(n):
                    with contextlib.suppress(ClientError):
                        call(model=model, contents=PROMPT)
                return time.perf_counter() - t0

        elif scenario in ("stream_1", "stream_n", "parsed_1", "parsed_n"):

            def run(n: int) -> float:
                call = client.models.generate_content_stream
                t0 = time.perf_counter()
                for _ in range(n):
                    for _chunk in call(model=model, contents=PROMPT):
                        pass
                return time.perf_counter() - t0

        elif scenario == "embed":

            def run(n: int) -> float:
                call = client.models.embed_content
                t0 = time.perf_counter()
                for _ in range(n):
                    call(model=bodies.EMBED_MODEL, contents=PROMPT)
                return time.perf_counter() - t0

        elif scenario == "async":

            async def many(n: int) -> float:
                call = client.aio.models.generate_content
                t0 = time.perf_counter()
                for _ in range(n):
                    await call(model=model, contents=PROMPT)
                return time.perf_counter() - t0

            def run(n: int) -> float:
                return self.loop.run_until_complete(many(n))

        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
        return run

    def block(self, scenario: str, transport: str, n: int) -> dict[str, Any]:
        """Wall-clock and process CPU seconds (all threads, so a span processor's export thread
        counts too) for ``n`` calls. CPU time does not include time this process spent waiting
        for a core, which on a shared machine is most of the noise."""
        run = self.runner(scenario, transport)
        gc.collect()
        cpu0 = time.process_time()
        wall = run(n)
        return {"seconds": wall, "cpu": time.process_time() - cpu0}

    def memory(self, n: int, warmup: int, every: int) -> dict[str, Any]:
        """Sync calls in process; RSS and live Python objects after warm-up and every ``every``."""
        run = self.runner("sync", "inproc")
        if hasattr(os, "sched_setaffinity"):  # workers measure memory side by side
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
        gc.unfreeze()  # count every object, the import-time heap included
        run(warmup)
        out: dict[str, list[float]] = {"calls": [], "rss": [], "objects": []}
        done = 0
        while True:
            # Spans waiting in the batch processor's queue are not growth: export them first.
            self.tracer_provider.force_flush()
            gc.collect()
            out["calls"].append(done)
            out["rss"].append(_rss_bytes())
            out["objects"].append(len(gc.get_objects()))
            if done >= n:
                break
            step = min(every, n - done)
            run(step)
            done += step
        return out

    def stats(self) -> dict[str, Any]:
        self.tracer_provider.force_flush()
        data = self.reader.get_metrics_data()
        names = sorted(
            {
                m.name
                for rm in (data.resource_metrics if data else ())
                for sm in rm.scope_metrics
                for m in sm.metrics
            }
        )
        return {"spans": self.exporter.count, "metrics": names}


def _replay(chunks: list[Any]) -> Callable[..., Any]:
    def _generate_content_stream(**_kwargs: Any) -> Any:
        yield from chunks

    return _generate_content_stream


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--peer")
    parser.add_argument("--loopback-url")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--parsed-chunks", type=int, default=100)
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU once ready")
    parser.add_argument("--start-cpus", help="comma separated CPUs to start up on")
    args = parser.parse_args()
    if args.start_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in args.start_cpus.split(",")})
    # Replies go to the original stdout; anything an instrumentation prints goes to stderr.
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    bench = Bench(args.variant, args.peer, args.loopback_url, args.chunks, args.parsed_chunks)
    # The import-time heap (google-genai, pydantic, the SDK: ~100k objects) never becomes
    # garbage; frozen, a full collection costs ~0.5 ms instead of ~50 ms, so the collection
    # before each block is cheap and a rare full collection cannot land inside one block.
    gc.collect()
    gc.freeze()
    # Pinned once ready: the workers import side by side on every CPU, then time on one.
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    replies.write(json.dumps({"ready": True, "python": sys.version.split()[0]}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        if op == "exit":
            break
        try:
            result = getattr(bench, op)(**cmd)
        except Exception as error:  # report, keep serving: one broken scenario is not fatal
            result = {"error": f"{type(error).__name__}: {error}"}
        replies.write(json.dumps(result) + "\n")
    bench.tracer_provider.shutdown()


if __name__ == "__main__":
    main()
