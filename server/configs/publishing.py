"""Publishing, rollback, pausing and verified loading of the immutable, signed bundle versions.

Each version is stored with its meta (JSON beside the signed bundle, never served):
`published_by` ("api:<key name>", "user:<email>" from the workspace, "cli", "system"), a `note`
saying why when the system published it or for a rollback, and the settings kept out of the
bundle (compiler.PRIVATE_SETTINGS: `exclude_ips`)."""
import ipaddress
import json
from datetime import datetime, timezone
from pathlib import Path

from flask import current_app

from server.accounts import audit
from server.cache import app_cache
from server.configs.compiler import PRIVATE_SETTINGS, compile_bundle, private_settings
from server.configs.latest import LatestVersions
from server.configs.signing import (
    SignatureInvalid,
    canonical_json,
    script_json,
    sign,
    verify,
)
from server.configs.validation import parse_config, review_config
from server.errors import APIError
from server.identity.customers import known_types
from server.store import UNAVAILABLE, get_store, site_exists

_MISSING = object()


class VersionUnverifiable(APIError):
    """A stored version whose signature verifies with none of the secret keys (tampered with,
    or signed with a key since removed from VITRINA_SECRET_KEY): it is never served."""


def _keys():
    return current_app.config["VITRINA_SECRET_KEYS"]


SYSTEM = "system"  # published_by of what the server published on its own (auto_pause)


def publisher():
    """Who publishes now, for a version's `published_by`: the audit log's actor, an API key
    written `api:<key name>`."""
    actor = audit.actor()
    return "api:" + actor[len("key:"):] if actor.startswith("key:") else actor


def _store_signed(site, make_bundle, meta):
    def make_payload(version):
        bundle = make_bundle(version)
        payload = canonical_json(bundle)
        return payload, sign(payload, _keys()), bundle["published_at"]
    meta = {k: v for k, v in meta.items() if v}
    version = get_store().add_version(site, make_payload, json.dumps(meta, separators=(",", ":")) if meta else None)
    latest_versions().announce(site)
    return version


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish_draft(site, published_by=None):
    """Compile and sign the draft as the next version: (version, warnings). The draft was
    sanitised when saved; one saved before a sanitising rule existed is sanitised now, and
    the warnings say what that removed. `published_by` goes into the version's meta."""
    raw = get_store().get_draft(site)
    if raw is None:
        raise APIError(409, "no_draft", f"Site '{site}' has no draft config: PUT one to /api/v1/sites/{site}/config first.")
    review = review_config(json.loads(raw), known_types(site))
    if review.problems:
        raise APIError(400, "invalid_config", "The draft no longer validates; fix it and PUT it again.", review.problems)
    version = _store_signed(site, lambda version: compile_bundle(site, version, review.config),
                            {"published_by": published_by or publisher(), **private_settings(review.config)})
    return version, review.warnings


def rollback(site, version, published_by=None):
    """Publish version `version`'s bundle (and its private settings) again, as the next version."""
    old = _load(site, version)
    if old is None:
        raise APIError(404, "version_not_found", f"Site '{site}' has no version {version}.")
    now = _now()
    return _store_signed(site, lambda new: {**old.bundle, "version": new, "published_at": now,
                                            "rolled_back_from": version},
                         {"published_by": published_by or publisher(), "note": f"rollback to version {version}",
                          **old.private_settings})


def pause_campaign(site, key, note):
    """Publish the latest version without campaign `key` (as a paused campaign is compiled),
    attributed to the system, and mark it paused in the draft so that the merchant's next publish
    keeps it paused. The new version is built on whatever version is latest when it is stored.
    Returns the new version number, or None when the campaign is no longer live."""
    latest_entry = latest(site)
    if latest_entry is None or not any(c["key"] == key for c in latest_entry.bundle["campaigns"]):
        return None
    _pause_in_draft(site, key)
    now = _now()

    def paused(version):
        base = _load(site, version - 1) or latest_entry
        return {**base.bundle, "version": version, "published_at": now,
                "campaigns": [c for c in base.bundle["campaigns"] if c["key"] != key]}
    return _store_signed(site, paused, {"published_by": SYSTEM, "note": note, **latest_entry.private_settings})


def _pause_in_draft(site, key):
    raw = get_store().get_draft(site)
    config = json.loads(raw) if raw else None
    changed = False
    for campaign in (config or {}).get("campaigns", []):
        if campaign.get("key") == key and campaign.get("status", "live") == "live":
            campaign["status"] = "paused"
            changed = True
    if changed:
        get_store().save_draft(site, json.dumps(config, separators=(",", ":")))


class Version:
    """A verified, immutable bundle version and what is served from it, computed once."""

    def __init__(self, site, bundle, signature, meta=None):
        self.site, self.bundle, self.signature = site, bundle, signature
        self.meta = meta or {}
        self.version = bundle["version"]
        self._json = None
        self._literal = None
        self._networks = None

    @property
    def private_settings(self):
        """The settings stored with this version rather than in its bundle."""
        return {k: self.meta[k] for k in PRIVATE_SETTINGS if k in self.meta}

    @property
    def excluded_networks(self):
        """`settings.exclude_ips` as ip_network objects, parsed on first use."""
        if self._networks is None:
            self._networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in self.meta.get("exclude_ips", ()))
        return self._networks

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
    cache = app_cache("verified versions", 1024, "nothing: a published version is immutable and its signature "
                      "was checked with the keys the server started with")
    entry = cache.get((site, version))
    if entry is None:
        store = get_store()
        row = store.outage.call(store.get_version, site, version)
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
        meta = store.outage.call(store.version_meta, site, [row[0]]).get(row[0])
        entry = cache.put((site, version), Version(site, json.loads(payload), signature, meta and json.loads(meta)))
        _known_at_least(site, entry)  # it exists, so the latest is this one or a later one
    return entry


def _newest_known():
    return app_cache("newest known versions", 4096, "nothing: each entry only ever moves to a newer version; they "
                     "are what is served while the store cannot be asked")


def _known_at_least(site, entry):
    """Note `entry` (a Version, or None: nothing published) as the site's newest known version,
    unless a newer one is known: only ever forward, so a slow read finishing late, or collect
    verifying an older version, never brings back an older one."""
    newest = _newest_known()
    before = newest.get(site, _MISSING)
    if before is not entry and (before is _MISSING or before is None or (entry and entry.version > before.version)):
        newest.put(site, entry)


def latest_versions():
    """This app's LatestVersions, over the app's cache of them (made on first use, in the worker)."""
    return LatestVersions.of_app(get_store())


def latest(site, ask_store=False):
    """The newest Version, verified; None if nothing is published. No store read per call
    (`ask_store`: one whatever memory holds).

    Stale-if-error: when the store cannot be asked (unreachable, or asked lately in vain, or
    this is the event loop, which never waits on it), the newest Version this process knows of
    the site (served, or verified for collect); the store's error when it knows none. While the
    store is away, that Version stands as the latest until the token next moves, so memory
    answers without asking again."""
    versions = latest_versions()
    try:
        version = versions.read(site) if ask_store else versions.get(site)
        entry = None if version is None else _load(site, version)
    except UNAVAILABLE:
        entry = _newest_known().get(site, _MISSING)
        if entry is _MISSING:
            raise
        if get_store().outage.away:
            versions.remember(site, entry and entry.version)
        return entry
    if entry is None:
        _known_at_least(site, None)
    return entry


def in_memory(site):
    """Whether the site's latest version is known without asking the store (the event loop's test)."""
    return latest_versions().known(site)


def refresh(site):
    """Read what serving the site needs into memory: whether it exists, its latest version, that
    version verified. Store reads, bounded by the store's timeout (never on the event loop); while
    the store is away, the one that finds out whether it is back, when one is due."""
    if site_exists(site):
        latest(site, ask_store=True)


def load_latest(site):
    """(bundle, signature) of the newest version, verified; None if nothing is published."""
    entry = latest(site)
    return (entry.bundle, entry.signature) if entry else None


def load_version(site, version):
    """A verified version's bundle; from memory once seen, so collect can verify events while
    the store is unreachable."""
    entry = _load(site, version)
    return entry.bundle if entry else None


class PublishFileError(Exception):
    """The file cannot be published for a reason other than its content (no such site, unreadable)."""


class FilePublished:
    """`problems` (nothing published), else `version` and `warnings` (what sanitising removed)."""

    def __init__(self, problems=(), warnings=(), version=None):
        self.problems, self.warnings, self.version = list(problems), list(warnings), version


def publish_file(site, path, published_by="cli"):
    """Validate, save and publish a config file (the CLI's `publish`)."""
    if not get_store().site_exists(site):
        raise PublishFileError(f"no site {site!r}: run 'vitrina sites create {site}' first")
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise PublishFileError(f"cannot read {path}: {e.strerror}") from None
    config, problems = parse_config(raw)
    if problems:
        return FilePublished(problems)
    review = review_config(config, known_types(site))
    if review.problems:
        return FilePublished(review.problems)
    get_store().save_draft(site, json.dumps(review.config, separators=(",", ":")))
    version, _ = publish_draft(site, published_by)
    return FilePublished(warnings=review.warnings, version=version)
