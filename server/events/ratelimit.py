"""Fixed-window rate limits for `collect`, per site and per client.

The client is a salted hash of its address, kept only in memory (or in Redis for one
window): the address itself is never stored. With Redis the windows are shared by every
process and host; without it each process counts on its own."""
import hashlib
import time

from flask import current_app

from server.errors import APIError
from server.store import UNAVAILABLE, get_store


def _client_tag(address):
    salt = current_app.config["VITRINA_SECRET_KEYS"][0]
    return hashlib.sha256(f"{salt}|{address}".encode()).hexdigest()[:20]


def check_collect(site, address, cors_headers):
    """Count one hit of `site` and of the client at `address` (after the trusted proxy hops);
    raise 429 with Retry-After when either is over its limit."""
    config = current_app.config
    window_s = config["VITRINA_RATE_WINDOW"]
    now = time.time()
    window = int(now // window_s)
    store = get_store()
    retry = str(max(1, int(window_s - now % window_s + 0.999)))
    for key, limit, who in ((f"vitrina:{{{site}}}:rate:site", config["VITRINA_RATE_SITE"], "this site"),
                            (f"vitrina:{{{site}}}:rate:c:{_client_tag(address)}", config["VITRINA_RATE_CLIENT"], "this client")):
        try:
            hits = store.outage.call(store.hit_window, key, window, 2 * window_s, probe=False) if limit else 0
        except UNAVAILABLE:
            return  # fail open: an unreachable Redis must not drop traffic (the spool takes it)
        if hits > limit:
            raise APIError(429, "rate_limited", f"Too many batches from {who}; retry after {retry} s.",
                           headers={**cors_headers, "Retry-After": retry})
