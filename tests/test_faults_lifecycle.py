"""How apps create, share and drop clients over their life: a client per request, clients
closed and used again, instrument()/uninstrument() while other threads call, SDK objects
copied and pickled, chats, and calls still open when the interpreter exits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

from conftest import FAKE_KEY
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini


def exit_script(fake: FakeGemini, out: Any, body: str) -> str:
    """A script exporting its spans' attributes to ``out`` (one JSON line each) through a
    batch processor, as an app's exporter would, then running ``body``."""
    head = f"""
        import asyncio, json, threading
        from google import genai
        from google.genai import types
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.instrumentation.gemini import GeminiInstrumentor

        class ToFile(SpanExporter):
            def export(self, spans):
                with open({str(out)!r}, "a") as f:
                    for s in spans:
                        f.write(json.dumps(dict(s.attributes)) + "\\n")
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(ToFile()))
        GeminiInstrumentor().instrument(tracer_provider=provider)
        client = genai.Client(api_key={FAKE_KEY!r},
                              http_options=types.HttpOptions(base_url={fake.url!r}))
        """
    return textwrap.dedent(head) + textwrap.dedent(body)


def spans_at_exit(out: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_a_stream_still_open_at_exit_ends_its_span(fake: FakeGemini, tmp_path: Any) -> None:
    """A stream the app still holds, part read, when the interpreter exits (sync, and async
    on a loop the app keeps): its span ends before the providers shut down, as abandoned, with
    what was read. Before, the generator was only closed at module teardown, after the span
    pipeline had shut down: the span and the call's tokens were lost."""
    out = tmp_path / "spans.json"
    script = exit_script(
        fake,
        out,
        """
        kept = client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
        next(kept)
        loop = asyncio.new_event_loop()
        async def start():
            stream = await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash-lite", contents="x"
            )
            await stream.__anext__()
            return stream
        kept_async = loop.run_until_complete(start())
        """,
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    # (stderr: an older SDK gets our one warning about what it lacks, and nothing more)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    spans = {s["gen_ai.request.model"]: s for s in spans_at_exit(out)}
    assert set(spans) == {"gemini-2.5-flash", "gemini-2.5-flash-lite"}
    for attrs in spans.values():
        assert attrs["gcp.gemini.stream.end"] == "abandoned"
        assert attrs["gcp.gemini.stream.chunks"] == 1


def test_a_stream_open_at_exit_with_an_uploader_not_started_yet_still_ends_its_span(
    fake: FakeGemini, tmp_path: Any
) -> None:
    """The same at exit, with content going to an uploader whose thread has not started (the
    call is the first to upload). Python 3.12 refuses to start a thread at exit: the content
    is dropped and the span says so (``gcp.gemini.content.upload=dropped``). Before, the
    RuntimeError ended the content's recording silently: no reference, no word of the drop."""
    out = tmp_path / "spans.json"
    uploads = tmp_path / "uploads"
    script = exit_script(
        fake,
        out,
        f"""
        from opentelemetry.instrumentation.gemini import FileSystemUploader
        GeminiInstrumentor().uninstrument()
        GeminiInstrumentor().instrument(
            tracer_provider=provider, content_uploader=FileSystemUploader({str(uploads)!r})
        )
        kept = client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
        next(kept)
        """,
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [attrs] = spans_at_exit(out)
    assert attrs["gcp.gemini.stream.end"] == "abandoned"
    stored = list(uploads.glob("*.json")) if uploads.exists() else []
    if stored:  # the thread started (Python before 3.12, and 3.13)
        assert "gen_ai.input.messages_ref" in attrs
    else:  # it could not: the span says so
        assert attrs["gcp.gemini.content.upload"] == "dropped", attrs
