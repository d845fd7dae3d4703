"""Our own work per Live API message, SDK taken out: ``python benchmarks/live_messages.py``
(``--json``: the numbers as JSON, for run.py's summary).

A Live session's messages all pass through ``AsyncSession._receive``, which our hook wraps.
Here the SDK's ``_receive`` (websocket read and JSON/pydantic parsing, tens of microseconds a
message) is replaced, before anything is instrumented, by a stub that hands back messages parsed
once; a session is opened through the real ``client.aio.live.connect`` against the loopback
fake (testing/fake_live.py), then ``receive()`` is driven over the stub. A message then costs
only the stub and what our instrumentation adds around it.

Two kinds of message: the common one (a chunk of the model's audio, no usage) and a turn's end
with its usage (queued as it arrives; read, priced and counted at the next drain: a metric
collection, a read of the quota windows, or the session's end). Each variant (bare, ours) runs
in three processes of its own, interleaved; the number is the median of their medians over
repeats of the mean per message, minus bare, in process CPU time. For usage messages the drain
is timed too, after each repeat (outside the per-message timing), and reported per message: the
work a collection does for them, in whichever thread collects.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MESSAGES = 2000  # per repeat; below record/live.py MAX_PENDING, as between two collections
REPEATS = 15
PROCESSES = 3
MODEL = "gemini-live-2.5-flash-preview"


def _measure(variant: str, kind: str) -> tuple[list[float], list[float]]:
    import asyncio
    import base64

    from google import genai
    from google.genai import live, types
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from worker import CountingExporter

    from opentelemetry.instrumentation.gemini.testing.fake_live import FakeLive, LiveScript

    audio = {
        "serverContent": {
            "modelTurn": {
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "audio/pcm;rate=24000",
                            "data": base64.b64encode(b"\0" * 960).decode(),
                        }
                    }
                ]
            }
        }
    }
    turn_end = {
        "serverContent": {"turnComplete": True},
        "usageMetadata": {
            "promptTokenCount": 420,
            "responseTokenCount": 96,
            "totalTokenCount": 516,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 300},
                {"modality": "AUDIO", "tokenCount": 120},
            ],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 96}],
        },
    }
    message = types.LiveServerMessage.model_validate(audio if kind == "audio" else turn_end)

    async def receive_stub(self: Any) -> Any:
        return message

    live.AsyncSession._receive = receive_stub  # type: ignore[method-assign]

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(CountingExporter()))  # type: ignore[arg-type]
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    drain: Any = lambda: None  # noqa: E731  # bare: nothing queued
    if variant == "ours":
        from opentelemetry.instrumentation.gemini import GeminiInstrumentor, instrumentor

        GeminiInstrumentor().instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, tier="tier_1"
        )
        assert instrumentor.active_recorder is not None
        drain = instrumentor.active_recorder.instruments.live_usage.drain

    async def run(fake: FakeLive) -> tuple[list[float], list[float]]:
        client = genai.Client(
            api_key="bench-key",
            http_options=types.HttpOptions(
                base_url=fake.url, async_client_args={"ssl": fake.client_ssl}
            ),
        )
        fake.enqueue(LiveScript([("hold",)]))
        async with client.aio.live.connect(model=MODEL) as session:
            receive = session._receive  # what receive() awaits for each message
            await asyncio.sleep(0.2)  # prices load in the background; let it finish
            for _ in range(MESSAGES):  # warm-up: first-message resolution (prices), caches
                await receive()
            drain()
            out, drained = [], []
            for _ in range(REPEATS):
                t0 = time.process_time()
                for _ in range(MESSAGES):
                    await receive()
                t1 = time.process_time()
                drain()  # what the next collection does with them
                t2 = time.process_time()
                out.append((t1 - t0) / MESSAGES * 1e6)
                drained.append((t2 - t1) / MESSAGES * 1e6)
        return out, drained

    with FakeLive(max_lifetime=120) as fake:
        return asyncio.run(run(fake))


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--worker":
        per_message, drained = _measure(sys.argv[2], sys.argv[3])
        print(" ".join(f"{v:.3f}" for v in per_message))
        print(" ".join(f"{v:.3f}" for v in drained))
        return
    numbers: dict[str, float] = {}
    lines = []
    for kind in ("audio", "usage"):
        runs: dict[str, list[float]] = {"bare": [], "ours": []}
        drains: list[float] = []
        for _ in range(PROCESSES):
            for variant, out in runs.items():
                proc = subprocess.run(
                    [sys.executable, str(Path(__file__)), "--worker", variant, kind],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=HERE,
                )
                messages, drained = proc.stdout.splitlines()
                out.append(statistics.median(float(v) for v in messages.split()))
                if variant == "ours":
                    drains.append(statistics.median(float(v) for v in drained.split()))
        results = {variant: statistics.median(values) for variant, values in runs.items()}
        numbers[f"live_{kind}"] = results["ours"] - results["bare"]
        label = "audio chunk (no usage)" if kind == "audio" else "turn end with usage"
        later = ""
        if kind == "usage":
            numbers["live_usage_drain"] = statistics.median(drains)
            later = f"; +{numbers['live_usage_drain']:.2f} us at the next drain"
        lines.append(
            f"{label:24} stub {results['bare']:.2f} us, "
            f"ours +{numbers[f'live_{kind}']:.2f} us per message{later}"
        )
    print(json.dumps(numbers) if "--json" in sys.argv else "\n".join(lines))


if __name__ == "__main__":
    main()
