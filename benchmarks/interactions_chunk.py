"""Our cost per streamed Interactions API event (target: <= 1 us a chunk).

The SDK's own events (``InteractionSSEEvent`` objects, parsed once from the fake server's
stream) are replayed through the generator our adapter puts in the SDK Stream's place
(record/streams.py ``sync_items`` with sdk/interactions.py's ``_on_event``), against a bare
generator over the same list: the difference per event is what the instrumentation adds to
each chunk the app reads. Parsing, HTTP and the app's own work are the same either way and left out.

    python benchmarks/interactions_chunk.py [events] [--json]

``--json``: the number as JSON, for run.py's summary.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from google import genai
from google.genai import types
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry.instrumentation.gemini import GeminiInstrumentor, instrumentor
from opentelemetry.instrumentation.gemini.record.operations import INTERACTIONS
from opentelemetry.instrumentation.gemini.record.streams import sync_items
from opentelemetry.instrumentation.gemini.sdk.interactions import _on_event, _State
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply


def _events(n: int) -> list[Any]:
    with FakeGemini() as fake:
        client = genai.Client(
            api_key="fake-key",
            http_options=types.HttpOptions(
                base_url=fake.url, retry_options=types.HttpRetryOptions(attempts=1)
            ),
        )
        fake.enqueue(None, Reply(text=" ".join(["word"] * n), chunks=n))
        return list(client.interactions.create(model="gemini-2.5-flash", input="x", stream=True))


def _bare(events: list[Any]) -> Iterator[Any]:
    yield from iter(events)


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--json"]
    n = int(args[0]) if args else 2000
    GeminiInstrumentor().instrument(
        tracer_provider=TracerProvider(), meter_provider=MeterProvider()
    )
    events = _events(n)
    recorder = instrumentor.active_recorder
    assert recorder is not None
    bare_best = ours_best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _event in _bare(events):
            pass
        bare_best = min(bare_best, time.perf_counter() - t0)
        call = recorder.start(
            "gemini-2.5-flash",
            None,
            None,
            vertex=False,
            base_url=None,
            stream=True,
            operation=INTERACTIONS,
        )
        assert call is not None
        t0 = time.perf_counter()
        on_event = functools.partial(_on_event, call, _State("create", None))
        for _event in sync_items(iter(events), call, on_event, primed=False):
            pass
        ours_best = min(ours_best, time.perf_counter() - t0)
    per_event = (ours_best - bare_best) / len(events) * 1e6
    if "--json" in sys.argv:
        print(json.dumps({"interactions_event": per_event, "events": len(events)}))
        return
    print(f"{len(events)} events: +{per_event:.2f} us per streamed Interactions event (ours)")


if __name__ == "__main__":
    main()
