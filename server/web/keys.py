"""Merchant API for a site's keys (an owner key only, so a leaked publish or read key cannot
mint or revoke keys): list (never a secret), create (the secret shown once), revoke."""
from datetime import datetime, timezone

from flask import Blueprint, jsonify, request

from server.accounts import audit
from server.configs.validation import parse_config
from server.errors import APIError
from server.store import KeyExists, get_store
from server.web.auth import create_key, key_problems, require_key

bp = Blueprint("keys", __name__, url_prefix="/api/v1/sites/<site>/keys")


def iso_time(seconds):
    """A stored time (seconds since 1970) as ISO 8601 UTC to the second, None as None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(key):
    return {"name": key.name, "scope": key.scope, "created_at": iso_time(key.created_at),
            "last_used_at": iso_time(key.last_used_at)}


@bp.get("")
@require_key("owner")
def list_keys(site):
    response = jsonify({"site": site, "keys": [describe(key) for key in get_store().list_keys(site)]})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("")
@require_key("owner")
def create(site):
    body, problems = parse_config(request.get_data(cache=False))
    if problems:
        raise APIError(400, "invalid_json", "The body is not valid JSON.", problems)
    if not isinstance(body, dict):
        raise APIError(400, "invalid_request", "Send {\"name\": \"...\", \"scope\": \"owner|publish|read\"}.",
                       [{"path": "", "message": "must be an object"}])
    problems = key_problems(body.get("name"), body.get("scope"))
    extra = set(body) - {"name", "scope"}
    if extra:
        problems.append({"path": "", "message": f"unknown fields: {', '.join(sorted(extra))}"})
    if problems:
        raise APIError(400, "invalid_request", "Send {\"name\": \"...\", \"scope\": \"owner|publish|read\"}.", problems)
    try:
        secret = create_key(site, body["name"], body["scope"])
    except KeyExists:
        raise APIError(409, "key_exists", f"Site '{site}' already has a key named '{body['name']}'.",
                       [{"path": "/name", "message": "is taken: revoke that key first, or choose another name"}]) from None
    audit.record(site, "key.create", f"created API key '{body['name']}' (scope {body['scope']})",
                 {"name": body["name"], "scope": body["scope"]})
    response = jsonify({"site": site, "name": body["name"], "scope": body["scope"], "key": secret})
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@bp.delete("/<name>")
@require_key("owner")
def revoke(site, name):
    store = get_store()
    keys = store.list_keys(site)
    target = next((key for key in keys if key.name == name), None)
    if target is None:
        raise APIError(404, "key_not_found", f"Site '{site}' has no key named '{name}'.")
    if target.scope == "owner" and sum(key.scope == "owner" for key in keys) == 1:
        raise APIError(409, "last_owner_key", f"'{name}' is the last owner key of site '{site}': create another "
                                              "owner key first (or revoke it with the vitrina CLI).")
    store.revoke_key(site, name)
    audit.record(site, "key.revoke", f"revoked API key '{name}'", {"name": name})
    return jsonify({"site": site, "name": name, "revoked": True})
