"""The opt-in retry policy ``respect_retry_info``: retries that respect the server.

google-genai retries a 429 on its own schedule (tenacity, exponential backoff with jitter, in
``BaseApiClient._request`` / ``_async_request``) and ignores the answer's ``RetryInfo``: every
early attempt counts against RPM, and a per-day quota violation will not clear for hours
(googleapis/python-genai#1875). With this policy, and only with it (the default ``"sdk"`` does
not even install these hooks):

- before the SDK's next attempt after a 429 that carries a retry delay, the attempt waits what
  the server asked for, at most ``retry_max_wait`` seconds, less what the SDK already slept;
- a 429 naming a per-day quota ends the SDK's loop at once: the caller gets that 429's
  ``ClientError``, the exception the SDK raises when it stops retrying a 429.

Two hooks: one on the retry loop (``_request``/``_async_request``) holds the loop's state (a
thread-local or a context variable: tenacity runs every attempt on the caller's thread or task)
and turns our stop signal back into the 429; one on each attempt (``_request_once``, outside
the attempt counter of attempts.py) waits and decides. Waits are ``time.sleep`` /
``asyncio.sleep`` in the caller's thread or task, never under a lock. What the policy did is
recorded on the call's span.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..quota.errors import parse_rate_limit
from ..record.call import ASYNC_CALL, SYNC_CALL

if TYPE_CHECKING:
    from .seams import Method, Patches, Targets

POLICY = "respect_retry_info"


class _GiveUp(Exception):  # a signal, not an error the caller ever sees
    """Raised from an attempt to stop the SDK's loop: its retry predicate does not match it,
    and the loop hook re-raises the 429 it carries."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class _Loop:
    """One SDK request's retry loop, as the policy sees it."""

    __slots__ = ("asked", "at", "max_wait", "waited", "waits")

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait
        self.asked = 0.0  # the delay the latest 429 asked for (capped)
        self.at = 0.0  # when that 429 arrived (monotonic)
        self.waited = 0.0
        self.waits = 0

    def pending(self) -> float:
        """Seconds still to wait before the next attempt: the server's delay, capped, less
        the time since its 429 (the SDK's own backoff included)."""
        if self.asked <= 0:
            return 0.0
        left = self.asked - (time.monotonic() - self.at)
        self.asked = 0.0  # one wait per 429
        return max(0.0, left)

    def after_429(self, error: BaseException) -> bool:
        """Remember the 429's delay; True when it names a per-day quota (give up)."""
        info = parse_rate_limit(getattr(error, "details", None))
        if info is None:
            return False
        if any(v.window == "day" for v in info.violations):
            return True
        if info.retry_delay is not None and info.retry_delay > 0:
            self.asked = min(info.retry_delay, self.max_wait)
            self.at = time.monotonic()
        return False


def _record(call: Any, loop: _Loop, action: str) -> None:
    """What the policy did, on the call's span (no call of ours: nothing to record on)."""
    if call is None:
        return
    try:
        span = call.span
        span.set_attribute(A.GEMINI_RETRY_POLICY, POLICY)
        span.set_attribute(A.GEMINI_RETRY_POLICY_ACTION, action)
        span.set_attribute(A.GEMINI_RETRY_POLICY_WAITED, round(loop.waited, 3))
        span.set_attribute(A.GEMINI_RETRY_POLICY_WAITS, loop.waits)
    except Exception:
        pass  # never let recording break the user's request


def _is_429(error: BaseException) -> bool:
    return getattr(error, "code", None) == 429


# --- sync ---------------------------------------------------------------------------------
class _Local(threading.local):
    loop: _Loop | None = None


_LOCAL = _Local()


def _sync_loop(patches: Patches, original: Method) -> Method:
    max_wait = patches.recorder.settings.retry_max_wait

    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return original(self, *args, **kwargs)
        outer, _LOCAL.loop = _LOCAL.loop, _Loop(max_wait)
        try:
            return original(self, *args, **kwargs)
        except _GiveUp as stop:
            error = stop.error
        finally:
            _LOCAL.loop = outer
        # Raised outside the handler: the 429 keeps its own context, as the SDK raises it.
        raise error

    return hook


def _sync_attempt(patches: Patches, original: Method) -> Method:
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        loop = _LOCAL.loop
        if loop is None or patches.closed:
            return original(self, *args, **kwargs)
        delay = loop.pending()
        if delay > 0:
            time.sleep(delay)
            loop.waited += delay
            loop.waits += 1
            _record(SYNC_CALL.in_flight.call, loop, "waited")
        try:
            return original(self, *args, **kwargs)
        except Exception as error:
            if _is_429(error) and loop.after_429(error):
                _record(SYNC_CALL.in_flight.call, loop, "gave_up")
                raise _GiveUp(error) from None
            raise

    return hook


# --- async --------------------------------------------------------------------------------
_ASYNC_LOOP: ContextVar[_Loop | None] = ContextVar("gemini_retry_loop", default=None)


def _async_loop(patches: Patches, original: Method) -> Method:
    max_wait = patches.recorder.settings.retry_max_wait

    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        if patches.closed:
            return await original(self, *args, **kwargs)
        token = _ASYNC_LOOP.set(_Loop(max_wait))
        try:
            return await original(self, *args, **kwargs)
        except _GiveUp as stop:
            error = stop.error
        finally:
            with contextlib.suppress(ValueError):  # closed from another context (the GC's)
                _ASYNC_LOOP.reset(token)
        raise error

    return hook


def _async_attempt(patches: Patches, original: Method) -> Method:
    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        loop = _ASYNC_LOOP.get()
        if loop is None or patches.closed:
            return await original(self, *args, **kwargs)
        delay = loop.pending()
        if delay > 0:
            await asyncio.sleep(delay)
            loop.waited += delay
            loop.waits += 1
            _record(ASYNC_CALL.get(), loop, "waited")
        try:
            return await original(self, *args, **kwargs)
        except Exception as error:
            if _is_429(error) and loop.after_429(error):
                _record(ASYNC_CALL.get(), loop, "gave_up")
                raise _GiveUp(error) from None
            raise

    return hook


RETRY_POLICY_TARGETS: Targets = (
    ("google.genai._api_client", "BaseApiClient._request", _sync_loop),
    ("google.genai._api_client", "BaseApiClient._async_request", _async_loop),
    # Wrapped after attempts.py's hooks: these run outside them, so every attempt is counted
    # (the 429 that makes the policy give up included) before the policy acts on it.
    ("google.genai._api_client", "BaseApiClient._request_once", _sync_attempt),
    ("google.genai._api_client", "BaseApiClient._async_request_once", _async_attempt),
)
