"""Bounds on what we export: text capped and stripped of API keys, integers kept in int64,
model names capped per process.

Everything here guards telemetry against what a user or a server can send: a 5 MB error page,
a key echoed in an error message, a token count of 10**30, twenty thousand model names. Pure
functions, plus two small registries (keys to redact, model names admitted) that only take a
lock when they learn something new.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Final

_logger = logging.getLogger(__name__)

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
# One call's token count above this is clamped: far beyond any real call, and a few thousand
# such calls still sum below INT64_MAX in a cumulative counter.
MAX_COUNT: Final = 2**53

MAX_TEXT: Final = 4096  # exception.message (a status description: 500)
MAX_STACKTRACE: Final = 8000  # exception.stacktrace: its tail, where the failing frame is
MAX_NAME: Final = 256  # a model name, response id, quota id: anything name-like we copy
MAX_CONTENT_PART: Final = 16_384  # one captured text part (content capture is opt-in)
# All of one captured list (input messages, system instructions, output messages), as JSON
# characters: a long chat's history or a many-part instruction must not make spans of megabytes.
MAX_CONTENT_TOTAL: Final = 131_072
MAX_USER_FILE: Final = 16 * 1024 * 1024  # a prices or limits file (ours are ~30 KB)
REDACTED: Final = "[REDACTED]"
OTHER_MODEL: Final = "other"  # what models (or other capped labels) beyond their cap count as
OTHER_ERROR_TYPE: Final = "_OTHER"  # semconv's fallback value of error.type
# Distinct values per process of a label taken from answers or from the app's clients (see
# LabelCap): far more than a real process sees (one project, a few quota ids and regions).
MAX_LABEL_VALUES: Final = 64

# Google API keys: "AIza" and 35 more characters of this alphabet.
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{35}")
_GOOGLE_KEY_LENGTH: Final = 39
# Google OAuth 2.0 access tokens (what Vertex AI clients send as "Bearer ..."): "ya29." and the
# token's own characters.
_GOOGLE_TOKEN = re.compile(r"ya29\.[0-9A-Za-z_\-.]+")
# What UTF-8 cannot encode: a lone surrogate, which a JSON "\\ud800" escape decodes to.
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_KEYS: Final = 64  # keys not shaped like Google's, redacted by name (the latest)
_MAX_HOLDERS: Final = 64  # credential holders (Vertex clients) whose tokens are redacted
_MIN_SECRET: Final = 8  # shorter "keys" would redact ordinary words
_warned: set[str] = set()


def read_user_file(path: str | os.PathLike[str], limit: int = MAX_USER_FILE) -> str:
    """A user's data file as UTF-8 text. Only a regular file of at most ``limit`` bytes: a FIFO
    would block instrument() until some writer came, /dev/zero would fill the memory. Raises
    OSError (with ``strerror``) or UnicodeDecodeError, for the caller's own file error."""
    with open(path, "rb", opener=_nonblocking) as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit // (1024 * 1024)} MiB")
    return data.decode("utf-8")


def _nonblocking(path: str, flags: int) -> int:
    # Opening a FIFO for reading waits for a writer unless O_NONBLOCK (a regular file ignores it).
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def encodable(text: str) -> str:
    """``text`` as OTLP can carry it: each lone surrogate replaced by U+FFFD. A server's JSON
    can hold one (an escape), and one in a span's name or status fails the export of the
    whole batch of spans it is in (the OTLP encoder raises), the app's other spans included."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def without_shaped_secrets(text: str) -> str:
    """``text`` with anything shaped like a Google API key or OAuth access token redacted."""
    if "AIza" in text:
        text = _GOOGLE_KEY.sub(REDACTED, text)
    if "ya29." in text:
        text = _GOOGLE_TOKEN.sub(REDACTED, text)
    return text


_SHOWN: Final = 80  # characters of a rejected setting or file name a message repeats


def shown(value: object) -> str:
    """A user's rejected value (a setting, a path) as a warning or an error repeats it: its
    repr, without API keys or access tokens (a key pasted into the wrong variable must not be
    logged, and logs may be exported), capped (an environment variable can hold megabytes)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    keys = (os.environ.get("GOOGLE_API_KEY"), os.environ.get("GEMINI_API_KEY"))
    for key in keys:
        if key and len(key) >= _MIN_SECRET:
            for form in (key, repr(key)[1:-1]):  # as given, and as repr escapes it
                if form in text:
                    text = text.replace(form, REDACTED)
    text = without_shaped_secrets(text)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}...[{len(text) - _SHOWN} more]"


MAX_MESSAGE: Final = 1024  # an error about a user's file: its path, the entry, the problem


def bounded_message(text: str) -> str:
    """An error message built from a user's file (its path, model names, unknown keys, which
    can be megabytes) as it is logged: keys redacted, the middle cut so the path at the start
    and the problem at the end stay."""
    text = without_shaped_secrets(text)
    if len(text) <= MAX_MESSAGE:
        return text
    half = MAX_MESSAGE // 2
    return f"{text[:half]}...[{len(text) - 2 * half} more]...{text[-half:]}"


def has_secret(text: str) -> bool:
    """Whether ``text`` holds something shaped like a Google API key or access token."""
    return without_shaped_secrets(text) != text


def warn_once(topic: str, message: str, *args: object) -> None:
    """Log ``message`` the first time ``topic`` comes up in this process."""
    if topic in _warned:
        return
    _warned.add(topic)
    _logger.warning("opentelemetry-instrumentation-gemini: " + message, *args)


class Secrets:
    """The API keys this process uses (environment, each client seen), and the access tokens
    of the Vertex AI clients seen, to redact from text."""

    __slots__ = ("_holders", "_keys", "_lock", "_margin", "safe_below")

    def __init__(self, keys: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._keys: tuple[str, ...] = ()
        # Weak references to SDK clients whose ``_credentials.token`` is a secret: read when
        # cleaning, since the SDK loads the credentials at the first request and refreshes the
        # token hourly. The latest _MAX_HOLDERS; a tuple swapped whole, as ``_keys``.
        self._holders: tuple[weakref.ref[Any], ...] = ()
        self._margin = 64
        # A text shorter than this can hold no key, known or Google-shaped: callers on the
        # hot path (a response id per call) skip ``clean`` for it.
        self.safe_below = _GOOGLE_KEY_LENGTH
        for key in keys:
            self.add(key)

    def add(self, key: object) -> None:
        """Redact ``key`` from now on. A Google-shaped key needs no entry (``clean`` redacts
        every one); of other keys (a proxy's, a test's) the latest _MAX_KEYS are kept: an app
        that makes a client per user's own key must not grow this, nor every ``clean``."""
        if not isinstance(key, str) or len(key) < _MIN_SECRET or key in self._keys:
            return
        if len(key) == _GOOGLE_KEY_LENGTH and _GOOGLE_KEY.fullmatch(key):
            return
        with self._lock:
            if key not in self._keys:  # a tuple swapped whole: readers never lock
                self._keys = (*self._keys[-(_MAX_KEYS - 1) :], key)
                self._margin = max(self._margin, len(key))
                self.safe_below = min(self.safe_below, len(key))

    def watch(self, holder: object) -> None:
        """Redact the access token of ``holder`` (an SDK client authenticating with
        credentials, not a key) from now on, whatever token its credentials hold then."""
        holders = self._holders
        for ref in holders:
            if ref() is holder:
                return
        try:
            new = weakref.ref(holder)
        except TypeError:
            return
        with self._lock:
            alive = tuple(ref for ref in self._holders if ref() is not None)
            self._holders = (*alive[-(_MAX_HOLDERS - 1) :], new)

    def _tokens(self) -> list[str]:
        tokens = []
        for ref in self._holders:
            try:
                token = getattr(getattr(ref(), "_credentials", None), "token", None)
            except Exception:  # a credentials class of the app's own: no token to read
                continue
            if isinstance(token, str) and len(token) >= _MIN_SECRET:
                tokens.append(token)
        return tokens

    def clean(self, text: str, limit: int | None = MAX_TEXT, *, tail: bool = False) -> str:
        """``text`` without any known or Google-shaped key or access token, at most ``limit``
        characters (its first ones, or its last with ``tail``; None: whole). Cut with a margin
        before redacting, so a secret straddling the limit is never half kept."""
        tokens = self._tokens() if self._holders else ()
        margin = max(self._margin, *map(len, tokens)) if tokens else self._margin
        if limit is None:
            limit = len(text)
        elif len(text) > limit + margin:
            text = text[-(limit + margin) :] if tail else text[: limit + margin]
        for key in (*self._keys, *tokens) if tokens else self._keys:
            if key in text:
                text = text.replace(key, REDACTED)
        text = without_shaped_secrets(text)
        if len(text) > limit:
            text = text[-limit:] if tail else text[:limit]
        return encodable(text)

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()


def name(text: str) -> str:
    """A name-like string copied from a request or an answer, capped."""
    return encodable(text if len(text) <= MAX_NAME else text[:MAX_NAME])


def count(value: object, what: str = "token count") -> int:
    """A token count (or another count: ``what``) as we record it: a positive int up to
    MAX_COUNT, else 0 (not a count) or MAX_COUNT (clamped, with one warning per ``what``)."""
    if type(value) is not int or value <= 0:
        return 0
    if value > MAX_COUNT:
        warn_once(what, "a %s of %d was clamped to %d", what, value, MAX_COUNT)
        return MAX_COUNT
    return value


def int64(value: int) -> int:
    """An integer total saturated to int64, as OTLP and Prometheus carry it."""
    return INT64_MAX if value > INT64_MAX else value


def fits_int64(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


class LabelCap:
    """The values of one metric label (``label``) this process records: the first ``limit``
    distinct ones; any later one is counted as ``other`` (with one warning). A label whose
    values come from an answer or from the app (a project a 429 names, each Vertex client's
    project, a 429's quota id or location) must not grow the series without bound: past the
    OTel SDK's 2,000 series per metric, every later point loses all its labels."""

    __slots__ = ("_lock", "_names", "label", "limit", "other")

    def __init__(self, limit: int, label: str, other: str = OTHER_MODEL) -> None:
        self.limit = limit
        self.label = label
        self.other = other  # the value beyond the cap
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, value: str) -> str:
        if value in self._names:
            return value
        if len(self._names) < self.limit:  # full: no lock for each later value
            with self._lock:
                if value in self._names or len(self._names) < self.limit:
                    self._names.add(value)
                    return value
        self._warn()
        return self.other

    def _warn(self) -> None:
        warn_once(
            f"cap-{self.label}",
            "more than %d distinct values of %s in this process: metrics of further ones are "
            "counted under %r (spans keep the value)",
            self.limit,
            self.label,
            self.other,
        )

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()


class ModelCap(LabelCap):
    """The model names this process records metrics under: the first ``limit`` distinct ones;
    any later one is counted as ``other`` (with one warning), so a stream of junk names cannot
    grow the series, the quota windows or the caches without bound."""

    __slots__ = ()

    def __init__(self, limit: int) -> None:
        super().__init__(limit, "gen_ai.request.model")

    def _warn(self) -> None:
        warn_once(
            "model-cap",
            "more than %d distinct model names in this process: metrics of further models "
            "are counted under gen_ai.request.model=%r (spans keep the name). Raise the cap "
            "with OTEL_INSTRUMENTATION_GEMINI_MAX_MODELS.",
            self.limit,
            OTHER_MODEL,
        )
