"""The strategies and their fallback chains: which precomputed rankings each one reads.

Item-to-item rankings (`bt:<id>` bought together, `vt:<id>` viewed together, `sim:<id>` similar,
`up:<id>` upsell) and site-wide lists (`bs` bestsellers, `tr` trending, and `bs:<category>`,
`tr:<category>` for every category path and its ancestors) are written by server/recs/build.py.
A strategy here only reads and merges them: nothing scans events at request time."""
import json

STRATEGIES = ("bought_together", "viewed_together", "similar", "upsell", "trending", "bestsellers",
              "recently_viewed", "personal")
# Each step fills the places the steps before it left (server/recs/serve.py);
# "bestsellers_in_category" is bestsellers within the first anchor's category.
CHAINS = {
    "bought_together": ("bought_together", "similar", "bestsellers_in_category", "bestsellers"),
    "viewed_together": ("viewed_together", "similar", "bestsellers_in_category", "bestsellers"),
    "similar": ("similar", "bestsellers_in_category", "bestsellers"),
    "upsell": ("upsell", "bestsellers_in_category"),
    "trending": ("trending", "bestsellers"),
    "bestsellers": ("bestsellers",),
    "recently_viewed": ("recently_viewed",),  # the visitor's own items: nothing else would be honest
    "personal": ("personal", "trending", "bestsellers"),
}
ITEM_TO_ITEM = {"bought_together": "bt", "viewed_together": "vt", "similar": "sim", "upsell": "up"}
SHOWS_ANCHORS = ("recently_viewed",)  # every other strategy leaves the anchor items out
PERSONAL_SOURCES = ("bt", "vt")


def _decode(rankings, name):
    raw = rankings.get(name)
    return json.loads(raw) if raw else []


def _merged(rankings, names, weights):
    """Sum of each id's score over the named rankings, each ranking scaled by its weight."""
    scores = {}
    for name, weight in zip(names, weights):
        for item_id, score in _decode(rankings, name):
            scores[item_id] = scores.get(item_id, 0.0) + weight * score
    return list(scores.items())


def candidates(step, anchors, category, anchor_category, read):
    """[(id, score)] proposed by one step of a chain. `anchors`: the request's item ids (newest
    first for personal); `category`: the request's category filter or None; `anchor_category`: the
    first anchor's category path; `read(names)` -> {name: ranking JSON}."""
    if step in ITEM_TO_ITEM:
        names = [f"{ITEM_TO_ITEM[step]}:{a}" for a in anchors]
        return _merged(read(names), names, [1.0] * len(names))
    if step == "personal":
        names, weights = [], []
        for rank, anchor in enumerate(anchors):
            for source in PERSONAL_SOURCES:
                names.append(f"{source}:{anchor}")
                weights.append(1.0 / (1 + rank))  # the newest item counts most
        return _merged(read(names), names, weights)
    if step == "recently_viewed":
        return [(a, float(len(anchors) - i)) for i, a in enumerate(anchors)]
    if step == "bestsellers_in_category":
        if not anchor_category:
            return []
        name = f"bs:{category or anchor_category}"
        return [tuple(row) for row in _decode(read([name]), name)]
    if step in ("trending", "bestsellers"):
        name = ("tr" if step == "trending" else "bs") + (f":{category}" if category else "")
        return [tuple(row) for row in _decode(read([name]), name)]
    raise ValueError(f"unknown step {step!r}")
