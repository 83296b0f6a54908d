"""What every store backend provides; the shared store test suite holds them to it."""
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from .outage import Outage

VERSION_TOKEN_MAX_AGE_S = 1.0  # a version token moves at least this often, announced or not
# The longest one store call waits for an answer (Redis: the socket's connect and read timeouts;
# SQLite: its busy timeout, for a lock) unless VITRINA_STORE_TIMEOUT_MS says otherwise.
STORE_TIMEOUT_S = 0.5
# Retention (docs/DESIGN.md "Retention"). An event id is remembered at least DEDUPE_WINDOW_S
# (VITRINA_DEDUPE_DAYS), longer than collect accepts an event's `ts` to be old, so a retry is
# never counted twice; Redis forgets it at most a bucket width (window / DEDUPE_BUCKETS) and a
# minute later. A visitor's assignments and conversion state last VISITOR_TTL_S after their last
# recorded event (VITRINA_VISITOR_DAYS): the lifetime of the browser's visitor id cookie.
DEDUPE_WINDOW_S = 7 * 86_400
DEDUPE_BUCKETS = 4
VISITOR_TTL_S = 400 * 86_400
DEFAULT_KEY_NAME = "default"  # the owner key `sites create` makes, and what keys from before names became
# CUPED's covariates, in this order wherever a counter holds one number per covariate: what the
# visitor did before their first exposure to the campaign (docs/DESIGN.md "Results").
PRE_EXPOSURE_COVARIATES = ("visits", "pageviews")
_K = len(PRE_EXPOSURE_COVARIATES)
# The sums kept per counter, besides visitors, conversions, revenue and revenue_sq: how many of the
# row's visitors carried covariates, and CUPED's sums over them (x_i: covariate i; pre_xx_i_j for
# i <= j, the upper half of x x^T; pre_conv_i: x_i of the visitors who converted; pre_rev_i: x_i
# times each conversion's value). Every one is an integer but pre_rev_i.
COVARIATE_METRICS = (("pre_visitors",) + tuple(f"pre_sum_{i}" for i in range(_K))
                     + tuple(f"pre_xx_{i}_{j}" for i in range(_K) for j in range(i, _K))
                     + tuple(f"pre_conv_{i}" for i in range(_K)) + tuple(f"pre_rev_{i}" for i in range(_K)))
# Orders count distinct order ids; revenue_orders sums each visitor's revenue x orders (the
# covariance AOV's interval needs).
ORDER_METRICS = ("orders", "orders_sq", "revenue_orders")
# What a counter row holds per (campaign, variation, goal[, channel]), and per breakdown slice.
COUNTER_METRICS = ("visitors", "conversions", "revenue", "revenue_sq") + ORDER_METRICS + COVARIATE_METRICS
FLOAT_METRICS = frozenset(("revenue", "revenue_sq", "revenue_orders") + tuple(f"pre_rev_{i}" for i in range(_K)))
# The dimensions results break down by (GET .../results?breakdown=): a visitor is counted in the
# slices of their first exposure to a campaign, one value per dimension but for `segment` (every
# segment they matched). server/events/slices.py says how each value is found.
SLICE_DIMENSIONS = ("segment", "device.type", "acquisition", "visit.new", "geo.country")


def covariate_deltas(pre):
    """The counter deltas of a new assignment whose covariates are `pre` (a tuple of ints, or None)."""
    if pre is None:
        return {}
    deltas = {"pre_visitors": 1}
    for i, x in enumerate(pre):
        deltas[f"pre_sum_{i}"] = x
        for j in range(i, _K):
            deltas[f"pre_xx_{i}_{j}"] = x * pre[j]
    return deltas


def with_covariate_lists(row):
    """A counter row with its covariate sums as results read them (Store.counters): on the
    visitors row `pre_visitors`, `pre_sum` [k] and `pre_products` [k][k] once any visitor carried
    covariates; on goal rows `pre_conversions` [k] and `pre_revenue` [k] once one is not 0 (results
    read absent ones as zeros). The flat fields go, so a row without covariates has the fields it
    always had."""
    flat = {name: row.pop(name, 0) for name in COVARIATE_METRICS}
    if row["goal"] is None:
        if flat["pre_visitors"]:
            products = [[0] * _K for _ in range(_K)]
            for i in range(_K):
                for j in range(i, _K):
                    products[i][j] = products[j][i] = flat[f"pre_xx_{i}_{j}"]
            row.update(pre_visitors=flat["pre_visitors"], pre_sum=[flat[f"pre_sum_{i}"] for i in range(_K)],
                       pre_products=products)
    elif any(flat[f"pre_conv_{i}"] or flat[f"pre_rev_{i}"] for i in range(_K)):
        row.update(pre_conversions=[flat[f"pre_conv_{i}"] for i in range(_K)],
                   pre_revenue=[flat[f"pre_rev_{i}"] for i in range(_K)])
    return row


FEATURE_ROWS_KEPT = 200_000  # feature vectors kept per site for training (server/predict)
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


class UserExists(Exception):
    """A user with that email exists already."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never the secret, only what it opens and who may do what with it."""
    site: str
    name: str
    scope: str                          # owner | publish | read
    created_at: float                   # seconds since 1970
    last_used_at: float | None = None   # written at most once a minute (server/web/auth.py)


WEB = "web"  # the channel of an exposure that names none


# An assignment's label: its channel, or, for an adaptive campaign's assignment, its channel, the
# revision whose weights made it (0: none) and its slice, joined by "|" ("web|12|segment:vip").
# Counters are kept per label, so every counter of an adaptive campaign is per slice and revision.
LABEL_SEP = "|"


def assignment_label(channel, revision, slice_name):
    return LABEL_SEP.join((channel, str(revision or 0), slice_name))


def read_label(label):
    """(channel, revision or None, slice or None) of a stored label."""
    channel, _, rest = label.partition(LABEL_SEP)
    if not rest:
        return channel, None, None
    revision, _, slice_name = rest.partition(LABEL_SEP)
    return channel, int(revision) or None, slice_name


def in_channel(rows, channel):
    """The labelled counter rows of one channel (all when None)."""
    return [r for r in rows if channel is None or r["channel"].partition(LABEL_SEP)[0] == channel]


def merge_channels(rows):
    """Flat counter rows (every one of COUNTER_METRICS) carrying a `channel`, summed over
    channels in channel order (so both backends add floats in the same order), without the
    `channel` field."""
    merged = {}
    for row in sorted(rows, key=lambda r: r["channel"]):
        key = (row["campaign"], row["variation"], row["goal"])
        found = merged.get(key)
        if found is None:
            merged[key] = {k: v for k, v in row.items() if k != "channel"}
        else:
            for metric in COUNTER_METRICS:
                found[metric] += row[metric]
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class User:
    """A workspace user as stored: the email (lowercase) is the id; no password until one is set."""
    email: str
    password_hash: str | None     # argon2 (server/workspace/accounts.py)
    created_at: float
    sessions_epoch: int = 0       # sessions signed with an older epoch are void (sign out everywhere)


def draft_etag(config_json):
    """The entity tag of a stored draft (None: no draft yet), what If-Match compares: the SHA-1
    of its text, which both stores compute the same way (Redis: redis.sha1hex in Lua)."""
    return hashlib.sha1((config_json or "").encode()).hexdigest()


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

    # workspace users, their roles per site, and each site's audit log
    def create_user(self, email):
        """A user without a password yet; UserExists if the email is taken."""
        raise NotImplementedError

    def get_user(self, email):
        """The User, or None."""
        raise NotImplementedError

    def set_password(self, email, password_hash):
        """Store a new password hash and void every session of the user (a new sessions epoch)."""
        raise NotImplementedError

    def end_sessions(self, email):
        """Void every session of the user: returns the new sessions epoch."""
        raise NotImplementedError

    def set_role(self, site, email, role):
        """Give the user this role (owner, editor or viewer) on the site, replacing any other."""
        raise NotImplementedError

    def remove_role(self, site, email):
        """Take the user off the site; False if they had no role there."""
        raise NotImplementedError

    def roles_of(self, email):
        """{site: role} of the user."""
        raise NotImplementedError

    def site_users(self, site):
        """[(email, role)] of the site, by email."""
        raise NotImplementedError

    def add_audit(self, site, entry_json):
        """Append one entry (JSON text: who, when, what) to the site's audit log."""
        raise NotImplementedError

    def audit_log(self, site, limit=100):
        """The newest `limit` entries of the site's audit log (JSON texts), newest first."""
        raise NotImplementedError

    # drafts and versions
    def save_draft(self, site, config_json, if_etag=None):
        """Store the draft; with `if_etag`, only if the current draft's draft_etag() is that
        (checked and written atomically). Returns whether it was stored."""
        raise NotImplementedError

    def get_draft(self, site):
        raise NotImplementedError

    def add_version(self, site, make_payload, meta=None):
        """Allocate the next version number n, store make_payload(n) -> (payload, signature,
        published_at), with `meta` (JSON text: who published it and why, settings kept out of the
        bundle; server/configs/publishing.py) beside it. Returns n."""
        raise NotImplementedError

    def version_meta(self, site, versions):
        """{version: meta JSON text} of those of `versions` stored with one."""
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

    # revisions: signed documents the background worker adds to a published version without a
    # new version (adaptive weights, models); numbered per site from 1, immutable once stored
    def add_revision(self, site, make_payload):
        """Allocate the site's next revision number n and store make_payload(n) -> (version,
        payload, signature, made_at); make_payload may read revision n - 1 (it is the latest)."""
        raise NotImplementedError

    def get_revision(self, site, revision=None):
        """(revision, version, payload, signature, made_at), the latest when None; None if none."""
        raise NotImplementedError

    def latest_revision(self, site):
        """The newest revision number, or None: read with the latest version by serving."""
        raise NotImplementedError

    # events
    def record_events(self, site, visitor_id, events):
        """Record validated events; returns how many were new (duplicates by id are skipped: an id
        is remembered at least the store's dedupe window, SQLite keeps it for ever).
        `visitor_id` is the unit counted: a browser's visitor id, or a customer key (customer-
        bucketed campaigns, email). An exposure's `channel` ("web" when absent, "email") is kept
        with the assignment it makes, and the unit's later conversions count in that channel."""
        raise NotImplementedError

    def labelled_counters(self, site):
        """The rows of counters() before channels are summed, each with its assignment's label as
        `channel` (see assignment_label): what adaptive allocation reads per slice and revision."""
        raise NotImplementedError

    def counters(self, site, channel=None):
        """[{campaign, variation (None for holdout), goal (None for visitors), visitors,
        conversions, revenue, revenue_sq}] for every counter of the site: summed over channels
        (None), or of one channel ("web", "email") only.

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

    def slice_counters(self, site, dimension):
        """The counters of every slice of one of SLICE_DIMENSIONS: rows as `counters` gives them
        (every metric: orders and CUPED's sums too), each with the slice's `value`. An exposure's
        `_slices` ([(dimension, value)]) and `_pre` (its covariates, a tuple of ints, or None) are
        kept with the assignment it makes, and every counter delta of that visitor in that
        campaign goes to each of those slices as to the campaign's counter (every channel: only
        collect adds `_slices`, so only web exposures carry them)."""
        raise NotImplementedError

    def count_exclusions(self, site, counts):
        """Add {reason: n} to the site's counters of events not counted (bots, internal traffic...)."""
        raise NotImplementedError

    def exclusions(self, site):
        """{reason: n} of every event excluded for the site."""
        raise NotImplementedError

    def events_after(self, site, cursor, limit):
        """The raw event log in the order it was written: up to `limit` events after `cursor`
        (None: from the start) as {"cursor", "id", "visitor_id", "type", "received_at", "body"}
        (cursor: text, opaque; received_at: epoch seconds; body: the event's JSON text), and
        whether events after `cursor` are gone (trimmed or erased): (events, missed)."""
        raise NotImplementedError

    def daily_counters(self, site, campaign):
        """[{day, variation (None for holdout), goal (None for visitors), visitors, conversions}]
        of the campaign: what record_events counted on each day. An event's day is its `_day`
        (YYYY-MM-DD in the site's time zone, set by collect); events without one count in no day."""
        raise NotImplementedError

    def count_rejections(self, site, counts):
        """Add {reason: n} to the site's rejected-event counters."""
        raise NotImplementedError

    def rejections(self, site):
        """{reason: n} of every event refused for the site."""
        raise NotImplementedError

    # identity (server/identity): the site's identity record and its customers
    def get_identity(self, site):
        """The site's identity record JSON (customer-key salt, identity-secret seeds), or None."""
        raise NotImplementedError

    def put_identity(self, site, record_json, if_absent=False):
        """Store the site's identity record; with if_absent, only when it has none. Returns
        whether it was stored."""
        raise NotImplementedError

    def upsert_customers(self, site, customers, mark=None):
        """Store [(customer key, json)], replacing customers with the same key; `mark` as
        upsert_products. Returns how many."""
        raise NotImplementedError

    def get_customers(self, site, keys):
        """{key: json} of the customer keys that exist."""
        raise NotImplementedError

    def delete_customers_unmarked(self, site, mark):
        """End of a full import: remove every customer not stored under `mark`; returns how many."""
        raise NotImplementedError

    def iter_customers(self, site):
        """Iterate (key, json) over every customer of the site, in key order."""
        raise NotImplementedError

    def count_customers(self, site):
        raise NotImplementedError

    def save_crm_schema(self, site, schema_json):
        raise NotImplementedError

    def get_crm_schema(self, site):
        """The site's CRM attribute statistics JSON (server/identity/customers.py), or None."""
        raise NotImplementedError

    def link_visitor(self, site, customer_key, visitor_id):
        """Note that this browser visitor was identified as this customer (for erasure)."""
        raise NotImplementedError

    def linked_visitors(self, site, customer_key):
        """The visitor ids linked to the customer, sorted."""
        raise NotImplementedError

    def erase_units(self, site, customer_keys, units):
        """Erasure: remove the customers stored under `customer_keys` and their links, and every
        raw trace of the counted `units` (customer keys and visitor ids): their events' content
        and visitor (an event's random id stays for the dedupe window, so a retry is not counted
        again), assignments, conversion state and recommendation interactions (`who` v:<unit> or
        c:<unit>). Counters
        are aggregates and stay. Returns {"customers", "events", "interactions"} removed."""
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
    def record_features(self, site, visitor_id, rows):
        """Keep the feature vectors browsers sent with exposures and conversions (server/predict):
        rows {"id" (the event's), "kind" ("exposure"|"conversion"), "goal" (a conversion's, else
        None), "ts" (ms), "features" (JSON text)}. At most FEATURE_ROWS_KEPT per site are kept
        (the oldest go first); a row sent again may be kept twice (training does not mind)."""
        raise NotImplementedError

    def feature_rows(self, site, limit=FEATURE_ROWS_KEPT):
        """The newest `limit` feature rows, oldest first: {"id", "visitor", "ts", "kind", "goal",
        "features" (a dict)}."""
        raise NotImplementedError

    def save_model(self, site, goal, report_json):
        """Store the newest model report of a goal (server/predict/training.py), replacing the last."""
        raise NotImplementedError

    def model_reports(self, site):
        """{goal: report JSON text} of every goal trained for the site."""
        raise NotImplementedError

    def record_interactions(self, site, rows):
        """Append [(key, ts, who, basket, action, items_json)], skipping keys already recorded
        (event ids within the dedupe window, "o:<order_id>" for ever); returns how many were new.
        Marks the site's signals as changed, and counts the new rows' recent views and purchases
        per product (activity_hits)."""
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

    AWAY_ON = UNAVAILABLE  # those of them after which the store is deemed away (its outage guard skips it)

    @cached_property
    def outage(self):
        """This process's view of whether the store answers (server/store/outage.py): request
        paths that can do without the store call it through `store.outage.call(...)`."""
        return Outage(self.AWAY_ON)

    def version_token(self):
        """A value that changes whenever any site may have a new version: after announce_version
        in any process using this store, when the store answers again after an outage
        (`outage.returns`), and at least every VERSION_TOKEN_MAX_AGE_S. Cheap: called per request."""
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
