"""Whether this thread is inside a garbage collection, for the public reads (``quota_status``)
an app may call from a ``__del__`` or a weakref callback.

Such a callback runs wherever the collector happens to start: perhaps on a thread that holds
one of our locks (a collection triggered by an allocation inside the metrics callbacks), where
taking that lock again never returns. A ``gc.callbacks`` hook, watched while instrumented,
marks the collecting thread; the reads answer without locks there. Cost: one small call at the
start and the end of each collection, none per Gemini call.
"""

from __future__ import annotations

import gc
import threading
from typing import Any


class _Collecting(threading.local):
    now = False


_STATE = _Collecting()


def _note(phase: str, _info: dict[str, Any]) -> None:
    # Runs on the collecting thread, before ("start") and after ("stop") the finalizers.
    _STATE.now = phase == "start"


def watch() -> None:
    if _note not in gc.callbacks:
        gc.callbacks.append(_note)


def unwatch() -> None:
    if _note in gc.callbacks:
        gc.callbacks.remove(_note)
    _STATE.now = False


def in_collection() -> bool:
    """True inside a garbage collection on this thread (watched only while instrumented)."""
    return _STATE.now
