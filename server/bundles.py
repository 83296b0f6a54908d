"""Publishing, rollback and verified loading of the immutable, signed bundle versions."""
import json
from datetime import datetime, timezone
from functools import lru_cache

from flask import current_app

from .compiler import compile_bundle
from .errors import APIError
from .signing import SignatureInvalid, canonical_json, sign, verify
from .store import get_store
from .validation import validate_config


def _keys():
    return current_app.config["VITRINA_SECRET_KEYS"]


def _store_signed(site, make_bundle):
    def make_payload(version):
        bundle = make_bundle(version)
        payload = canonical_json(bundle)
        return payload, sign(payload, _keys()), bundle["published_at"]
    return get_store().add_version(site, make_payload)


def publish_draft(site):
    raw = get_store().get_draft(site)
    if raw is None:
        raise APIError(409, "no_draft", f"Site '{site}' has no draft config: PUT one to /api/v1/sites/{site}/config first.")
    config = json.loads(raw)
    problems = validate_config(config)
    if problems:
        raise APIError(400, "invalid_config", "The draft no longer validates; fix it and PUT it again.", problems)
    return _store_signed(site, lambda version: compile_bundle(site, version, config))


def rollback(site, version):
    old = load_version(site, version)
    if old is None:
        raise APIError(404, "version_not_found", f"Site '{site}' has no version {version}.")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _store_signed(site, lambda new: {**old, "version": new, "published_at": now, "rolled_back_from": version})


@lru_cache(maxsize=256)
def _verified(payload, signature, keys):
    # Versions are immutable: a (payload, signature) pair verified once stays verified.
    verify(payload, signature, list(keys))
    return json.loads(payload)


def _checked(site, row):
    if row is None:
        return None
    version, payload, signature, _ = row
    try:
        return _verified(payload, signature, tuple(_keys()))
    except SignatureInvalid:
        current_app.logger.error("site %s version %s: bundle signature does not verify; refusing to serve it", site, version)
        raise APIError(503, "bundle_signature_invalid",
                       f"Version {version} of site '{site}' failed signature verification and is not served.") from None


def load_latest(site):
    """(bundle, signature) of the newest version, verified; None if nothing is published."""
    row = get_store().get_version(site)
    bundle = _checked(site, row)
    return (bundle, row[2]) if bundle is not None else None


def load_version(site, version):
    """A verified version; served from memory once seen, so collect can verify events while
    the store is unreachable."""
    # (site, version) -> verified bundle, per app: versions are immutable, so it never goes stale
    _versions = current_app.extensions.setdefault("vitrina_versions", {})
    cached = _versions.get((site, version))
    if cached is None:
        cached = _checked(site, get_store().get_version(site, version))
        if cached is not None:
            if len(_versions) > 4096:
                _versions.clear()
            _versions[(site, version)] = cached
    return cached
