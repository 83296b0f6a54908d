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
    REVISION_SALT,
    SignatureInvalid,
    canonical_json,
    script_json,
    sign,
    verify,
)
from server.configs.validation import parse_config, review_config
from server.errors import APIError
from server.identity.customers import known_types
from server.predict.models import predict_warnings
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
        bundle = {k: v for k, v in base.bundle.items() if k != "revision"}  # a revision is not the version's
        return {**bundle, "version": version, "published_at": now,
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


REVISION_HEADER = ("site", "version", "revision", "made_at")  # every revision's; the rest are its parts


def publish_revision(site, parts):
    """Sign and store the site's next revision, for its latest version, without a new version:
    the parts of the latest revision when it was made for that version, with `parts` ({name:
    document}, a None document drops that part) over them. Announced like a publish, so every
    process serves it at once. Returns the revision number; None when nothing is published."""
    clash = set(parts) & set(REVISION_HEADER)
    if clash:
        raise ValueError(f"not a revision part: {sorted(clash)}")
    store = get_store()
    version = store.latest_version(site)
    if version is None:
        return None
    made_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def make_payload(number):
        before = store.get_revision(site)  # number - 1: read where the next number is allocated
        document = {}
        if before is not None and before[1] == version:
            document = {k: v for k, v in json.loads(before[2]).items() if k not in REVISION_HEADER}
        document.update(parts)
        document = {k: v for k, v in document.items() if v is not None}
        document.update(site=site, version=version, revision=number, made_at=made_at)
        payload = canonical_json(document)
        return version, payload, sign(payload, _keys(), REVISION_SALT), made_at

    number = store.add_revision(site, make_payload)
    latest_versions().announce(site)
    return number


def current_revision(site):
    """The document of the revision served now with the latest version (None: none)."""
    entry = latest(site, ask_store=True)
    return entry.revision.document if entry and entry.revision else None


class Revision:
    """A verified, immutable revision: `document` is {"site", "version", "revision", "made_at",
    and its parts ("allocations", ...)}, `signature` its signature (salt vitrina.revision)."""

    def __init__(self, site, document, signature):
        self.site, self.document, self.signature = site, document, signature
        self.number, self.version = document["revision"], document["version"]


class Version:
    """A verified, immutable bundle version, with the revision served with it if any, and what is
    served from them, computed once. `bundle` is what tag.js and bundle.json carry: the version's
    bundle, plus `"revision": <the revision's document>` when there is one; `signature` signs
    the version's bundle without that key, `revision.signature` the revision's document."""

    def __init__(self, site, bundle, signature, revision=None, meta=None):
        self.site, self.signature, self.revision = site, signature, revision
        self.meta = meta or {}
        self.bundle = bundle if revision is None else {**bundle, "revision": revision.document}
        self.version = bundle["version"]
        self.revision_number = revision and revision.number
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
    def served_as(self):
        """(version, revision number or None): what identifies every byte served from it."""
        return self.version, self.revision_number

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
            body = {"bundle": self.bundle, "signature": self.signature}
            if self.revision is not None:
                body["revision_signature"] = self.revision.signature
            self._json = script_json(body).encode()
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
        entry = cache.put((site, version), Version(site, json.loads(payload), signature,
                                                       meta=meta and json.loads(meta)))
        _known_at_least(site, entry)  # it exists, so the latest is this one or a later one
    return entry


def _load_revision(site, number):
    """The verified Revision `number` of the site, from the per-app cache or the store; None if
    there is none."""
    cache = app_cache("verified revisions", 1024, "nothing: a revision is immutable and its signature was checked "
                      "with the keys the server started with")
    entry = cache.get((site, number))
    if entry is None:
        store = get_store()
        row = store.outage.call(store.get_revision, site, number)
        if row is None:
            return None
        _, _, payload, signature, _ = row
        try:
            verify(payload, signature, _keys(), REVISION_SALT)
        except SignatureInvalid:
            current_app.logger.error("site %s revision %s: signature does not verify; serving its version without it",
                                     site, number)
            return None
        entry = cache.put((site, number), Revision(site, json.loads(payload), signature))
    return entry


def load_revision(site, number):
    """A verified revision's document (None: no such revision, or it does not verify)."""
    entry = _load_revision(site, number)
    return entry.document if entry else None


def _served(site, version, revision):
    """The Version served for (version, latest revision): with that revision when it was made for
    this version (a revision of an older version is not served once a newer version is out)."""
    base = _load(site, version)
    if base is None or revision is None:
        return base
    cache = app_cache("served versions", 1024, "nothing: keyed by a version and a revision, both immutable")
    entry = cache.get((site, version, revision))
    if entry is None:
        found = _load_revision(site, revision)
        if found is None or found.version != version:
            return base
        entry = cache.put((site, version, revision), Version(site, base.bundle, base.signature, found, base.meta))
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
    if before is not entry and (before is _MISSING or before is None or (entry and _order(entry) > _order(before))):
        newest.put(site, entry)


def _order(entry):
    return entry.version, entry.revision_number or 0


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
        version, revision = versions.read_served(site) if ask_store else versions.served(site)
        entry = None if version is None else _served(site, version, revision)
    except UNAVAILABLE:
        entry = _newest_known().get(site, _MISSING)
        if entry is _MISSING:
            raise
        if get_store().outage.away:
            versions.remember(site, *(entry.served_as if entry else (None, None)))
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
    """(bundle, signature) of the newest version, verified, with its revision (the bundle's
    `revision` key) when there is one; None if nothing is published."""
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
    review.warnings = review.warnings + predict_warnings(site, review.config)
    get_store().save_draft(site, json.dumps(review.config, separators=(",", ":")))
    version, _ = publish_draft(site, published_by)
    return FilePublished(warnings=review.warnings, version=version)
