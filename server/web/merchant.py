"""Merchant API: drafts, publishing, versions, rollback, server-side decisions, results, sample sizes."""
import json
import re

from flask import Blueprint, jsonify, request

from server.configs import publishing
from server.configs.validation import parse_config, validate_config
from server.decisions.decide import decide
from server.errors import APIError
from server.store import get_store
from server.web.auth import require_site_key

bp = Blueprint("merchant", __name__, url_prefix="/api/v1/sites/<site>")
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")
MAX_ATTRIBUTES_BYTES = 64 * 1024


def _json_body():
    body, problems = parse_config(request.get_data(cache=False))
    if problems:
        raise APIError(400, "invalid_json", "The body is not valid JSON.", problems)
    return body


@bp.put("/config")
@require_site_key
def put_config(site):
    config = _json_body()
    problems = validate_config(config)
    if problems:
        raise APIError(400, "invalid_config", f"The config has {len(problems)} problem(s); nothing was saved.", problems)
    get_store().save_draft(site, json.dumps(config, separators=(",", ":")))
    return jsonify({"site": site, "saved": True})


@bp.get("/config")
@require_site_key
def get_config(site):
    raw = get_store().get_draft(site)
    if raw is None:
        raise APIError(404, "no_draft", f"Site '{site}' has no draft config yet.")
    response = jsonify(json.loads(raw))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/publish")
@require_site_key
def publish(site):
    version = publishing.publish_draft(site)
    return jsonify({"site": site, "version": version}), 201


@bp.get("/versions")
@require_site_key
def versions(site):
    rows = get_store().list_versions(site)
    return jsonify({"site": site, "versions": [{"version": v, "published_at": at} for v, at in rows]})


@bp.post("/rollback")
@require_site_key
def rollback(site):
    body = _json_body()
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise APIError(400, "invalid_request", "Send {\"version\": <a published version number>}.",
                       [{"path": "/version", "message": "must be a positive integer"}])
    new = publishing.rollback(site, version)
    return jsonify({"site": site, "version": new, "rolled_back_from": version}), 201


@bp.post("/decide")
@require_site_key
def decide_for_visitor(site):
    if (request.content_length or 0) > MAX_ATTRIBUTES_BYTES:
        raise APIError(413, "payload_too_large", f"The body may be at most {MAX_ATTRIBUTES_BYTES} bytes.")
    body = _json_body()
    problems = _decide_problems(body)
    if problems:
        raise APIError(400, "invalid_request", "Send {\"visitor_id\": \"...\", \"attributes\": {...}}.", problems)
    latest = publishing.load_latest(site)
    if latest is None:
        raise APIError(409, "not_published", f"Site '{site}' has no published version yet.")
    bundle, _ = latest
    result = decide(bundle, body.get("attributes", {}), body["visitor_id"],
                    now=body.get("now"), force=body.get("force"), triggered=body.get("triggered"))
    return jsonify({"version": bundle["version"], **result})


def _decide_problems(body):
    if not isinstance(body, dict):
        return [{"path": "", "message": "must be an object"}]
    problems = []
    if not isinstance(body.get("visitor_id"), str) or not ID_RE.match(body["visitor_id"]):
        problems.append({"path": "/visitor_id", "message": "must be 1 to 128 characters of A-Z a-z 0-9 _ . -"})
    if not isinstance(body.get("attributes", {}), dict):
        problems.append({"path": "/attributes", "message": "must be an object"})
    if "now" in body and (not isinstance(body["now"], (int, float)) or isinstance(body["now"], bool)):
        problems.append({"path": "/now", "message": "must be a time in milliseconds since 1970"})
    if "force" in body and not (isinstance(body["force"], dict) and all(isinstance(v, str) for v in body["force"].values())):
        problems.append({"path": "/force", "message": "must map campaign keys to variation keys"})
    if "triggered" in body and not (isinstance(body["triggered"], list) and all(isinstance(v, str) for v in body["triggered"])):
        problems.append({"path": "/triggered", "message": "must be a list of campaign keys"})
    extra = set(body) - {"visitor_id", "attributes", "now", "force", "triggered"}
    if extra:
        problems.append({"path": "", "message": f"unknown fields: {', '.join(sorted(extra))}"})
    return problems


@bp.get("/results")
@require_site_key
def results(site):
    goals = request.args.get("goals", "campaign")
    if goals not in ("campaign", "all"):
        raise APIError(400, "invalid_request", "goals is `campaign` (the default) or `all`.",
                       [{"path": "/goals", "message": "must be campaign or all"}])
    # scipy loads on the first results request, not in every worker at start (about 1 s, 75 MB)
    from server.results.report import site_results
    return jsonify(site_results(site, all_goals=goals == "all"))


@bp.get("/sample-size")
@require_site_key
def sample_size(site):
    """Visitors needed for a conversion-rate experiment; alpha defaults to the site's settings.stats."""
    from server.results import sample_size as planning
    values = {name: request.args.get(name) for name in planning.PARAMETERS}
    if values["alpha"] is None:
        latest = publishing.load_latest(site)
        values["alpha"] = ((latest[0]["settings"].get("stats") or {}).get("alpha") if latest else None)
    problems = planning.problems(values)
    if problems:
        raise APIError(400, "invalid_request", f"The query has {len(problems)} problem(s).", problems)
    return jsonify(planning.sample_size(**planning.parse(values)))
