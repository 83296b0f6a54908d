"""Merchant API keys: random tokens stored as SHA-256 hashes, each opening one site only, each
with a name and a scope (what it may do there)."""
import functools
import hashlib
import re
import secrets
import time

from flask import current_app, g, request

from server.errors import APIError
from server.store import UNAVAILABLE, get_store, site_exists
from server.wire.ids import SITE_RE

KEY_PREFIX = "vk_"
MAX_KEY_LENGTH = 200  # anything longer is no key of ours: not even hashed
# What each scope allows, the next one including the previous: `read` is GET (and decide, a
# read that happens to be a POST), `publish` edits, publishes and rolls back, `owner` also
# lists, creates and revokes keys.
SCOPES = ("read", "publish", "owner")
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
TOUCH_EVERY_S = 60  # a key's last use is written at most this often, not per request


def new_api_key():
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def hash_key(key):
    # Keys carry 256 random bits, so a fast hash is enough: no dictionary to attack.
    return hashlib.sha256(key.encode()).hexdigest()


def key_problems(name, scope):
    """What is wrong with a key's name and scope, as error details (empty when nothing)."""
    problems = []
    if not isinstance(name, str) or not KEY_NAME_RE.match(name):
        problems.append({"path": "/name", "message": "must be 1 to 64 characters of A-Z a-z 0-9 _ -, "
                                                     "starting with a letter or digit"})
    if scope not in SCOPES:
        problems.append({"path": "/scope", "message": f"must be one of {', '.join(reversed(SCOPES))}"})
    return problems


def create_key(site, name, scope):
    """Store a new key (name and scope checked by key_problems first); returns its secret,
    which is shown once and never stored. KeyExists when the site has a key of that name."""
    secret = new_api_key()
    get_store().add_key(site, name, scope, hash_key(secret))
    return secret


def _bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(401, "unauthorized", "Send the site's API key as 'Authorization: Bearer <key>'.",
                       headers={"WWW-Authenticate": 'Bearer realm="vitrina"'})
    return token.strip()


def _key_of_request():
    token = _bearer_token()
    key_hash = hash_key(token)
    key = get_store().key_for_hash(key_hash) if len(token) <= MAX_KEY_LENGTH else None
    if key is None:
        raise APIError(401, "unauthorized", "This API key is not valid.",
                       headers={"WWW-Authenticate": 'Bearer realm="vitrina", error="invalid_token"'})
    return key_hash, key


def _note_use(key_hash, key):
    """Record the key's last use, at most once a minute: the lookup read it anyway."""
    now = time.time()
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY_S:
        return
    try:
        get_store().touch_key(key_hash, now)
    except UNAVAILABLE as e:  # a missed note of use must not fail the request
        current_app.logger.warning("could not note the use of key %r of %s: %s", key.name, key.site, e)


def require_key(scope):
    """Allow the request only with a key of the site named in the URL whose scope includes `scope`.
    Checked in this order: a valid key (401), the site (404), the key's site (403), its scope (403)."""
    needed = SCOPES.index(scope)

    def decorate(view):
        @functools.wraps(view)
        def wrapper(site, *args, **kwargs):
            key_hash, key = _key_of_request()
            if key.site != site:
                if not SITE_RE.match(site) or not site_exists(site):
                    raise APIError(404, "site_not_found", f"There is no site '{site}'.")
                raise APIError(403, "forbidden", f"This API key does not open site '{site}'.")
            if SCOPES.index(key.scope) < needed:
                raise APIError(403, "forbidden", f"This key's scope is '{key.scope}'; this request needs a key "
                                                 f"of scope {' or '.join(repr(s) for s in SCOPES[needed:])}.")
            _note_use(key_hash, key)
            g.actor = f"key:{key.name}"  # the audit log's `who` for what this request changes
            return view(site, *args, **kwargs)

        return wrapper

    return decorate
