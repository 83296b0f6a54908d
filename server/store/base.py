"""What every store backend provides; the shared store test suite holds them to it."""
import json
from dataclasses import dataclass

VERSION_TOKEN_MAX_AGE_S = 1.0  # a version token moves at least this often, announced or not
DEFAULT_KEY_NAME = "default"  # the owner key `sites create` makes, and what keys from before names became
# CUPED's covariates, in this order wherever a counter holds one number per covariate: what the
# visitor did before their first exposure to the campaign (docs/DESIGN.md "Results").
PRE_EXPOSURE_COVARIATES = ("visits", "pageviews")


# Live product activity (social proof): distinct visitors who viewed or bought a product, in hourly
# buckets, over the last ACTIVITY_HOURS hours (the current one included).
ACTIVITY_HOURS = 24
ACTIVITY_ACTIONS = {"view": "views", "purchase": "purchases"}


def activity_hits(rows, now):
    """(hour, action, who, product id) of each interaction row that counts for live activity: a
    view or purchase within the window. A visitor counts once per product, action and hour (the
    stores deduplicate), so one visitor's flood of events moves a count by one."""
    first_hour = int(now // 3600) - ACTIVITY_HOURS + 1
    hits = []
    for _key, ts, who, _basket, action, items in rows:
        hour = int(ts // 3600)
        if action in ACTIVITY_ACTIONS and first_hour <= hour <= now // 3600:
            hits += [(hour, action, who, item) for item in json.loads(items)]
    return hits


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
        conversions, revenue, revenue_sq}] for every counter of the site.

        Sums that later events will carry, read by results when a row has them (absent until the
        write path records them; docs/DESIGN.md "Results"):
        - order ids (goal rows): `orders` (distinct orders), `orders_sq` (sum over visitors of
          their orders squared), `revenue_orders` (sum over visitors of revenue x orders);
        - pre-exposure covariates x (PRE_EXPOSURE_COVARIATES, stored with the visitor's
          assignment at the first exposure): on the visitors row `pre_sum` [k] (sum of x) and
          `pre_products` [k][k] (sum of x x^T); on goal rows `pre_conversions` [k] (sum of x over
          the visitors who converted) and `pre_revenue` [k] (x times each conversion's value,
          added as revenue is)."""
        raise NotImplementedError

    def count_rejections(self, site, counts):
        """Add {reason: n} to the site's rejected-event counters."""
        raise NotImplementedError

    def rejections(self, site):
        """{reason: n} of every event refused for the site."""
        raise NotImplementedError

    # catalogue: products as JSON strings keyed by their id (server/catalog validates them)
    def upsert_products(self, site, products, mark=None):
        """Store [(id, json)], replacing products with the same id. With `mark` (a full import),
        the ids are also noted under it for delete_products_unmarked. Returns how many."""
        raise NotImplementedError

    def delete_products(self, site, ids):
        """Remove these products; returns how many existed."""
        raise NotImplementedError

    def delete_products_unmarked(self, site, mark):
        """End of a full import: remove every product not stored under `mark` and forget the
        mark; returns how many were removed."""
        raise NotImplementedError

    def get_products(self, site, ids):
        """{id: json} of the ids that exist."""
        raise NotImplementedError

    def list_products(self, site, after="", limit=100):
        """[(id, json)] of products whose id sorts after `after` (byte order), at most `limit`."""
        raise NotImplementedError

    def count_products(self, site):
        raise NotImplementedError

    # interactions: item views, carts and purchases (collect) and imported orders, for recommendations
    def record_interactions(self, site, rows):
        """Append [(key, ts, who, basket, action, items_json)], skipping keys already recorded
        (event ids, "o:<order_id>"); returns how many were new. Marks the site's signals as changed,
        and counts the new rows' recent views and purchases per product (activity_hits)."""
        raise NotImplementedError

    def product_activity(self, site, product_id, now):
        """{"views_24h", "purchases_24h"}: distinct visitors who viewed, bought the product in the
        last ACTIVITY_HOURS hourly buckets before `now` (epoch seconds). Kept incrementally by
        record_interactions: never a scan of the interactions."""
        raise NotImplementedError

    def interactions(self, site, since_ts):
        """Iterate (ts, who, basket, action, items_json) of every interaction with ts >= since_ts."""
        raise NotImplementedError

    # recommendation rankings, built by server/recs/build.py and read per request
    def write_rankings(self, site, rankings, built_at):
        """Replace the site's rankings with the (name, json) pairs of the iterable `rankings`
        (names not given are removed) and note that they were built from inputs as of `built_at`."""
        raise NotImplementedError

    def rankings(self, site, names):
        """{name: json} of the named rankings that exist."""
        raise NotImplementedError

    def touch_recs_inputs(self, site, kind):
        """Note that the site's recommendation inputs changed now: kind "imports" (catalogue,
        orders: rebuild soon) or "signals" (browser interactions: rebuild on schedule)."""
        raise NotImplementedError

    def recs_status(self, site):
        """{"imports_at", "signals_at", "built_at"}: epoch seconds or None."""
        raise NotImplementedError

    def save_merchandising(self, site, rules_json):
        raise NotImplementedError

    def get_merchandising(self, site):
        """The site's merchandising rules JSON, or None."""
        raise NotImplementedError

    # locks: one holder at a time across every process and node using this store
    def acquire_lock(self, name, owner, ttl_s):
        """Take the lock `name` for `owner` for ttl_s seconds (again, if `owner` holds it);
        False when someone else holds it. An expired lock is free."""
        raise NotImplementedError

    def release_lock(self, name, owner):
        """Free the lock if `owner` holds it; returns whether it did."""
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
