"""Public endpoints called by shop pages: tag, bundle, context, collect, SDK, health."""
from flask import Blueprint, Response, current_app, jsonify, request

from server.delivery import serving
from server.delivery.context import request_context
from server.delivery.preview import preview_body
from server.errors import APIError
from server.events import intake, spool
from server.store import get_store

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
    """Normally answered by the ASGI front, which hands over its errors (server/events/intake.py)."""
    if request.method == "OPTIONS":
        return Response(status=204, headers={**intake.CORS, "Access-Control-Allow-Methods": "POST",
                                             "Access-Control-Allow-Headers": "Content-Type",
                                             "Access-Control-Max-Age": "86400"})
    met = request.environ.get("asgi.scope", {}).get(intake.FRONT_ERROR)
    if met is not None:
        raise met
    # request.stream is not touched before answer() reads: it refuses a body past MAX_CONTENT_LENGTH
    return intake.answer(site, intake.CollectRequest(request.headers.get("User-Agent", ""), request.remote_addr,
                                                     request.content_length, lambda n: request.stream.read(n)))


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
