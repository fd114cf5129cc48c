"""A Redis cache that degrades instead of failing.

Redis is the cache and the task broker. When it is unavailable, a page must still render
from Postgres and a form must still save: the cache is an optimisation and the queued work
(incremental KPI updates) is settled by the nightly rebuild anyway. So every cache call
that cannot reach Redis logs a warning and answers like an empty cache (``get`` → default,
``add`` → True so the caller goes on, writes are dropped), and the outage is remembered
for :func:`redis_unavailable`, which the layout uses to show a "data may be stale" notice.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
#: How long an outage is remembered after the last failed call, in seconds.
OUTAGE_MEMORY_SECONDS = 30.0
_state = {"failed_at": 0.0, "logged_at": 0.0}
_lock = threading.Lock()


def _note_failure(exc: BaseException, op: str) -> None:
    now = time.monotonic()
    with _lock:
        _state["failed_at"] = now
        quiet = now - _state["logged_at"] < OUTAGE_MEMORY_SECONDS
        if not quiet:
            _state["logged_at"] = now
    if not quiet:  # one warning per outage window, not one per call
        logger.warning("Redis cache unavailable (%s): %s: %s", op, exc.__class__.__name__, exc)


def redis_unavailable() -> bool:
    """True when a cache call failed in the last ``OUTAGE_MEMORY_SECONDS`` in this process."""
    failed_at = _state["failed_at"]
    return bool(failed_at) and time.monotonic() - failed_at < OUTAGE_MEMORY_SECONDS


def _forget_outage() -> None:
    with _lock:
        _state["failed_at"] = 0.0
        _state["logged_at"] = 0.0


def _tolerant(fallback: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: ResilientRedisCache, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except _UNREACHABLE as exc:
                _note_failure(exc, method.__name__)
                return fallback(*args, **kwargs)

        return wrapper

    return decorate


def _default(key: Any, default: Any = None, *args: Any, **kwargs: Any) -> Any:
    return default


class ResilientRedisCache(RedisCache):
    """Django's RedisCache, answering like an empty cache while Redis is unreachable."""

    get = _tolerant(_default)(RedisCache.get)
    get_many = _tolerant(lambda *a, **k: {})(RedisCache.get_many)
    has_key = _tolerant(lambda *a, **k: False)(RedisCache.has_key)
    add = _tolerant(lambda *a, **k: True)(RedisCache.add)
    set = _tolerant(lambda *a, **k: None)(RedisCache.set)
    set_many = _tolerant(lambda *a, **k: [])(RedisCache.set_many)
    touch = _tolerant(lambda *a, **k: False)(RedisCache.touch)
    delete = _tolerant(lambda *a, **k: False)(RedisCache.delete)
    delete_many = _tolerant(lambda *a, **k: None)(RedisCache.delete_many)
    incr = _tolerant(lambda key, delta=1, *a, **k: delta)(RedisCache.incr)

    def probe(self) -> None:
        """Round-trip to Redis, raising when it is unreachable (for /healthz)."""
        client = self._cache.get_client(write=True)
        client.ping()
        _forget_outage()
