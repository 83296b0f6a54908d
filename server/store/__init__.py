"""The store: SQLite by default, Redis when VITRINA_REDIS_URL is set. One instance per app."""
import time
from urllib.parse import urlsplit

from flask import current_app

from server.cache import app_cache
from server.errors import error_response

from .base import (  # noqa: F401
    DEFAULT_KEY_NAME,
    ApiKey,
    KeyExists,
    SiteExists,
    Store,
    User,
    UserExists,
    draft_etag,
)
from .outage import StoreAway
from .redis_store import RedisStore
from .sqlite import SQLiteStore

# Errors that mean "the store cannot be reached right now", as opposed to a bug (every backend's,
# and StoreAway: not asked, as it did not answer lately or this thread must not wait on it).
UNAVAILABLE = tuple(dict.fromkeys(SQLiteStore.UNAVAILABLE + RedisStore.UNAVAILABLE + (StoreAway,)))


def make_store(config):
    timeout_s = config["VITRINA_STORE_TIMEOUT_MS"] / 1000
    if config.get("VITRINA_REDIS_URL"):
        return RedisStore(config["VITRINA_REDIS_URL"], timeout_s=timeout_s,
                          dedupe_window_s=config["VITRINA_DEDUPE_DAYS"] * 86_400,
                          visitor_ttl_s=config["VITRINA_VISITOR_DAYS"] * 86_400)
    return SQLiteStore(config["VITRINA_DATABASE"], timeout_s=timeout_s)


def describe(config):
    """Which store this config uses, for a person: the kind and where (a Redis password hidden)."""
    url = config.get("VITRINA_REDIS_URL")
    if not url:
        return f"SQLite {config['VITRINA_DATABASE']}"
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        url = parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
    return f"Redis {url}"


def init_app(app):
    app.extensions["vitrina_store"] = make_store(app.config)
    # A request that needs the store while it is unreachable gets the API's error shape and a
    # hint to retry, not a 500 (plain OSError aside: it means more than the store).
    for kind in UNAVAILABLE:
        if kind is not OSError:
            app.register_error_handler(kind, _store_unavailable)


def _store_unavailable(e):
    current_app.logger.warning("store unavailable: %s", e)
    return error_response(503, "store_unavailable", "The store cannot be reached right now; try again shortly.",
                          headers={"Retry-After": "1"})


def get_store():
    return current_app.extensions["vitrina_store"]


def site_exists(site):
    """Whether the site exists. A site seen once is known for a minute without asking the store,
    and for as long as the store cannot be asked (sites are never deleted while a server runs),
    so neither a store outage nor the event loop (which never waits on the store) turns a known
    site into a 404."""
    known = app_cache("known sites", 4096, "nothing: sites are never deleted; entries are asked again after a minute")
    seen_until = known.get(site)
    if seen_until is not None and seen_until > time.monotonic():
        return True
    store = get_store()
    try:
        exists = store.outage.call(store.site_exists, site)
    except UNAVAILABLE:
        if seen_until is not None:
            return True
        raise
    if exists:
        known.put(site, time.monotonic() + 60)
    return exists
