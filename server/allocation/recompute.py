"""Recomputing an adaptive site's weights: from the labelled counters of the latest version's
adaptive campaigns to the `allocations` part of a revision. Run by the background worker
(`ALLOCATE_JOB`) and `vitrina allocate`, never in a request worker."""
import hashlib
import time
from datetime import datetime, timezone

import numpy as np

from server.allocation.thompson import adaptive_weights, probability_best
from server.cache import app_cache
from server.configs import publishing
from server.store import get_store
from server.store.base import read_label

CONTROL = "control"
# A slice whose weights moved less than this keeps the weights it has, and the revision that made
# them: assignments, and so counters, split by revision only when the weights really changed.
SETTLED = 0.02


def adaptive_campaigns(bundle):
    return [c for c in (bundle or {}).get("campaigns") or [] if c.get("allocation")]


def slice_counts(rows, campaign):
    """{slice: {variation: [visitors, conversions of the allocation goal]}} over every revision,
    from labelled counter rows (holdout and unlabelled assignments left out)."""
    goal = campaign["allocation"]["goal"]
    keys = [v["key"] for v in campaign["variations"]]
    out = {}
    for row in rows:
        if row["campaign"] != campaign["key"] or row["variation"] not in keys:
            continue
        _, _, slice_name = read_label(row["channel"])
        if slice_name is None:
            continue
        arm = out.setdefault(slice_name, {k: [0, 0] for k in keys})[row["variation"]]
        if row["goal"] is None:
            arm[0] += row["visitors"]
        elif row["goal"] == goal:
            arm[1] += row["conversions"]
    return out


def _rng(*parts):
    """A generator seeded by what the weights are computed from: the same counters, the same weights."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def campaign_weights(campaign, counts):
    """{slice: weights} for the slices with at least `min_visitors` visitors."""
    allocation = campaign["allocation"]
    keys = [v["key"] for v in campaign["variations"]]
    control = keys.index(CONTROL) if CONTROL in keys else None
    control_weight = campaign["variations"][control]["weight"] if control is not None else 0.0
    out = {}
    for slice_name, arms in sorted(counts.items()):
        pairs = [tuple(arms[k]) for k in keys]
        if sum(v for v, _ in pairs) < allocation.get("min_visitors", 0):
            continue
        rng = _rng(campaign["key"], slice_name, pairs)
        out[slice_name] = adaptive_weights(pairs, control, control_weight, allocation.get("explore", 0.1), rng)
    return out


def slice_summary(campaign, counts, served):
    """Per slice, what results show: visitors, the weights served now (`served`: {slice: weights};
    the campaign's own when none), each variation's probability of being best and the leader."""
    keys = [v["key"] for v in campaign["variations"]]
    own = [v["weight"] for v in campaign["variations"]]
    out = []
    for slice_name, arms in sorted(counts.items()):
        pairs = [tuple(arms[k]) for k in keys]
        best = probability_best(pairs, _rng(campaign["key"], slice_name, pairs, "report"))
        leader = int(np.argmax(best))
        out.append({"slice": slice_name, "visitors": sum(v for v, _ in pairs),
                    "weights": dict(zip(keys, served.get(slice_name, own))),
                    "probability_best": {k: round(float(p), 4) for k, p in zip(keys, best)},
                    "leader": keys[leader]})
    return out


def allocations_for(bundle, rows, made_at):
    """The `allocations` part: {campaign: {"made_at", "weights": {slice: [weight per variation]},
    "since": {slice: revision}}}. A slice whose new weights are within SETTLED of those the served
    revision (of this version) gives it keeps them, and `since` names the revision that made them
    (absent: this one): what its assignments record."""
    served = (bundle.get("revision") or {})
    before = served.get("allocations") or {} if served.get("version") == bundle["version"] else {}
    out = {}
    for campaign in adaptive_campaigns(bundle):
        weights = campaign_weights(campaign, slice_counts(rows, campaign))
        previous = before.get(campaign["key"]) or {}
        since = {}
        for slice_name, new in weights.items():
            old = (previous.get("weights") or {}).get(slice_name)
            if old is not None and len(old) == len(new) and max(abs(a - b) for a, b in zip(old, new)) < SETTLED:
                weights[slice_name] = old
                since[slice_name] = (previous.get("since") or {}).get(slice_name, served.get("revision"))
        out[campaign["key"]] = {"made_at": made_at, "weights": weights, **({"since": since} if since else {})}
    return out


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unchanged():
    """{site: (version, revision, its made_at, time)}: when this process last recomputed weights
    that came out as served. Publishing them again would only change `made_at`, and every cached
    tag.js with it."""
    return app_cache("adaptive weights found unchanged", 4096,
                     "nothing: an entry names the served revision it was checked against")


def _served_revision(bundle):
    revision = bundle.get("revision") or {}
    return bundle["version"], revision.get("revision"), revision.get("made_at")


def _weights(allocations):
    return {key: part.get("weights") for key, part in allocations.items()}


def allocate(site):
    """Recompute the weights of the latest version's adaptive campaigns and publish them as a
    revision, unless every weight is the one served (`revision` None in the summary). Returns a
    summary, or None when the latest version has no adaptive campaign."""
    started = time.monotonic()
    latest = publishing.load_latest(site)
    bundle = latest[0] if latest else None
    if not adaptive_campaigns(bundle):
        return None
    allocations = allocations_for(bundle, get_store().labelled_counters(site), _now())
    served = bundle.get("revision") or {}
    if served.get("version") == bundle["version"] and _weights(served.get("allocations") or {}) == _weights(allocations):
        _unchanged().put(site, (*_served_revision(bundle), time.time()))
        revision = None
    else:
        revision = publishing.publish_revision(site, {"allocations": allocations})
    return {"site": site, "version": bundle["version"], "revision": revision,
            "campaigns": {key: sorted(part["weights"]) for key, part in allocations.items()},
            "seconds": round(time.monotonic() - started, 3)}


def is_due(site, every_s, now=None):
    """Whether the latest version has adaptive campaigns and no allocation made within `every_s`."""
    latest = publishing.load_latest(site)
    if not latest or not adaptive_campaigns(latest[0]):
        return False
    allocations = (latest[0].get("revision") or {}).get("allocations") or {}
    made = [allocations.get(c["key"], {}).get("made_at") for c in adaptive_campaigns(latest[0])]
    if None in made:
        return True  # a campaign never allocated in this version (the revision names the latest version)
    oldest = datetime.strptime(min(made), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    checked = _unchanged().get(site)
    if checked and checked[:3] == _served_revision(latest[0]):
        oldest = max(oldest, checked[3])  # recomputed since, unchanged
    return every_s > 0 and (now or time.time()) - oldest >= every_s
