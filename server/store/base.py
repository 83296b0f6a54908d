"""What every store backend provides; the shared store test suite holds them to it."""
from dataclasses import dataclass

VERSION_TOKEN_MAX_AGE_S = 1.0  # a version token moves at least this often, announced or not
DEFAULT_KEY_NAME = "default"  # the owner key `sites create` makes, and what keys from before names became


class SiteExists(Exception):
    pass


class KeyExists(Exception):
    """The site already has a key of that name."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never the secret, only what it opens and who may do what with it."""
    site: str
    name: str
    scope: str                          # owner | publish | read
    created_at: float                   # seconds since 1970
    last_used_at: float | None = None   # written at most once a minute (server/web/auth.py)


def legacy_key_name(n):
    """The name of a site's n-th key (from 1) made before keys had names: the first becomes
    the owner key `default` that `sites create` makes today, the next ones `default-2`..."""
    return DEFAULT_KEY_NAME if n == 1 else f"{DEFAULT_KEY_NAME}-{n}"


class Store:
    """Interface. Events are recorded idempotently and folded into counters at write time,
    so results never scan raw events."""

    # sites and keys (a key is stored as the SHA-256 of its secret; names are unique per site)
    def create_site(self, site, key_hash):
        """The site and its owner key named `default`; SiteExists if the site does."""
        raise NotImplementedError

    def add_key(self, site, name, scope, key_hash):
        """Another key of the site; KeyExists if the site has a key of that name."""
        raise NotImplementedError

    def key_for_hash(self, key_hash):
        """The ApiKey stored under this hash, or None: one cheap read per merchant request."""
        raise NotImplementedError

    def list_keys(self, site):
        """[ApiKey] of the site, oldest first."""
        raise NotImplementedError

    def revoke_key(self, site, name):
        """Delete the site's key of that name, effective for the very next lookup; False if none."""
        raise NotImplementedError

    def touch_key(self, key_hash, when):
        """Set the key's last_used_at (nothing if it was revoked meanwhile)."""
        raise NotImplementedError

    def site_exists(self, site):
        raise NotImplementedError

    def list_sites(self):
        raise NotImplementedError

    # drafts and versions
    def save_draft(self, site, config_json):
        raise NotImplementedError

    def get_draft(self, site):
        raise NotImplementedError

    def add_version(self, site, make_payload):
        """Allocate the next version number n, store make_payload(n) -> (payload, signature)."""
        raise NotImplementedError

    def get_version(self, site, version=None):
        """(version, payload, signature, published_at) of a version, the latest when None."""
        raise NotImplementedError

    def latest_version(self, site):
        """The newest version number, or None: a cheap read for every tag and bundle request."""
        raise NotImplementedError

    def list_versions(self, site):
        """[(version, published_at)], newest first."""
        raise NotImplementedError

    # events
    def record_events(self, site, visitor_id, events):
        """Record validated events; returns how many were new (duplicates by id are skipped)."""
        raise NotImplementedError

    def counters(self, site):
        """[{campaign, variation (None for holdout), goal (None for visitors), visitors,
        conversions, revenue, revenue_sq}] for every counter of the site."""
        raise NotImplementedError

    def count_rejections(self, site, counts):
        """Add {reason: n} to the site's rejected-event counters."""
        raise NotImplementedError

    def rejections(self, site):
        """{reason: n} of every event refused for the site."""
        raise NotImplementedError

    # serving: what changes when a version is published, rate-limit windows, outages
    UNAVAILABLE = (OSError,)  # exceptions meaning "cannot be reached right now", as opposed to a bug

    def version_token(self):
        """A value that changes whenever any site may have a new version: after announce_version
        in any process using this store, and at least every VERSION_TOKEN_MAX_AGE_S. Cheap: called per request."""
        raise NotImplementedError

    def announce_version(self, site):
        """Tell every process using this store that `site` has a new version."""
        raise NotImplementedError

    def hit_window(self, key, window, ttl_s):
        """Count one hit of `key` in the fixed window `window`; returns the count so far. Windows are
        forgotten after ttl_s (Redis: shared by every process; SQLite: per process, in memory)."""
        raise NotImplementedError

    def ping(self):
        raise NotImplementedError

    def close(self):
        """Release connections held by this process."""
