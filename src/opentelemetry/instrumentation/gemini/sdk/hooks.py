"""The one shape of hook for an SDK method that answers once: open a call before the SDK runs
(or step aside when that fails), run the SDK's method untouched inside it, then close the call
with the answer. Sync and async share it; the adapters (batches, caches, media, interactions)
give only how to open and how to close.

models.py keeps its own copy of this shape for generate_content: that hook runs on every call
of the hot path, where one more Python frame per call shows in the benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..record.call import Call
    from .seams import Method, Patches

# (patches, the SDK object, args, kwargs, is_async) -> (the call, what close needs) or None.
Opener = Callable[
    ["Patches", Any, tuple[Any, ...], dict[str, Any], bool], "tuple[Call, Any] | None"
]
# (the call, what open gave, the SDK's answer, is_async): records the answer; the answer itself
# goes back to the caller unchanged.
Closer = Callable[["Call", Any, Any, bool], None]
HookFactory = Callable[["Patches", "Method"], "Method"]


def complete(call: Call, _state: Any, answer: Any, _is_async: bool) -> None:
    call.complete(answer)


def answered_once(open_call: Opener, close: Closer = complete) -> tuple[HookFactory, HookFactory]:
    """Hook factories (sync, async) for a method that answers once. The SDK's exception ends
    the call (``with call``) and reaches the caller as it was."""

    def sync_factory(patches: Patches, original: Method) -> Method:
        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            opened = open_call(patches, self, args, kwargs, False)
            if opened is None:
                return original(self, *args, **kwargs)
            call, state = opened
            with call:
                answer = original(self, *args, **kwargs)
            close(call, state, answer, False)
            return answer

        return hook

    def async_factory(patches: Patches, original: Method) -> Method:
        async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            opened = open_call(patches, self, args, kwargs, True)
            if opened is None:
                return await original(self, *args, **kwargs)
            call, state = opened
            with call:
                answer = await original(self, *args, **kwargs)
            close(call, state, answer, True)
            return answer

        return hook

    return sync_factory, async_factory
