"""Merchant API: drafts, publishing, versions, rollback, server-side decisions, results, sample sizes,
the raw event export, model reports."""
import json
import time
from datetime import datetime, timezone

from flask import Blueprint, Response, jsonify, request

from server.accounts import audit
from server.configs import publishing
from server.configs.drafts import load_draft, save_draft
from server.configs.validation import parse_config
from server.decisions.decide import decide
from server.decisions.inputs import Inputs, ip_problem, zone_problem
from server.errors import APIError
from server.store import get_store
from server.store.base import SLICE_DIMENSIONS
from server.web.auth import require_key
from server.wire.schemas import problems as schema_problems

bp = Blueprint("merchant", __name__, url_prefix="/api/v1/sites/<site>")
MAX_ATTRIBUTES_BYTES = 64 * 1024
MAX_VERSION = 10**9  # as collect's events: no site publishes a billion versions
EXPORT_LIMIT, MAX_EXPORT_LIMIT = 1000, 10_000  # events per page of GET .../events
MAX_CURSOR = 64


def _json_body():
    body, problems = parse_config(request.get_data(cache=False))
    if problems:
        raise APIError(400, "invalid_json", "The body is not valid JSON.", problems)
    return body


@bp.put("/config")
@require_key("publish")
def put_config(site):
    # The sanitised config is what is stored, read back and published; warnings say what it lost.
    # If-Match is optional here: with it, a stale tag is a 412 and nothing is stored.
    review = save_draft(site, _json_body(), request.if_match)
    audit.record(site, "config.save", "saved the draft config (API)")
    response = jsonify({"site": site, "saved": True, "warnings": review.warnings})
    response.headers["ETag"] = review.etag
    return response


@bp.get("/config")
@require_key("read")
def get_config(site):
    draft = load_draft(site)
    if draft.raw is None:
        raise APIError(404, "no_draft", f"Site '{site}' has no draft config yet.")
    response = jsonify(draft.config)
    response.headers.update({"Cache-Control": "no-store", "ETag": draft.etag})
    return response


@bp.post("/publish")
@require_key("publish")
def publish(site):
    version, warnings = publishing.publish_draft(site)
    audit.record(site, "publish", f"published version {version}", {"version": version})
    return jsonify({"site": site, "version": version, "warnings": warnings}), 201


@bp.get("/versions")
@require_key("read")
def versions(site):
    rows = get_store().list_versions(site)
    metas = {v: json.loads(text) for v, text in get_store().version_meta(site, [v for v, _ in rows]).items()}
    return jsonify({"site": site, "versions": [
        {"version": v, "published_at": at, "published_by": metas.get(v, {}).get("published_by"),
         **({"note": metas[v]["note"]} if metas.get(v, {}).get("note") else {})} for v, at in rows]})


@bp.post("/rollback")
@require_key("publish")
def rollback(site):
    body = _json_body()
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise APIError(400, "invalid_request", "Send {\"version\": <a published version number>}.",
                       [{"path": "/version", "message": f"must be an integer from 1 to {MAX_VERSION}"}])
    new = publishing.rollback(site, version)
    audit.record(site, "rollback", f"rolled back to version {version} (published as version {new})",
                 {"version": new, "rolled_back_from": version})
    return jsonify({"site": site, "version": new, "rolled_back_from": version}), 201


@bp.post("/decide")
@require_key("read")
def decide_for_visitor(site):
    if (request.content_length or 0) > MAX_ATTRIBUTES_BYTES:
        raise APIError(413, "payload_too_large", f"The body may be at most {MAX_ATTRIBUTES_BYTES} bytes.")
    body = _json_body()
    problems = _decide_problems(body)
    if problems:
        raise APIError(400, "invalid_request", "Send {\"visitor_id\" or \"customer_id\", \"attributes\": {...}}.",
                       problems)
    latest = publishing.load_latest(site)
    if latest is None:
        raise APIError(409, "not_published", f"Site '{site}' has no published version yet.")
    bundle, _ = latest
    now = body.get("now", time.time() * 1000)
    inputs = Inputs(site, body, now)
    inputs.predict(bundle)
    result = decide(bundle, inputs.attributes, body.get("visitor_id", inputs.customer), now=now,
                    force=body.get("force"), sticky=body.get("sticky"), counts=body.get("counts"),
                    triggered=body.get("triggered"), customer=inputs.customer)
    return jsonify({"version": bundle["version"], **result, "resolved": inputs.resolved, "ignored": inputs.ignored})


def _decide_problems(body):
    """The schema's problems, said plainly for a body with neither id; and the inputs the schema
    cannot check (an address, a time zone)."""
    problems = schema_problems("decide-request", body)
    if isinstance(body, dict) and "visitor_id" not in body and "customer_id" not in body:
        problems = [p for p in problems if p["path"] != ""] + [
            {"path": "/visitor_id", "message": "is required (or customer_id)"}]
    if not problems:
        for field, check in (("ip", ip_problem), ("timezone", zone_problem)):
            if body.get(field) is not None and check(body[field]):
                problems.append({"path": f"/{field}", "message": check(body[field])})
    return problems


@bp.get("/models")
@require_key("read")
def models(site):
    """Each goal's newest model report (docs/reference/predict.md)."""
    from server.predict.models import reports
    from server.predict.training import AUC_FLOOR
    return jsonify({"site": site, "floor": AUC_FLOOR, "goals": reports(site)})


@bp.get("/results")
@require_key("read")
def results(site):
    goals = request.args.get("goals", "campaign")
    if goals not in ("campaign", "all"):
        raise APIError(400, "invalid_request", "goals is `campaign` (the default) or `all`.",
                       [{"path": "/goals", "message": "must be campaign or all"}])
    channel = request.args.get("channel")
    if channel not in (None, "web", "email"):
        raise APIError(400, "invalid_request", "channel is `web` or `email` (default: both).",
                       [{"path": "/channel", "message": "must be web or email"}])
    breakdown = request.args.get("breakdown")
    if breakdown is not None and breakdown not in SLICE_DIMENSIONS:
        raise APIError(400, "invalid_request", f"breakdown is one of {', '.join(SLICE_DIMENSIONS)}.",
                       [{"path": "/breakdown", "message": "must be one of " + ", ".join(SLICE_DIMENSIONS)}])
    # scipy loads on the first results request, not in every worker at start (about 1 s, 75 MB)
    from server.results.report import site_results
    return jsonify(site_results(site, all_goals=goals == "all", channel=channel, breakdown=breakdown))


@bp.get("/events")
@require_key("read")
def export_events(site):
    """The raw event log as JSON lines (spec/schemas/event-export.schema.json), oldest first, from
    the position after `since`; `Vitrina-Next-Cursor` is the `since` of the next page."""
    since, problems = request.args.get("since") or None, []
    limit = request.args.get("limit", str(EXPORT_LIMIT))
    if since is not None and len(since) > MAX_CURSOR:
        problems.append({"path": "/since", "message": f"must be a cursor of at most {MAX_CURSOR} characters"})
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_EXPORT_LIMIT):
        problems.append({"path": "/limit", "message": f"must be an integer from 1 to {MAX_EXPORT_LIMIT}"})
    if not problems:
        try:
            events, missed = get_store().events_after(site, since, int(limit))
        except ValueError:
            problems.append({"path": "/since", "message": "must be a cursor this server gave (a line's `cursor`)"})
    if problems:
        raise APIError(400, "invalid_request", f"The query has {len(problems)} problem(s).", problems)
    headers = {"Vitrina-Next-Cursor": events[-1]["cursor"] if events else since or "",
               "Vitrina-More": "true" if len(events) == int(limit) else "false", "Cache-Control": "no-store"}
    if missed:
        headers["Vitrina-Missed"] = "true"  # events after `since` were trimmed from the log (or erased)
    return Response((_export_line(e) for e in events), headers=headers, mimetype="application/x-ndjson")


def _export_line(event):
    received = datetime.fromtimestamp(event["received_at"], timezone.utc).isoformat(timespec="milliseconds")
    envelope = json.dumps({"cursor": event["cursor"], "id": event["id"], "visitor_id": event["visitor_id"],
                           "type": event["type"], "received_at": received.replace("+00:00", "Z")},
                          separators=(",", ":"))
    return f'{envelope[:-1]},"event":{event["body"]}}}\n'  # the stored JSON as it is: never parsed again


@bp.get("/sample-size")
@require_key("read")
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
