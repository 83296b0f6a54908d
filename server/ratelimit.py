"""Fixed-window rate limits for `collect`, per site and per client.

The client is a salted hash of its address, kept only in memory (or in Redis for one
window): the address itself is never stored. With Redis the windows are shared by every
process and host; without it each process counts on its own."""
import hashlib
import threading
import time

from flask import current_app, request

from .errors import APIError
from .store import UNAVAILABLE


class MemoryWindows:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {}
        self._window = None

    def hit(self, key, window):
        with self._lock:
            if window != self._window:  # a new window: forget the last one wholesale
                self._counts, self._window = {}, window
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class RedisWindows:
    def __init__(self, client):
        self.client = client

    def hit(self, key, window):
        redis_key = f"{key}:{window}"
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(redis_key)
        pipe.expire(redis_key, 2 * current_app.config["VITRINA_RATE_WINDOW"])
        return pipe.execute()[0]


def init_app(app):
    from .store import get_store  # noqa: F401 (the store is made first)
    client = getattr(app.extensions["vitrina_store"], "r", None)  # RedisStore's client
    app.extensions["vitrina_rate"] = RedisWindows(client) if client is not None else MemoryWindows()


def _client_tag(site):
    salt = current_app.config["VITRINA_SECRET_KEYS"][0]
    return hashlib.sha256(f"{salt}|{request.remote_addr}".encode()).hexdigest()[:20]


def check_collect(site, cors_headers):
    """Raise 429 with Retry-After when the site or this client is over its limit."""
    config = current_app.config
    window_s = config["VITRINA_RATE_WINDOW"]
    now = time.time()
    window = int(now // window_s)
    windows = current_app.extensions["vitrina_rate"]
    retry = str(max(1, int(window_s - now % window_s + 0.999)))
    for key, limit, who in ((f"vitrina:{{{site}}}:rate:site", config["VITRINA_RATE_SITE"], "this site"),
                            (f"vitrina:{{{site}}}:rate:c:{_client_tag(site)}", config["VITRINA_RATE_CLIENT"], "this client")):
        try:
            hits = windows.hit(key, window) if limit else 0
        except UNAVAILABLE:
            return  # fail open: an unreachable Redis must not drop traffic (the spool takes it)
        if hits > limit:
            raise APIError(429, "rate_limited", f"Too many batches from {who}; retry after {retry} s.",
                           headers={**cors_headers, "Retry-After": retry})
