"""Public endpoints called by shop pages: tag, bundle, context, collect, SDK, health."""
from flask import Blueprint, Response, current_app, jsonify, request

from server.delivery import serving
from server.delivery.context import request_context
from server.delivery.preview import preview_body
from server.errors import APIError
from server.events import spool
from server.events.batch import BatchInvalid, parse_batch
from server.events.collect import EventsRejected, count_rejections, ingest
from server.events.ratelimit import check_collect
from server.events.traffic import request_facts
from server.identity.tokens import IdentityInvalid, read_identity
from server.store import UNAVAILABLE, get_store, site_exists
from server.wire.ids import SITE_RE

bp = Blueprint("public", __name__)


def _hot():
    return serving.Hot(request.host_url, request.remote_addr, request.headers.get("User-Agent", ""),
                       request.headers.get("Accept-Encoding", ""), request.headers.get("If-None-Match", ""),
                       request.args.get("v"))


def _reply(result):
    status, headers, body = result
    return Response(body, status=status, headers=headers)


# tag.js, bundle.json and the SDK are normally answered by the ASGI front (server/web/asgi.py) before
# Flask sees them; these views serve the same responses through the same functions (for the test
# client, HEAD-less WSGI servers, and anything the front hands over). context.js is served here.
@bp.get("/v1/sites/<site>/tag.js")
def tag(site):
    return _reply(serving.tag(site, _hot()))


@bp.get("/v1/sites/<site>/context.js")
def context_js(site):
    return _reply(serving.context_js(site, _hot()))


@bp.get("/v1/sites/<site>/bundle.json")
def bundle_json(site):
    return _reply(serving.bundle_json(site, _hot()))


@bp.get("/v1/context")
def context():
    response = jsonify(request_context())
    response.headers.update({"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"})
    return response


@bp.route("/v1/sites/<site>/collect", methods=["POST", "OPTIONS"])
def collect(site):
    cors = {"Access-Control-Allow-Origin": "*"}
    if request.method == "OPTIONS":
        return Response(status=204, headers={**cors, "Access-Control-Allow-Methods": "POST",
                                             "Access-Control-Allow-Headers": "Content-Type",
                                             "Access-Control-Max-Age": "86400"})
    if not SITE_RE.match(site):
        raise APIError(404, "site_not_found", f"There is no site '{site}'.", headers=cors)
    try:
        if not site_exists(site):
            raise APIError(404, "site_not_found", f"There is no site '{site}'.", headers=cors)
    except UNAVAILABLE:
        pass  # checked again when the spooled batch is replayed
    check_collect(site, cors)
    limit = current_app.config["VITRINA_COLLECT_MAX_BYTES"]
    if (request.content_length or 0) > limit:
        raise APIError(413, "payload_too_large", f"A batch may be at most {limit} bytes.", headers=cors)
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise APIError(413, "payload_too_large", f"A batch may be at most {limit} bytes.", headers=cors)
    try:
        visitor_id, events, identity = parse_batch(raw)
    except BatchInvalid as e:
        count_rejections(site, {"invalid": 1})
        raise APIError(400, "invalid_batch", str(e), e.details, headers=cors) from None
    customer = _verified_customer(site, identity, visitor_id, len(events), cors)
    facts = request_facts(site)  # device, country, bot or excluded address: the address itself goes no further
    try:
        refused = ingest(site, visitor_id, events, facts, customer)
    except EventsRejected as e:
        if e.problems[0]["code"] == "unknown_site":
            raise APIError(404, "site_not_found", f"There is no site '{site}'.", headers=cors) from None
        count_rejections(site, e.counts())
        raise APIError(400, "unverified_events", "Some events do not match a published version; nothing was recorded.",
                       e.problems, headers=cors) from None
    except UNAVAILABLE as e:
        current_app.logger.warning("store unavailable (%s): batch spooled to disk", e)
        spool.save(site, visitor_id, events, facts, customer)
        return Response(status=202, headers=cors)
    if refused:  # the rest of the batch was recorded: a 2xx, so that nothing is sent again
        response = jsonify({"refused": refused})
        response.headers.update(cors)
        return response
    return Response(status=204, headers=cors)


def _verified_customer(site, identity, visitor_id, events, cors):
    """The customer key of a batch's signed identity (None without one), or 400: a batch whose
    identity does not verify is refused whole, as any batch that cannot be verified."""
    if identity is None:
        return None
    try:
        return read_identity(site, identity, visitor_id)
    except IdentityInvalid as e:
        count_rejections(site, {"identity": events})
        raise APIError(400, "unverified_events", "The batch's identity does not verify; nothing was recorded.",
                       [{"path": "/identity", "message": str(e), "code": "identity"}], headers=cors) from None


@bp.get("/v1/sites/<site>/preview.json")
def preview(site):
    """A preview link's bundle and forced variation (server/delivery/preview.py): never cached."""
    cors = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
    try:
        serving.known_site(site)
        token = request.args.get("token", "")
        if not token or len(token) > 2000:
            raise APIError(403, "preview_invalid", "Send the preview link's token as ?token=.")
        response = jsonify(preview_body(site, token))
    except APIError as e:
        e.headers = {**e.headers, **cors}
        raise
    response.headers.update(cors)
    return response


@bp.get("/sdk/vitrina.min.js")
def sdk():
    return _reply(serving.sdk(_hot()))


@bp.get("/sdk/modules/<name>.min.js")
def sdk_module(name):
    return _reply(serving.sdk_module(name, _hot()))


@bp.get("/healthz")
def healthz():
    store = get_store()
    try:
        # Through the outage guard: while the store is away this answers at once, but for the one
        # call every PROBE_EVERY_S that asks it again (server/store/outage.py).
        ok = bool(store.outage.call(store.ping))
    except Exception as e:  # any backend failure means "not healthy", reported, never raised
        current_app.logger.warning("store ping failed: %s", e)
        ok = False
    body = {"status": "ok" if ok else "degraded", "store": type(store).__name__, "store_ok": ok,
            # batches waiting on disk for the store, and those set aside (spool/dead/: look at them)
            "spooled": spool.pending(), "dead_letter": spool.dead_letters()}
    return jsonify(body), 200 if ok else 503
