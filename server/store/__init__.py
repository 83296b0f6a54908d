"""The store: SQLite by default, Redis when VITRINA_REDIS_URL is set. One instance per app."""
import sqlite3

import redis.exceptions
from flask import current_app

from .base import SiteExists, Store  # noqa: F401


# Errors that mean "the store cannot be reached right now", as opposed to a bug.
UNAVAILABLE = (OSError, sqlite3.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
               redis.exceptions.ClusterError, redis.exceptions.TryAgainError, redis.exceptions.ReadOnlyError,
               redis.exceptions.RedisClusterException)


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
