"""A `POST /v1/sites/<site>/collect` request, from its parts to its answer: the one sequence of
steps, shared by the Flask view (server/web/public.py) and the ASGI front (server/web/asgi.py),
which answers the common case without Flask. Each side effect (a rate-limit hit, a rejection
counted, the batch recorded or spooled) happens here, once per request.

The front hands Flask the error a request met here (the request's ASGI scope carries it under
FRONT_ERROR), and the view raises that error instead of running these steps again: errors are
answered by Flask's handlers alone, without a second hit or count."""
from typing import Callable, NamedTuple, Optional

from flask import Response, current_app, jsonify

from server.errors import APIError
from server.events import spool
from server.events.batch import BatchInvalid, parse_batch
from server.events.collect import EventsRejected, count_rejections, ingest
from server.events.ratelimit import check_collect
from server.events.traffic import request_facts
from server.identity.tokens import IdentityInvalid, read_identity
from server.store import UNAVAILABLE, site_exists
from server.wire.ids import SITE_RE

CORS = {"Access-Control-Allow-Origin": "*"}
FRONT_ERROR = "vitrina.collect_error"  # the ASGI scope key of an error the front met (see above)


class CollectRequest(NamedTuple):
    user_agent: str
    # the client's, after the trusted proxy hops (VITRINA_PROXY_HOPS): only looked up, never kept
    address: Optional[str]
    content_length: Optional[int]  # as declared (None: not declared)
    read: Callable[[int], bytes]  # read(n): at most n bytes of the body


def answer(site, request):
    """The Response to a collect batch: 204, 200 with {"refused": [...]} (the rest recorded), or
    202 (the store unreachable: spooled to disk). Any other answer is raised: an APIError, or a
    store error the app's handlers answer."""
    if not SITE_RE.match(site):
        raise _no_site(site)
    try:
        if not site_exists(site):
            raise _no_site(site)
    except UNAVAILABLE:
        pass  # checked again when the spooled batch is replayed
    check_collect(site, request.address, CORS)
    limit = current_app.config["VITRINA_COLLECT_MAX_BYTES"]
    if (request.content_length or 0) > limit:
        raise APIError(413, "payload_too_large", f"A batch may be at most {limit} bytes.", headers=CORS)
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise APIError(413, "payload_too_large", f"A batch may be at most {limit} bytes.", headers=CORS)
    try:
        visitor_id, events, identity = parse_batch(raw)
    except BatchInvalid as e:
        count_rejections(site, {"invalid": 1})
        raise APIError(400, "invalid_batch", str(e), e.details, headers=CORS) from None
    customer = _verified_customer(site, identity, visitor_id, len(events))
    # device, country, bot or excluded address: the address itself goes no further
    facts = request_facts(site, request.user_agent, request.address)
    try:
        refused = ingest(site, visitor_id, events, facts, customer)
    except EventsRejected as e:
        if e.problems[0]["code"] == "unknown_site":
            raise _no_site(site) from None
        count_rejections(site, e.counts())
        raise APIError(400, "unverified_events", "Some events do not match a published version; nothing was recorded.",
                       e.problems, headers=CORS) from None
    except UNAVAILABLE as e:
        current_app.logger.warning("store unavailable (%s): batch spooled to disk", e)
        spool.save(site, visitor_id, events, facts, customer)
        return Response(status=202, headers=CORS)
    if refused:  # the rest of the batch was recorded: a 2xx, so that nothing is sent again
        response = jsonify({"refused": refused})
        response.headers.update(CORS)
        return response
    return Response(status=204, headers=CORS)


def _no_site(site):
    return APIError(404, "site_not_found", f"There is no site '{site}'.", headers=CORS)


def _verified_customer(site, identity, visitor_id, events):
    """The customer key of a batch's signed identity (None without one), or 400: a batch whose
    identity does not verify is refused whole, as any batch that cannot be verified."""
    if identity is None:
        return None
    try:
        return read_identity(site, identity, visitor_id)
    except IdentityInvalid as e:
        count_rejections(site, {"identity": events})
        raise APIError(400, "unverified_events", "The batch's identity does not verify; nothing was recorded.",
                       [{"path": "/identity", "message": str(e), "code": "identity"}], headers=CORS) from None
