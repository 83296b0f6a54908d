"""The store: SQLite by default, Redis when VITRINA_REDIS_URL is set. One instance per app."""
import time
from urllib.parse import urlsplit

from flask import current_app

from server.cache import app_cache

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
from .redis_store import RedisStore
from .sqlite import SQLiteStore

# Errors that mean "the store cannot be reached right now", as opposed to a bug (every backend's).
UNAVAILABLE = tuple(dict.fromkeys(SQLiteStore.UNAVAILABLE + RedisStore.UNAVAILABLE))


def make_store(config):
    if config.get("VITRINA_REDIS_URL"):
        return RedisStore(config["VITRINA_REDIS_URL"])
    return SQLiteStore(config["VITRINA_DATABASE"])


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


def get_store():
    return current_app.extensions["vitrina_store"]


def site_exists(site):
    """Whether the site exists; a site seen once is known for a minute (sites are never deleted
    while a server runs), so a store outage does not turn known sites into 404s."""
    known = app_cache("known sites", 4096, "nothing: sites are never deleted; entries expire after a minute")
    if known.get(site, 0) > time.monotonic():
        return True
    exists = get_store().site_exists(site)
    if exists:
        known.put(site, time.monotonic() + 60)
    return exists
