"""Embedded default store: one SQLite file in WAL mode, a connection per thread."""
import json
import mmap
import os
import sqlite3
import threading
import time
from functools import lru_cache

from .base import (
    ACTIVITY_ACTIONS,
    ACTIVITY_HOURS,
    COUNTER_METRICS,
    COVARIATE_METRICS,
    DEFAULT_KEY_NAME,
    FEATURE_ROWS_KEPT,
    FLOAT_METRICS,
    STORE_TIMEOUT_S,
    VERSION_TOKEN_MAX_AGE_S,
    WEB,
    ApiKey,
    KeyExists,
    SiteExists,
    Store,
    User,
    UserExists,
    activity_hits,
    covariate_deltas,
    draft_etag,
    in_channel,
    legacy_key_name,
    merge_channels,
    with_covariate_lists,
)

HOLDOUT = ""  # the holdout's variation in key columns, where NULL cannot be part of a key


def _metric_columns(metrics):
    return ", ".join(f"{m} {'REAL' if m in FLOAT_METRICS else 'INTEGER'} NOT NULL DEFAULT 0" for m in metrics)


# Slices (the assignment's `slices`): "<dimension>\x1f<value>" joined by "\x1e"; covariates (`pre`):
# the integers joined by ",". Neither separator can be in a dimension or a value.
SLICE, SLICES = "\x1f", "\x1e"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sites (site TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
  key_hash TEXT PRIMARY KEY, site TEXT NOT NULL, created_at REAL NOT NULL,
  name TEXT NOT NULL, scope TEXT NOT NULL, last_used_at REAL);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_by_name ON api_keys (site, name);
CREATE TABLE IF NOT EXISTS drafts (site TEXT PRIMARY KEY, config TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  site TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL,
  published_at TEXT NOT NULL, meta TEXT, PRIMARY KEY (site, version));
CREATE TABLE IF NOT EXISTS revisions (
  site TEXT NOT NULL, revision INTEGER NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL,
  signature TEXT NOT NULL, made_at TEXT NOT NULL, PRIMARY KEY (site, revision));
CREATE TABLE IF NOT EXISTS events (
  site TEXT NOT NULL, event_id TEXT NOT NULL, visitor_id TEXT NOT NULL, type TEXT NOT NULL,
  body TEXT NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (site, event_id));
CREATE TABLE IF NOT EXISTS assignments (
  site TEXT NOT NULL, visitor_id TEXT NOT NULL, campaign TEXT NOT NULL, variation TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT 'web', slices TEXT NOT NULL DEFAULT '', pre TEXT,
  PRIMARY KEY (site, visitor_id, campaign));
CREATE TABLE IF NOT EXISTS conversion_state (
  site TEXT NOT NULL, campaign TEXT NOT NULL, goal TEXT NOT NULL, visitor_id TEXT NOT NULL,
  revenue REAL NOT NULL, orders INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (site, campaign, goal, visitor_id));
CREATE TABLE IF NOT EXISTS counters (
  site TEXT NOT NULL, campaign TEXT NOT NULL, variation TEXT NOT NULL, goal TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT 'web', visitors INTEGER NOT NULL DEFAULT 0, conversions INTEGER NOT NULL DEFAULT 0,
  revenue REAL NOT NULL DEFAULT 0, revenue_sq REAL NOT NULL DEFAULT 0,
  orders INTEGER NOT NULL DEFAULT 0, orders_sq INTEGER NOT NULL DEFAULT 0, revenue_orders REAL NOT NULL DEFAULT 0,
  """ + _metric_columns(COVARIATE_METRICS) + """,
  PRIMARY KEY (site, campaign, variation, goal, channel));
CREATE TABLE IF NOT EXISTS order_ids (
  site TEXT NOT NULL, visitor_id TEXT NOT NULL, goal TEXT NOT NULL, order_id TEXT NOT NULL,
  PRIMARY KEY (site, visitor_id, goal, order_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slice_counters (
  site TEXT NOT NULL, dimension TEXT NOT NULL, campaign TEXT NOT NULL, value TEXT NOT NULL, variation TEXT NOT NULL,
  goal TEXT NOT NULL, """ + _metric_columns(COUNTER_METRICS) + """,
  PRIMARY KEY (site, dimension, campaign, value, variation, goal)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exclusions (
  site TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (site, reason));
CREATE INDEX IF NOT EXISTS events_in_order ON events (site);
CREATE TABLE IF NOT EXISTS rejections (
  site TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (site, reason));
CREATE TABLE IF NOT EXISTS products (
  site TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, mark TEXT, PRIMARY KEY (site, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS interactions (
  site TEXT NOT NULL, key TEXT NOT NULL, ts REAL NOT NULL, who TEXT NOT NULL, basket TEXT NOT NULL,
  action TEXT NOT NULL, items TEXT NOT NULL, PRIMARY KEY (site, key));
CREATE INDEX IF NOT EXISTS interactions_by_time ON interactions (site, ts);
CREATE TABLE IF NOT EXISTS product_hours (
  site TEXT NOT NULL, id TEXT NOT NULL, hour INTEGER NOT NULL, views INTEGER NOT NULL DEFAULT 0,
  purchases INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (site, id, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS product_hits (
  site TEXT NOT NULL, hour INTEGER NOT NULL, action TEXT NOT NULL, who TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (site, hour, action, who, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rankings (
  site TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (site, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recs_status (
  site TEXT PRIMARY KEY, imports_at REAL, signals_at REAL, built_at REAL);
CREATE TABLE IF NOT EXISTS merchandising (site TEXT PRIMARY KEY, rules TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS identity (site TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
  site TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, mark TEXT, PRIMARY KEY (site, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS crm_schema (site TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identity_links (
  site TEXT NOT NULL, customer_key TEXT NOT NULL, visitor_id TEXT NOT NULL,
  PRIMARY KEY (site, customer_key, visitor_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
  site TEXT NOT NULL, campaign TEXT NOT NULL, day TEXT NOT NULL, variation TEXT NOT NULL, goal TEXT NOT NULL,
  visitors INTEGER NOT NULL DEFAULT 0, conversions INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (site, campaign, day, variation, goal)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
  email TEXT PRIMARY KEY, password_hash TEXT, created_at REAL NOT NULL, sessions_epoch INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS roles (
  site TEXT NOT NULL, email TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (site, email));
CREATE INDEX IF NOT EXISTS roles_by_email ON roles (email);
CREATE TABLE IF NOT EXISTS features (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, id TEXT NOT NULL, visitor_id TEXT NOT NULL,
  ts INTEGER NOT NULL, kind TEXT NOT NULL, goal TEXT, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS features_by_id ON features (site, id);
CREATE TABLE IF NOT EXISTS models (site TEXT NOT NULL, goal TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (site, goal));
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_site ON audit (site, seq);
"""
COUNTERS_TABLE = next(part.strip() for part in SCHEMA.split(";") if "TABLE IF NOT EXISTS counters" in part)
CHUNK = 500  # ids per IN (...) query: below SQLite's bound on host parameters
TRIM_EVERY = 1000  # feature rows: the table is cut back to FEATURE_ROWS_KEPT a site every this many rows
PREPARE_TIMEOUT_S = 30  # the busy timeout while a process upgrades or creates the schema at start


def _name_legacy_keys(db):
    """Keys from before names and scopes (api_keys without a `name` column) become owner keys
    named `default` (a site's later ones `default-2`...)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}
    if not columns or "name" in columns:
        return
    db.execute("ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'owner'")
    db.execute("ALTER TABLE api_keys ADD COLUMN last_used_at REAL")
    counts = {}
    for key_hash, site in db.execute("SELECT key_hash, site FROM api_keys ORDER BY site, created_at, key_hash").fetchall():
        counts[site] = counts.get(site, 0) + 1
        db.execute("UPDATE api_keys SET name=? WHERE key_hash=?", (legacy_key_name(counts[site]), key_hash))


def _add_channels(db):
    """Assignments and counters get a `channel` ("web" for everything recorded before): a new
    column for assignments, and counters rebuilt with the channel in their primary key."""
    if db.execute("PRAGMA table_info(assignments)").fetchall() and \
            "channel" not in {row[1] for row in db.execute("PRAGMA table_info(assignments)")}:
        db.execute("ALTER TABLE assignments ADD COLUMN channel TEXT NOT NULL DEFAULT 'web'")
    columns = {row[1] for row in db.execute("PRAGMA table_info(counters)")}
    if not columns or "channel" in columns:
        return
    db.execute("ALTER TABLE counters RENAME TO counters_before_channels")
    db.execute(COUNTERS_TABLE)
    kept = ", ".join(c for c in ("site", "campaign", "variation", "goal") + COUNTER_METRICS if c in columns)
    db.execute(f"INSERT INTO counters ({kept}) SELECT {kept} FROM counters_before_channels")
    db.execute("DROP TABLE counters_before_channels")


def _count_orders(db):
    """Order counts beside revenue: per visitor in conversion_state, per arm in counters
    (conversions recorded before count no order)."""
    for table, columns in (("conversion_state", ["orders INTEGER NOT NULL DEFAULT 0"]),
                           ("counters", ["orders INTEGER NOT NULL DEFAULT 0", "orders_sq INTEGER NOT NULL DEFAULT 0",
                                         "revenue_orders REAL NOT NULL DEFAULT 0"])):
        existing = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in columns if existing else ():
            if column.split()[0] not in existing:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _add_slices_and_covariates(db):
    """Versions get their `meta`, assignments their slices and covariates, counters the
    covariate sums (slice counters and exclusions are new tables: SCHEMA makes them)."""
    def add(table, column, definition):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if columns and column not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    add("versions", "meta", "TEXT")
    add("assignments", "slices", "TEXT NOT NULL DEFAULT ''")
    add("assignments", "pre", "TEXT")
    for metric in COVARIATE_METRICS:
        add("counters", metric, f"{'REAL' if metric in FLOAT_METRICS else 'INTEGER'} NOT NULL DEFAULT 0")


def _slice_every_metric(db):
    """Slice counters get orders and CUPED's sums beside visitors, conversions and revenue (slices
    counted before have none: their CUPED stays out until every visitor of an arm carries
    covariates, and their orders count from now on)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(slice_counters)")}
    for metric in COUNTER_METRICS if columns else ():
        if metric not in columns:
            db.execute(f"ALTER TABLE slice_counters ADD COLUMN {metric} "
                       f"{'REAL' if metric in FLOAT_METRICS else 'INTEGER'} NOT NULL DEFAULT 0")


# Each step upgrades a database of the version before it (PRAGMA user_version) where SCHEMA
# alone would not (a new column, data to rewrite); on a new database they find nothing to do.
# A new table needs no step: SCHEMA creates what is missing on every start.
# Step 5 runs _count_orders again: a database whose step 3 added slices and covariates (the
# results branch's layout before orders) has no order columns yet; elsewhere it finds them there.
MIGRATIONS = [_name_legacy_keys, _add_channels, _count_orders, _add_slices_and_covariates, _count_orders,
              _slice_every_metric]


class _VersionStamp:
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
        return self._map[:8], int(time.monotonic() / VERSION_TOKEN_MAX_AGE_S)

    def announce(self):
        self._map[:8] = os.urandom(8)

    def close(self):
        self._map.close()


class _MemoryWindows:
    """Rate-limit windows of one process: the current window's counts, the last one forgotten wholesale."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {}
        self._window = None

    def hit(self, key, window):
        with self._lock:
            if window != self._window:
                self._counts, self._window = {}, window
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class SQLiteStore(Store):
    UNAVAILABLE = (OSError, sqlite3.OperationalError)
    # A file on this machine is never away: a locked database is busy, and each call waits for
    # the lock its busy timeout at most (WAL readers never wait for a writer).
    AWAY_ON = ()

    def __init__(self, path, timeout_s=STORE_TIMEOUT_S):
        self.path = path
        self.timeout_s = timeout_s  # the busy timeout: how long a statement waits for another's lock
        self._local = threading.local()
        self._stamp = None  # mapped on first use: gunicorn forks workers after the app is made
        self._windows = _MemoryWindows()
        self._prepare()

    def _prepare(self):
        """Upgrade an older database (in one transaction: of several processes starting at once,
        one does it and the others find it done), then create whatever is missing. Starting
        processes wait for each other's lock longer than a request would (PREPARE_TIMEOUT_S)."""
        db = self._db()
        db.execute(f"PRAGMA busy_timeout = {int(PREPARE_TIMEOUT_S * 1000)}")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < len(MIGRATIONS):
                with self._tx() as tx:
                    version = tx.execute("PRAGMA user_version").fetchone()[0]
                    for migrate in MIGRATIONS[version:]:
                        migrate(tx)
                    tx.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            # executescript commits first, so it cannot run inside _tx(); every statement is IF NOT EXISTS.
            db.executescript(SCHEMA)
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")

    def _db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _tx(self):
        return _Transaction(self._db())

    # sites and keys
    def create_site(self, site, key_hash):
        with self._tx() as db:
            if db.execute("SELECT 1 FROM sites WHERE site=?", (site,)).fetchone():
                raise SiteExists(site)
            db.execute("INSERT INTO sites VALUES (?, ?)", (site, time.time()))
            self._insert_key(db, site, DEFAULT_KEY_NAME, "owner", key_hash)

    def add_key(self, site, name, scope, key_hash):
        with self._tx() as db:
            if db.execute("SELECT 1 FROM api_keys WHERE site=? AND name=?", (site, name)).fetchone():
                raise KeyExists(name)
            self._insert_key(db, site, name, scope, key_hash)

    @staticmethod
    def _insert_key(db, site, name, scope, key_hash):
        db.execute("INSERT INTO api_keys (key_hash, site, created_at, name, scope) VALUES (?, ?, ?, ?, ?)",
                   (key_hash, site, time.time(), name, scope))

    _KEY_COLUMNS = "site, name, scope, created_at, last_used_at"

    def key_for_hash(self, key_hash):
        row = self._db().execute(f"SELECT {self._KEY_COLUMNS} FROM api_keys WHERE key_hash=?", (key_hash,)).fetchone()
        return ApiKey(*row) if row else None

    def list_keys(self, site):
        rows = self._db().execute(f"SELECT {self._KEY_COLUMNS} FROM api_keys WHERE site=? ORDER BY created_at, name",
                                  (site,))
        return [ApiKey(*row) for row in rows]

    def revoke_key(self, site, name):
        with self._tx() as db:
            return db.execute("DELETE FROM api_keys WHERE site=? AND name=?", (site, name)).rowcount > 0

    def touch_key(self, key_hash, when):
        with self._tx() as db:
            db.execute("UPDATE api_keys SET last_used_at=? WHERE key_hash=?", (when, key_hash))

    def site_exists(self, site):
        return self._db().execute("SELECT 1 FROM sites WHERE site=?", (site,)).fetchone() is not None

    def list_sites(self):
        return [r[0] for r in self._db().execute("SELECT site FROM sites ORDER BY site")]

    # users, roles, audit
    def create_user(self, email):
        with self._tx() as db:
            if db.execute("SELECT 1 FROM users WHERE email=?", (email,)).fetchone():
                raise UserExists(email)
            db.execute("INSERT INTO users (email, created_at) VALUES (?, ?)", (email, time.time()))

    def get_user(self, email):
        row = self._db().execute("SELECT email, password_hash, created_at, sessions_epoch FROM users WHERE email=?",
                                 (email,)).fetchone()
        return User(*row) if row else None

    def set_password(self, email, password_hash):
        with self._tx() as db:
            db.execute("UPDATE users SET password_hash=?, sessions_epoch=sessions_epoch+1 WHERE email=?",
                       (password_hash, email))

    def end_sessions(self, email):
        with self._tx() as db:
            db.execute("UPDATE users SET sessions_epoch=sessions_epoch+1 WHERE email=?", (email,))
            row = db.execute("SELECT sessions_epoch FROM users WHERE email=?", (email,)).fetchone()
        return row[0] if row else None

    def set_role(self, site, email, role):
        with self._tx() as db:
            db.execute("INSERT INTO roles VALUES (?, ?, ?) ON CONFLICT(site, email) DO UPDATE SET role=excluded.role",
                       (site, email, role))

    def remove_role(self, site, email):
        with self._tx() as db:
            return db.execute("DELETE FROM roles WHERE site=? AND email=?", (site, email)).rowcount > 0

    def roles_of(self, email):
        return dict(self._db().execute("SELECT site, role FROM roles WHERE email=? ORDER BY site", (email,)))

    def site_users(self, site):
        return self._db().execute("SELECT email, role FROM roles WHERE site=? ORDER BY email", (site,)).fetchall()

    def add_audit(self, site, entry_json):
        with self._tx() as db:
            db.execute("INSERT INTO audit (site, entry) VALUES (?, ?)", (site, entry_json))

    def audit_log(self, site, limit=100):
        return [row[0] for row in self._db().execute(
            "SELECT entry FROM audit WHERE site=? ORDER BY seq DESC LIMIT ?", (site, limit))]

    # drafts and versions
    def save_draft(self, site, config_json, if_etag=None):
        with self._tx() as db:
            if if_etag is not None:
                row = db.execute("SELECT config FROM drafts WHERE site=?", (site,)).fetchone()
                if draft_etag(row[0] if row else None) != if_etag:
                    return False
            db.execute("INSERT INTO drafts VALUES (?, ?, ?) ON CONFLICT(site) DO UPDATE SET "
                       "config=excluded.config, updated_at=excluded.updated_at", (site, config_json, time.time()))
        return True

    def get_draft(self, site):
        row = self._db().execute("SELECT config FROM drafts WHERE site=?", (site,)).fetchone()
        return row[0] if row else None

    def add_version(self, site, make_payload, meta=None):
        with self._tx() as db:
            (last,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM versions WHERE site=?", (site,)).fetchone()
            version = last + 1
            payload, signature, published_at = make_payload(version)
            db.execute("INSERT INTO versions (site, version, payload, signature, published_at, meta) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (site, version, payload, signature, published_at, meta))
        return version

    def version_meta(self, site, versions):
        found = {}
        for part in _parts([v for v in dict.fromkeys(versions) if -2**63 <= v < 2**63]):
            found.update(self._db().execute(
                f"SELECT version, meta FROM versions WHERE site=? AND meta IS NOT NULL "
                f"AND version IN ({','.join('?' * len(part))})", (site, *part)))
        return found

    def get_version(self, site, version=None):
        if version is None:
            sql, args = "SELECT version, payload, signature, published_at FROM versions WHERE site=? ORDER BY version DESC LIMIT 1", (site,)
        elif not -2**63 <= version < 2**63:
            return None  # beyond SQLite's integers: no such version (rather than an OverflowError)
        else:
            sql, args = "SELECT version, payload, signature, published_at FROM versions WHERE site=? AND version=?", (site, version)
        return self._db().execute(sql, args).fetchone()

    def latest_version(self, site):
        return self._db().execute("SELECT MAX(version) FROM versions WHERE site=?", (site,)).fetchone()[0]

    def list_versions(self, site):
        return self._db().execute(
            "SELECT version, published_at FROM versions WHERE site=? ORDER BY version DESC", (site,)).fetchall()

    def add_revision(self, site, make_payload):
        with self._tx() as db:
            (last,) = db.execute("SELECT COALESCE(MAX(revision), 0) FROM revisions WHERE site=?", (site,)).fetchone()
            revision = last + 1
            version, payload, signature, made_at = make_payload(revision)
            db.execute("INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?)",
                       (site, revision, version, payload, signature, made_at))
        return revision

    def get_revision(self, site, revision=None):
        columns = "SELECT revision, version, payload, signature, made_at FROM revisions WHERE site=?"
        if revision is None:
            return self._db().execute(columns + " ORDER BY revision DESC LIMIT 1", (site,)).fetchone()
        if not -2**63 <= revision < 2**63:
            return None
        return self._db().execute(columns + " AND revision=?", (site, revision)).fetchone()

    def latest_revision(self, site):
        return self._db().execute("SELECT MAX(revision) FROM revisions WHERE site=?", (site,)).fetchone()[0]

    # events
    def record_events(self, site, visitor_id, events):
        new = 0
        now = time.time()
        with self._tx() as db:
            for event in events:
                cur = db.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)",
                                 (site, event["id"], visitor_id, event["type"], event["_json"], now))
                if cur.rowcount == 0:
                    continue
                new += 1
                if event["type"] == "exposure":
                    self._expose(db, site, visitor_id, event)
                else:
                    self._convert(db, site, visitor_id, event)
        return new

    def _bump(self, db, site, campaign, variation, goal, channel, slices, deltas, day=None):
        """Add `deltas` ({metric: n}) to the campaign's counter of that channel and to the counter
        of each slice (every channel: only web exposures carry slices), and visitors and
        conversions to the day's."""
        names = tuple(deltas)
        values = tuple(deltas.values())
        db.execute(_upsert_sql("counters", names), (site, campaign, variation, goal, channel) + values)
        if slices:
            db.executemany(_upsert_sql("slice_counters", names),
                           [(site, dimension, campaign, value, variation, goal) + values for dimension, value in slices])
        visitors, conversions = deltas.get("visitors", 0), deltas.get("conversions", 0)
        if day and (visitors or conversions):
            db.execute("INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(site, campaign, day, variation, goal) "
                       "DO UPDATE SET visitors=visitors+excluded.visitors, conversions=conversions+excluded.conversions",
                       (site, campaign, day, variation, goal, visitors, conversions))

    def _expose(self, db, site, visitor_id, event):
        variation = HOLDOUT if event.get("holdout") else event["variation"]
        channel = event.get("channel") or WEB
        slices, pre = event.get("_slices") or (), event.get("_pre")
        cur = db.execute("INSERT OR IGNORE INTO assignments (site, visitor_id, campaign, variation, channel, slices, pre) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (site, visitor_id, event["campaign"], variation, channel, _slices_text(slices),
                          None if pre is None else ",".join(map(str, pre))))
        if cur.rowcount:
            self._bump(db, site, event["campaign"], variation, "", channel, slices,
                       {"visitors": 1, **covariate_deltas(pre)}, event.get("_day"))

    def _convert(self, db, site, visitor_id, event):
        value = float(event.get("value") or 0.0)
        goal, order_id, only = event["goal"], event.get("order_id"), event.get("campaign")
        if order_id is not None and not db.execute("INSERT OR IGNORE INTO order_ids VALUES (?, ?, ?, ?)",
                                                   (site, visitor_id, goal, order_id)).rowcount:
            return  # this visitor's order, sent again (a reloaded thank-you page): counted once
        new_order = 0 if order_id is None else 1
        rows = db.execute("SELECT campaign, variation, channel, slices, pre FROM assignments WHERE site=? AND visitor_id=?"
                          + ("" if only is None else " AND campaign=?"),
                          (site, visitor_id) if only is None else (site, visitor_id, only)).fetchall()
        for campaign, variation, channel, slices_text, pre_text in rows:
            row = db.execute("SELECT revenue, orders FROM conversion_state "
                             "WHERE site=? AND campaign=? AND goal=? AND visitor_id=?",
                             (site, campaign, goal, visitor_id)).fetchone()
            before, orders_before = row if row else (0.0, 0)
            after, orders_after = before + value, orders_before + new_order
            db.execute("INSERT OR REPLACE INTO conversion_state (site, campaign, goal, visitor_id, revenue, orders) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (site, campaign, goal, visitor_id, after, orders_after))
            deltas = {"conversions": 0 if row else 1, "revenue": value, "revenue_sq": after * after - before * before,
                      "orders": new_order, "orders_sq": orders_after * orders_after - orders_before * orders_before,
                      "revenue_orders": after * orders_after - before * orders_before}
            if pre_text is not None:
                for i, x in enumerate(map(int, pre_text.split(","))):
                    deltas[f"pre_conv_{i}"] = 0 if row else x
                    deltas[f"pre_rev_{i}"] = x * value
            self._bump(db, site, campaign, variation, goal, channel, _parse_slices(slices_text), deltas,
                       event.get("_day"))

    def counters(self, site, channel=None):
        return [with_covariate_lists(row) for row in merge_channels(in_channel(self.labelled_counters(site), channel))]

    def labelled_counters(self, site):
        sql = f"SELECT campaign, variation, goal, channel, {', '.join(COUNTER_METRICS)} FROM counters WHERE site=?"
        return self._counter_rows(sql, (site,), "channel")

    def slice_counters(self, site, dimension):
        return [with_covariate_lists(row) for row in self._counter_rows(
            f"SELECT campaign, variation, goal, value, {', '.join(COUNTER_METRICS)} "
            "FROM slice_counters WHERE site=? AND dimension=?", (site, dimension), "value")]

    def _counter_rows(self, sql, args, fifth, metrics=COUNTER_METRICS):
        """Flat counter rows from `sql` (campaign, variation, goal, `fifth`, then `metrics`)."""
        return [{"campaign": campaign, "variation": None if variation == HOLDOUT else variation, "goal": goal or None,
                 fifth: extra, **dict(zip(metrics, values))}
                for campaign, variation, goal, extra, *values in self._db().execute(sql, args)]

    def count_exclusions(self, site, counts):
        self._add_counts("exclusions", site, counts)

    def exclusions(self, site):
        return dict(self._db().execute("SELECT reason, count FROM exclusions WHERE site=? ORDER BY reason", (site,)))

    def events_after(self, site, cursor, limit):
        after = int(cursor) if cursor else 0
        rows = self._db().execute(
            "SELECT rowid, event_id, visitor_id, type, received_at, body FROM events WHERE site=? AND rowid>? "
            "ORDER BY rowid LIMIT ?", (site, after, limit)).fetchall()
        return [{"cursor": str(rowid), "id": event_id, "visitor_id": visitor_id, "type": kind, "received_at": at,
                 "body": body} for rowid, event_id, visitor_id, kind, at, body in rows], False

    def daily_counters(self, site, campaign):
        rows = self._db().execute(
            "SELECT day, variation, goal, visitors, conversions FROM daily WHERE site=? AND campaign=? ORDER BY day",
            (site, campaign)).fetchall()
        return [{"day": d, "variation": None if v == HOLDOUT else v, "goal": g or None, "visitors": n,
                 "conversions": k} for d, v, g, n, k in rows]

    def count_rejections(self, site, counts):
        self._add_counts("rejections", site, counts)

    def _add_counts(self, table, site, counts):
        with self._tx() as db:
            db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?) ON CONFLICT(site, reason) DO UPDATE SET "
                           "count=count+excluded.count", [(site, r, n) for r, n in counts.items()])

    def rejections(self, site):
        return dict(self._db().execute("SELECT reason, count FROM rejections WHERE site=? ORDER BY reason", (site,)))

    # identity
    def get_identity(self, site):
        row = self._db().execute("SELECT record FROM identity WHERE site=?", (site,)).fetchone()
        return row[0] if row else None

    def put_identity(self, site, record_json, if_absent=False):
        with self._tx() as db:
            if if_absent:
                return db.execute("INSERT OR IGNORE INTO identity VALUES (?, ?)", (site, record_json)).rowcount == 1
            db.execute("INSERT INTO identity VALUES (?, ?) ON CONFLICT(site) DO UPDATE SET record=excluded.record",
                       (site, record_json))
            return True

    def upsert_customers(self, site, customers, mark=None):
        return self._upsert_marked("customers", "key", site, customers, mark)

    def get_customers(self, site, keys):
        return self._rows_by_key("customers", "key", site, keys)

    def delete_customers_unmarked(self, site, mark):
        return self._delete_unmarked("customers", site, mark)

    def iter_customers(self, site):
        after = ""
        while True:
            rows = self._db().execute("SELECT key, body FROM customers WHERE site=? AND key>? ORDER BY key LIMIT 1000",
                                      (site, after)).fetchall()
            yield from rows
            if len(rows) < 1000:
                return
            after = rows[-1][0]

    def count_customers(self, site):
        return self._db().execute("SELECT COUNT(*) FROM customers WHERE site=?", (site,)).fetchone()[0]

    def save_crm_schema(self, site, schema_json):
        with self._tx() as db:
            db.execute("INSERT INTO crm_schema VALUES (?, ?) ON CONFLICT(site) DO UPDATE SET body=excluded.body",
                       (site, schema_json))

    def get_crm_schema(self, site):
        row = self._db().execute("SELECT body FROM crm_schema WHERE site=?", (site,)).fetchone()
        return row[0] if row else None

    def link_visitor(self, site, customer_key, visitor_id):
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO identity_links VALUES (?, ?, ?)", (site, customer_key, visitor_id))

    def linked_visitors(self, site, customer_key):
        return [row[0] for row in self._db().execute(
            "SELECT visitor_id FROM identity_links WHERE site=? AND customer_key=? ORDER BY visitor_id",
            (site, customer_key))]

    def erase_units(self, site, customer_keys, units):
        units, customer_keys = list(dict.fromkeys(units)), list(dict.fromkeys(customer_keys))
        whos = [f"{kind}:{unit}" for unit in units for kind in ("v", "c")]
        erased = {"customers": 0, "events": 0, "interactions": 0}
        with self._tx() as db:
            for part in _parts(customer_keys):
                marks = ",".join("?" * len(part))
                erased["customers"] += db.execute(f"DELETE FROM customers WHERE site=? AND key IN ({marks})",
                                                  (site, *part)).rowcount
                db.execute(f"DELETE FROM identity_links WHERE site=? AND customer_key IN ({marks})", (site, *part))
            for part in _parts(units):
                marks = ",".join("?" * len(part))
                # the event's random id stays (a retry of it is not counted again); who and what go
                erased["events"] += db.execute(
                    f"UPDATE events SET visitor_id='', body='{{}}' WHERE site=? AND visitor_id IN ({marks})",
                    (site, *part)).rowcount
                for table in ("assignments", "conversion_state", "order_ids", "features"):
                    db.execute(f"DELETE FROM {table} WHERE site=? AND visitor_id IN ({marks})", (site, *part))
                db.execute(f"DELETE FROM identity_links WHERE site=? AND visitor_id IN ({marks})", (site, *part))
            for part in _parts(whos):
                erased["interactions"] += db.execute(
                    f"DELETE FROM interactions WHERE site=? AND who IN ({','.join('?' * len(part))})",
                    (site, *part)).rowcount
                # who was counted in live activity goes too; the hourly counts stay, like counters
                db.execute(f"DELETE FROM product_hits WHERE site=? AND who IN ({','.join('?' * len(part))})",
                           (site, *part))
        return erased

    # predictive targeting
    def record_features(self, site, visitor_id, rows):
        trim = False
        with self._tx() as db:
            for r in rows:
                cur = db.execute("INSERT OR IGNORE INTO features (site, id, visitor_id, ts, kind, goal, body) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (site, r["id"], visitor_id, r["ts"], r["kind"], r["goal"], r["features"]))
                trim = trim or (cur.rowcount and cur.lastrowid % TRIM_EVERY == 0)
            if trim:  # now and then, as Redis trims its stream approximately
                db.execute("DELETE FROM features WHERE site=? AND seq <= (SELECT seq FROM features WHERE site=? "
                           "ORDER BY seq DESC LIMIT 1 OFFSET ?)", (site, site, FEATURE_ROWS_KEPT))

    def feature_rows(self, site, limit=FEATURE_ROWS_KEPT):
        rows = self._db().execute("SELECT id, visitor_id, ts, kind, goal, body FROM features WHERE site=? "
                                  "ORDER BY seq DESC LIMIT ?", (site, limit)).fetchall()
        return [{"id": i, "visitor": v, "ts": ts, "kind": k, "goal": g, "features": json.loads(b)}
                for i, v, ts, k, g, b in reversed(rows)]

    def save_model(self, site, goal, report_json):
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)", (site, goal, report_json))

    def model_reports(self, site):
        return dict(self._db().execute("SELECT goal, body FROM models WHERE site=? ORDER BY goal", (site,)).fetchall())

    # catalogue
    def upsert_products(self, site, products, mark=None):
        return self._upsert_marked("products", "id", site, products, mark)

    def _upsert_marked(self, table, column, site, rows, mark):
        """Store (id, body) rows of a (site, id, body, mark) table, under `mark` (a full import)."""
        rows = [(site, key, body, mark) for key, body in rows]
        with self._tx() as db:
            db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?) ON CONFLICT(site, {column}) DO UPDATE SET "
                           "body=excluded.body, mark=excluded.mark", rows)
        return len(rows)

    def _delete_unmarked(self, table, site, mark):
        with self._tx() as db:
            return db.execute(f"DELETE FROM {table} WHERE site=? AND mark IS NOT ?", (site, mark)).rowcount

    def delete_products(self, site, ids):
        deleted = 0
        with self._tx() as db:
            for pid in dict.fromkeys(ids):
                deleted += db.execute("DELETE FROM products WHERE site=? AND id=?", (site, pid)).rowcount
        return deleted

    def delete_products_unmarked(self, site, mark):
        return self._delete_unmarked("products", site, mark)

    def _rows_by_key(self, table, column, site, keys):
        """{key: body} of the site's rows of `table` whose `column` is one of `keys`."""
        keys = list(dict.fromkeys(keys))
        if len(keys) == 1:  # the common case, without building an IN list
            row = self._db().execute(f"SELECT body FROM {table} WHERE site=? AND {column}=?", (site, keys[0])).fetchone()
            return {keys[0]: row[0]} if row else {}
        found = {}
        for start in range(0, len(keys), CHUNK):
            part = keys[start:start + CHUNK]
            found.update(self._db().execute(
                f"SELECT {column}, body FROM {table} WHERE site=? AND {column} IN ({','.join('?' * len(part))})",
                (site, *part)))
        return found

    def get_products(self, site, ids):
        return self._rows_by_key("products", "id", site, ids)

    def list_products(self, site, after="", limit=100):
        return self._db().execute("SELECT id, body FROM products WHERE site=? AND id>? ORDER BY id LIMIT ?",
                                  (site, after, limit)).fetchall()

    def count_products(self, site):
        return self._db().execute("SELECT COUNT(*) FROM products WHERE site=?", (site,)).fetchone()[0]

    # interactions
    def record_interactions(self, site, rows):
        fresh = []
        with self._tx() as db:
            for row in rows:
                if db.execute("INSERT OR IGNORE INTO interactions VALUES (?, ?, ?, ?, ?, ?, ?)", (site, *row)).rowcount:
                    fresh.append(row)
            if fresh:
                self._touch(db, site, "signals")
                self._count_activity(db, site, activity_hits(fresh, time.time()))
        return len(fresh)

    @staticmethod
    def _count_activity(db, site, hits):
        if not hits:
            return
        now_hour = int(time.time() // 3600)
        # a hit only deduplicates within its hour: older ones are dropped (an index range)
        db.execute("DELETE FROM product_hits WHERE site=? AND hour<?", (site, now_hour - ACTIVITY_HOURS))
        for hour, action, who, product_id in hits:
            if db.execute("INSERT OR IGNORE INTO product_hits VALUES (?, ?, ?, ?, ?)",
                          (site, hour, action, who, product_id)).rowcount:
                column = ACTIVITY_ACTIONS[action]
                db.execute(f"INSERT INTO product_hours (site, id, hour, {column}) VALUES (?, ?, ?, 1) "
                           f"ON CONFLICT(site, id, hour) DO UPDATE SET {column}={column}+1", (site, product_id, hour))
                db.execute("DELETE FROM product_hours WHERE site=? AND id=? AND hour<?",
                           (site, product_id, now_hour - ACTIVITY_HOURS))

    def product_activity(self, site, product_id, now):
        views, purchases = self._db().execute(
            "SELECT COALESCE(SUM(views), 0), COALESCE(SUM(purchases), 0) FROM product_hours "
            "WHERE site=? AND id=? AND hour>?", (site, product_id, int(now // 3600) - ACTIVITY_HOURS)).fetchone()
        return {"views_24h": views, "purchases_24h": purchases}

    def interactions(self, site, since_ts):
        cursor = self._db().execute("SELECT ts, who, basket, action, items FROM interactions WHERE site=? AND ts>=?",
                                    (site, since_ts))
        while True:
            rows = cursor.fetchmany(10_000)
            if not rows:
                return
            yield from rows

    # rankings
    def write_rankings(self, site, rankings, built_at):
        with self._tx() as db:
            db.execute("DELETE FROM rankings WHERE site=?", (site,))
            db.executemany("INSERT INTO rankings VALUES (?, ?, ?)", ((site, name, body) for name, body in rankings))
            self._touch(db, site, "built", built_at)

    def rankings(self, site, names):
        return self._rows_by_key("rankings", "name", site, names)

    @staticmethod
    def _touch(db, site, kind, at=None):
        column = {"imports": "imports_at", "signals": "signals_at", "built": "built_at"}[kind]
        db.execute(f"INSERT INTO recs_status (site, {column}) VALUES (?, ?) "
                   f"ON CONFLICT(site) DO UPDATE SET {column}=excluded.{column}", (site, time.time() if at is None else at))

    def touch_recs_inputs(self, site, kind):
        if kind not in ("imports", "signals"):
            raise ValueError(f"unknown input kind {kind!r}")
        with self._tx() as db:
            self._touch(db, site, kind)

    def recs_status(self, site):
        row = self._db().execute("SELECT imports_at, signals_at, built_at FROM recs_status WHERE site=?",
                                 (site,)).fetchone() or (None, None, None)
        return dict(zip(("imports_at", "signals_at", "built_at"), row))

    def save_merchandising(self, site, rules_json):
        with self._tx() as db:
            db.execute("INSERT INTO merchandising VALUES (?, ?) ON CONFLICT(site) DO UPDATE SET rules=excluded.rules",
                       (site, rules_json))

    def get_merchandising(self, site):
        row = self._db().execute("SELECT rules FROM merchandising WHERE site=?", (site,)).fetchone()
        return row[0] if row else None

    # locks
    def acquire_lock(self, name, owner, ttl_s):
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT owner, expires_at FROM locks WHERE name=?", (name,)).fetchone()
            if row and row[0] != owner and row[1] > now:
                return False
            db.execute("INSERT OR REPLACE INTO locks VALUES (?, ?, ?)", (name, owner, now + ttl_s))
            return True

    def release_lock(self, name, owner):
        with self._tx() as db:
            return db.execute("DELETE FROM locks WHERE name=? AND owner=?", (name, owner)).rowcount == 1

    # serving
    def version_token(self):
        if self._stamp is None:
            self._stamp = _VersionStamp(self.path)
        return self._stamp.token(), self.outage.returns

    def announce_version(self, site):
        if self._stamp is None:
            self._stamp = _VersionStamp(self.path)
        self._stamp.announce()

    def hit_window(self, key, window, ttl_s):
        return self._windows.hit(key, window)

    def ping(self):
        self._db().execute("SELECT 1").fetchone()
        return True

    def close(self):
        if self._stamp is not None:
            self._stamp.close()
            self._stamp = None
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _parts(items):
    """`items` in lists of at most CHUNK, for IN (...) lists."""
    return [items[start:start + CHUNK] for start in range(0, len(items), CHUNK)]


@lru_cache(maxsize=256)
def _upsert_sql(table, metrics):
    """INSERT ... ON CONFLICT DO UPDATE adding `metrics` to a counter of `table` (counters or
    slice_counters), whose key columns come first in the arguments."""
    keys = ("site", "campaign", "variation", "goal", "channel") if table == "counters" else \
        ("site", "dimension", "campaign", "value", "variation", "goal")
    columns = keys + metrics
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT({', '.join(keys)}) DO UPDATE SET " + ", ".join(f"{m}={m}+excluded.{m}" for m in metrics))


def _slices_text(slices):
    return SLICES.join(f"{dimension}{SLICE}{value}" for dimension, value in slices)


def _parse_slices(text):
    return [tuple(part.split(SLICE, 1)) for part in text.split(SLICES)] if text else []


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent gunicorn workers serialise their writes."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, *_):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False
