"""Which campaigns and variations a visitor gets (docs/DESIGN.md "Decision").

The twin of sdk_js/src/decide.js: same rules in the same order, same reason strings.
"""
import re
import time
from datetime import date
from functools import lru_cache

from server.decisions.bucketing import HASH_VERSION, bucket_text, hash
from server.decisions.conditions import attribute_at, eval_condition

_TIME = re.compile(r"([1-9][0-9]{3})-([0-9]{2})-([0-9]{2})"
                   r"(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(Z|([+-])([0-9]{2}):([0-9]{2}))?)?")
_EPOCH = date(1970, 1, 1).toordinal()


def parse_time(text):
    """ISO 8601 -> ms since the epoch (see _parse_time); each distinct string parsed once."""
    return _parse_time(text) if isinstance(text, str) else float("nan")


@lru_cache(maxsize=4096)
def _parse_time(text):
    """ISO 8601 as the compiler writes it -> ms since the epoch; no offset means UTC.

    Out-of-range fields roll over as JavaScript's Date.UTC does (Feb 31 is Mar 3); anything
    else is NaN, which no `now` satisfies: a broken schedule never shows a campaign."""
    m = _TIME.fullmatch(text) if isinstance(text, str) else None
    if not m:
        return float("nan")
    y, mo, d, h, mi, s, frac, zone, sign, oh, om = m.groups()
    y, mo = int(y) + (int(mo) - 1) // 12, (int(mo) - 1) % 12 + 1
    days = date(y, mo, 1).toordinal() - _EPOCH + int(d) - 1
    ms = (((days * 24 + int(h or 0)) * 60 + int(mi or 0)) * 60 + int(s or 0)) * 1000
    ms += int((frac or "").ljust(3, "0")[:3])
    if sign:
        ms -= (1 if sign == "+" else -1) * (int(oh) * 60 + int(om)) * 60000
    return ms


def choose_variation(campaign, bucket, weights=None):
    """The variation for `bucket` (None outside traffic); cumulative weights in config order
    (`weights`, one per variation, instead of theirs: an adaptive slice's)."""
    variations = campaign.get("variations") or []
    traffic = _default(campaign.get("traffic"), 1)
    if not bucket < traffic:
        return None
    total = 0
    for i, variation in enumerate(variations):
        total += (variation.get("weight") if weights is None else weights[i]) or 0
        if bucket < total * traffic:
            return variation
    # The fallback covers weights whose float sum falls a hair short of 1.
    return variations[-1] if variations else None


SLICE_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def slice_of(allocation, segments, attributes, ev):
    """The visitor's slice of an adaptive campaign: the first entry of `allocation.by` that
    matches (`segment:<name>` when that segment matches; an attribute path when its value is a
    string of 1-64 letters, digits, `_ . -`, as `<path>=<value>`), else "default"."""
    for entry in allocation.get("by") or []:
        if entry.startswith("segment:"):
            if ev(segments.get(entry[8:])):
                return entry
        else:
            value = attribute_at(attributes, entry)
            if isinstance(value, str) and SLICE_VALUE.fullmatch(value):
                return f"{entry}={value}"
    return "default"


def slice_weights(bundle, campaign, slice_name):
    """The weights the served revision gives this campaign's slice (one per variation), or None:
    the campaign's own."""
    weights = (_allocation_of(bundle, campaign).get("weights") or {}).get(slice_name)
    if isinstance(weights, list) and len(weights) == len(campaign.get("variations") or []):
        return weights
    return None


def _allocation_of(bundle, campaign):
    return ((bundle.get("revision") or {}).get("allocations") or {}).get(campaign.get("key")) or {}


def weights_revision(bundle, campaign, slice_name):
    """The revision that made the slice's weights: the one its `since` names, else the served one."""
    since = (_allocation_of(bundle, campaign).get("since") or {}).get(slice_name)
    return since if since is not None else (bundle.get("revision") or {}).get("revision")


def footprint(campaign):
    """Every selector a campaign may touch, over all its variations, so exclusion never depends on the bucket."""
    return [a.get("selector") for v in (campaign.get("variations") or []) for a in (v.get("actions") or [])
            if isinstance(a.get("selector"), str)]


def _default(value, fallback):
    return fallback if value is None else value


def _rule(c, key, ctx):
    """-> (reason, variation key if chosen, forced, [slice, revision] of an adaptive assignment)."""
    variations = c.get("variations") or []
    has = lambda v: any(x.get("key") == v for x in variations)  # noqa: E731
    forced = ctx["force"].get(key)
    if forced is not None and has(forced):
        return f"forced {forced}", forced, True, None
    schedule = c.get("schedule") or {}
    now = ctx["now"]
    if (schedule.get("start") is not None and not now >= parse_time(schedule["start"])) or \
            (schedule.get("end") is not None and not now < parse_time(schedule["end"])):
        return "not scheduled", None, False, None
    ev = ctx["eval"]
    if c.get("pages") is not None and not ev(c["pages"]):
        return "page not matched", None, False, None
    by_customer = c.get("bucket_by") == "customer"
    if by_customer and ctx["customer"] is None:
        return "not identified", None, False, None
    segment = c.get("segment")
    if segment is not None and not ev(ctx["segments"].get(segment)):
        return f"segment {segment} not matched", None, False, None
    has_conditions = c.get("conditions") is not None
    if has_conditions and not ev(c["conditions"]):
        return "conditions not matched", None, False, None
    if c.get("trigger") is not None and key not in ctx["triggered"]:
        return "waiting for trigger", None, False, None
    cap = c.get("cap") or {}
    seen = ctx["counts"].get(key) or {}
    if (cap.get("per_visitor") is not None and (seen.get("visitor") or 0) >= cap["per_visitor"]) or \
            (cap.get("per_session") is not None and (seen.get("session") or 0) >= cap["per_session"]):
        return "capped", None, False, None
    group = c.get("group")
    if group is not None:
        other = next((o for o in ctx["chosen"] if o.get("group") == group), None)
        if other is not None:
            return f"excluded by group {group} ({other.get('key')})", None, False, None
    for selector in footprint(c):
        other = ctx["taken"].get(selector)
        if other is not None:
            return f"excluded by selector {selector} ({other.get('key')})", None, False, None
    seed = _default(c.get("seed"), key)
    sticky = ctx["sticky"].get(key)
    allocation = c.get("allocation")
    if sticky and sticky.get("seed") == seed and has(sticky.get("variation")) and \
            (not by_customer or sticky.get("customer") == ctx["customer"]):
        # an adaptive assignment keeps the [slice, revision] it was made in
        return f"sticky {sticky['variation']}", sticky["variation"], False, sticky.get("made") if allocation else None
    bucket = hash(seed, ctx["customer"] if by_customer else ctx["visitor_id"])
    made_in, weights = None, None
    if allocation:
        slice_name = slice_of(allocation, ctx["segments"], ctx["attributes"], ev)
        weights = slice_weights(ctx["bundle"], c, slice_name)
        made_in = [slice_name, None if weights is None else weights_revision(ctx["bundle"], c, slice_name)]
    variation = choose_variation(c, bucket, weights)
    text = f"; bucket {bucket_text(bucket)}"
    if not bucket < _default(c.get("traffic"), 1):
        return "outside traffic" + text, None, False, None
    if variation is None:
        return "no variations", None, False, None
    if segment is not None:
        who = f"segment {segment}" + (" and conditions" if has_conditions else "")
    else:
        who = "conditions" if has_conditions else "all visitors"
    return f"{who} matched{text}", variation["key"], False, made_in


def decide(bundle, attributes, visitor_id, *, now=None, force=None, sticky=None, counts=None, triggered=None,
           customer=None, log=None):
    """{holdout, variations, reasons, holdout_campaigns} for one visitor. `now` is ms since the
    epoch; `force` {campaign: variation}; `sticky` {campaign: {seed, variation[, customer]}};
    `counts` {campaign: {visitor, session}}; `triggered` [campaign]; `customer` the identified
    customer's key (bucket_by "customer" campaigns hash it, and its holdout is theirs); `log(reason)`
    hears condition errors."""
    visitor_id = visitor_id if isinstance(visitor_id, str) else ""
    customer = customer if isinstance(customer, str) else None
    scheme = bundle.get("hash", HASH_VERSION)
    if scheme != HASH_VERSION:  # buckets of another scheme: deciding with ours would reassign everyone
        return {"holdout": False, "variations": {}, "holdout_campaigns": [],
                "reasons": {c.get("key"): f"unknown hash version {scheme}" for c in bundle.get("campaigns") or []}}
    share = (bundle.get("settings") or {}).get("holdout") or 0
    holdout_seed = f"holdout:{_default(bundle.get('site'), '')}"
    holdout = hash(holdout_seed, visitor_id) < share
    customer_holdout = customer is not None and hash(holdout_seed, customer) < share
    ctx = {
        "now": time.time() * 1000 if now is None else now,
        "force": force or {}, "sticky": sticky or {}, "counts": counts or {}, "triggered": triggered or [],
        "segments": bundle.get("segments") or {}, "visitor_id": visitor_id, "customer": customer, "chosen": [],
        "taken": {},  # selector -> the first chosen campaign touching it
        "eval": lambda condition: eval_condition(condition, attributes, log),
        "attributes": attributes, "bundle": bundle,
    }
    out = {"holdout": holdout, "variations": {}, "reasons": {}, "holdout_campaigns": []}
    for c in bundle.get("campaigns") or []:
        key = c.get("key")
        try:
            reason, variation, forced, made_in = _rule(c, key, ctx)
        except Exception:  # a campaign the compiler would not have written: skip it, never fail the page
            reason, variation, forced, made_in = "invalid campaign", None, False, None
        if variation is None:
            out["reasons"][key] = reason
            continue
        if made_in not in (None, False, 0, ""):  # JavaScript's truthiness, as the twin tests it
            out.setdefault("slices", {})[key] = made_in
        ctx["chosen"].append(c)
        for selector in footprint(c):
            ctx["taken"].setdefault(selector, c)
        if (customer_holdout if c.get("bucket_by") == "customer" else holdout) and not forced:
            out["holdout_campaigns"].append(key)
            out["reasons"][key] = "holdout; " + reason
        else:
            out["variations"][key] = variation
            out["reasons"][key] = reason
    return out
