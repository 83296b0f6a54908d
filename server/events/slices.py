"""The slices of a visitor's first exposure to a campaign (results break down by them) and the
covariates CUPED adjusts for, from the exposure's claims and the request's own facts
(server/events/traffic.py). Bounded: one value per dimension (a value from a fixed set, or a
segment or country name), at most MAX_SEGMENT_SLICES segments, covariates capped."""
from server.store.base import PRE_EXPOSURE_COVARIATES

UNKNOWN = "(unknown)"  # the exposure or the request did not say
NO_SEGMENT = "(none)"  # the visitor matched no segment of the site
OTHER = "other"  # an acquisition medium outside MEDIA
# utm.medium or referrer.medium as the SDK reads them (docs/DESIGN.md "Attributes"): its own
# classes, and the mediums shops commonly tag links with. Anything else is `other`, so a forger
# cannot make slices without end.
MEDIA = frozenset(("direct", "referral", "search", "social", "email", "paid", "organic", "display", "affiliate",
                   "video", "sms", "push", "qr", "print"))
MAX_SEGMENT_SLICES = 50  # a visitor counts in the first 50 segments they matched (in name order)
COVARIATE_CAP = 10_000  # visits and page views before exposure count at most this (winsorised)


def segment_names(bundle):
    """The bundle's segments in the order of an exposure's bitset: sorted names (ASCII)."""
    return sorted(bundle.get("segments") or ())


def matched_segments(bitset, names):
    """The names whose bit is set in `bitset` (hex: segment i is bit i % 4 of character i // 4);
    bits past the list are ignored."""
    matched = []
    for k, char in enumerate(bitset):
        nibble = int(char, 16)
        for bit in range(4):
            if nibble >> bit & 1 and 4 * k + bit < len(names):
                matched.append(names[4 * k + bit])
    return matched


def visitor_slices(event, campaign, names, facts):
    """[(dimension, value)] of an exposure: device type and country from the request (`facts`),
    acquisition and visit.new from the exposure's claims, and its segments (the campaign's own
    segment always: the server knows the visitor matched it, or the campaign would not show)."""
    facts = facts or {}
    acquisition = event.get("acquisition")
    pre = event.get("pre")
    slices = [("device.type", facts.get("device") or UNKNOWN), ("geo.country", facts.get("country") or UNKNOWN),
              ("acquisition", UNKNOWN if acquisition is None else acquisition if acquisition in MEDIA else OTHER),
              ("visit.new", UNKNOWN if pre is None else "true" if pre[0] == 0 else "false")]
    bitset = event.get("segments")
    own = campaign.get("segment")
    if bitset is None and own is None:
        return slices + [("segment", UNKNOWN)]
    segments = matched_segments(bitset or "", names)
    if own is not None and own not in segments:
        segments = sorted(segments + [own])
    return slices + [("segment", name) for name in segments[:MAX_SEGMENT_SLICES]] + \
        ([] if segments else [("segment", NO_SEGMENT)])


def covariates(event):
    """The exposure's PRE_EXPOSURE_COVARIATES, each capped at COVARIATE_CAP, or None."""
    pre = event.get("pre")
    if pre is None or len(pre) != len(PRE_EXPOSURE_COVARIATES):
        return None
    return tuple(min(int(x), COVARIATE_CAP) for x in pre)
