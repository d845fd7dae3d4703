"""Concurrency and cancellation: tasks cancelled at every await, clients and streams shared
between threads, tasks and loops, tools that make calls of their own, and a metrics reader,
quota_status() and uninstrument()/instrument() racing the calls.

Each case runs through the real client against the fake server; what the app sees must be what
it sees bare, every span must end, and every request the server received must be counted once,
on the call that made it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Telemetry, make_client, run_async
from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini, Reply
from test_traces import ROUND_1, _calls

MODEL = "gemini-2.5-flash"


def _evaluated(function: Callable[..., Any]) -> Callable[..., Any]:
    # google-genai 2.x cannot read the string annotations this module's
    # `from __future__ import annotations` leaves (it answers the model an error).
    function.__annotations__ = {"city": str, "return": str}
    return function


def _files_listed(fake: FakeGemini) -> int:
    return sum(1 for r in fake.requests if str(r.get("method", "")).endswith("/files"))


# --- a tool's own requests are not its call's attempts --------------------------------------
@pytest.mark.parametrize("how", ["sync", "async", "sync_tool_of_async_call"])
def test_a_tools_own_requests_are_not_attempts_of_the_call_running_it(
    fake: FakeGemini, telemetry: Telemetry, how: str
) -> None:
    """Automatic function calling runs the tool inside generate_content. A request the tool
    makes through an SDK method we have no call for (files.list) used to be taken as an HTTP
    attempt of the generate_content call: counted under its operation and model, and on its
    span (``gcp.gemini.attempts=3``). A sync tool of an async call runs in a worker thread with
    a copy of the call's context: its ``asyncio.run`` saw the call too."""
    client = make_client(fake)
    inner = make_client(fake)  # the tool's own client: google-genai 2.x binds one to a loop

    def lookup(city: str) -> str:
        """Looks a city up."""
        if how == "sync":
            list(inner.files.list())
        else:

            async def listed() -> None:
                [f async for f in await inner.aio.files.list()]

            asyncio.run(listed())
        return city

    async def alookup(city: str) -> str:
        """Looks a city up."""
        [f async for f in await client.aio.files.list()]
        return city

    tool = _evaluated(alookup if how == "async" else lookup)
    fake.enqueue(MODEL, Reply(usage=ROUND_1, extra=_calls(tool.__name__)))
    config = {"tools": [tool]}
    if how == "sync":
        client.models.generate_content(model=MODEL, contents="x", config=config)
    else:
        run_async(client.aio.models.generate_content(model=MODEL, contents="x", config=config))

    assert _files_listed(fake) == 1 and len(fake.requests) == 3  # the tool ran once
    call = telemetry.span()
    assert call.attributes["gcp.gemini.attempts"] == 2  # one per round, none of the tool's
    assert len(telemetry.all_spans()) == 2  # and the tool's
    assert telemetry.total("gcp.gemini.requests", gen_ai__operation__name="generate_content") == 2
    assert telemetry.total("gcp.gemini.requests", gen_ai__operation__name="files") == 1
