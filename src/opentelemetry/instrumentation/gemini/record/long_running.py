"""Long-running operations (a video generation, polled until done): what each submit asked
for, and which operations were already seen done, so that an operation polled many times is
priced once. Both memories are bounded: the names come from the server, one per submit, and a
process that submits forever must not grow without limit."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

MAX_PENDING = 1024  # submits remembered until their operation is seen done; oldest dropped
MAX_DONE = 4096  # operation names seen done; oldest forgotten (a poll after that prices again)
MAX_KEY = 1024  # characters of a name kept as it is (Vertex's are ~150)


def _key(name: str) -> str:
    """A name as remembered: a longer one by its head and hash, so that thousands of answers
    naming 1 MB operations do not keep those strings alive after the app dropped them."""
    return name if len(name) <= MAX_KEY else f"{name[:MAX_KEY]}#{hash(name):x}"


class LongRunning:
    def __init__(self, max_pending: int = MAX_PENDING, max_done: int = MAX_DONE) -> None:
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, Any] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._max_pending = max_pending
        self._max_done = max_done

    def submitted(self, name: str, request: Any) -> None:
        """A submit answered with operation ``name``: keep what it asked for (``request``)."""
        name = _key(name)
        with self._lock:
            self._pending[name] = request
            self._pending.move_to_end(name)
            while len(self._pending) > self._max_pending:
                self._pending.popitem(last=False)

    def first_done(self, name: str) -> tuple[bool, Any]:
        """Whether this is the first time ``name`` is seen done (in this process, within the
        memory bound), and what its submit asked for (None if the submit was not seen here)."""
        name = _key(name)
        with self._lock:
            if name in self._done:
                return False, None
            self._done[name] = None
            while len(self._done) > self._max_done:
                self._done.popitem(last=False)
            return True, self._pending.pop(name, None)

    def pending(self, name: str) -> Any:
        """What the submit of a not yet done operation asked for, or None."""
        name = _key(name)
        with self._lock:
            return self._pending.get(name)

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
