"""Which version of a site is the latest, known without a store read per request.

tag.js and bundle.json are the hottest paths. A per-process memo of each site's latest version is
dropped whenever the store's version token moves (`Store.version_token()`): publishing announces
the new version to every server process (SQLite: a shared stamp file; Redis: pub/sub), and the
token also moves every VERSION_TOKEN_MAX_AGE_S, so a lost announcement (a Redis reconnect, a process killed
between its commit and its announcement) delays a new version by a second at most."""
from server.store.base import VERSION_TOKEN_MAX_AGE_S as MAX_AGE_S  # noqa: F401 (the bound tests rely on)

_MISSING = object()


class LatestVersions:
    """site -> latest published version (None: nothing published), memoised until a change."""

    def __init__(self, store):
        self.store = store
        self._token = None
        self._memo = {}

    def token(self):
        """Changes whenever the store may have a new version (for memos built on top of this one)."""
        return self.store.version_token()

    def get(self, site):
        token = self.store.version_token()
        if token != self._token:
            self._memo, self._token = {}, token
        found = self._memo.get(site, _MISSING)
        if found is _MISSING:
            found = self._memo[site] = self.store.latest_version(site)
        return found

    def announce(self, site):
        """Called after this process added a version of `site`."""
        self.store.announce_version(site)
        self._memo = {}
