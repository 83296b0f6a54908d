"""Validation of `collect` batches: shape and bounds first, then each event against the
published bundle version it names. A batch with any problem is refused whole."""
import json
import math
import re

from .bucketing import hash
from .decision import choose_variation

ID_RE = re.compile(r"^[A-Za-z0-9_.-]{8,64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_EVENTS = 100
MAX_VALUE = 1e9
MIN_TS, MAX_TS = 1_500_000_000_000, 4_100_000_000_000  # 2017 .. 2099, in ms
EVENT_FIELDS = {
    "exposure": {"id", "type", "version", "ts", "campaign", "variation", "holdout", "forced"},
    "conversion": {"id", "type", "version", "ts", "goal", "value", "forced"},
}


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


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_event(event, at, seen):
    if not isinstance(event, dict):
        return [_p(at, "must be an object")]
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in EVENT_FIELDS:
        return [_p(at + "/type", "must be 'exposure' or 'conversion'")]
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
    if not _is_int(event.get("version")) or not 1 <= event["version"] <= 10**9:
        problems.append(_p(at + "/version", "must be a published bundle version (integer)"))
    if not _is_int(event.get("ts")) or not MIN_TS <= event["ts"] <= MAX_TS:
        problems.append(_p(at + "/ts", "must be a time in milliseconds since 1970"))
    if not isinstance(event.get("forced", False), bool):
        problems.append(_p(at + "/forced", "must be a boolean"))
    if kind == "exposure":
        problems.extend(_check_exposure(event, at))
    else:
        problems.extend(_check_conversion(event, at))
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


STICKY_LOOKBACK = 20  # earlier versions searched for a sticky assignment made under other weights


def _p_code(path, message, code):
    return {"path": path, "message": message, "code": code}


def bucketed_assignment(bundle, campaign, visitor_id):
    """(in_holdout, variation key or None outside traffic) as decide() computes them."""
    in_holdout = hash(f"holdout:{bundle['site']}", visitor_id) < (bundle["settings"].get("holdout") or 0)
    chosen = choose_variation(campaign, hash(campaign["seed"], visitor_id))
    return in_holdout, chosen["key"] if chosen else None


_indexes = {}  # id(bundle) -> (bundle, {key: campaign}); holding the bundle keeps its id unique


def _campaign(bundle, key):
    """The campaign of `key`, by an index built once per bundle (a batch asks for many)."""
    found = _indexes.get(id(bundle))
    if found is None or found[0] is not bundle:
        if len(_indexes) > 64:
            _indexes.clear()
        found = _indexes[id(bundle)] = (bundle, {c["key"]: c for c in bundle["campaigns"]})
    return found[1].get(key)


def _consistent(event, visitor_id, bundle, campaign, load_bundle):
    """Whether the reported assignment is what bucketing gives, in this version or, for a
    sticky assignment, in an earlier version of the same campaign (same seed)."""
    wanted = (True, None) if event.get("holdout") else (False, event["variation"])
    for version in range(event["version"], max(0, event["version"] - STICKY_LOOKBACK), -1):
        older = bundle if version == event["version"] else load_bundle(version)
        past = older and _campaign(older, event["campaign"])
        if not past or past["seed"] != campaign["seed"]:
            break
        in_holdout, variation = bucketed_assignment(older, past, visitor_id)
        if variation is not None and (in_holdout, None if in_holdout else variation) == wanted:
            return True
    return False


def verify_against_bundles(events, visitor_id, load_bundle):
    """Problems (with a `code` for the rejection counters) for events naming an unknown
    version, campaign, variation or goal, or an assignment bucketing would not give.
    load_bundle(version) returns the bundle dict or None. Forced (QA) events are not checked:
    they are never counted."""
    problems = []
    for i, event in enumerate(events):
        at = f"/events/{i}"
        bundle = load_bundle(event["version"])
        if bundle is None:
            problems.append(_p_code(at + "/version", f"no published version {event['version']}", "unknown_version"))
            continue
        if event["type"] == "conversion":
            if event["goal"] not in bundle["goals"]:
                problems.append(_p_code(at + "/goal", f"no goal {event['goal']!r} in version {event['version']}",
                                        "unknown_goal"))
            continue
        campaign = _campaign(bundle, event["campaign"])
        if campaign is None:
            problems.append(_p_code(at + "/campaign", f"no live campaign {event['campaign']!r} in version "
                                    f"{event['version']}", "unknown_campaign"))
        elif not event.get("holdout") and event["variation"] not in {v["key"] for v in campaign["variations"]}:
            problems.append(_p_code(at + "/variation", f"no variation {event['variation']!r} in campaign "
                                    f"{event['campaign']!r}", "unknown_variation"))
        elif not event.get("forced") and not _consistent(event, visitor_id, bundle, campaign, load_bundle):
            problems.append(_p_code(at + ("/holdout" if event.get("holdout") else "/variation"),
                                    "this visitor is not bucketed into that assignment", "bucketing"))
    return problems
