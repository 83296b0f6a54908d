"""Every per-process cache of the server: one eviction policy, and each says what invalidates it.

A `Cache` holds at most `size` entries and, when full, is emptied whole: no LRU bookkeeping and no
lock between the event loop and Flask's threads (the worst case is one entry computed twice). It
is made with `invalidated_by`, a sentence naming what would make an entry wrong, and, when that is
something that moves, a `token` function whose value changes when it does (the store's
published-version token, an SDK rebuild, the clock): a new token empties the cache. A cache whose
entries nothing can make wrong (an immutable signed version) says so and has no token.

Caches live on the Flask app (`app_cache`), so two apps in one process (tests, tools) never see
each other's entries. Pure functions of their arguments (parsing a user agent, translating a
regex) keep `functools.lru_cache`: their answers are never wrong, only evicted."""
from flask import current_app

_EXTENSION = "vitrina_caches"
_MISSING = object()


class Cache:
    __slots__ = ("name", "size", "invalidated_by", "token", "_seen", "_entries")

    def __init__(self, name, size, invalidated_by, token=None):
        self.name, self.size, self.invalidated_by, self.token = name, size, invalidated_by, token
        self._seen = None
        self._entries = {}

    def _current(self):
        if self.token is not None:
            seen = self.token()
            if seen != self._seen:
                self._entries, self._seen = {}, seen
        return self._entries

    def get(self, key, default=None):
        return self._current().get(key, default)

    def put(self, key, value):
        entries = self._current()
        if len(entries) >= self.size:
            entries = self._entries = {}
        entries[key] = value
        return value

    def current_token(self):
        return None if self.token is None else self.token()

    def put_unless_moved(self, key, value, token_before):
        """put(), unless the token moved since `token_before` (its value when making the value
        began: a value read from before a publish, finished after it, is returned but not kept)."""
        if token_before == self.current_token():
            self.put(key, value)
        return value

    def get_or_make(self, key, make):
        found = self._current().get(key, _MISSING)
        return self.put(key, make()) if found is _MISSING else found

    def clear(self):
        self._entries = {}

    def __len__(self):
        return len(self._entries)


def app_cache(name, size, invalidated_by, token=None, app=None):
    """The app's cache called `name`, made on first use with these properties."""
    caches = (app or current_app).extensions.setdefault(_EXTENSION, {})
    found = caches.get(name)
    if found is None:
        found = caches[name] = Cache(name, size, invalidated_by, token)
    return found


def app_caches(app=None):
    """{name: Cache} of every cache the app has made so far."""
    return dict((app or current_app).extensions.get(_EXTENSION, {}))
