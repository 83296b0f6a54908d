"""Which version of a site is the latest, known without a store read per request.

tag.js and bundle.json are the hottest paths; each used to ask the store for the latest version.
Here a per-process memo is dropped whenever a version may have been added:
- SQLite: publishing writes a stamp file mapped into every server process (_SQLiteTokens).
- Redis: publishing sends a message on a channel every server process listens to, so a new
  version is served everywhere within milliseconds.
Either way a memo older than MAX_AGE_S is re-read, so a lost announcement (a Redis reconnect, a
process killed between its commit and its announcement) delays a new version by a second at most."""
import logging
import mmap
import os
import threading
import time

CHANNEL = "vitrina:published"
MAX_AGE_S = 1.0
_MISSING = object()
log = logging.getLogger(__name__)


class _SQLiteTokens:
    """An 8-byte stamp file beside the database, mapped into every server process: announcing
    writes fresh random bytes into it, checking reads 8 bytes of shared memory (no system call:
    a `PRAGMA data_version` per request cost 15% of serving tag.js). Random rather than a
    counter, so two processes announcing at once can never write the value a reader already has."""

    def __init__(self, db_path):
        if db_path == ":memory:":
            self._map = mmap.mmap(-1, 8)  # one process, one database: nothing to share
            return
        fd = os.open(f"{db_path}-published", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def token(self):
        return self._map[:8], int(time.monotonic() / MAX_AGE_S)

    def announce(self, site):
        self._map[:8] = os.urandom(8)

    def close(self):
        self._map.close()


class _RedisTokens:
    def __init__(self, client):
        self.client = client
        self.generation = 0
        self._listener = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._pubsub = None

    def token(self):
        if self._listener is None:
            self._start()  # lazily: gunicorn forks workers after the app may have been made
        return self.generation, int(time.monotonic() / MAX_AGE_S)

    def announce(self, site):
        try:
            self.client.publish(CHANNEL, site)
        except Exception as e:  # the memo's age bound still brings the version within a second
            log.warning("could not announce a new version of %s: %s", site, e)
        self.generation += 1  # this process at once

    def _start(self):
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="vitrina-version-watch", daemon=True)
                self._listener.start()

    def _listen(self):
        while not self._stopped.is_set():
            try:
                pubsub = self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.generation += 1  # anything published while we were not listening
                for _message in pubsub.listen():
                    self.generation += 1
            except Exception as e:  # Redis away: the age bound covers the gap; try again soon
                log.debug("version watch reconnecting: %s", e)
                self._stopped.wait(1)

    def close(self):
        self._stopped.set()
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # closing a dead connection: nothing left to do
                pass


class LatestVersions:
    """site -> latest published version (None: nothing published), memoised until a change."""

    def __init__(self, store):
        self.store = store
        client = getattr(store, "r", None)
        self._tokens = _RedisTokens(client) if client is not None else _SQLiteTokens(store.path)
        self._token = None
        self._memo = {}

    def token(self):
        """Changes whenever the store may have a new version (for memos built on top of this one)."""
        return self._tokens.token()

    def get(self, site):
        token = self._tokens.token()
        if token != self._token:
            self._memo, self._token = {}, token
        found = self._memo.get(site, _MISSING)
        if found is _MISSING:
            found = self._memo[site] = self.store.latest_version(site)
        return found

    def announce(self, site):
        """Called after this process added a version of `site`."""
        self._tokens.announce(site)
        self._memo = {}

    def close(self):
        self._tokens.close()
