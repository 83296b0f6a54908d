"""Merchant API of known customers: CRM data (import, read, erase), the site's CRM attributes,
and what a customer gets in an email."""
import zoneinfo
from datetime import datetime, timezone

from flask import Blueprint, jsonify, request

from server.catalog.feed import CSV_TYPES, media_type_of
from server.configs import publishing
from server.decisions.inputs import zone_problem
from server.errors import APIError
from server.identity import customers, email, site_secrets
from server.identity.tokens import EMAIL_SHA256_RE, customer_id_problem
from server.store import get_store
from server.web.auth import require_key
from server.web.catalog_api import feed_records
from server.wire.ids import KEY_RE

bp = Blueprint("customers", __name__, url_prefix="/api/v1/sites/<site>")
MAX_CAMPAIGNS = 20


def _import(site, replace):
    lines = feed_records("Customer data", id_columns=customers.ID_FIELDS)
    typed = media_type_of(request.content_type) in CSV_TYPES
    return jsonify(customers.import_customers(get_store(), site, lines, replace=replace, typed_cells=typed))


@bp.put("/customers")
@require_key("publish")
def put_customers(site):
    return _import(site, replace=True)


@bp.patch("/customers")
@require_key("publish")
def patch_customers(site):
    return _import(site, replace=False)


def _customer_id(customer_id):
    problem = customer_id_problem(customer_id)
    if problem:
        raise APIError(400, "invalid_request", "The customer id is invalid.", [{"path": "/customer_id",
                                                                               "message": problem}])
    return customer_id


def _email_sha256():
    value = request.args.get("email_sha256")
    if value is not None and not EMAIL_SHA256_RE.match(value):
        raise APIError(400, "invalid_query", "The query is invalid.",
                       [{"path": "/email_sha256", "message": "must be 64 hex digits"}])
    return value


def _iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.get("/customers/<customer_id>")
@require_key("read")
def get_customer(site, customer_id):
    customer_id, email_sha256 = _customer_id(customer_id), _email_sha256()
    by_id = customers.stored(site, customer_id=customer_id)
    by_email = customers.stored(site, email_sha256=email_sha256) if email_sha256 else None
    if by_id is None and by_email is None:
        raise APIError(404, "customer_not_found", f"Site '{site}' has no CRM data for this customer.")
    crm, _ = customers.resolve(site, customer_id, email_sha256)
    key = site_secrets.customer_key(site, customer_id)
    response = jsonify({
        "customer_id": customer_id, "key": key,
        "attributes": (by_id or {}).get("attributes", {}),
        "email_attributes": (by_email or {}).get("attributes") if email_sha256 else None,
        "crm": crm,
        "updated_at": _iso(max(r["updated_at"] for r in (by_id, by_email) if r)),
        "linked_visitors": len(get_store().linked_visitors(site, key))})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/customers/<customer_id>")
@require_key("publish")
def erase_customer(site, customer_id):
    customer_id, email_sha256 = _customer_id(customer_id), _email_sha256()
    return jsonify({"customer_id": customer_id, "erased": customers.erase(site, customer_id, email_sha256)})


@bp.get("/crm-attributes")
@require_key("read")
def crm_attributes(site):
    return jsonify(customers.describe(site))


@bp.get("/customers/<customer_id>/content")
@require_key("read")
def customer_content(site, customer_id):
    customer_id = _customer_id(customer_id)
    latest = publishing.load_latest(site)
    if latest is None:
        raise APIError(409, "not_published", f"Site '{site}' has no published version yet.")
    bundle, _ = latest
    keys, zone = _content_query(bundle)
    response = jsonify({"site": site, "version": bundle["version"],
                        **email.content(site, bundle, customer_id, keys, zone)})
    response.headers["Cache-Control"] = "no-store"
    return response


def _content_query(bundle):
    """(campaign keys, time zone) of the query, or 400 listing every problem."""
    problems = []
    unknown = set(request.args) - {"campaigns", "timezone"}
    if unknown:
        problems.append({"path": "", "message": f"unknown parameters: {', '.join(sorted(unknown))}"})
    keys = [k for k in request.args.get("campaigns", "").split(",") if k]
    if not 1 <= len(keys) <= MAX_CAMPAIGNS:
        problems.append({"path": "/campaigns", "message": f"must list 1 to {MAX_CAMPAIGNS} campaign keys, "
                                                          "comma-separated"})
    live = {c["key"] for c in bundle["campaigns"]}
    for i, key in enumerate(keys[:MAX_CAMPAIGNS]):
        if not KEY_RE.match(key) or key not in live:
            problems.append({"path": f"/campaigns/{i}", "message": f"no live campaign {key!r} in version "
                                                                   f"{bundle['version']}"})
    zone_name = request.args.get("timezone", "UTC")
    if zone_problem(zone_name):
        problems.append({"path": "/timezone", "message": zone_problem(zone_name)})
    if problems:
        raise APIError(400, "invalid_query", "The query is invalid.", problems)
    return list(dict.fromkeys(keys)), zoneinfo.ZoneInfo(zone_name)
