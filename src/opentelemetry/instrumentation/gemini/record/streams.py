"""Stream wrappers: the caller gets a generator of the SDK's chunks; the span ends however the
stream ends.

Exhausted, failed, closed (even before its first chunk), broken out of and dropped
(garbage-collected, even in a reference cycle, even never read) streams all finish their call
exactly once. The span is never made current across a yield: it was started with an explicit
parent and is ended explicitly. A dropped stream is only noticed (a weakref callback, perhaps
inside garbage collection) and recorded later (``Call.abandon``).

Each generator is primed, run to a first internal yield before the caller gets it, so that a
``close()`` before the first chunk reaches its ``finally`` (a generator never started ignores
close()). Priming pulls nothing from the SDK: the request still goes out on the first chunk.

Why generators rather than a proxy object: resuming a generator costs about half of a
Python-level ``__next__`` on a proxy, and this runs once per chunk (benchmarks/).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .. import attributes as A
from .call import ASYNC_CALL, SYNC_CALL, Call

# Drop watchers live here, not on the stream or the call: a weakref's callback only runs if the
# weakref outlives what it watches, and a stream in a reference cycle takes its call with it.
# Each open stream's watcher -> its call, which ``end_open_at_exit`` also reads.
_WATCHERS: dict[weakref.ref[Any], Call] = {}


def _watch(stream: Any, call: Call) -> None:
    """End the call as abandoned when the caller drops ``stream`` unfinished. The callback runs
    before the generator's own close on collection, so a drop reads as abandoned, not closed."""

    def dropped(ref: weakref.ref[Any]) -> None:
        _WATCHERS.pop(ref, None)  # a dict's pop takes no lock
        call.abandon(A.STREAM_END_ABANDONED)

    _WATCHERS[weakref.ref(stream, dropped)] = call


def end_open_at_exit() -> None:
    """At exit, before the providers shut down: end as abandoned the calls of streams the app
    still holds unfinished (a global, a daemon thread still reading). Their generators are
    only closed at module teardown, after the span pipeline and the metric readers have shut
    down: the span and the call's tokens were lost. Recorded by the next ``drain_abandoned``;
    a chunk read after this is not recorded."""
    while True:
        try:
            calls = list(_WATCHERS.values())
            break
        except RuntimeError:  # a drop noticed by the collector while we copied
            continue
    for call in calls:
        if not call.ended:
            call.abandon(A.STREAM_END_ABANDONED)


_PRIMED = object()  # what the priming yield gives; never reaches the caller


def wrap_sync(stream: Iterator[Any], call: Call) -> Iterator[Any]:
    chunks = sync_items(stream, call, call.on_response)
    next(chunks)  # primed (see the module docstring)
    _watch(chunks, call)
    return chunks


async def wrap_async(stream: AsyncIterator[Any], call: Call) -> AsyncIterator[Any]:
    chunks = async_items(stream, call, call.on_response)
    await chunks.__anext__()  # primed
    _watch(chunks, call)
    return chunks


def sync_items(
    stream: Iterator[Any], call: Call, on_item: Callable[[Any], None], *, primed: bool = True
) -> Iterator[Any]:
    """The SDK's items, each passed to ``on_item`` (which must not raise) before the caller
    gets it; the call ends however the iteration ends. ``primed``: first yields ``_PRIMED``,
    for the caller of this function to take (wrap_sync); without it the generator starts on
    the first item asked for (a generator put in an SDK object's place, which its owner
    iterates as it is)."""
    end = A.STREAM_END_CLOSED  # what a GeneratorExit at a yield means: close() was called
    try:
        if primed:
            yield _PRIMED
        stream = iter(stream)  # as the caller's own loop would: a non-iterable fails there
        per_thread = SYNC_CALL
        while True:
            # The SDK makes its HTTP attempts inside next(): they must see this call. Read for
            # every chunk: a stream can be resumed from another thread.
            in_flight = per_thread.in_flight
            outer = in_flight.call
            in_flight.call = call
            try:
                chunk = next(stream)
            except StopIteration:
                end = A.STREAM_END_EXHAUSTED
                return
            finally:
                in_flight.call = outer
            on_item(chunk)
            yield chunk
    except GeneratorExit:
        # close(): close the SDK's stream too (its HTTP response). A drop already ended the
        # call, and the SDK's stream is being dropped with ours.
        if not call.ended:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        raise
    except BaseException as error:
        call.finish(error, A.STREAM_END_ERROR)
        raise
    finally:
        call.finish(None, end)


async def async_items(
    stream: AsyncIterator[Any],
    call: Call,
    on_item: Callable[[Any], None],
    *,
    primed: bool = True,
) -> AsyncIterator[Any]:
    """sync_items for async iterators."""
    end = A.STREAM_END_CLOSED
    try:
        if primed:
            yield _PRIMED
        stream = stream.__aiter__()
        while True:
            token = ASYNC_CALL.set(call)
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                end = A.STREAM_END_EXHAUSTED
                return
            finally:
                # Closed from another context than the step's (the GC's): nothing to reset. Not
                # contextlib.suppress: this runs per chunk.
                try:  # noqa: SIM105
                    ASYNC_CALL.reset(token)
                except ValueError:
                    pass
            on_item(chunk)
            yield chunk
    except GeneratorExit:
        if not call.ended:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        raise
    except BaseException as error:
        call.finish(error, A.STREAM_END_ERROR)
        raise
    finally:
        call.finish(None, end)
