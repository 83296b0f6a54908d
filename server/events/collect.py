"""Ingesting a validated `collect` batch: verify against the published versions, record,
count rejections. Used by the endpoint and by the spool replayer alike."""
import json
import time
from collections import Counter

from flask import current_app

from server.cache import app_cache
from server.configs import publishing
from server.events.batch import UNVERIFIABLE, out_of_window, verify_against_bundles
from server.events.days import day_of
from server.events.slices import covariates, segment_names, visitor_slices
from server.recs.signals import interaction_rows
from server.store import UNAVAILABLE, get_store, site_exists
from server.store.base import WEB, assignment_label
from server.wire.ids import ORDER_ID_RE

ALONE = frozenset({"value", "stale", "future"})  # problems that refuse their event alone: the rest stands
RETRYABLE = "unverifiable_version"  # fixed by configuring the server's keys again, not by the sender


class EventsRejected(Exception):
    """The batch is refused whole: nothing of it was recorded, nor counted as a rejection yet
    (the caller counts `counts()` once the refusal is final)."""

    def __init__(self, problems):
        super().__init__("events rejected")
        self.problems = problems
        # replaying a spooled batch again would not change the answer, unless the only problem
        # is a version this server cannot verify (a secret key removed too early)
        self.permanent = any(p["code"] != RETRYABLE for p in problems)

    def counts(self):
        """{reason: events} for the rejection counters (a batch for no site is counted nowhere)."""
        return Counter(p["code"] for p in self.problems if p["code"] != "unknown_site")


def count_rejections(site, counts):
    store = get_store()
    try:
        store.outage.call(store.count_rejections, site, counts, probe=False)
    except UNAVAILABLE as e:  # best effort: a refused batch must not turn into a 500
        current_app.logger.warning("could not count rejections for %s: %s", site, e)


def _load_verified(site):
    def load(version):
        try:
            return publishing.load_version(site, version)
        except publishing.VersionUnverifiable:
            return UNVERIFIABLE
    return load


def count_exclusions(site, counts):
    store = get_store()
    try:
        store.outage.call(store.count_exclusions, site, counts, probe=False)
    except UNAVAILABLE as e:  # best effort, as rejections
        current_app.logger.warning("could not count exclusions for %s: %s", site, e)


def ingest(site, visitor_id, events, facts=None, customer=None, probe=False, received_at=None):
    """Verify and record one batch, received at `received_at` (seconds; now by default). Returns
    the problems of the events refused alone (a value outside the site's bounds, a `ts` outside
    the window around the receipt; counted here, the rest recorded), or raises EventsRejected
    (nothing recorded). The store being unreachable raises one of UNAVAILABLE: at once while it
    is known to be away, unless `probe` (the spool's replayer) lets this call find out.

    `facts` are the request's own (server/events/traffic.py: device, country, an exclusion); a
    batch from an excluded request (a bot, an excluded address) is only counted as excluded.

    `customer`: the customer key of the batch's verified identity. Then the exposures of
    customer-bucketed campaigns are recorded under it (results count customers), every counted
    conversion is recorded under it too (id + ":c", so it reaches the customer's assignments:
    customer campaigns and email), and the visitor is linked to the customer (for erasure)."""
    if not site_exists(site):
        raise EventsRejected([{"path": "", "message": f"there is no site '{site}'", "code": "unknown_site"}])
    facts = facts or {}
    if facts.get("excluded"):
        count_exclusions(site, {facts["excluded"]: len(events)})
        return []
    compiled = app_cache("compiled bundles", 64, "nothing: keyed by the (immutable) bundle object each entry holds")
    load = _load_verified(site)
    customer_events = []
    problems = verify_against_bundles(events, visitor_id, load, compiled, customer, customer_events,
                                      lambda number: publishing.load_revision(site, number))
    untimely = out_of_window(events, time.time() if received_at is None else received_at)
    if untimely:  # one problem per event: its time refuses it, whatever else is wrong with it
        paths = {p["path"] for p in untimely}
        problems = untimely + [p for p in problems if _event_path(p["path"]) + "/ts" not in paths]
    alone = [p for p in problems if p["code"] in ALONE]
    if len(alone) < len(problems) or len(alone) == len(events):
        raise EventsRejected(problems)
    refused = {int(p["path"].split("/")[2]) for p in alone}
    by_customer = {id(events[i]) for i in customer_events}
    if alone:
        events = [e for i, e in enumerate(events) if i not in refused]
    store = get_store()  # through its outage guard: while it is away, a request's batch spools at once
    # internal traffic and QA previews never reach results nor recommendations
    excluded = Counter("internal" if e.get("internal") else "forced" for e in events
                       if e.get("internal") or e.get("forced"))
    events = [e for e in events if not (e.get("internal") or e.get("forced"))]
    signals = [e for e in events if e["type"] == "item"]
    if signals:  # recommendation signals (server/recs), apart from results' events
        events = [e for e in events if e["type"] != "item"]
        store.outage.call(store.record_interactions, site, interaction_rows(visitor_id, signals), probe=probe)
    for event in events:
        if "order_id" in event:
            _read_order_id(event)
    if events:
        zones, now = {}, time.time()
        for event, body in zip(events, _bodies(events)):
            event["_json"] = body
            version = event["version"]
            zone = zones.get(version) or zones.setdefault(version, _zone_of(site, version))
            event["_day"] = day_of(event["ts"], zone, now)
            if "slice" in event and event["type"] == "exposure" and _adaptive(site, event):
                # kept with the assignment, so every counter it feeds is per allocation slice and
                # revision (adaptive allocation's slice: not a results breakdown slice, `_slices`)
                event["channel"] = assignment_label(WEB, event.get("revision"), event["slice"])  # collect is web
        _add_slices(events, load, facts)
        store.outage.call(_record, store, site, visitor_id, events, customer, by_customer, probe=probe)
        features = feature_rows(events)
        if features:
            store.outage.call(store.record_features, site, visitor_id, features, probe=probe)
    if alone:
        count_rejections(site, Counter(p["code"] for p in alone))
    if excluded:
        count_exclusions(site, excluded)
    return alone


def _add_slices(events, load, facts):
    """Each exposure's `_slices` (its results breakdown values) and `_pre`, for the assignment it
    may make (Store.slice_counters)."""
    versions, made = {}, {}
    for event in events:
        if event["type"] != "exposure":
            continue
        found = versions.get(event["version"])
        if found is None:
            found = versions[event["version"]] = _slicing(load(event["version"]))  # verified above: cached
        campaigns, names = found
        campaign, pre = campaigns[event["campaign"]], event.get("pre")
        # a batch's exposures mostly carry the same claims: their slices are made once (one list, shared)
        claims = (event["version"], campaign.get("segment"), event.get("segments"), event.get("acquisition"),
                  None if pre is None else tuple(pre))
        if claims not in made:
            made[claims] = visitor_slices(event, campaign, names, facts)
        event["_slices"] = made[claims]
        event["_pre"] = covariates(event)


def _slicing(bundle):
    """({campaign key: campaign}, segment names) of a bundle, made once per bundle object."""
    cache = app_cache("slicing", 64, "nothing: keyed by the (immutable) bundle object each entry holds")
    found = cache.get(id(bundle))
    if found is None or found[0] is not bundle:  # the entry holds its bundle: the id is not reused meanwhile
        found = cache.put(id(bundle), (bundle, {c["key"]: c for c in bundle["campaigns"]}, segment_names(bundle)))
    return found[1:]


def _event_path(path):
    """"/events/<i>" of a problem's JSON pointer into an event."""
    return "/".join(path.split("/")[:3])


def feature_rows(events):
    """Store.record_features rows of the events that carry the predict module's feature vector."""
    return [{"id": e["id"], "kind": e["type"], "goal": e.get("goal"), "ts": e["ts"],
             "features": _compact(e["features"])} for e in events if "features" in e]


def _read_order_id(event):
    """An integer order id is its decimal digits; any other value that is not an order id of
    ids.schema.json is dropped: the conversion counts, without an order."""
    order_id = event["order_id"]
    if type(order_id) is int:
        order_id = event["order_id"] = str(order_id)
    if type(order_id) is not str or not ORDER_ID_RE.match(order_id):
        del event["order_id"]


def _record(store, site, visitor_id, counted, customer, by_customer):
    if customer is None:
        store.record_events(site, visitor_id, counted)
        return
    store.link_visitor(site, customer, visitor_id)
    own = [e for e in counted if e["type"] == "conversion" or id(e) in by_customer]
    store.record_events(site, visitor_id, [e for e in counted if id(e) not in by_customer])
    store.record_events(site, customer, [{**e, "id": e["id"] + ":c"} if e["type"] == "conversion" else e
                                         for e in own])


def _adaptive(site, event):
    """Whether the exposure's campaign is adaptive in the version it names (verified a moment ago)."""
    bundle = publishing.load_version(site, event["version"]) or {}
    return any(c["key"] == event["campaign"] and c.get("allocation") for c in bundle.get("campaigns") or [])


def _zone_of(site, version):
    """The version's settings.timezone (verified and cached: ingest verified it a moment ago)."""
    bundle = publishing.load_version(site, version)
    return (bundle or {}).get("settings", {}).get("timezone") or "UTC"


_compact = json.JSONEncoder(separators=(",", ":")).encode


def _bodies(events):
    """Each event's compact JSON, as json.dumps(event, separators=(",", ":")) gives it, from one
    encoding of the whole list: a list's elements encode exactly as they do alone, and validated
    events hold no "},{" (strings are ids and keys), so it splits them apart; anything else
    (a count that does not add up) is encoded event by event."""
    for event in events:
        for field in ("_json", "_day", "_slices", "_pre"):  # a batch replayed from the spool carries what it was given
            event.pop(field, None)
    # the feature vector is kept apart (Store.record_features), not in the event log
    bare = [e if "features" not in e else {k: v for k, v in e.items() if k != "features"} for e in events]
    parts = _compact(bare)[2:-2].split("},{")
    if len(parts) != len(events):
        return [_compact(event) for event in bare]
    return ["{" + part + "}" for part in parts]
