"""Ingesting a validated `collect` batch: verify against the published versions, record,
count rejections. Used by the endpoint and by the spool replayer alike."""
import json
from collections import Counter

from flask import current_app

from server.configs import publishing
from server.events.batch import verify_against_bundles
from server.recs.signals import interaction_rows
from server.store import UNAVAILABLE, get_store, site_exists


class EventsRejected(Exception):
    permanent = True  # replaying the batch again would not change the answer

    def __init__(self, problems):
        super().__init__("events rejected")
        self.problems = problems


def count_rejections(site, counts):
    try:
        get_store().count_rejections(site, counts)
    except UNAVAILABLE as e:  # best effort: a refused batch must not turn into a 500
        current_app.logger.warning("could not count rejections for %s: %s", site, e)


def ingest(site, visitor_id, events):
    """Verify and record one batch; EventsRejected lists the problems (nothing recorded)."""
    if not site_exists(site):
        raise EventsRejected([{"path": "", "message": f"there is no site '{site}'", "code": "unknown_site"}])
    problems = verify_against_bundles(events, visitor_id, lambda version: publishing.load_version(site, version))
    if problems:
        count_rejections(site, Counter(p["code"] for p in problems))
        raise EventsRejected(problems)
    signals = [e for e in events if e["type"] == "item"]
    if signals:  # recommendation signals (server/recs), apart from results' events
        events = [e for e in events if e["type"] != "item"]
        signals = [e for e in signals if not e.get("forced")]
        if signals:
            get_store().record_interactions(site, interaction_rows(visitor_id, signals))
    counted = [e for e in events if not e.get("forced")]  # QA previews never reach results
    if counted:
        for event, body in zip(counted, _bodies(counted)):
            event["_json"] = body
        get_store().record_events(site, visitor_id, counted)


_compact = json.JSONEncoder(separators=(",", ":")).encode


def _bodies(events):
    """Each event's compact JSON, as json.dumps(event, separators=(",", ":")) gives it, from one
    encoding of the whole list: a list's elements encode exactly as they do alone, and validated
    events hold no "},{" (strings are ids and keys), so it splits them apart; anything else
    (a count that does not add up) is encoded event by event."""
    for event in events:
        event.pop("_json", None)  # a batch replayed from the spool carries the bodies it was given
    parts = _compact(events)[2:-2].split("},{")
    if len(parts) != len(events):
        return [_compact(event) for event in events]
    return ["{" + part + "}" for part in parts]
