"""A site's identity record: the salt of its customer keys and the seeds of its identity secrets.

Identity tokens are HS256 JWTs. Verifying an HMAC needs the secret itself (the verifier computes
the MAC again), so a hash of it, as API keys are kept, would be of no use to the server. The secret
is therefore not stored at all: the record keeps a random 256-bit seed per secret, and the secret is
HMAC-SHA256(server key, seed), the server key being one of VITRINA_SECRET_KEY (the environment, or
the 0600 file beside the database), which never enters the store. A copy of the store alone (a
backup, a Redis snapshot) yields no secret. Each seed names its server key by a fingerprint, so
putting a new key first in VITRINA_SECRET_KEY keeps every secret; removing the key a seed was made
with ends that secret (rotate it).

Rotation makes a new seed; the previous secret stays valid for ROTATION_GRACE_S, so at most two
secrets are valid at once; rotating again within the grace period drops the oldest at once.

Customer keys: `c1.` + 32 hex digits of HMAC-SHA256(salt, customer id), a pseudonym per site (the
salt is random per site, so the same customer has unrelated keys on two sites and no table
precomputed for one site fits another). It is the unit customer-bucketed campaigns hash and
results count, and the key under which a customer's CRM attributes are stored; raw customer ids
are never stored. An email-keyed CRM record is stored under `e1.` + HMAC(salt, email_sha256)."""
import base64
import hashlib
import hmac
import json
import secrets
import time

from flask import current_app

from server.cache import app_cache
from server.store import get_store

ROTATION_GRACE_S = 24 * 3600
SECRET_PREFIX = "vis_"


class SecretUnavailable(Exception):
    """The site's identity secrets were made with server keys no longer in VITRINA_SECRET_KEY."""


def _fingerprint(server_key):
    return hashlib.sha256(f"vitrina.key-id|{server_key}".encode()).hexdigest()[:16]


def _server_keys():
    return {_fingerprint(key): key for key in current_app.config["VITRINA_SECRET_KEYS"]}


def _derive(seed, server_key):
    mac = hmac.new(server_key.encode(), f"vitrina.identity-secret|{seed}".encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _hmac_hex(salt, text):
    return hmac.new(bytes.fromhex(salt), text.encode(), hashlib.sha256).hexdigest()


def _new_record():
    return {"salt": secrets.token_hex(32), "secrets": []}


def load_record(site, store=None):
    """The site's identity record, made (salt only) on first use; two processes making it at once
    agree, as the store keeps the first."""
    store = store or get_store()
    raw = store.get_identity(site)
    if raw is None:
        store.put_identity(site, json.dumps(_new_record()), if_absent=True)
        raw = store.get_identity(site)
    return json.loads(raw)


def salt(site):
    """The site's customer-key salt; it never changes once made, so a process reads it once."""
    cache = app_cache("customer-key salts", 4096, "nothing: a site's salt never changes once made")
    return cache.get_or_make(site, lambda: load_record(site)["salt"])


def customer_key(site, customer_id, site_salt=None):
    return "c1." + _hmac_hex(site_salt or salt(site), f"customer|{customer_id}")[:32]


def email_key(site, email_sha256, site_salt=None):
    return "e1." + _hmac_hex(site_salt or salt(site), f"email|{email_sha256.lower()}")[:32]


def valid_secrets(record, now=None):
    """The secrets that verify tokens now, newest first; SecretUnavailable when the site has
    seeds but none whose server key is still configured."""
    now = time.time() if now is None else now
    keys = _server_keys()
    live = [s for s in record["secrets"] if s["expires_at"] is None or s["expires_at"] > now]
    found = [_derive(s["seed"], keys[s["key"]]) for s in live if s["key"] in keys]
    if live and not found:
        raise SecretUnavailable("the identity secret was made with a server key that VITRINA_SECRET_KEY no longer holds")
    return found


def _add_seed(record, now):
    seed = {"seed": secrets.token_hex(32), "key": _fingerprint(current_app.config["VITRINA_SECRET_KEYS"][0]),
            "created_at": now, "expires_at": None}
    previous = [s for s in record["secrets"] if s["expires_at"] is None][:1]
    for old in previous:
        old["expires_at"] = now + ROTATION_GRACE_S
    record["secrets"] = [seed] + previous
    return record


def current_secret(site, rotate=False, now=None):
    """The secret merchants sign tokens with, made on first call (and again when the server key it
    was made with is gone); with rotate, a new one, the previous staying valid for
    ROTATION_GRACE_S. Returns (secret, when the previous one stops verifying, or None)."""
    now = time.time() if now is None else now
    record = load_record(site)
    current = next((s for s in record["secrets"] if s["expires_at"] is None), None)
    keys = _server_keys()
    if rotate or current is None or current["key"] not in keys:
        record = _add_seed(record, now)
        get_store().put_identity(site, json.dumps(record))
        current = record["secrets"][0]
    previous = [s["expires_at"] for s in record["secrets"][1:] if s["expires_at"] > now]
    return _derive(current["seed"], _server_keys()[current["key"]]), (previous[0] if previous else None)
