"""Merchant API of the catalogue and recommendations: product feeds, order history, merchandising."""
import io
import json
import re

from flask import Blueprint, current_app, jsonify, request

from server.catalog import feed
from server.catalog.importer import import_orders, import_products
from server.catalog.products import item_id_problem
from server.errors import APIError
from server.recs.merchandising import validate_rules
from server.store import get_store
from server.web.auth import require_key

bp = Blueprint("catalog", __name__, url_prefix="/api/v1/sites/<site>")
FEED_PATH_RE = re.compile(r"^/api/v1/sites/[^/]+/(catalog|orders|customers)\Z")
MAX_PAGE = 1000
MAX_RULES_BYTES = 256 * 1024


def body_limit(config):
    """The largest body read for a request path: feeds, orders and customer data have their own limit."""
    feeds, others = config["VITRINA_FEED_MAX_BYTES"], config["MAX_CONTENT_LENGTH"]
    return lambda path: feeds if FEED_PATH_RE.match(path) else others


def feed_records(what, id_columns=("id",)):
    """The body's records, read as a stream, after the checks that need no reading (a CSV header
    names one of `id_columns`)."""
    limit = current_app.config["VITRINA_FEED_MAX_BYTES"]
    request.max_content_length = limit  # reading past it raises 413 (bodies without Content-Length)
    if (request.content_length or 0) > limit:
        raise APIError(413, "payload_too_large", f"{what} may be at most {limit} bytes (VITRINA_FEED_MAX_BYTES).")
    media = feed.media_type_of(request.content_type)
    # Werkzeug's limited stream is unbuffered: its readline would read a byte per call
    stream = io.BufferedReader(request.stream, buffer_size=1 << 16)
    try:
        return feed.records(stream, media, id_columns)
    except feed.UnsupportedMediaType as e:
        raise APIError(415, "unsupported_media_type", f"Content-Type {media or '(none)'}: {e}.") from None


@bp.put("/catalog")
@require_key("publish")
def put_catalog(site):
    return jsonify(import_products(get_store(), site, feed_records("A feed"), replace=True))


@bp.patch("/catalog")
@require_key("publish")
def patch_catalog(site):
    return jsonify(import_products(get_store(), site, feed_records("A feed"), replace=False))


@bp.get("/catalog")
@require_key("read")
def list_catalog(site):
    after = request.args.get("after", "")
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        limit = 0
    problems = []
    if not 1 <= limit <= MAX_PAGE:
        problems.append({"path": "/limit", "message": f"must be an integer from 1 to {MAX_PAGE}"})
    if after and item_id_problem(after):
        problems.append({"path": "/after", "message": "must be a product id (the previous page's next)"})
    if problems:
        raise APIError(400, "invalid_request", "The query is invalid.", problems)
    store = get_store()
    rows = store.list_products(site, after, limit)
    products = [json.loads(body) for _, body in rows]
    return jsonify({"site": site, "total": store.count_products(site), "products": products,
                    "next": rows[-1][0] if len(rows) == limit else None})


@bp.get("/catalog/<path:product_id>")
@require_key("read")
def get_product(site, product_id):
    body = get_store().get_products(site, [product_id]).get(product_id) if not item_id_problem(product_id) else None
    if body is None:
        raise APIError(404, "product_not_found", f"There is no product '{product_id}' in the catalogue of '{site}'.")
    return current_app.response_class(body, mimetype="application/json")


@bp.post("/orders")
@require_key("publish")
def post_orders(site):
    return jsonify(import_orders(get_store(), site, feed_records("An order history")))


@bp.put("/merchandising")
@require_key("publish")
def put_merchandising(site):
    if (request.content_length or 0) > MAX_RULES_BYTES:
        raise APIError(413, "payload_too_large", f"Merchandising rules may be at most {MAX_RULES_BYTES} bytes.")
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        raise APIError(400, "invalid_json", "The body is not valid JSON.") from None
    rules, problems = validate_rules(body)
    if problems:
        raise APIError(400, "invalid_merchandising", f"The rules have {len(problems)} problem(s); nothing was saved.",
                       problems)
    get_store().save_merchandising(site, json.dumps(rules, separators=(",", ":")))
    return jsonify(rules)


@bp.get("/merchandising")
@require_key("read")
def get_merchandising(site):
    raw = get_store().get_merchandising(site)
    return jsonify(json.loads(raw) if raw else {"rules": []})


@bp.get("/recommendations/status")
@require_key("read")
def recommendations_status(site):
    store = get_store()
    return jsonify({"site": site, "products": store.count_products(site), **store.recs_status(site)})
