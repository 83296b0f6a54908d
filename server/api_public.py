"""Public endpoints called by shop pages: tag, bundle, context, collect, SDK, health."""
import gzip
import json
import re
from collections import OrderedDict

from flask import Blueprint, Response, current_app, jsonify, request

from . import bundles, spool
from .context import request_context
from .errors import APIError
from .collect import EventsRejected, count_rejections, ingest, site_exists
from .events import BatchInvalid, parse_batch
from .ratelimit import check_collect
from .sdk_asset import sdk_source
from .tag_body import prefix_for
from .store import UNAVAILABLE, get_store

bp = Blueprint("public", __name__)
SITE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_JS_ESCAPES = {ord("<"): "\\u003c", 0x2028: "\\u2028", 0x2029: "\\u2029"}
_gzip_cache = OrderedDict()


def _known_site(site):
    if not SITE_RE.match(site) or not get_store().site_exists(site):
        raise APIError(404, "site_not_found", f"There is no site '{site}'.")


def js_literal(obj):
    """JSON safe to embed in a script: no '</script>', no raw line separators."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).translate(_JS_ESCAPES)


def _gzipped(body, etag):
    packed = _gzip_cache.get(etag)
    if packed is None:
        packed = _gzip_cache[etag] = gzip.compress(body, 6, mtime=0)
        if len(_gzip_cache) > 512:
            _gzip_cache.popitem(last=False)
    return packed


def _send(body, content_type, etag, cache_control, vary=()):
    """Body (bytes, or a function making them) with its (unquoted) ETag: 304 on a match,
    gzip when accepted (compressed once per ETag)."""
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache_control, "Access-Control-Allow-Origin": "*",
               "Vary": ", ".join(("Accept-Encoding",) + tuple(vary)), "X-Content-Type-Options": "nosniff"}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    body = body() if callable(body) else body
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = _gzipped(body, etag)
        headers["Content-Encoding"] = "gzip"
    return Response(body, content_type=content_type, headers=headers)


def _not_modified_or_encoded(etag, headers):
    """304 when the client has this ETag, else whether to send gzip."""
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers), False
    return None, "gzip" in request.headers.get("Accept-Encoding", "")


@bp.get("/v1/sites/<site>/tag.js")
def tag(site):
    _known_site(site)
    sdk, sdk_digest = sdk_source()
    entry = bundles.latest(site)
    endpoint = f"{request.host_url}v1/sites/{site}"
    prefix = prefix_for((site, entry and entry.version, entry and entry.signature, endpoint, sdk_digest),
                        lambda: (sdk + b"\n;vitrina.init({\"endpoint\":" + js_literal(endpoint).encode()
                                 + b",\"bundle\":" + (entry.bundle_literal if entry else b"null") + b",\"context\":"))
    suffix = js_literal(request_context()).encode() + b"});\n"
    etag = prefix.etag(suffix)
    # The body carries this request's geo and device: private, short-lived, varying by UA.
    headers = {"ETag": f'"{etag}"', "Cache-Control": "private, max-age=60", "Access-Control-Allow-Origin": "*",
               "Vary": "Accept-Encoding, User-Agent", "X-Content-Type-Options": "nosniff"}
    not_modified, gzip_it = _not_modified_or_encoded(etag, headers)
    if not_modified:
        return not_modified
    if gzip_it:
        headers["Content-Encoding"] = "gzip"
    body = prefix.gzip(suffix) if gzip_it else prefix.data + suffix
    return Response(body, content_type="application/javascript; charset=utf-8", headers=headers)


@bp.get("/v1/sites/<site>/bundle.json")
def bundle_json(site):
    _known_site(site)
    entry = bundles.latest(site)
    if entry is None:
        raise APIError(404, "not_published", f"Site '{site}' has no published version yet.")
    # The ETag is known before any body is built: a 304 costs one cheap store read.
    etag = f"{site}-{entry.version}-{entry.signature[:16]}"
    return _send(lambda: entry.json_body, "application/json", etag, "public, max-age=60, stale-while-revalidate=300")


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
        visitor_id, events = parse_batch(raw)
    except BatchInvalid as e:
        count_rejections(site, {"invalid": 1})
        raise APIError(400, "invalid_batch", str(e), e.details, headers=cors) from None
    try:
        ingest(site, visitor_id, events)
    except EventsRejected as e:
        if e.problems[0]["code"] == "unknown_site":
            raise APIError(404, "site_not_found", f"There is no site '{site}'.", headers=cors) from None
        raise APIError(400, "unverified_events", "Some events do not match a published version; nothing was recorded.",
                       e.problems, headers=cors) from None
    except UNAVAILABLE as e:
        current_app.logger.warning("store unavailable (%s): batch spooled to disk", e)
        spool.save(site, visitor_id, events)
        return Response(status=202, headers=cors)
    return Response(status=204, headers=cors)


@bp.get("/sdk/vitrina.min.js")
def sdk():
    body, digest = sdk_source()
    immutable = request.args.get("v") == digest
    cache = "public, max-age=31536000, immutable" if immutable else "public, max-age=300"
    return _send(body, "application/javascript; charset=utf-8", digest, cache)


@bp.get("/healthz")
def healthz():
    store = get_store()
    try:
        ok = bool(store.ping())
    except Exception as e:  # any backend failure means "not healthy", reported, never raised
        current_app.logger.warning("store ping failed: %s", e)
        ok = False
    body = {"status": "ok" if ok else "degraded", "store": type(store).__name__, "store_ok": ok}
    return jsonify(body), 200 if ok else 503
