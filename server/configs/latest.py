"""Which version of a site is the latest, known without a store read per request.

tag.js and bundle.json are the hottest paths. A per-process memo of each site's latest version is
dropped whenever the store's version token moves (`Store.version_token()`): publishing announces
the new version to every server process (SQLite: a shared stamp file; Redis: pub/sub), and the
token also moves every VERSION_TOKEN_MAX_AGE_S, so a lost announcement (a Redis reconnect, a process killed
between its commit and its announcement) delays a new version by a second at most.

The store is asked through its outage guard (server/store/outage.py): on the event loop, or
while the store is away, a site missing from the memo raises StoreAway at once, and the caller
(server/configs/publishing.py) serves the version it last served."""
from server.cache import Cache, app_cache
from server.store.base import VERSION_TOKEN_MAX_AGE_S as MAX_AGE_S  # noqa: F401 (the bound tests rely on)

NAME, SIZE = "latest versions", 4096
INVALIDATED_BY = "a publish or a revision in any process (the store's version token, which also moves every second)"
_MISSING = object()


class LatestVersions:
    """site -> latest published version (None: nothing published) and the site's latest revision
    (None: none yet), memoised in a cache that the store's version token empties (by default a
    cache of its own; publishing passes the app's). Adding a revision announces like a publish."""

    def __init__(self, store, cache=None):
        self.store = store
        self.cache = cache if cache is not None else Cache(NAME, SIZE, INVALIDATED_BY, token=store.version_token)

    @classmethod
    def of_app(cls, store):
        """Over the current app's cache (listed with the app's other caches)."""
        return cls(store, app_cache(NAME, SIZE, INVALIDATED_BY, token=store.version_token))

    def get(self, site):
        """The latest version number."""
        return self.served(site)[0]

    def served(self, site):
        """(latest version, latest revision) of the site."""
        found = self.cache.get(site, _MISSING)
        return self.read_served(site) if found is _MISSING else found

    def read(self, site):
        return self.read_served(site)[0]

    def read_served(self, site):
        """Ask the store (through its outage guard), whatever the memo holds; memoise the answer
        unless the token moved meanwhile (then it may predate a publish)."""
        token_before = self.cache.current_token()
        pair = self.store.outage.call(self._latest_pair, site)
        return self.cache.put_unless_moved(site, pair, token_before)

    def _latest_pair(self, site):
        return self.store.latest_version(site), self.store.latest_revision(site)

    def known(self, site):
        """Whether the memo holds the site now: a read that needs no store."""
        return self.cache.get(site, _MISSING) is not _MISSING

    def remember(self, site, version, revision=None):
        """Hold `version` (and `revision`) as the site's latest until the token moves (what is
        served while the store cannot be asked), so that memory answers meanwhile instead of asking again."""
        self.cache.put(site, (version, revision))

    def announce(self, site):
        """Called after this process added a version or a revision of `site`."""
        self.store.announce_version(site)
        self.cache.clear()
