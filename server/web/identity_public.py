"""Public identity endpoint: a shop page exchanges the identity token its backend minted for the
customer's crm attributes and a signed identity (server/identity/tokens.py)."""
import json
import time

from flask import Blueprint, Response, current_app, jsonify, request

from server.configs import publishing
from server.errors import APIError
from server.events.ratelimit import check_collect
from server.identity import site_secrets
from server.identity.customers import attributes_problems, resolve
from server.identity.tokens import TokenRefused, issue_identity, verify_token
from server.store import UNAVAILABLE, site_exists
from server.wire.ids import SITE_RE, VISITOR_ID_RE

bp = Blueprint("identity_public", __name__)
CORS = {"Access-Control-Allow-Origin": "*"}
NO_STORE = {**CORS, "Cache-Control": "no-store"}
MAX_BODY = 16 * 1024


def _refuse(status, code, message, details=None):
    raise APIError(status, code, message, details, headers=NO_STORE)


def _body():
    if (request.content_length or 0) > MAX_BODY:
        _refuse(413, "payload_too_large", f"The body may be at most {MAX_BODY} bytes.")
    raw = request.stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        _refuse(413, "payload_too_large", f"The body may be at most {MAX_BODY} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    problems = []
    if not isinstance(body, dict):
        _refuse(400, "invalid_request", "Send {\"token\": \"<JWT>\", \"visitor_id\": \"...\"} as the body.",
                [{"path": "", "message": "must be a JSON object"}])
    if not isinstance(body.get("token"), str):
        where = " (a token in the URL is ignored: URLs end up in logs)" if "token" in request.args else ""
        problems.append({"path": "/token", "message": "is required: the identity token, in the body" + where})
    if not (isinstance(body.get("visitor_id"), str) and VISITOR_ID_RE.match(body["visitor_id"])):
        problems.append({"path": "/visitor_id", "message": "must be the SDK's visitor id (8 to 64 characters of "
                                                           "A-Z a-z 0-9 _ . -)"})
    extra = set(body) - {"token", "visitor_id"}
    if extra:
        problems.append({"path": "", "message": f"unknown fields: {', '.join(sorted(extra))}"})
    if problems:
        _refuse(400, "invalid_request", "Send {\"token\": \"<JWT>\", \"visitor_id\": \"...\"} as the body.", problems)
    return body


@bp.route("/v1/sites/<site>/identify", methods=["POST", "OPTIONS"])
def identify(site):
    if request.method == "OPTIONS":
        return Response(status=204, headers={**CORS, "Access-Control-Allow-Methods": "POST",
                                             "Access-Control-Allow-Headers": "Content-Type",
                                             "Access-Control-Max-Age": "86400"})
    try:
        return _identify(site)
    except UNAVAILABLE as e:
        current_app.logger.warning("identify for %s: store unavailable (%s)", site, e)
        _refuse(503, "store_unavailable", "Identification is unavailable right now; the visitor stays anonymous.")


def _identify(site):
    if not SITE_RE.match(site) or not site_exists(site):
        _refuse(404, "site_not_found", f"There is no site '{site}'.")
    check_collect(site, request.remote_addr, NO_STORE)
    body = _body()
    try:
        claims = verify_token(site, body["token"], site_secrets.valid_secrets(site_secrets.load_record(site)))
    except TokenRefused as e:
        _refuse(400, "invalid_token", f"The identity token is refused: {e}.", [{"path": "/token", "message": str(e),
                                                                               "code": e.code}])
    except site_secrets.SecretUnavailable as e:
        current_app.logger.error("identify for %s: %s", site, e)
        _refuse(503, "identity_unavailable", "This site's identity secret cannot be used on this server: "
                                             "rotate it (vitrina sites identity-secret --rotate).")
    crm_claims = claims.get("crm") or {}
    problems = attributes_problems(crm_claims, "/crm")
    if problems:
        _refuse(400, "invalid_token", "The identity token is refused: its crm claims are invalid.",
                [{"path": "/token" + p["path"], "message": p["message"], "code": "claims"} for p in problems])
    latest = publishing.latest(site)
    wanted = latest.bundle.get("crm", []) if latest else []
    crm, _ = resolve(site, claims["sub"], claims.get("email_sha256"), crm_claims, time.time() * 1000, wanted)
    customer = site_secrets.customer_key(site, claims["sub"])
    identity, expires_at = issue_identity(site, customer, body["visitor_id"])
    response = jsonify({"customer": customer, "crm": crm, "identity": identity, "expires_at": expires_at})
    response.headers.update(NO_STORE)
    return response
