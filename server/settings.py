"""Settings read from VITRINA_* environment variables, validated once at start-up."""
import os
import re
import secrets
from pathlib import Path


class ConfigError(ValueError):
    """A setting is invalid; the message names the variable."""


DATABASE_NAME = "vitrina.sqlite3"
# collect accepts an event from 1 day before to 3 days after its ts (server/events/batch.py): its
# first copy and a retry arrive at most 4 days apart (tests/test_settings.py holds them so)
MIN_DEDUPE_DAYS = 4


def _int(env, name, default, low, high):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _secret_keys(raw, database):
    """Comma-separated keys (first signs, all verify); default: one generated beside the database."""
    if raw:
        keys = [k.strip() for k in raw.split(",")]
        if any(len(k) < 16 for k in keys):
            raise ConfigError("VITRINA_SECRET_KEY: every comma-separated key must be at least 16 characters")
        return keys
    key_file = Path(database).resolve().parent / "secret_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return [key_file.read_text().strip()]


def default_database(env):
    """The per-user data directory of the XDG base directory spec, so every `vitrina` command
    finds the same database whatever folder it runs from: $XDG_DATA_HOME/vitrina/vitrina.sqlite3,
    by default ~/.local/share/vitrina/vitrina.sqlite3 (a relative XDG_DATA_HOME is ignored, as the
    spec says)."""
    data_home = env.get("XDG_DATA_HOME") or ""
    if not os.path.isabs(data_home):
        home = env.get("HOME") or os.path.expanduser("~")
        if not os.path.isabs(home):
            raise ConfigError("VITRINA_DATABASE is not set and there is no home folder for the default "
                              "(~/.local/share/vitrina/): set VITRINA_DATABASE to a file path")
        data_home = os.path.join(home, ".local", "share")
    return os.path.join(data_home, "vitrina", DATABASE_NAME)


def load_config(env=None):
    """Return the Flask config mapping for these environment variables, or raise ConfigError."""
    env = os.environ if env is None else env
    database = os.path.abspath(env.get("VITRINA_DATABASE") or default_database(env))
    redis_url = env.get("VITRINA_REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        raise ConfigError(f"VITRINA_REDIS_URL must start with redis://, rediss://, unix:// or redis+cluster://, got {redis_url!r}")
    geoip_db = env.get("VITRINA_GEOIP_DB") or None
    if geoip_db and not Path(geoip_db).is_file():
        raise ConfigError(f"VITRINA_GEOIP_DB: no such file {geoip_db!r}")
    public_url = (env.get("VITRINA_PUBLIC_URL") or "").rstrip("/") or None
    if public_url and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", public_url):
        raise ConfigError(f"VITRINA_PUBLIC_URL must be an http:// or https:// URL such as https://vitrina.example.com, "
                          f"got {public_url!r}")
    try:
        Path(database).resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"VITRINA_DATABASE: cannot create the folder for {database!r}: {e}") from None
    return {
        "VITRINA_DATABASE": database,
        "VITRINA_REDIS_URL": redis_url,
        "VITRINA_GEOIP_DB": geoip_db,
        # where users reach this server, for the absolute links the CLI prints (sign-in links)
        "VITRINA_PUBLIC_URL": public_url,
        "VITRINA_PROXY_HOPS": _int(env, "VITRINA_PROXY_HOPS", 0, 0, 10),
        # the longest one store call waits (Redis connect and read, SQLite's lock): past it, serving
        # answers from memory and collect spools (docs/DESIGN.md "Serving through a store outage")
        "VITRINA_STORE_TIMEOUT_MS": _int(env, "VITRINA_STORE_TIMEOUT_MS", 500, 50, 60_000),
        # Redis retention (docs/DESIGN.md "Retention"): event ids are remembered this many days for
        # idempotence (at least MIN_DEDUPE_DAYS), a visitor's assignments this many days after
        # their last event (the visitor id cookie lives 400 days after the last visit)
        "VITRINA_DEDUPE_DAYS": _int(env, "VITRINA_DEDUPE_DAYS", 7, MIN_DEDUPE_DAYS, 3650),
        "VITRINA_VISITOR_DAYS": _int(env, "VITRINA_VISITOR_DAYS", 400, 1, 3650),
        # how long browsers and shared caches (a CDN, deploy/nginx.conf) may keep tag.js and bundle.json
        "VITRINA_TAG_MAX_AGE_S": _int(env, "VITRINA_TAG_MAX_AGE_S", 60, 1, 3600),
        "VITRINA_SECRET_KEYS": _secret_keys(env.get("VITRINA_SECRET_KEY"), database),
        "VITRINA_SDK_PATH": env.get("VITRINA_SDK_PATH") or None,
        "VITRINA_SPOOL_DIR": env.get("VITRINA_SPOOL_DIR") or str(Path(database).resolve().parent / "spool"),
        "VITRINA_COLLECT_MAX_BYTES": _int(env, "VITRINA_COLLECT_MAX_BYTES", 64 * 1024, 1024, 1024 * 1024),
        "VITRINA_CONFIG_MAX_BYTES": _int(env, "VITRINA_CONFIG_MAX_BYTES", 512 * 1024, 1024, 16 * 1024 * 1024),
        # product feeds, order histories and CRM data (PUT/PATCH .../catalog and .../customers, POST .../orders) only
        "VITRINA_FEED_MAX_BYTES": _int(env, "VITRINA_FEED_MAX_BYTES", 64 * 1024 * 1024, 1024, 1024 ** 3),
        # the worker rebuilds a site's recommendations this often when browsers sent signals (0: never
        # on schedule); after a catalogue or order import, within VITRINA_RECS_POLL_S
        "VITRINA_RECS_EVERY_S": _int(env, "VITRINA_RECS_EVERY_S", 900, 0, 7 * 86_400),
        "VITRINA_RECS_POLL_S": _int(env, "VITRINA_RECS_POLL_S", 5, 1, 3600),
        # the worker checks the guardrails of auto_pause campaigns this often, per site (0: never)
        "VITRINA_ALERTS_EVERY_S": _int(env, "VITRINA_ALERTS_EVERY_S", 300, 0, 86_400),
        # the worker recomputes adaptive campaigns' weights this often (0: only after a publish and by
        # `vitrina allocate`); a publish is allocated within VITRINA_RECS_POLL_S
        "VITRINA_ALLOCATE_EVERY_S": _int(env, "VITRINA_ALLOCATE_EVERY_S", 600, 0, 7 * 86_400),
        "VITRINA_MODELS_EVERY_S": _int(env, "VITRINA_MODELS_EVERY_S", 3600, 0, 7 * 86_400),
        # collect batches allowed per window (0 = unlimited), per site and per client address
        "VITRINA_RATE_WINDOW": _int(env, "VITRINA_RATE_WINDOW", 10, 1, 3600),
        "VITRINA_RATE_SITE": _int(env, "VITRINA_RATE_SITE", 50_000, 0, 10**9),
        "VITRINA_RATE_CLIENT": _int(env, "VITRINA_RATE_CLIENT", 100, 0, 10**9),
    }
