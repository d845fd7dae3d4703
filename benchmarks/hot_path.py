"""Our own work per call, with the SDK taken out: ``python benchmarks/hot_path.py``.

run.py measures whole SDK calls, whose own ~0.5-1 ms and its noise bury differences of a few
microseconds. Here ``Models.generate_content`` (and the client's ``_request_once``, which our
per-attempt hook wraps) are replaced by stubs returning one parsed response before anything is
instrumented, so a call costs only what the floor or our instrumentation adds around it. Use it
to compare changes to the hot path; run.py stays the judge of the real overhead.

Each variant runs in three processes of its own, interleaved; the number is the median of
their medians over repeats of the mean per call, minus the stub's own cost, in process CPU
time. Still noisier than it looks on a shared VM: compare changes over several runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CALLS = 2000
REPEATS = 21
PROCESSES = 3


def _measure(variant: str) -> list[float]:
    import json

    import bodies
    from google import genai
    from google.genai import _api_client, models, types
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from worker import CountingExporter

    response = types.GenerateContentResponse.model_validate(json.loads(bodies.generate_body()))

    def request_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        return None

    def generate_content(self: Any, *, model: str, contents: Any, config: Any = None) -> Any:
        self._api_client._request_once()  # one HTTP attempt, as the SDK makes it
        return response

    _api_client.BaseApiClient._request_once = request_once  # type: ignore[method-assign]
    models.Models.generate_content = generate_content  # type: ignore[method-assign]

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(CountingExporter()))  # type: ignore[arg-type]
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    if variant == "floor":
        import floor

        floor.install(tracer_provider, meter_provider)
    elif variant == "ours":
        from opentelemetry.instrumentation.gemini import GeminiInstrumentor

        GeminiInstrumentor().instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    client = genai.Client(api_key="bench-key")
    call = client.models.generate_content
    for _ in range(CALLS):  # warm-up: first-call resolution (prices), caches
        call(model=bodies.MODEL, contents="x")
    time.sleep(0.2)  # prices load in the background; let it finish
    out = []
    for _ in range(REPEATS):
        t0 = time.process_time()
        for _ in range(CALLS):
            call(model=bodies.MODEL, contents="x")
        out.append((time.process_time() - t0) / CALLS * 1e6)
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(" ".join(f"{v:.3f}" for v in _measure(sys.argv[2])))
        return
    # Processes differ by several us (memory layout, CPU placement): take three of each,
    # interleaved, and the median of their medians.
    runs: dict[str, list[float]] = {"bare": [], "floor": [], "ours": []}
    for _ in range(PROCESSES):
        for variant, out in runs.items():
            proc = subprocess.run(
                [sys.executable, str(Path(__file__)), "--worker", variant],
                capture_output=True,
                text=True,
                check=True,
                cwd=HERE,
            )
            out.append(statistics.median(float(v) for v in proc.stdout.split()))
    results = {variant: statistics.median(values) for variant, values in runs.items()}
    base = results["bare"]
    print(f"stub call: {base:.2f} us")
    for variant in ("floor", "ours"):
        print(f"{variant:6} +{results[variant] - base:7.2f} us per call")
    print(f"ratio  {(results['ours'] - base) / (results['floor'] - base):.2f} x the floor")


if __name__ == "__main__":
    main()
