"""The fake server's context caches: ``cachedContents`` create (POST), get (GET .../{id}),
list (GET, ``pageSize``/``pageToken``), update (PATCH, ``ttl`` or ``expireTime``) and delete,
answered as the real API answers them (bodies shaped on google-genai's ``CachedContent`` and
``ListCachedContentsResponse``), on the Developer API's paths (``/v1beta/cachedContents``) and
Vertex's (``/v1beta1/projects/{p}/locations/{l}/cachedContents``). A cache expires on the
server's clock; a missing one answers 404 NOT_FOUND. Scripted errors (429...) are sent by
fake_gemini before these run, for every method alike.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

COLLECTION = "cachedContents"
DEFAULT_TTL = 3600.0  # the real API's default


def rfc3339(epoch: float) -> str:
    """A timestamp as Google's JSON spells it (UTC, ``Z``)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _parse_ttl(text: Any) -> float | None:
    if isinstance(text, str) and text.endswith("s"):
        try:
            return float(text[:-1])
        except ValueError:
            return None
    return None


def _not_found(name: str) -> tuple[int, dict[str, Any]]:
    return 404, {
        "error": {
            "code": 404,
            "message": f"CachedContent not found (or permission denied): {name}",
            "status": "NOT_FOUND",
        }
    }


def _tokens(payload: dict[str, Any]) -> int:
    """What the fake charges a cache: about one token per four characters of its text."""
    chars = 0
    for content in payload.get("contents") or ():
        for part in content.get("parts") or ():
            chars += len(part.get("text") or "")
    for part in (payload.get("systemInstruction") or {}).get("parts") or ():
        chars += len(part.get("text") or "")
    return max(chars // 4, 1)


class FakeCaches:
    """The caches one fake server holds. ``clock``: the server's time (its expiries)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._caches: dict[str, dict[str, Any]] = {}  # name -> stored fields (epochs)
        self._ids = itertools.count(1)

    def reset(self) -> None:
        with self._lock:
            self._caches.clear()

    @staticmethod
    def owns(path: str) -> bool:
        return COLLECTION in path.split("?", 1)[0].split("/")

    def handle(
        self,
        verb: str,
        path: str,
        query: dict[str, str],
        payload: dict[str, Any],
        total_tokens: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(status, body) of one request on the collection. ``total_tokens``: what a create
        reports (scripted), else counted from its text."""
        segments = path.strip("/").split("/")[1:]  # without the API version
        at = segments.index(COLLECTION)
        parent = "/".join(segments[:at])
        vertex = bool(parent)
        with self._lock:
            self._expire(self.clock())
            if len(segments) == at + 1:
                if verb == "POST":
                    return 200, self._create(parent, payload, total_tokens, vertex)
                if verb == "GET":
                    return 200, self._list(parent, query, vertex)
                return 405, {"error": {"code": 405, "message": "method not allowed"}}
            name = "/".join(segments)
            cache = self._caches.get(name)
            if cache is None:
                return _not_found(name)
            if verb == "GET":
                return 200, self._body(cache, vertex)
            if verb == "PATCH":
                return self._update(cache, payload, vertex)
            if verb == "DELETE":
                del self._caches[name]
                return 200, {}
        return 405, {"error": {"code": 405, "message": "method not allowed"}}

    def _expire(self, now: float) -> None:
        for name in [n for n, c in self._caches.items() if c["expire"] <= now]:
            del self._caches[name]

    def _expiry(self, payload: dict[str, Any], now: float, default: float | None) -> float | None:
        ttl = _parse_ttl(payload.get("ttl"))
        if ttl is not None:
            return now + ttl
        expire = _parse_time(payload.get("expireTime"))
        return expire if expire is not None else default

    def _create(
        self, parent: str, payload: dict[str, Any], total_tokens: int | None, vertex: bool
    ) -> dict[str, Any]:
        now = self.clock()
        cache_id = f"fake-cache-{next(self._ids)}"
        name = f"{parent}/{COLLECTION}/{cache_id}" if parent else f"{COLLECTION}/{cache_id}"
        cache = {
            "name": name,
            "model": payload.get("model") or "",
            "displayName": payload.get("displayName"),
            "create": now,
            "update": now,
            "expire": self._expiry(payload, now, now + DEFAULT_TTL),
            "tokens": total_tokens if total_tokens is not None else _tokens(payload),
        }
        self._caches[name] = cache
        return self._body(cache, vertex)

    def _update(
        self, cache: dict[str, Any], payload: dict[str, Any], vertex: bool
    ) -> tuple[int, dict[str, Any]]:
        now = self.clock()
        expire = self._expiry(payload, now, None)
        if expire is None:
            return 400, {
                "error": {
                    "code": 400,
                    "message": "Only ttl or expire_time may be updated.",
                    "status": "INVALID_ARGUMENT",
                }
            }
        cache["expire"] = expire
        cache["update"] = now
        return 200, self._body(cache, vertex)

    def _list(self, parent: str, query: dict[str, str], vertex: bool) -> dict[str, Any]:
        prefix = f"{parent}/{COLLECTION}/" if parent else f"{COLLECTION}/"
        names = sorted(n for n in self._caches if n.startswith(prefix))
        size = int(query.get("pageSize") or 50)
        start = int(query.get("pageToken") or 0)
        page = names[start : start + size]
        body: dict[str, Any] = {
            "cachedContents": [self._body(self._caches[n], vertex) for n in page]
        }
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        return body

    @staticmethod
    def _body(cache: dict[str, Any], vertex: bool) -> dict[str, Any]:
        """A ``CachedContent`` as the API answers it."""
        usage: dict[str, Any] = {"totalTokenCount": cache["tokens"]}
        if vertex:  # Vertex also counts what the cache holds
            usage["textCount"] = cache["tokens"] * 4
        body: dict[str, Any] = {
            "name": cache["name"],
            "model": cache["model"],
            "createTime": rfc3339(cache["create"]),
            "updateTime": rfc3339(cache["update"]),
            "expireTime": rfc3339(cache["expire"]),
            "usageMetadata": usage,
        }
        if cache.get("displayName"):
            body["displayName"] = cache["displayName"]
        return body
