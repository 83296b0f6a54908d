"""The periodic build: catalogue and signals in, rankings out (run by `vitrina recs build` and by
the background worker, never inside a request).

Signals are the interactions of the last WINDOW_DAYS (item views, carts and purchases from
collect, and imported orders), counted only for ids in the feed. Every score counts visitors,
not events, so one visitor's weight is capped:

- co-purchase and co-view: a pair of items counts the distinct visitors who had both in one
  basket (an order, a collect purchase) or one session; a visitor's most recent MAX_BASKETS
  baskets count, each for its first MAX_BASKET_ITEMS items, and a pair needs MIN_SUPPORT
  visitors before it counts at all, so a forged flood from one visitor moves nothing;
- trending: per visitor and item, the strongest of their interactions (view 1, cart 2,
  purchase 3) decayed with a TRENDING_HALF_LIFE_DAYS half-life; summed over visitors;
- bestsellers: distinct buyers; conversion (for upsell): buyers over viewers, smoothed.

Item-to-item similarity is cosine over visitors, c(AB) / sqrt(c(A) c(B)) (docs/DESIGN.md says why;
bench/recs_offline.py measures it against Jaccard and lift). `similar` and `upsell` are computed
from the catalogue: same category, price window, attribute overlap; upsell ranks by conversion."""
import heapq
import json
import math
import time
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from itertools import combinations

from server.catalog.products import (
    CUSTOM_LABELS,
    category,
    category_prefixes,
    effective_price,
)

WINDOW_DAYS = 90
TRENDING_HALF_LIFE_DAYS = 3
ACTION_WEIGHTS = {"view": 1.0, "cart": 2.0, "purchase": 3.0}
MAX_BASKETS = 50
MAX_BASKET_ITEMS = 30
MIN_SUPPORT = 2
NEIGHBOURS = 50  # per item and strategy
TOP = 200  # site-wide lists
CATEGORY_TOP = 100
SIMILAR_PRICE = (0.85, 1.25)
SIMILAR_WINDOW = 60  # nearest candidates in price order, each side
UPSELL_MAX_RATIO = 2.5
UPSELL_WINDOW = 100
UPSELL_NEIGHBOURS = 20
SIMILARITIES = ("cosine", "jaccard", "lift")
STAGES = ("catalogue", "signals", "bought_together", "viewed_together", "similar", "upsell", "lists", "writing")
_compact = json.JSONEncoder(separators=(",", ":")).encode


class Item:
    __slots__ = ("id", "category", "price", "brand", "google_category", "group", "labels")

    def __init__(self, product):
        self.id = product["id"]
        self.category = category(product)
        self.price = effective_price(product)
        self.brand = product.get("brand")
        self.google_category = product.get("google_product_category")
        self.group = product.get("item_group_id")
        self.labels = tuple(product.get(label) for label in CUSTOM_LABELS)


def load_catalogue(store, site, page=5000):
    """{id: Item} of every product of the site."""
    items, after = {}, ""
    while True:
        rows = store.list_products(site, after, page)
        for item_id, body in rows:
            items[item_id] = Item(json.loads(body))
        if len(rows) < page:
            return items
        after = rows[-1][0]


class Signals:
    """What the interactions say, per visitor: baskets and sessions, buyers, viewers, heat."""

    def __init__(self):
        self.baskets = {"purchase": defaultdict(dict), "view": defaultdict(dict)}  # who -> basket -> [ts, {ids}]
        self.buyers = defaultdict(set)
        self.viewers = defaultdict(set)
        self.heat = {}  # (who, id) -> strongest decayed weight
        self.read = 0

    def add(self, ts, who, basket, action, ids, now):
        self.read += 1
        kind = "purchase" if action == "purchase" else "view"
        entry = self.baskets[kind][who].get(basket)
        if entry is None:
            entry = self.baskets[kind][who][basket] = [ts, {}]
        entry[0] = max(entry[0], ts)
        members = entry[1]
        weight = ACTION_WEIGHTS.get(action, 1.0) * 0.5 ** (max(0.0, now - ts) / (TRENDING_HALF_LIFE_DAYS * 86_400))
        people = self.buyers if kind == "purchase" else self.viewers
        for item_id in ids:
            if len(members) < MAX_BASKET_ITEMS:
                members[item_id] = True
            people[item_id].add(who)
            key = (who, item_id)
            if weight > self.heat.get(key, 0.0):
                self.heat[key] = weight


def read_signals(store, site, items, now):
    signals = Signals()
    for ts, who, basket, action, items_json in store.interactions(site, now - WINDOW_DAYS * 86_400):
        ids = [i for i in json.loads(items_json) if i in items]
        if ids:
            signals.add(ts, who, basket, action, ids, now)
    return signals


def co_occurrences(baskets_by_visitor):
    """Counter {(a, b): visitors} over pairs a < b that a visitor had in one basket."""
    counts = Counter()
    for baskets in baskets_by_visitor.values():
        recent = heapq.nlargest(MAX_BASKETS, baskets.values(), key=lambda entry: entry[0])
        pairs = set()
        for _, members in recent:
            pairs.update(combinations(sorted(members), 2))
        counts.update(pairs)
    return counts


def similarity(kind, both, a, b, population):
    if kind == "cosine":
        return both / math.sqrt(a * b)
    if kind == "jaccard":
        return both / (a + b - both)
    if kind == "lift":
        return both * population / (a * b)
    raise ValueError(f"unknown similarity {kind!r}")


def _top(scored, limit):
    """Best `limit` of [(score, id)], as [(id, score)] by score then id."""
    return [(item_id, score) for score, item_id in sorted(scored, key=lambda row: (-row[0], row[1]))[:limit]]


def neighbours(counts, people, kind="cosine"):
    """{id: [(other, score)]} from co-occurrence counts and each item's distinct visitors."""
    population = len(set().union(*people.values())) if people else 0
    scored = defaultdict(list)
    for (a, b), both in counts.items():
        if both < MIN_SUPPORT:
            continue
        score = similarity(kind, both, len(people[a]), len(people[b]), population)
        scored[a].append((score, b))
        scored[b].append((score, a))
    return {item_id: _top(rows, NEIGHBOURS) for item_id, rows in scored.items()}


def _by_category(items):
    """{category: ([prices ascending], [Item in that order])} of items that have a category."""
    groups = defaultdict(list)
    for item in items.values():
        if item.category:
            groups[item.category].append(item)
    out = {}
    for name, members in groups.items():
        members.sort(key=lambda item: (item.price, item.id))
        out[name] = ([item.price for item in members], members)
    return out


def _same_group(a, b):
    return a.group is not None and a.group == b.group


def similar_items(items, groups):
    """{id: [(other, score)]}: same category, price within SIMILAR_PRICE of the anchor, scored by
    attribute overlap (brand 1, Google category 0.5, each custom label 0.25) plus price closeness."""
    out = {}
    low, high = SIMILAR_PRICE
    for prices, members in groups.values():
        for k, anchor in enumerate(members):
            start = max(bisect_left(prices, anchor.price * low), k - SIMILAR_WINDOW)
            stop = min(bisect_right(prices, anchor.price * high), k + SIMILAR_WINDOW + 1)
            scored = []
            for other in members[start:stop]:
                if other is anchor or _same_group(anchor, other):
                    continue
                overlap = (anchor.brand is not None and anchor.brand == other.brand) \
                    + 0.5 * (anchor.google_category is not None and anchor.google_category == other.google_category) \
                    + 0.25 * sum(mine is not None and mine == theirs for mine, theirs in zip(anchor.labels, other.labels))
                closeness = 1 - abs(other.price - anchor.price) / anchor.price if anchor.price else 1.0
                scored.append((round(overlap + closeness, 6), other.id))
            if scored:
                out[anchor.id] = _top(scored, NEIGHBOURS)
    return out


def conversion(item_id, signals):
    """Buyers over viewers, smoothed so a few events do not make a champion."""
    buyers = len(signals.buyers.get(item_id, ()))
    return (buyers + 1) / (max(len(signals.viewers.get(item_id, ())), buyers) + 20)


def upsell_items(groups, signals):
    """{id: [(other, score)]}: same category, dearer (up to UPSELL_MAX_RATIO times the price),
    ranked by conversion, then by nearness in price."""
    out = {}
    for prices, members in groups.values():
        for anchor in members:
            if anchor.price <= 0:
                continue
            start = bisect_right(prices, anchor.price)
            stop = min(bisect_right(prices, anchor.price * UPSELL_MAX_RATIO), start + UPSELL_WINDOW)
            scored = []
            for other in members[start:stop]:
                if _same_group(anchor, other):
                    continue
                nearness = 1 - (other.price - anchor.price) / (anchor.price * UPSELL_MAX_RATIO)
                scored.append((round(conversion(other.id, signals) + 1e-4 * nearness, 6), other.id))
            if scored:
                out[anchor.id] = _top(scored, UPSELL_NEIGHBOURS)
    return out


def site_lists(items, scores, prefix):
    """[(name, ranking)]: the site-wide list `prefix` and `prefix:<category>` for every category
    path and ancestor, from {id: score} (positive scores only)."""
    everything, per_category = [], defaultdict(list)
    for item_id, score in scores.items():
        if score <= 0 or item_id not in items:
            continue
        row = (round(score, 6), item_id)
        everything.append(row)
        for path in category_prefixes(items[item_id].category):
            per_category[path].append(row)
    yield prefix, _top(everything, TOP)
    for path, rows in per_category.items():
        yield f"{prefix}:{path}", _top(rows, CATEGORY_TOP)


def rankings(items, signals, kind="cosine", progress=None):
    """Every (name, [(id, score)]) ranking of a site."""
    step = progress or (lambda stage: None)
    step("bought_together")
    bought = neighbours(co_occurrences(signals.baskets["purchase"]), signals.buyers, kind)
    step("viewed_together")
    viewed = neighbours(co_occurrences(signals.baskets["view"]), signals.viewers, kind)
    step("similar")
    groups = _by_category(items)
    similar = similar_items(items, groups)
    step("upsell")
    upsell = upsell_items(groups, signals)
    step("lists")
    trending = defaultdict(float)
    for (_, item_id), heat in signals.heat.items():
        trending[item_id] += heat
    lists = list(site_lists(items, {i: len(b) for i, b in signals.buyers.items()}, "bs")) \
        + list(site_lists(items, trending, "tr"))
    step("writing")
    for prefix, table in (("bt", bought), ("vt", viewed), ("sim", similar), ("up", upsell)):
        for item_id, ranked in table.items():
            yield f"{prefix}:{item_id}", ranked
    yield from lists


def build_site(store, site, kind="cosine", progress=None, now=None):
    """Rebuild the site's rankings; returns a summary {products, interactions, rankings, seconds}."""
    started = time.time() if now is None else now
    clock = time.monotonic()
    step = progress or (lambda stage: None)
    step("catalogue")
    items = load_catalogue(store, site)
    step("signals")
    signals = read_signals(store, site, items, started)
    written = 0

    def encoded():
        nonlocal written
        for name, ranked in rankings(items, signals, kind, step):
            written += 1
            yield name, _compact([[item_id, round(score, 6)] for item_id, score in ranked])

    store.write_rankings(site, encoded(), built_at=started)
    return {"site": site, "products": len(items), "interactions": signals.read, "rankings": written,
            "seconds": round(time.monotonic() - clock, 3)}
