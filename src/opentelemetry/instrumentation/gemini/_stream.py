"""Stream proxies: callers still hold the SDK's generator; the span ends however the stream ends.

Exhausted, failed, closed, broken out of and dropped (garbage-collected) streams all finish
their call exactly once. The span is never made current across a yield: it was started with an
explicit parent and is ended explicitly.
"""

from __future__ import annotations

from typing import Any

import wrapt

from . import attributes as A
from ._call import CURRENT_CALL, Call


class _StreamMixin:
    """Closing and dropping, shared by the sync and async proxies; the per-chunk paths are
    written out in each (they run once per chunk, so they call no helpers)."""

    _self_call: Call

    def _closed(self) -> None:
        self._self_call.finish(None, A.STREAM_END_CLOSED)

    def __del__(self) -> None:
        # Dropped without being exhausted or closed (a `break`, or never read): end the span.
        self._self_call.finish(None, A.STREAM_END_ABANDONED)


class SyncStream(_StreamMixin, wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        # Runs once per chunk: one proxy attribute read, no helper calls (benchmarks/).
        call = self._self_call
        token = CURRENT_CALL.set(call)
        try:
            chunk = next(self.__wrapped__)
        except StopIteration:
            call.finish(None, A.STREAM_END_EXHAUSTED)
            raise
        except BaseException as error:
            call.finish(error, A.STREAM_END_ERROR)
            raise
        finally:
            CURRENT_CALL.reset(token)
        call.on_response(chunk)
        return chunk

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._closed()


class AsyncStream(_StreamMixin, wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        call = self._self_call
        token = CURRENT_CALL.set(call)
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            call.finish(None, A.STREAM_END_EXHAUSTED)
            raise
        except BaseException as error:
            call.finish(error, A.STREAM_END_ERROR)
            raise
        finally:
            CURRENT_CALL.reset(token)
        call.on_response(chunk)
        return chunk

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._closed()
