"""Validation of `collect` batches: shape and bounds first, then each event against the
published bundle version it names. A batch with any problem is refused whole."""
import json
import math
import re

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
    if kind not in EVENT_FIELDS:
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


def verify_against_bundles(events, load_bundle):
    """Problems for events naming an unknown version, campaign, variation or goal.
    load_bundle(version) returns the bundle dict or None."""
    problems = []
    for i, event in enumerate(events):
        at = f"/events/{i}"
        bundle = load_bundle(event["version"])
        if bundle is None:
            problems.append(_p(at + "/version", f"no published version {event['version']}"))
            continue
        if event["type"] == "conversion":
            if event["goal"] not in bundle["goals"]:
                problems.append(_p(at + "/goal", f"no goal {event['goal']!r} in version {event['version']}"))
            continue
        campaign = next((c for c in bundle["campaigns"] if c["key"] == event["campaign"]), None)
        if campaign is None:
            problems.append(_p(at + "/campaign", f"no live campaign {event['campaign']!r} in version {event['version']}"))
        elif not event.get("holdout") and event["variation"] not in {v["key"] for v in campaign["variations"]}:
            problems.append(_p(at + "/variation", f"no variation {event['variation']!r} in campaign {event['campaign']!r}"))
    return problems
