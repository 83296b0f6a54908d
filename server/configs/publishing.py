"""Publishing, rollback and verified loading of the immutable, signed bundle versions."""
import json
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app

from server.configs.compiler import compile_bundle
from server.configs.latest import LatestVersions
from server.configs.signing import (
    SignatureInvalid,
    canonical_json,
    script_json,
    sign,
    verify,
)
from server.configs.validation import parse_config, validate_config
from server.errors import APIError
from server.store import get_store


class VersionUnverifiable(APIError):
    """A stored version whose signature verifies with none of the secret keys (tampered with,
    or signed with a key since removed from VITRINA_SECRET_KEY): it is never served."""


def _keys():
    return current_app.config["VITRINA_SECRET_KEYS"]


def _store_signed(site, make_bundle):
    def make_payload(version):
        bundle = make_bundle(version)
        payload = canonical_json(bundle)
        return payload, sign(payload, _keys()), bundle["published_at"]
    version = get_store().add_version(site, make_payload)
    latest_versions().announce(site)
    return version


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


class Version:
    """A verified, immutable bundle version and what is served from it, computed once."""

    def __init__(self, site, bundle, signature):
        self.site, self.bundle, self.signature = site, bundle, signature
        self.version = bundle["version"]
        self._json = None
        self._literal = None

    @property
    def bundle_literal(self):
        """The bundle as a script-safe JSON literal (inside tag.js), built on first use."""
        if self._literal is None:
            self._literal = script_json(self.bundle).encode()
        return self._literal

    @property
    def json_body(self):
        """The bytes of bundle.json, built on first use."""
        if self._json is None:
            self._json = script_json({"bundle": self.bundle, "signature": self.signature}).encode()
        return self._json


def _load(site, version):
    """The verified Version, from the per-app cache or the store; None if there is none.
    Versions are immutable, so a version verified once stays verified; each process
    verifies each version it serves once."""
    cache = current_app.extensions.setdefault("vitrina_versions", {})
    entry = cache.get((site, version))
    if entry is None:
        row = get_store().get_version(site, version)
        if row is None:
            return None
        _, payload, signature, _ = row
        try:
            verify(payload, signature, _keys())
        except SignatureInvalid:
            current_app.logger.error("site %s version %s: bundle signature does not verify; refusing to serve it",
                                     site, version)
            raise VersionUnverifiable(503, "bundle_signature_invalid",
                           f"Version {version} of site '{site}' failed signature verification and is not served.") from None
        entry = Version(site, json.loads(payload), signature)
        if len(cache) > 1024:
            cache.clear()
        cache[(site, version)] = entry
    return entry


def latest_versions():
    """This app's LatestVersions memo (made on first use, after gunicorn forked the worker)."""
    watch = current_app.extensions.get("vitrina_latest")
    if watch is None:
        watch = current_app.extensions["vitrina_latest"] = LatestVersions(get_store())
    return watch


def latest(site):
    """The newest Version, verified; None if nothing is published. No store read per call."""
    version = latest_versions().get(site)
    return None if version is None else _load(site, version)


def load_latest(site):
    """(bundle, signature) of the newest version, verified; None if nothing is published."""
    entry = latest(site)
    return (entry.bundle, entry.signature) if entry else None


def load_version(site, version):
    """A verified version's bundle; from memory once seen, so collect can verify events while
    the store is unreachable."""
    entry = _load(site, version)
    return entry.bundle if entry else None


def publish_file(site, path):
    """Validate, save and publish a config file (the CLI's `publish`): (True, version) or (False, problems)."""
    if not get_store().site_exists(site):
        return False, [{"path": "", "message": f"no site {site!r}: run 'vitrina sites create {site}' first"}]
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        return False, [{"path": "", "message": f"cannot read the file: {e.strerror}"}]
    config, problems = parse_config(raw)
    problems = problems or validate_config(config)
    if problems:
        return False, problems
    get_store().save_draft(site, json.dumps(config, separators=(",", ":")))
    return True, publish_draft(site)
