"""The store: SQLite by default, Redis when VITRINA_REDIS_URL is set. One instance per app."""
from flask import current_app

from .base import SiteExists, Store  # noqa: F401


def make_store(config):
    if config.get("VITRINA_REDIS_URL"):
        from .redis_store import RedisStore
        return RedisStore(config["VITRINA_REDIS_URL"])
    from .sqlite import SQLiteStore
    return SQLiteStore(config["VITRINA_DATABASE"])


def init_app(app):
    app.extensions["vitrina_store"] = make_store(app.config)


def get_store():
    return current_app.extensions["vitrina_store"]
