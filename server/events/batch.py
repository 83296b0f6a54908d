"""Validation of `collect` batches: shape and bounds first, then each event against the
published bundle version it names. A batch with any problem is refused whole."""
import json
import math
import re

from server.catalog.products import ITEM_ID_RE, ITEM_ID_RULE
from server.decisions.bucketing import _utf8, hash, hash_from, seed_state
from server.decisions.decide import choose_variation

ID_RE = re.compile(r"^[A-Za-z0-9_.-]{8,64}\Z")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
MAX_EVENTS = 100
MAX_VALUE = 1e9
MIN_TS, MAX_TS = 1_500_000_000_000, 4_100_000_000_000  # 2017 .. 2099, in ms
EVENT_FIELDS = {
    "exposure": {"id", "type", "version", "ts", "campaign", "variation", "holdout", "forced"},
    "conversion": {"id", "type", "version", "ts", "goal", "value", "forced"},
    # a recommendation signal (server/recs): it names no campaign, so its version is optional, unchecked
    "item": {"id", "type", "version", "ts", "action", "items", "session", "forced"},
}
ITEM_ACTIONS = ("view", "cart", "purchase")
MAX_EVENT_ITEMS = 20
MAX_SESSION = 10**9


class BatchInvalid(ValueError):
    def __init__(self, message, details):
        super().__init__(message)
        self.details = details


def parse_batch(raw):
    """(visitor_id, events) from the raw body, or BatchInvalid listing every problem."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BatchInvalid("The body is not valid JSON.", []) from None
    # Fast path: a well-formed batch is accepted by _valid_batch alone, which accepts nothing
    # the full checks below would refuse; anything else takes the full checks for its reasons.
    if type(body) is dict and _valid_batch(body):
        return body["visitor_id"], body["events"]
    return _checked_batch(body)


def _checked_batch(body):
    if not isinstance(body, dict):
        raise BatchInvalid("The body must be a JSON object {visitor_id, events}.", [])
    problems = []
    visitor_id = body.get("visitor_id")
    if not isinstance(visitor_id, str) or not ID_RE.match(visitor_id):
        problems.append(_p("/visitor_id", "must be 8 to 64 characters of A-Z a-z 0-9 _ . -"))
    extra = set(body) - {"visitor_id", "events"}
    if extra:
        problems.append(_p("", f"unknown fields: {', '.join(sorted(extra))}"))
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        problems.append(_p("/events", f"must be a list of 1 to {MAX_EVENTS} events"))
        events = []
    seen = set()
    for i, event in enumerate(events):
        problems.extend(_check_event(event, f"/events/{i}", seen))
    if problems:
        raise BatchInvalid("The batch has invalid events; nothing was recorded.", problems)
    return visitor_id, events


def _p(path, message):
    return {"path": path, "message": message}


_id_ok = ID_RE.match
_name_ok = NAME_RE.match
_BATCH_FIELDS = frozenset(("visitor_id", "events"))
_EXPOSURE_FIELDS = frozenset(EVENT_FIELDS["exposure"])
_CONVERSION_FIELDS = frozenset(EVENT_FIELDS["conversion"])
_ITEM_FIELDS = frozenset(EVENT_FIELDS["item"])
_ITEM_ACTIONS = frozenset(ITEM_ACTIONS)
_item_id_ok = ITEM_ID_RE.match


def _valid_batch(body):
    """True when the batch passes every check of _checked_batch (exact types, as json.loads
    makes them); False means "not sure", never "invalid"."""
    visitor_id, events = body.get("visitor_id"), body.get("events")
    if not (body.keys() <= _BATCH_FIELDS and type(visitor_id) is str and _id_ok(visitor_id)
            and type(events) is list and 1 <= len(events) <= MAX_EVENTS):
        return False
    seen = set()
    for e in events:
        if type(e) is not dict:
            return False
        get = e.get
        event_id, ts, forced = get("id"), get("ts"), get("forced", False)
        if not (type(event_id) is str and _id_ok(event_id) and event_id not in seen
                and type(ts) is int and MIN_TS <= ts <= MAX_TS and (forced is False or forced is True)):
            return False
        seen.add(event_id)
        kind, version = get("type"), get("version")
        if kind == "exposure":
            campaign, variation, holdout = get("campaign"), get("variation"), get("holdout", False)
            if not (type(version) is int and 1 <= version <= 1_000_000_000
                    and e.keys() <= _EXPOSURE_FIELDS and type(campaign) is str and _name_ok(campaign)
                    and (variation is None if holdout is True
                         else holdout is False and type(variation) is str and _name_ok(variation))):
                return False
        elif kind == "conversion":
            goal, value = get("goal"), get("value", 0)
            if not (type(version) is int and 1 <= version <= 1_000_000_000
                    and e.keys() <= _CONVERSION_FIELDS and type(goal) is str and _name_ok(goal)
                    and (type(value) is int or type(value) is float) and -MAX_VALUE <= value <= MAX_VALUE):
                return False
        elif kind == "item":
            action, items, session = get("action"), get("items"), get("session", 0)
            if not (e.keys() <= _ITEM_FIELDS and type(action) is str and action in _ITEM_ACTIONS
                    and type(items) is list
                    and ("version" not in e or type(version) is int and 1 <= version <= 1_000_000_000)
                    and 1 <= len(items) <= MAX_EVENT_ITEMS
                    and all(type(i) is str and _item_id_ok(i) for i in items)
                    and type(session) is int and 0 <= session <= MAX_SESSION):
                return False
        else:
            return False
    return True


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_event(event, at, seen):
    if not isinstance(event, dict):
        return [_p(at, "must be an object")]
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in EVENT_FIELDS:
        return [_p(at + "/type", "must be 'exposure', 'conversion' or 'item'")]
    problems = []
    extra = set(event) - EVENT_FIELDS[kind]
    if extra:
        problems.append(_p(at, f"unknown fields: {', '.join(sorted(extra))}"))
    if not isinstance(event.get("id"), str) or not ID_RE.match(event["id"]):
        problems.append(_p(at + "/id", "must be 8 to 64 characters of A-Z a-z 0-9 _ . -"))
    elif event["id"] in seen:
        problems.append(_p(at + "/id", "the same id appears twice in the batch"))
    else:
        seen.add(event["id"])
    if (kind != "item" or "version" in event) and (not _is_int(event.get("version"))
                                                   or not 1 <= event["version"] <= 10**9):
        problems.append(_p(at + "/version", "must be a published bundle version (integer)"))
    if not _is_int(event.get("ts")) or not MIN_TS <= event["ts"] <= MAX_TS:
        problems.append(_p(at + "/ts", "must be a time in milliseconds since 1970"))
    if not isinstance(event.get("forced", False), bool):
        problems.append(_p(at + "/forced", "must be a boolean"))
    if kind == "exposure":
        problems.extend(_check_exposure(event, at))
    elif kind == "conversion":
        problems.extend(_check_conversion(event, at))
    else:
        problems.extend(_check_item(event, at))
    return problems


def _check_exposure(event, at):
    problems = []
    if not isinstance(event.get("campaign"), str) or not NAME_RE.match(event["campaign"]):
        problems.append(_p(at + "/campaign", "must be a campaign key"))
    holdout = event.get("holdout", False)
    if not isinstance(holdout, bool):
        problems.append(_p(at + "/holdout", "must be a boolean"))
    elif holdout and event.get("variation") is not None:
        problems.append(_p(at + "/variation", "must be null for a holdout exposure"))
    elif not holdout and (not isinstance(event.get("variation"), str) or not NAME_RE.match(event["variation"])):
        problems.append(_p(at + "/variation", "must be a variation key"))
    return problems


def _check_conversion(event, at):
    problems = []
    if not isinstance(event.get("goal"), str) or not NAME_RE.match(event["goal"]):
        problems.append(_p(at + "/goal", "must be a goal key"))
    value = event.get("value", 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or abs(value) > MAX_VALUE:
        problems.append(_p(at + "/value", f"must be a finite number of at most {MAX_VALUE:.0e} in size"))
    return problems


def _check_item(event, at):
    problems = []
    if event.get("action") not in ITEM_ACTIONS:
        problems.append(_p(at + "/action", f"must be one of {', '.join(ITEM_ACTIONS)}"))
    items = event.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENT_ITEMS:
        problems.append(_p(at + "/items", f"must be a list of 1 to {MAX_EVENT_ITEMS} product ids"))
    else:
        problems.extend(_p(f"{at}/items/{i}", f"must be a product id: {ITEM_ID_RULE}")
                        for i, item in enumerate(items) if not isinstance(item, str) or not ITEM_ID_RE.match(item))
    session = event.get("session", 0)
    if not _is_int(session) or not 0 <= session <= MAX_SESSION:
        problems.append(_p(at + "/session", f"must be an integer from 0 to {MAX_SESSION}"))
    return problems


STICKY_LOOKBACK = 20  # earlier versions searched for a sticky assignment made under other weights


def _p_code(path, message, code):
    return {"path": path, "message": message, "code": code}


def bucketed_assignment(bundle, campaign, visitor_id):
    """(in_holdout, variation key or None outside traffic) as decide() computes them."""
    in_holdout = hash(f"holdout:{bundle['site']}", visitor_id) < (bundle["settings"].get("holdout") or 0)
    chosen = choose_variation(campaign, hash(campaign["seed"], visitor_id))
    return in_holdout, chosen["key"] if chosen else None


class _Campaign:
    """What checking an exposure needs from one campaign of a bundle, computed once: its
    variation keys, the FNV-1a state of its seed and choose_variation's thresholds."""
    __slots__ = ("campaign", "seed", "keys", "state", "traffic", "thresholds", "last")

    def __init__(self, campaign):
        self.campaign = campaign
        self.seed = campaign["seed"]
        self.state = seed_state(self.seed)
        variations = campaign.get("variations") or []
        self.keys = frozenset(v["key"] for v in variations)
        # the same float operations, in the same order, as decision.choose_variation
        self.traffic = 1 if campaign.get("traffic") is None else campaign.get("traffic")
        total, self.thresholds = 0, []
        for variation in variations:
            total += variation.get("weight") or 0
            self.thresholds.append((total * self.traffic, variation["key"]))
        self.last = variations[-1]["key"] if variations else None

    def variation(self, bucket):
        """choose_variation(campaign, bucket)["key"], None outside traffic."""
        if not bucket < self.traffic:
            return None
        for threshold, key in self.thresholds:
            if bucket < threshold:
                return key
        return self.last


class _Bundle:
    """A bundle as verification reads it, built once per bundle object (versions are
    immutable; the cache holds the bundle, so its id cannot be reused while cached)."""
    __slots__ = ("bundle", "goals", "campaigns", "holdout_state", "holdout")

    def __init__(self, bundle):
        self.bundle = bundle
        self.goals = bundle["goals"]
        self.campaigns = {c["key"]: _Campaign(c) for c in bundle["campaigns"]}
        self.holdout_state = seed_state(f"holdout:{bundle['site']}")
        self.holdout = bundle["settings"].get("holdout") or 0


_compiled = {}  # id(bundle) -> _Bundle


def _bundle(bundle):
    found = _compiled.get(id(bundle))
    if found is None or found.bundle is not bundle:
        if len(_compiled) > 64:
            _compiled.clear()
        found = _compiled[id(bundle)] = _Bundle(bundle)
    return found


class _Buckets:
    """One visitor's buckets for one batch: each seed (and the holdout) hashed once."""
    __slots__ = ("id_utf8", "memo")

    def __init__(self, visitor_id):
        self.id_utf8 = _utf8(visitor_id)
        self.memo = {}

    def __call__(self, state):
        bucket = self.memo.get(state)
        if bucket is None:
            bucket = self.memo[state] = hash_from(state, self.id_utf8)
        return bucket

    def assignment(self, compiled, campaign):
        """bucketed_assignment(compiled.bundle, campaign.campaign, visitor_id)."""
        return self(compiled.holdout_state) < compiled.holdout, campaign.variation(self(campaign.state))


def _consistent(event, buckets, compiled, campaign, load_bundle):
    """Whether the reported assignment is what bucketing gives, in this version or, for a
    sticky assignment, in an earlier version of the same campaign (same seed)."""
    wanted = (True, None) if event.get("holdout") else (False, event["variation"])
    for version in range(event["version"], max(0, event["version"] - STICKY_LOOKBACK), -1):
        older = compiled if version == event["version"] else load_bundle(version)
        if older is None:
            break
        if older is not compiled:
            older = _bundle(older)
        past = older.campaigns.get(event["campaign"])
        if not past or past.seed != campaign.seed:
            break
        in_holdout, variation = buckets.assignment(older, past)
        if variation is not None and (in_holdout, None if in_holdout else variation) == wanted:
            return True
    return False


def verify_against_bundles(events, visitor_id, load_bundle):
    """Problems (with a `code` for the rejection counters) for exposures and conversions naming an unknown
    version, campaign, variation or goal, or an assignment bucketing would not give.
    load_bundle(version) returns the bundle dict or None. Forced (QA) events are not checked:
    they are never counted."""
    problems = []
    versions = {}  # version -> (_Bundle, visitor in its holdout) or None: each loaded once per batch
    buckets = _Buckets(visitor_id)
    memo, id_utf8 = buckets.memo, buckets.id_utf8
    for i, event in enumerate(events):
        if event["type"] == "item":
            continue  # a recommendation signal names no campaign nor goal: nothing to verify
        version = event["version"]
        found = versions.get(version, versions)
        if found is versions:
            bundle = load_bundle(version)
            if bundle is None:
                found = None
            else:
                compiled = _bundle(bundle)
                found = (compiled, buckets(compiled.holdout_state) < compiled.holdout)
            versions[version] = found
        if found is None:
            problems.append(_p_code(f"/events/{i}/version", f"no published version {version}", "unknown_version"))
            continue
        compiled, in_holdout = found
        if event["type"] == "conversion":
            if event["goal"] not in compiled.goals:
                problems.append(_p_code(f"/events/{i}/goal", f"no goal {event['goal']!r} in version {version}",
                                        "unknown_goal"))
            continue
        campaign = compiled.campaigns.get(event["campaign"])
        holdout = event.get("holdout")
        if campaign is None:
            problems.append(_p_code(f"/events/{i}/campaign", f"no live campaign {event['campaign']!r} in version "
                                    f"{version}", "unknown_campaign"))
        elif not holdout and event["variation"] not in campaign.keys:
            problems.append(_p_code(f"/events/{i}/variation", f"no variation {event['variation']!r} in campaign "
                                    f"{event['campaign']!r}", "unknown_variation"))
        elif not event.get("forced"):
            # the assignment bucketing gives in this version (nearly always), else the lookback
            bucket = memo.get(campaign.state)
            if bucket is None:
                bucket = memo[campaign.state] = hash_from(campaign.state, id_utf8)
            variation = campaign.variation(bucket)
            if variation is None or (not in_holdout if holdout else in_holdout or variation != event["variation"]):
                if not _consistent(event, buckets, compiled, campaign, load_bundle):
                    problems.append(_p_code(f"/events/{i}" + ("/holdout" if holdout else "/variation"),
                                            "this visitor is not bucketed into that assignment", "bucketing"))
    return problems
