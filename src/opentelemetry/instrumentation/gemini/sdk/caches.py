"""Adapters for context caches (``client.caches`` and ``client.aio.caches``): create, update,
delete, get and list (each page the pager fetches: ``_list``), control flow only.

Each method gets a span of its own operation (create_cache, update_cache, delete_cache,
get_cache, list_caches), none billed per call and none in a model's inference quota. The answers
(``CachedContent``) are read by the readers below, which also drive the storage meter
(record/storage.py): a create starts metering the cache's token-hours, an update moves its
expiry, a delete stops it, and a get or list that shows a metered cache with another expiry
(another process updated it) moves it too. The span's model is the one asked for (create), else
the one this process created the cache with, else none (list; a cache made elsewhere)."""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from ..billing.extras import tier_billed
from ..billing.storage import storage_rate
from ..bounds import MAX_NAME, count
from ..record import operations as ops
from ..record.call import Answer
from ..record.request import normalize_model
from .hooks import HookFactory, answered_once
from .models import _start

if TYPE_CHECKING:
    from ..record.call import Call
    from ..record.storage import StorageMeter
    from .seams import Patches, Targets

_logger = logging.getLogger(__name__)

_DEFAULT_TTL = 3600.0  # the API's default TTL (1 hour): used when an answer has no expiry


def cache_key(name: Any) -> str | None:
    """The cache's id, however it is spelled (``abc``, ``cachedContents/abc``, Vertex's
    ``projects/p/locations/l/cachedContents/abc``)."""
    if not isinstance(name, str) or not name:
        return None
    return name.rstrip("/").rsplit("/", 1)[-1][:MAX_NAME] or None


def _seconds_between(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        try:
            return (end - start).total_seconds()
        except (TypeError, OverflowError):  # naive against aware
            return None
    return None


def _epoch(when: Any) -> float | None:
    if isinstance(when, datetime) and when.tzinfo is not None:
        try:
            return when.timestamp()
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _cache_attributes(response: Any, ttl: float | None) -> dict[str, Any]:
    """Name, token count and expiry of a ``CachedContent``."""
    attrs: dict[str, Any] = {}
    name = getattr(response, "name", None)
    if isinstance(name, str) and name:
        attrs[A.GEMINI_CACHE_NAME] = name[: MAX_NAME * 2]
    tokens = count(getattr(getattr(response, "usage_metadata", None), "total_token_count", None))
    if tokens:
        attrs[A.GEMINI_CACHE_TOKENS] = tokens
    expire = getattr(response, "expire_time", None)
    if isinstance(expire, datetime):
        attrs[A.GEMINI_CACHE_EXPIRE_TIME] = expire.isoformat()
    if ttl is not None:
        attrs[A.GEMINI_CACHE_TTL] = ttl
    return attrs


def _answer(response: Any, attrs: dict[str, Any]) -> Answer:
    model = getattr(response, "model", None)
    return None, model if isinstance(model, str) and model else None, None, attrs


# --- readers: one per method, bound per call to what it needs (functools.partial) -------------
def read_created(
    storage: StorageMeter,
    model: str,
    tier: str,
    project: str | None,
    metric_model: str | None,
    response: Any,
) -> Answer:
    """A cache was created: its tokens and expiry, and its storage metered from now."""
    expire = getattr(response, "expire_time", None)
    ttl = _seconds_between(getattr(response, "create_time", None), expire)
    attrs = _cache_attributes(response, ttl)
    answered = getattr(response, "model", None)
    priced = normalize_model(answered) if isinstance(answered, str) and answered else model
    rate = storage_rate(priced)
    tokens = attrs.get(A.GEMINI_CACHE_TOKENS, 0)
    if rate is None:
        attrs[A.GEMINI_CACHE_UNPRICED_REASON] = A.UNPRICED_NO_STORAGE_PRICE
    else:
        attrs[A.GEMINI_CACHE_STORAGE_RATE] = tokens * rate  # rate: USD per token per hour
    key = cache_key(getattr(response, "name", None))
    if ttl is None:  # no create time: the expiry against this host's clock, else the default
        expire_at = _epoch(expire)
        ttl_now = expire_at - time.time() if expire_at is not None else _DEFAULT_TTL
    else:
        ttl_now = ttl
    if key is not None and metric_model is not None:
        storage.created(
            key,
            metric_model,
            tokens,
            ttl_now,
            rate,
            tier_billed(tier),
            tier,
            project,
            _epoch(getattr(response, "create_time", None)),
        )
    return _answer(response, attrs)


def read_updated(storage: StorageMeter, name: str | None, response: Any) -> Answer:
    """An update answered: the expiry it moved to (counted from the answer's update time)."""
    ttl = _seconds_between(
        getattr(response, "update_time", None), getattr(response, "expire_time", None)
    )
    attrs = _cache_attributes(response, ttl)
    key = cache_key(getattr(response, "name", None)) or name
    answered_at = _epoch(getattr(response, "update_time", None))
    if key is not None and storage.updated(key, ttl, attrs.get(A.GEMINI_CACHE_TOKENS), answered_at):
        per_hour = storage.rate_per_hour(key)
        if per_hour is not None:
            attrs[A.GEMINI_CACHE_STORAGE_RATE] = per_hour
    return _answer(response, attrs)


def read_deleted(
    storage: StorageMeter, key: str | None, name: str | None, _response: Any
) -> Answer:
    """A delete answered: the cache's storage stops; what it came to in this process."""
    attrs: dict[str, Any] = {}
    if name:
        attrs[A.GEMINI_CACHE_NAME] = name[: MAX_NAME * 2]
    if key is not None:
        spent = storage.deleted(key)
        if spent is not None:
            attrs[A.GEMINI_CACHE_STORAGE_AMOUNT] = spent
    return None, None, None, attrs


def _follow(storage: StorageMeter, cache: Any) -> None:
    """A cache as a get or list shows it: its expiry, should another process have moved it."""
    key = cache_key(getattr(cache, "name", None))
    expire = _epoch(getattr(cache, "expire_time", None))
    if key is not None and expire is not None:
        storage.seen(key, expire)


def read_got(storage: StorageMeter, response: Any) -> Answer:
    _follow(storage, response)
    return _answer(response, _cache_attributes(response, None))


def read_listed(storage: StorageMeter, response: Any) -> Answer:
    listed = getattr(response, "cached_contents", None) or ()
    for cache in listed:
        _follow(storage, cache)
    return None, None, None, {A.GEMINI_CACHE_LISTED: len(listed)}


# --- control flow ------------------------------------------------------------------------------
def _open(
    patches: Patches, instance: Any, operation: str, kwargs: dict[str, Any], is_async: bool
) -> Call | None:
    """The call for one cache method, its reader bound to what the answer needs; None lets
    the SDK run untouched."""
    if patches.closed:
        return None
    try:
        recorder = patches.recorder
        storage = recorder.instruments.storage
        model = kwargs.get("model") if operation is ops.CREATE_CACHE else None
        key = cache_key(kwargs.get("name"))
        if model is None and key is not None:
            model = storage.model_of(key)  # a cache this process created names its model
        call: Call | None = _start(
            patches,
            instance,
            {"model": model},
            stream=False,
            is_async=is_async,
            operation=operation,
            reader=functools.partial(read_got, storage),
        )
        if call is None:
            return None
        if operation is ops.CREATE_CACHE:
            call.reader = functools.partial(
                read_created,
                storage,
                normalize_model(model),
                recorder.tier,
                call.project or recorder.project,
                call.model,
            )
        elif operation is ops.UPDATE_CACHE:
            call.reader = functools.partial(read_updated, storage, key)
        elif operation is ops.DELETE_CACHE:
            name = kwargs.get("name")
            call.reader = functools.partial(
                read_deleted, storage, key, name if isinstance(name, str) else None
            )
        elif operation is ops.LIST_CACHES:
            call.reader = functools.partial(read_listed, storage)
        return call
    except Exception:
        _logger.debug("gemini instrumentation: could not open a cache call", exc_info=True)
        return None


def _factories(operation: str) -> tuple[HookFactory, HookFactory]:
    """Hook factories (sync, async) for one cache method."""

    def open_call(
        patches: Patches, instance: Any, _args: Any, kwargs: dict[str, Any], is_async: bool
    ) -> tuple[Call, None] | None:
        call = _open(patches, instance, operation, kwargs, is_async)
        return None if call is None else (call, None)

    return answered_once(open_call)


def _targets() -> Targets:
    out = []
    for operation, method in (
        (ops.CREATE_CACHE, "create"),
        (ops.UPDATE_CACHE, "update"),
        (ops.DELETE_CACHE, "delete"),
        (ops.GET_CACHE, "get"),
        (ops.LIST_CACHES, "_list"),  # each page: list() fetches the first, the pager the rest
    ):
        sync_factory, async_factory = _factories(operation)
        out.append(("google.genai.caches", f"Caches.{method}", sync_factory))
        out.append(("google.genai.caches", f"AsyncCaches.{method}", async_factory))
    return tuple(out)


CACHE_TARGETS: Targets = _targets()
