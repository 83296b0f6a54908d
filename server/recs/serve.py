"""Answering one recommendations request from precomputed rankings: the strategy's fallback
chain, the filters (availability, exclusions, price, category), the merchant's rules, and a
deterministic order (score, then id). What is shown comes from the catalogue alone.

The chain fills: the strategy's own items come first; when it has fewer than `n` after the
filters, the next steps of its chain fill the remaining places. `served_by` is the first step that
gave an item, `filled_by` the later ones that did."""
import json
from dataclasses import dataclass

from server.catalog.products import category as category_of
from server.catalog.products import effective_price, in_category, public_view
from server.recs import merchandising
from server.recs.strategies import CHAINS, SHOWS_ANCHORS, candidates

MAX_CANDIDATES = 200  # per step, best first, before the filters


@dataclass(frozen=True)
class Query:
    strategy: str
    items: tuple = ()
    n: int = 4
    exclude: frozenset = frozenset()
    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    availability: frozenset = frozenset({"in_stock"})


class _Catalogue:
    """The products one request reads, each fetched once."""

    def __init__(self, store, site):
        self.store, self.site, self.known = store, site, {}

    def get(self, ids):
        missing = [i for i in dict.fromkeys(ids) if i not in self.known]
        if missing:
            found = self.store.get_products(self.site, missing)
            for i in missing:
                self.known[i] = json.loads(found[i]) if i in found else None
        return {i: self.known[i] for i in ids if self.known.get(i)}


def _take(proposed, needed, rules, catalogue, shown):
    """(the first `needed` products of a step that pass the filters, in the rules' order; the
    buried ones met on the way). Products are read a page at a time, as far as needed, unless a
    boost may lift one from anywhere in the list."""
    page = max(len(proposed), 1) if merchandising.reorders(rules) else max(2 * needed, 8)
    ordered, buried = [], []
    for start in range(0, len(proposed), page):
        part = proposed[start:start + page]
        found = catalogue.get([i for i, _ in part])
        kept, held = merchandising.order(rules, [(found[i], s) for i, s in part if i in found and shown(found[i])])
        ordered += kept
        buried += held
        if len(ordered) >= needed:
            break
    return ordered[:needed], buried


def recommend(store, site, query, rules_document=None):
    """{"strategy", "served_by", "filled_by", "items": [public product fields]}."""
    catalogue = _Catalogue(store, site)
    anchors = list(query.items)
    anchor_products = catalogue.get(anchors)
    anchor_category = category_of(anchor_products[anchors[0]]) if anchors and anchors[0] in anchor_products else ""
    hidden = set(query.exclude) | (set() if query.strategy in SHOWS_ANCHORS else set(anchors))

    def shown(product):
        price = effective_price(product)
        return (product["availability"] in query.availability
                and (query.min_price is None or price >= query.min_price)
                and (query.max_price is None or price <= query.max_price)
                and (query.category is None or in_category(category_of(product), query.category)))

    def read(names):
        return store.rankings(site, names)

    rules = merchandising.rules_for(rules_document, query.strategy)
    chosen, held_back, used = [], [], []  # held_back: buried items, shown only if slots remain
    for step in CHAINS[query.strategy]:
        taken = {p["id"] for p in chosen + held_back}
        proposed = sorted(((i, s) for i, s in candidates(step, anchors, query.category, anchor_category, read)
                           if i not in hidden and i not in taken), key=lambda row: (-row[1], row[0]))[:MAX_CANDIDATES]
        ordered, buried = _take(proposed, query.n - len(chosen), rules, catalogue, shown)
        if ordered:
            used.append(step)
        chosen += ordered
        held_back += buried
        if len(chosen) >= query.n:
            break
    pinned = {i: p for i, p in catalogue.get(merchandising.pinned_ids(rules)).items() if i not in hidden and shown(p)}
    shown_items = merchandising.pin(rules, chosen + held_back, pinned)[:query.n]
    return {"strategy": query.strategy, "served_by": used[0] if used else None, "filled_by": used[1:],
            "items": [public_view(p) for p in shown_items]}
