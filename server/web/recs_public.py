"""Public recommendations endpoints: what a shop page asks for, answered from precomputed rankings
and counters, never from a scan of events.

Answers depend only on the URL (and the site's data), so they are CDN-cacheable; a visitor's own
exclusions (cart, past purchases) travel in the query. `products/<id>` is one product's public
fields with its live activity (placeholders such as {{product.views_24h}})."""
import json
import math
import time

from flask import Blueprint, current_app, jsonify, request

from server.cache import app_cache
from server.catalog.products import (
    AVAILABILITY,
    item_id_problem,
    normalise_category,
    public_view,
)
from server.delivery.serving import SITE_RE
from server.errors import APIError
from server.recs.serve import Query, recommend
from server.recs.strategies import STRATEGIES
from server.store import UNAVAILABLE, get_store, site_exists

bp = Blueprint("recs_public", __name__)
CORS = {"Access-Control-Allow-Origin": "*"}
MAX_N, MAX_ITEMS, MAX_EXCLUDE = 20, 20, 100
MAX_AGE_S = 300
PRODUCT_MAX_AGE_S = 60  # live counts: a minute old at most in a shared cache
READS_MAX_AGE_S = 5  # rules, rankings and products: what a request reads is at most this old
_MISSING = object()
PARAMS = {"strategy", "items", "n", "exclude", "category", "min_price", "max_price", "availability"}


def _p(path, message):
    return {"path": path, "message": message}


def _ids(name, limit, problems):
    raw = request.args.get(name, "")
    ids = [i for i in raw.split(",") if i] if raw else []
    if len(ids) > limit:
        problems.append(_p(f"/{name}", f"at most {limit} ids"))
        return ()
    for i, item_id in enumerate(ids):
        if item_id_problem(item_id):
            problems.append(_p(f"/{name}/{i}", item_id_problem(item_id)))
    return tuple(dict.fromkeys(ids))


def _number(name, problems):
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        problems.append(_p(f"/{name}", "must be a number, at least 0"))
        return None
    return value


def parse_query(strategy):
    """A Query from the request's arguments, or APIError 400 listing every problem."""
    problems = []
    unknown = set(request.args) - PARAMS
    if unknown:
        problems.append(_p("", f"unknown parameters: {', '.join(sorted(unknown))}"))
    if any(len(request.args.getlist(name)) > 1 for name in request.args):
        problems.append(_p("", "each parameter at most once"))
    items = _ids("items", MAX_ITEMS, problems)
    exclude = _ids("exclude", MAX_EXCLUDE, problems)
    n = request.args.get("n", "4")
    if not n.isdecimal() or not 1 <= int(n) <= MAX_N:
        problems.append(_p("/n", f"must be an integer from 1 to {MAX_N}"))
    category = request.args.get("category")
    if category is not None and (not category.strip() or len(category) > 750):
        problems.append(_p("/category", "must be a category path of at most 750 characters"))
    availability = request.args.get("availability", "in_stock").split(",")
    if any(a not in AVAILABILITY for a in availability):
        problems.append(_p("/availability", f"must be a comma-separated list of {', '.join(AVAILABILITY)}"))
    min_price, max_price = _number("min_price", problems), _number("max_price", problems)
    if problems:
        raise APIError(400, "invalid_query", "The query is invalid.", problems, headers=_no_store())
    return Query(strategy=strategy, items=items, n=int(n), exclude=frozenset(exclude),
                 category=normalise_category(category) if category else None, min_price=min_price,
                 max_price=max_price, availability=frozenset(availability))


def _no_store():
    return {**CORS, "Cache-Control": "no-store"}


def _window():
    return int(time.monotonic() // READS_MAX_AGE_S)


def _rules(site):
    cache = app_cache("merchandising rules", 4096, f"PUT .../merchandising: entries live {READS_MAX_AGE_S} s",
                      token=_window)
    return cache.get_or_make(site, lambda: json.loads(get_store().get_merchandising(site) or "null"))


class _RecentReads:
    """The store's product and ranking reads through per-process caches whose entries live
    READS_MAX_AGE_S: popular products and anchors cost no store read. (Answers are cached by
    CDNs for MAX_AGE_S anyway.) Absent keys are remembered too."""

    def __init__(self, store):
        self.store = store
        self.products = app_cache("recommended products", 50_000,
                                  f"a catalogue change: entries live {READS_MAX_AGE_S} s", token=_window)
        self.ranked = app_cache("recommendation rankings", 50_000,
                                f"a recommendations build: entries live {READS_MAX_AGE_S} s", token=_window)

    def get_products(self, site, ids):
        return self._through(self.products, site, ids, self.store.get_products)

    def rankings(self, site, names):
        return self._through(self.ranked, site, names, self.store.rankings)

    @staticmethod
    def _through(cache, site, keys, read):
        found, missing = {}, []
        for key in keys:
            value = cache.get((site, key), _MISSING)
            if value is _MISSING:
                missing.append(key)
            elif value is not None:
                found[key] = value
        if missing:
            fresh = read(site, missing)
            for key in missing:
                cache.put((site, key), fresh.get(key))
            found.update(fresh)
        return found


@bp.get("/v1/sites/<site>/recommendations")
def recommendations(site):
    try:
        answer = _answer(site)
    except UNAVAILABLE as e:
        current_app.logger.warning("recommendations for %s: store unavailable (%s)", site, e)
        raise APIError(503, "store_unavailable", "Recommendations are unavailable right now; try again later.",
                       headers={**_no_store(), "Retry-After": "5"}) from None
    response = jsonify(answer)
    response.headers.update({**CORS, "Cache-Control": f"public, max-age={MAX_AGE_S}"})
    return response


def _answer(site):
    if not SITE_RE.match(site) or not site_exists(site):
        raise APIError(404, "site_not_found", f"There is no site '{site}'.", headers=_no_store())
    strategy = request.args.get("strategy", "")
    if strategy not in STRATEGIES:
        raise APIError(404, "strategy_not_found", f"There is no strategy '{strategy}'; there are: "
                       f"{', '.join(STRATEGIES)}.", [_p("/strategy", "unknown strategy")], headers=_no_store())
    return recommend(_RecentReads(get_store()), site, parse_query(strategy), _rules(site))


@bp.get("/v1/sites/<site>/products/<path:product_id>")
def product(site, product_id):
    try:
        answer = _product(site, product_id)
    except UNAVAILABLE as e:
        current_app.logger.warning("product %s of %s: store unavailable (%s)", product_id, site, e)
        raise APIError(503, "store_unavailable", "Products are unavailable right now; try again later.",
                       headers={**_no_store(), "Retry-After": "5"}) from None
    response = jsonify(answer)
    response.headers.update({**CORS, "Cache-Control": f"public, max-age={PRODUCT_MAX_AGE_S}"})
    return response


def _product(site, product_id):
    """The product's public fields and its views and purchases of the last 24 hours."""
    if not SITE_RE.match(site) or not site_exists(site):
        raise APIError(404, "site_not_found", f"There is no site '{site}'.", headers=_no_store())
    problem = item_id_problem(product_id)
    if problem:
        raise APIError(400, "invalid_product_id", "The product id is invalid.", [_p("/id", problem)],
                       headers=_no_store())
    reads = _RecentReads(get_store())
    found = reads.get_products(site, [product_id]).get(product_id)
    if found is None:
        raise APIError(404, "product_not_found", f"There is no product '{product_id}' in the catalogue.",
                       headers={**CORS, "Cache-Control": f"public, max-age={PRODUCT_MAX_AGE_S}"})
    activity = app_cache("product activity", 50_000, f"the clock: entries live {READS_MAX_AGE_S} s", token=_window)
    counts = activity.get_or_make((site, product_id), lambda: get_store().product_activity(site, product_id, time.time()))
    return {**public_view(json.loads(found)), **counts}
