"""Ingesting a validated `collect` batch: verify against the published versions, record,
count rejections. Used by the endpoint and by the spool replayer alike."""
import json
import time
from collections import Counter

from flask import current_app

from . import bundles
from .events import verify_against_bundles
from .store import UNAVAILABLE, get_store

SITE_CACHE_S = 60


class EventsRejected(Exception):
    permanent = True  # replaying the batch again would not change the answer

    def __init__(self, problems):
        super().__init__("events rejected")
        self.problems = problems


def site_exists(site):
    """Whether the site exists, remembered for a minute so a store outage does not turn
    known sites into 404s."""
    _known_sites = current_app.extensions.setdefault("vitrina_known_sites", {})  # site -> known until
    if _known_sites.get(site, 0) > time.monotonic():
        return True
    exists = get_store().site_exists(site)
    if exists:
        _known_sites[site] = time.monotonic() + SITE_CACHE_S
    return exists


def count_rejections(site, counts):
    try:
        get_store().count_rejections(site, counts)
    except UNAVAILABLE as e:  # best effort: a refused batch must not turn into a 500
        current_app.logger.warning("could not count rejections for %s: %s", site, e)


def ingest(site, visitor_id, events):
    """Verify and record one batch; EventsRejected lists the problems (nothing recorded)."""
    if not site_exists(site):
        raise EventsRejected([{"path": "", "message": f"there is no site '{site}'", "code": "unknown_site"}])
    problems = verify_against_bundles(events, visitor_id, lambda version: bundles.load_version(site, version))
    if problems:
        count_rejections(site, Counter(p["code"] for p in problems))
        raise EventsRejected(problems)
    counted = [e for e in events if not e.get("forced")]  # QA previews never reach results
    for event in counted:
        event["_json"] = json.dumps({k: v for k, v in event.items() if k != "_json"}, separators=(",", ":"))
    if counted:
        get_store().record_events(site, visitor_id, counted)
