"""The store reads that the hot GETs need, done off the event loop, with a deadline.

The event loop of server/web/asgi.py never waits on the store: server/store/outage.py refuses
any store call on its thread. Before the front answers a hot GET of a site whose latest version
memory does not hold now (the version token moved: a publish, or its one-second tick), a thread
reads what serving the site needs (`publishing.refresh`: whether it exists, its latest version,
that version verified), and the request waits for it at most the store's timeout, then answers
from memory either way. One read per site at a time. While the store is away nobody waits: the
read (a probe of the store, or memory) runs in the background, and the reply, from memory, says
it is stale."""
import asyncio
from concurrent.futures import ThreadPoolExecutor

from server.configs import publishing
from server.configs.latest import LatestVersions
from server.store import get_store
from server.store.outage import never_block_this_loop

SITE_PREFIX = "/v1/sites/"
SITE_FILES = frozenset({"tag.js", "bundle.json", "context.js"})
READERS = 2  # threads per worker reading the store for the loop (one read per site at a time)


class OffLoopReads:
    def __init__(self, flask_app):
        self.flask_app = flask_app
        self.timeout_s = flask_app.config["VITRINA_STORE_TIMEOUT_MS"] / 1000
        self._started = False
        self._executor = self._store = self._latest = None  # made on first use, in the forked worker
        self._reading = {}  # (site, version token) -> the future of its read in flight

    def start(self):
        """On the event loop's thread, before it serves."""
        if self._started:
            return
        never_block_this_loop()
        with self.flask_app.app_context():
            self._store = get_store()
            self._latest = LatestVersions.of_app(self._store)
        self._executor = ThreadPoolExecutor(READERS, thread_name_prefix="vitrina-store-read")
        self._started = True

    def stop(self):
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def before_hot_get(self, path):
        """Bring the site of a hot GET into memory when it is not (nothing to do for other paths)."""
        if not path.startswith(SITE_PREFIX):
            return
        site, _, what = path[len(SITE_PREFIX):].partition("/")
        if what not in SITE_FILES:
            return
        self.start()
        if self._latest.known(site):
            return
        loop, token = asyncio.get_running_loop(), self._store.version_token()
        reading = self._reading.get((site, token))
        if reading is None or reading.get_loop() is not loop:  # (another loop: a test's former one)
            # A read begun under an older token may predate a publish: this one starts afresh.
            reading = self._reading[site, token] = loop.run_in_executor(self._executor, self._read, site)
            reading.add_done_callback(lambda done: self._read_done((site, token), done))
        if self._store.outage.away:
            return
        try:
            await asyncio.wait_for(asyncio.shield(reading), self.timeout_s)
        except Exception:  # noqa: BLE001 -- too slow, or the store failed: the reply comes from memory
            pass

    def _read(self, site):
        with self.flask_app.app_context():
            publishing.refresh(site)

    def _read_done(self, key, done):
        if self._reading.get(key) is done:
            del self._reading[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failed read is the store's outage, already noted
