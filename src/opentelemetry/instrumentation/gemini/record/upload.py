"""Content uploads: each call's messages go to a user-supplied uploader (object storage, a
file system...), and telemetry carries only where they went.

An uploader has two methods (``ContentUploader``):

- ``reference() -> str`` names where one call's content will be. It runs on the caller's
  thread when the call ends, so it must be quick and do no I/O (a fresh name under a prefix);
- ``upload(reference, content)`` stores it. It runs on one background thread of ours, never on
  the caller's: ``content`` is a dict with ``input_messages``, ``output_messages`` and
  ``system_instructions`` (those the call had) in the semconv message schema, whole (no caps:
  the point is to keep large content out of the telemetry pipeline).

Bounds, so an uploader can never block or break the app: at most ``MAX_PENDING`` calls wait for
the thread; a call beyond that is not uploaded (its span says ``gcp.gemini.content.upload =
dropped`` and carries no reference); an uploader that raises is logged (once at warning, then
at debug), the reference it was given then points at nothing. ``flush`` waits, for a bounded
time, for what is queued (uninstrument and interpreter exit call it).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..bounds import encodable, warn_once
from . import content

_logger = logging.getLogger(__name__)

MAX_PENDING = 64  # calls waiting for the upload thread; the user's objects live until then
# A reference goes on spans as it is (cut, it would point nowhere): a longer one is refused.
MAX_REFERENCE = 2048
FLUSH_TIMEOUT = 5.0  # seconds uninstrument() and exit wait for queued uploads


@runtime_checkable
class ContentUploader(Protocol):
    def reference(self) -> str:
        """Where the next call's content will be: quick, no I/O (it runs on the call's path)."""
        ...

    def upload(self, reference: str, content: dict[str, Any]) -> None:
        """Store ``content`` at ``reference`` (runs on the instrumentation's upload thread)."""
        ...


class FileSystemUploader:
    """Writes each call's content as one JSON file in ``directory``; references are
    ``file://`` URIs. Also a model for an object-storage uploader."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()

    def reference(self) -> str:
        return (self.directory / f"{uuid.uuid4().hex}.json").as_uri()

    def upload(self, reference: str, content: dict[str, Any]) -> None:
        path = Path(url2pathname(urlparse(reference).path))  # as_uri() quoted it
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        # As UTF-8 can hold it: a lone surrogate in an answer would fail the write.
        partial.write_text(encodable(json.dumps(content, ensure_ascii=False, default=str)), "utf-8")
        partial.replace(path)  # readers never see half a file


class Pending:
    """What one call's upload needs, held by reference until the thread builds the document
    (building it off the caller's path is the point)."""

    __slots__ = ("config", "contents", "output", "reasons", "reference")

    def __init__(
        self,
        reference: str,
        contents: Any,
        config: Any,
        output: list[Any] | None,
        reasons: list[str],
    ) -> None:
        self.reference = reference
        self.contents = contents
        self.config = config
        self.output = output
        self.reasons = reasons

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"input_messages": content.input_message_list(self.contents, None)}
        if self.output is not None:
            doc["output_messages"] = content.output_message_list(self.output, self.reasons, None)
        system = content.system_instruction_parts(self.config, None)
        if system is not None:
            doc["system_instructions"] = system
        return doc


class Uploads:
    """The queue and the one thread that drains it (started on first use, and again in a
    forked child, where threads do not survive)."""

    def __init__(self, uploader: ContentUploader) -> None:
        self.uploader = uploader
        self._queue: queue.Queue[Pending] = queue.Queue(MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def reference(self) -> str | None:
        """A reference for one call's content, from the uploader; None if it failed."""
        try:
            ref = self.uploader.reference()
            if isinstance(ref, str) and len(ref) > MAX_REFERENCE:
                warn_once(
                    "upload-reference-long",
                    "a content uploader's reference() is longer than %d characters: not used",
                    MAX_REFERENCE,
                )
                return None
            return ref if isinstance(ref, str) and ref else None
        except Exception:
            warn_once("upload-reference", "a content uploader's reference() raised")
            _logger.debug("gemini instrumentation: reference() raised", exc_info=True)
            return None

    def submit(self, pending: Pending) -> bool:
        """Queue an upload; False (dropped) when MAX_PENDING wait already, or when no thread
        can start (Python 3.12 refuses new threads at exit, where a dropped stream may be
        recorded). Never blocks."""
        try:
            self._ensure_thread()
        except RuntimeError:
            warn_once("upload-no-thread", "a call's content could not be uploaded at exit")
            return False
        try:
            self._queue.put_nowait(pending)
            return True
        except queue.Full:
            warn_once(
                "upload-dropped",
                "content uploads are not keeping up (%d waiting): further calls' content is "
                "not uploaded until they do",
                MAX_PENDING,
            )
            return False

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait up to ``timeout`` seconds for the queued uploads; whether all are done."""
        deadline = time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                done.wait(left)
        return True

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's queue (its locks perhaps held by the parent's
        thread) and uploads are the parent's."""
        self._queue = queue.Queue(MAX_PENDING)
        self._thread = None
        self._lock = threading.Lock()

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="gemini-content-upload", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            pending = self._queue.get()
            try:
                self.uploader.upload(pending.reference, pending.document())
            except Exception:
                warn_once("upload-error", "a content uploader's upload() raised")
                _logger.debug("gemini instrumentation: upload() raised", exc_info=True)
            finally:
                self._queue.task_done()
