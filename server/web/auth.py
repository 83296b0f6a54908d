"""Merchant API keys: random tokens, stored as SHA-256 hashes, each opening one site only."""
import functools
import hashlib
import hmac
import secrets

from flask import request

from server.errors import APIError
from server.store import get_store

KEY_PREFIX = "vk_"


def new_api_key():
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key):
    # Keys carry 256 random bits, so a fast hash is enough: no dictionary to attack.
    return hashlib.sha256(key.encode()).hexdigest()


def _bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(401, "unauthorized", "Send the site's API key as 'Authorization: Bearer <key>'.",
                       headers={"WWW-Authenticate": 'Bearer realm="vitrina"'})
    return token.strip()


def require_site_key(view):
    """Allow the request only with an API key of the site named in the URL."""

    @functools.wraps(view)
    def wrapper(site, *args, **kwargs):
        token = _bearer_token()
        owner = get_store().site_for_key_hash(hash_key(token)) if len(token) <= 200 else None
        if owner is None:
            raise APIError(401, "unauthorized", "This API key is not valid.",
                           headers={"WWW-Authenticate": 'Bearer realm="vitrina", error="invalid_token"'})
        if not hmac.compare_digest(owner.encode(), site.encode("utf-8", "surrogatepass")):
            # A valid key asking for a site that is not there: say so, rather than "not yours".
            if not get_store().site_exists(site):
                raise APIError(404, "site_not_found", f"There is no site '{site}'.")
            raise APIError(403, "forbidden", f"This API key does not open site '{site}'.")
        return view(site, *args, **kwargs)

    return wrapper
