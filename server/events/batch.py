"""Validation of `collect` batches: shape and bounds first, then each event against the
published bundle version it names. A batch with any problem is refused whole, except a
conversion whose value is outside the site's bounds: that event alone is refused."""
import json
import re

from server.decisions.bucketing import _utf8, hash, hash_from, seed_state
from server.decisions.decide import choose_variation, slice_weights
from server.wire.ids import (
    EVENT_ID_RE,
    IDENTITY_RE,
    KEY_RE,
    PRODUCT_ID_RE,
    SLICE_RE,
    VISITOR_ID_RE,
)
from server.wire.schemas import by_path, schema
from server.wire.schemas import problems as schema_problems

# The bounds of spec/schemas/collect-batch.schema.json, for the fast path below.
_SCHEMA = schema("collect-batch")
_EVENT = _SCHEMA["$defs"]["event"]["properties"]
MAX_EVENTS = _SCHEMA["properties"]["events"]["maxItems"]
MAX_VERSION = _EVENT["version"]["maximum"]
MIN_TS, MAX_TS = _EVENT["ts"]["minimum"], _EVENT["ts"]["maximum"]
EVENT_FIELDS = {kind: frozenset(_SCHEMA["$defs"][kind]["properties"]) for kind in ("exposure", "conversion", "item")}
MIN_VALUE = _SCHEMA["$defs"]["conversion"]["properties"]["value"]["minimum"]  # finite: the shape; the site's
MAX_VALUE = _SCHEMA["$defs"]["conversion"]["properties"]["value"]["maximum"]  # bounds are checked in verify
DEFAULT_MAX_VALUE = 100_000  # a conversion's value is at most the site's settings.max_value, this by default
UNVERIFIABLE = object()  # what load_bundle returns for a stored version whose signature does not verify
ITEM = _SCHEMA["$defs"]["item"]["properties"]
ITEM_ACTIONS = frozenset(ITEM["action"]["enum"])
MAX_EVENT_ITEMS = ITEM["items"]["maxItems"]
MAX_SESSION = ITEM["session"]["maximum"]
_EXPOSURE = _SCHEMA["$defs"]["exposure"]["properties"]
SEGMENTS_RE = re.compile(_EXPOSURE["segments"]["pattern"])
MAX_ACQUISITION = _EXPOSURE["acquisition"]["maxLength"]
MAX_PRE = _EXPOSURE["pre"]["items"]["maximum"]
_FEATURES = _SCHEMA["$defs"]["features"]
MAX_FEATURES = _FEATURES["maxProperties"]
FEATURE_NAME_RE = re.compile(_FEATURES["propertyNames"]["pattern"])
MIN_FEATURE = _FEATURES["additionalProperties"]["minimum"]
MAX_FEATURE = _FEATURES["additionalProperties"]["maximum"]
CONVERSION = _SCHEMA["$defs"]["conversion"]["properties"]
STRATEGIES = frozenset(CONVERSION["strategy"]["enum"])
MAX_CONVERSION_ITEMS = CONVERSION["items"]["maxItems"]


class BatchInvalid(ValueError):
    def __init__(self, message, details):
        super().__init__(message)
        self.details = details


def _not_json(constant):
    raise ValueError(f"{constant} is not JSON")


# NaN and Infinity are not JSON (Python's parser reads them unless told not to).
_DECODER = json.JSONDecoder(parse_constant=_not_json)


def parse_batch(raw):
    """(visitor_id, events, identity or None) from the raw body, or BatchInvalid listing every problem."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
        body = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise BatchInvalid("The body is not valid JSON.", []) from None
    # Fast path: _valid_batch accepts exactly what the schema and the duplicate check accept
    # (tests/test_collect_fastpaths.py); anything else takes the full checks for its reasons.
    if type(body) is dict and _valid_batch(body):
        return body["visitor_id"], _with_features(body, _with_batch_fields(body)), body.get("identity")
    visitor_id, events, identity = _checked_batch(body)
    return visitor_id, _with_features(body, events), identity


def _with_features(body, events):
    """The events, each exposure and conversion without a feature vector of its own given the
    batch's `features` (the predict module sends one a batch: the page view's when it is sent)."""
    features = body.get("features")
    if features is not None:
        for event in events:
            if event["type"] != "item" and "features" not in event:
                event["features"] = features
    return events


def _with_batch_fields(body):
    """The events, given what modules say once per batch rather than on every event: an exposure
    naming no slice its campaign's [slice, revision] from `made` (the adaptive module); an exposure
    without segments, acquisition or pre its campaign's from `first_exposure` (the slices module:
    what the visitor's first exposure to the campaign claimed); every event `internal` when the
    batch is (a browser marked with ?vitrina_internal=1)."""
    made, first, events = body.get("made"), body.get("first_exposure"), body["events"]
    if made or first:
        for event in events:
            campaign = event.get("campaign") if event.get("type") == "exposure" else None
            where = made.get(campaign) if made and campaign is not None else None
            if where is not None and "slice" not in event:
                event["slice"], event["revision"] = where
            for field, value in (first.get(campaign) or {}).items() if first and campaign is not None else ():
                event.setdefault(field, value)
    if body.get("internal") is True:
        for event in events:
            event["internal"] = True
    return events


def _checked_batch(body):
    """The schema's problems, and ids that appear twice (which a JSON Schema cannot say)."""
    if not isinstance(body, dict):
        raise BatchInvalid("The body must be a JSON object {visitor_id, events}.", [])
    problems = schema_problems("collect-batch", body)
    events = body.get("events")
    if isinstance(events, list):
        seen = set()
        for i, event in enumerate(events):
            event_id = event.get("id") if isinstance(event, dict) else None
            if isinstance(event_id, str) and _event_id_ok(event_id):
                if event_id in seen:
                    problems.append(_p(f"/events/{i}/id", "the same id appears twice in the batch"))
                seen.add(event_id)
    if problems:
        raise BatchInvalid("The batch has invalid events; nothing was recorded.", by_path(problems))
    return body["visitor_id"], _with_batch_fields(body), body.get("identity")


def _p(path, message):
    return {"path": path, "message": message}


_visitor_ok = VISITOR_ID_RE.match
_event_id_ok = EVENT_ID_RE.match
_key_ok = KEY_RE.match
_BATCH_FIELDS = frozenset(_SCHEMA["properties"])
_EXPOSURE_FIELDS = EVENT_FIELDS["exposure"]
_CONVERSION_FIELDS = EVENT_FIELDS["conversion"]
_ITEM_FIELDS = EVENT_FIELDS["item"]
_product_id_ok = PRODUCT_ID_RE.match
_segments_ok = SEGMENTS_RE.match
_ABSENT = object()
_slice_ok = SLICE_RE.match
MAX_REVISION = _SCHEMA["$defs"]["exposure"]["properties"]["revision"]["maximum"]
_identity_ok = IDENTITY_RE.match


def _features_ok(features):
    """The schema's features (the predict module's vector): bounded names and numbers."""
    return (type(features) is dict and len(features) <= MAX_FEATURES
            and all(type(name) is str and FEATURE_NAME_RE.match(name)
                    and (type(value) is int or type(value) is float) and MIN_FEATURE <= value <= MAX_FEATURE
                    for name, value in features.items()))


def _product_ids_ok(items, most):
    return type(items) is list and 1 <= len(items) <= most and all(type(i) is str and _product_id_ok(i) for i in items)


def _valid_batch(body):
    """True when the batch passes the schema and has no id twice (exact types, as json.loads
    makes them): the same answer as _checked_batch, without its cost."""
    visitor_id, events, identity = body.get("visitor_id"), body.get("events"), body.get("identity", "")
    if "made" in body and not _valid_made(body["made"]):
        return False
    if "first_exposure" in body and not _valid_first_exposure(body["first_exposure"]):
        return False
    internal = body.get("internal", False)
    if not (internal is False or internal is True):
        return False
    if "features" in body and not _features_ok(body["features"]):
        return False
    if not (body.keys() <= _BATCH_FIELDS and type(visitor_id) is str and _visitor_ok(visitor_id)
            and type(events) is list and 1 <= len(events) <= MAX_EVENTS
            and type(identity) is str and (identity == "" and "identity" not in body or _identity_ok(identity))):
        return False
    seen = set()
    for e in events:
        if type(e) is not dict:
            return False
        get = e.get
        event_id, ts, forced, internal = get("id"), get("ts"), get("forced", False), get("internal", False)
        if not (type(event_id) is str and _event_id_ok(event_id) and event_id not in seen
                and type(ts) is int and MIN_TS <= ts <= MAX_TS and (forced is False or forced is True)
                and (internal is False or internal is True)):
            return False
        seen.add(event_id)
        kind, version = get("type"), get("version")
        if kind == "exposure":
            campaign, variation, holdout = get("campaign"), get("variation"), get("holdout", False)
            if not (type(version) is int and 1 <= version <= MAX_VERSION
                    and e.keys() <= _EXPOSURE_FIELDS and type(campaign) is str and _key_ok(campaign)
                    and ("features" not in e or _features_ok(e["features"]))
                    and (variation is None if holdout is True
                         else holdout is False and type(variation) is str and _key_ok(variation))
                    and _valid_slice_claims(get)):
                return False
            if ("slice" in e or "revision" in e) and not _valid_made_in(e):
                return False
        elif kind == "conversion":
            goal, value = get("goal"), get("value", 0)
            if not (type(version) is int and 1 <= version <= MAX_VERSION
                    and e.keys() <= _CONVERSION_FIELDS and type(goal) is str and _key_ok(goal)
                    and ("features" not in e or _features_ok(e["features"]))
                    and (type(value) is int or type(value) is float) and MIN_VALUE <= value <= MAX_VALUE):
                return False
            if len(e) > 5 and not _conversion_extras_ok(get):  # beyond the required five: the optional fields
                return False
        elif kind == "item":
            action, session = get("action"), get("session", 0)
            if not (e.keys() <= _ITEM_FIELDS and type(action) is str and action in ITEM_ACTIONS
                    and ("version" not in e or type(version) is int and 1 <= version <= MAX_VERSION)
                    and _product_ids_ok(get("items"), MAX_EVENT_ITEMS)
                    and type(session) is int and 0 <= session <= MAX_SESSION):
                return False
        else:
            return False
    return True


def _valid_slice_claims(get):
    """The exposure's optional segments, acquisition and pre fields, as the schema bounds them."""
    segments, acquisition, pre = get("segments", ""), get("acquisition", ""), get("pre", _ABSENT)
    return (type(segments) is str and _segments_ok(segments)
            and type(acquisition) is str and len(acquisition) <= MAX_ACQUISITION
            and (pre is _ABSENT or type(pre) is list and len(pre) == 2
                 and all(type(x) is int and 0 <= x <= MAX_PRE for x in pre)))
# An event's `ts` must lie within a window around its receipt: the browser drops queued events
# older than QUEUE_MAX_AGE_S (sdk_js/src/tracker.js MAX_AGE_MS, its twin), and clocks may be off by
# CLOCK_SKEW_S either way. So the first copy of an event and any retry of it arrive at most
# MAX_EVENT_AGE_S + MAX_EVENT_AHEAD_S apart, within the store's dedupe window (at least
# server/settings.py MIN_DEDUPE_DAYS): a retry is never counted twice.
QUEUE_MAX_AGE_S = 2 * 86_400
CLOCK_SKEW_S = 86_400
MAX_EVENT_AGE_S = QUEUE_MAX_AGE_S + CLOCK_SKEW_S
MAX_EVENT_AHEAD_S = CLOCK_SKEW_S


def out_of_window(events, received_at):
    """Problems (codes `stale`, `future`) for the events, QA previews aside, whose `ts` lies outside
    [received_at - MAX_EVENT_AGE_S, received_at + MAX_EVENT_AHEAD_S] (seconds): each is refused alone."""
    oldest, newest = (received_at - MAX_EVENT_AGE_S) * 1000, (received_at + MAX_EVENT_AHEAD_S) * 1000
    problems = []
    for i, event in enumerate(events):
        ts = event["ts"]
        if oldest <= ts <= newest or event.get("forced"):
            continue
        if ts < oldest:
            problems.append(_p_code(f"/events/{i}/ts", f"more than {MAX_EVENT_AGE_S // 3600} hours before its receipt: "
                                    "too old to be counted exactly once", "stale"))
        else:
            problems.append(_p_code(f"/events/{i}/ts", f"more than {MAX_EVENT_AHEAD_S // 3600} hours after its "
                                    "receipt: the sender's clock is wrong", "future"))
    return problems


MAX_MADE = _SCHEMA["properties"]["made"]["maxProperties"]


def _valid_made(made):
    """A batch's `made`, as the schema bounds it."""
    return type(made) is dict and len(made) <= MAX_MADE and all(
        type(key) is str and _key_ok(key) and type(where) is list and len(where) == 2
        and _valid_made_in({"slice": where[0], "revision": where[1]}) for key, where in made.items())


MAX_FIRST_EXPOSURE = _SCHEMA["properties"]["first_exposure"]["maxProperties"]
_CLAIM_FIELDS = frozenset(_EXPOSURE) & {"segments", "acquisition", "pre"}


def _valid_first_exposure(first):
    """A batch's `first_exposure`, as the schema bounds it: each campaign's claims as an exposure's."""
    return type(first) is dict and len(first) <= MAX_FIRST_EXPOSURE and all(
        type(key) is str and _key_ok(key) and type(claims) is dict and claims.keys() <= _CLAIM_FIELDS
        and _valid_slice_claims(claims.get) for key, claims in first.items())


def _valid_made_in(e):
    """An adaptive exposure's slice and revision, as the schema bounds them."""
    sliced, revision = e.get("slice", "default"), e.get("revision")
    return (type(sliced) is str and len(sliced) <= 170 and _slice_ok(sliced) is not None
            and (revision is None or type(revision) is int and 1 <= revision <= MAX_REVISION))


_MISSING = object()


def _conversion_extras_ok(get):
    """A conversion's optional campaign, strategy and items, each absent or valid (an order_id may
    be anything: one the server cannot count by is ignored, see collect)."""
    campaign, strategy, items = (get(f, _ABSENT) for f in ("campaign", "strategy", "items"))
    return ((campaign is _ABSENT or type(campaign) is str and _key_ok(campaign))
            and (strategy is _ABSENT or type(strategy) is str and strategy in STRATEGIES)
            and (items is _ABSENT or _product_ids_ok(items, MAX_CONVERSION_ITEMS)))


STICKY_LOOKBACK = 20  # earlier versions searched for a sticky assignment made under other weights


def _p_code(path, message, code):
    return {"path": path, "message": message, "code": code}


def bucketed_assignment(bundle, campaign, visitor_id):
    """(in_holdout, variation key or None outside traffic) as decide() computes them for the unit
    `visitor_id` (a customer key for a customer-bucketed campaign)."""
    in_holdout = hash(f"holdout:{bundle['site']}", visitor_id) < (bundle["settings"].get("holdout") or 0)
    chosen = choose_variation(campaign, hash(campaign["seed"], visitor_id))
    return in_holdout, chosen["key"] if chosen else None


class _Campaign:
    """What checking an exposure needs from one campaign of a bundle, computed once: its
    variation keys, the FNV-1a state of its seed and choose_variation's thresholds."""
    __slots__ = ("campaign", "seed", "keys", "state", "traffic", "thresholds", "last", "by_customer")

    def __init__(self, campaign):
        self.campaign = campaign
        self.seed = campaign["seed"]
        self.by_customer = campaign.get("bucket_by") == "customer"
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
    __slots__ = ("bundle", "goals", "campaigns", "holdout_state", "holdout", "max_value")

    def __init__(self, bundle):
        self.bundle = bundle
        self.goals = bundle["goals"]
        self.campaigns = {c["key"]: _Campaign(c) for c in bundle["campaigns"]}
        self.holdout_state = seed_state(f"holdout:{bundle['site']}")
        self.holdout = bundle["settings"].get("holdout") or 0
        self.max_value = bundle["settings"].get("max_value", DEFAULT_MAX_VALUE)


def _bundle(bundle, cache):
    """The _Bundle of `bundle`, from `cache` (keyed by the bundle object, which it holds, so the
    id is not reused while cached) when one is given."""
    if cache is None:
        return _Bundle(bundle)
    found = cache.get(id(bundle))
    if found is None or found.bundle is not bundle:
        found = cache.put(id(bundle), _Bundle(bundle))
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


def _consistent(event, buckets, compiled, campaign, load_bundle, cache):
    """Whether the reported assignment is what bucketing gives, in this version or, for a
    sticky assignment, in an earlier version of the same campaign (same seed)."""
    wanted = (True, None) if event.get("holdout") else (False, event["variation"])
    for version in range(event["version"], max(0, event["version"] - STICKY_LOOKBACK), -1):
        older = compiled if version == event["version"] else load_bundle(version)
        if older is None or older is UNVERIFIABLE:
            break
        if older is not compiled:
            older = _bundle(older, cache)
        past = older.campaigns.get(event["campaign"])
        if not past or past.seed != campaign.seed:
            break
        in_holdout, variation = buckets.assignment(older, past)
        if variation is not None and (in_holdout, None if in_holdout else variation) == wanted:
            return True
    return False


def _allocated(event, bucket, in_holdout, campaign, load_bundle, load_revision):
    """Whether an adaptive exposure's variation is what its slice's weights give, in the revision
    it names (made for this version or an earlier one with the same seed: a sticky assignment)."""
    number = event.get("revision")
    if number is None or load_revision is None or in_holdout or event.get("holdout"):
        return False
    document = load_revision(number)
    if document is None:
        return False
    made_for = load_bundle(document["version"])
    if not isinstance(made_for, dict):
        return False
    then = next((c for c in made_for["campaigns"] if c["key"] == campaign.campaign["key"]), None)
    if then is None or then["seed"] != campaign.seed:
        return False
    weights = slice_weights({"revision": document}, then, event.get("slice"))
    chosen = weights is not None and choose_variation(then, bucket, weights)
    return bool(chosen) and chosen["key"] == event["variation"]


def verify_against_bundles(events, visitor_id, load_bundle, cache=None, customer=None, customer_events=None,
                           load_revision=None):
    """Problems (with a `code` for the rejection counters) for events naming an unknown or
    unverifiable version, an unknown campaign, variation or goal, an assignment bucketing would
    not give, or a value outside [0, settings.max_value] (code `value`: only that event is
    refused). load_bundle(version) returns the bundle dict, None, or UNVERIFIABLE; `cache` (a
    server.cache.Cache) keeps each bundle's compiled form between batches. Forced (QA) events
    are not checked for bucketing or value: they are never counted. An adaptive campaign's exposure
    may also be what its slice's weights give in the revision it names (load_revision(n) returns
    its document or None).

    Exposures of customer-bucketed campaigns are checked against `customer` (the verified
    customer key of the batch; none: code `not_identified`), and their indexes are appended to
    `customer_events` when it is given: the caller counts them under the customer."""
    problems = []
    versions = {}  # version -> (_Bundle, visitor in its holdout) or None: each loaded once per batch
    buckets = _Buckets(visitor_id)
    customer_buckets = _Buckets(customer) if customer is not None else None
    memo, id_utf8 = buckets.memo, buckets.id_utf8
    for i, event in enumerate(events):
        if event["type"] == "item":
            continue  # a recommendation signal names no campaign nor goal: nothing to verify
        version = event["version"]
        found = versions.get(version, versions)
        if found is versions:
            bundle = load_bundle(version)
            if bundle is None or bundle is UNVERIFIABLE:
                found = bundle
            else:
                compiled = _bundle(bundle, cache)
                found = (compiled, buckets(compiled.holdout_state) < compiled.holdout)
            versions[version] = found
        if found is None:
            problems.append(_p_code(f"/events/{i}/version", f"no published version {version}", "unknown_version"))
            continue
        if found is UNVERIFIABLE:
            problems.append(_p_code(f"/events/{i}/version", f"version {version} fails signature verification on "
                                    "this server", "unverifiable_version"))
            continue
        compiled, in_holdout = found
        if event["type"] == "conversion":
            value = event.get("value", 0)
            if event["goal"] not in compiled.goals:
                problems.append(_p_code(f"/events/{i}/goal", f"no goal {event['goal']!r} in version {version}",
                                        "unknown_goal"))
            elif "campaign" in event and event["campaign"] not in compiled.campaigns:
                problems.append(_p_code(f"/events/{i}/campaign", f"no live campaign {event['campaign']!r} in "
                                        f"version {version}", "unknown_campaign"))
            elif not 0 <= value <= compiled.max_value and not event.get("forced"):
                problems.append(_p_code(f"/events/{i}/value", f"must be from 0 to {compiled.max_value} "
                                        f"(settings.max_value of version {version})", "value"))
            continue
        campaign = compiled.campaigns.get(event["campaign"])
        holdout = event.get("holdout")
        if campaign is None:
            problems.append(_p_code(f"/events/{i}/campaign", f"no live campaign {event['campaign']!r} in version "
                                    f"{version}", "unknown_campaign"))
        elif not holdout and event["variation"] not in campaign.keys:
            problems.append(_p_code(f"/events/{i}/variation", f"no variation {event['variation']!r} in campaign "
                                    f"{event['campaign']!r}", "unknown_variation"))
        elif campaign.by_customer:
            if customer_buckets is None:
                if not event.get("forced"):
                    problems.append(_p_code(f"/events/{i}/campaign", f"campaign {event['campaign']!r} buckets "
                                            "identified customers; this batch carries no identity", "not_identified"))
                continue
            if customer_events is not None:
                customer_events.append(i)
            if event.get("forced"):
                continue
            in_customer_holdout, variation = customer_buckets.assignment(compiled, campaign)
            if variation is None or (not in_customer_holdout if holdout else
                                     in_customer_holdout or variation != event["variation"]):
                if not _consistent(event, customer_buckets, compiled, campaign, load_bundle, cache):
                    problems.append(_p_code(f"/events/{i}" + ("/holdout" if holdout else "/variation"),
                                            "this customer is not bucketed into that assignment", "bucketing"))
        elif not event.get("forced"):
            # the assignment bucketing gives in this version (nearly always), else the lookback
            bucket = memo.get(campaign.state)
            if bucket is None:
                bucket = memo[campaign.state] = hash_from(campaign.state, id_utf8)
            variation = campaign.variation(bucket)
            if variation is None or (not in_holdout if holdout else in_holdout or variation != event["variation"]):
                if not _consistent(event, buckets, compiled, campaign, load_bundle, cache) and \
                        not _allocated(event, bucket, in_holdout, campaign, load_bundle, load_revision):
                    problems.append(_p_code(f"/events/{i}" + ("/holdout" if holdout else "/variation"),
                                            "this visitor is not bucketed into that assignment", "bucketing"))
    return problems
