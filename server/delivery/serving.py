"""The hot public responses (tag.js, bundle.json, the SDK) as plain (status, headers, body)
tuples built from per-process caches. The ASGI front (server/web/asgi.py) answers them on its event
loop and the Flask views in server/web/public.py wrap the very same functions, so both paths agree."""
import gzip
from dataclasses import dataclass

from werkzeug.http import parse_etags

from server.cache import app_cache
from server.configs import publishing
from server.configs.signing import script_json
from server.delivery.context import context_for
from server.delivery.sdk_asset import sdk_source
from server.delivery.tag_body import prefix_for
from server.errors import APIError
from server.store import site_exists
from server.wire.ids import SITE_RE

KEYED_BY_CONTENT = "nothing: entries are keyed by a digest of what they are made from"


@dataclass(slots=True)
class Hot:
    """What the hot responses read from a request."""
    host_url: str                 # "scheme://host/" as the client addressed this server
    remote_addr: str | None
    user_agent: str = ""
    accept_encoding: str = ""
    if_none_match: str = ""
    query_v: str | None = None    # the SDK's ?v=


def _matches(if_none_match, etag):
    if not if_none_match:
        return False
    return if_none_match == f'"{etag}"' or parse_etags(if_none_match).contains(etag)


def _wants_gzip(hot):
    return "gzip" in hot.accept_encoding


def known_site(site):
    """404 unless the site exists (collect's memo: a site seen once is known for a minute)."""
    if not SITE_RE.match(site) or not site_exists(site):
        raise APIError(404, "site_not_found", f"There is no site '{site}'.")


def _fixed(body, content_type, etag, cache_control, hot):
    """A body that is the same for everyone (bundle.json, SDK): 304 on a match, gzip once per ETag."""
    headers = [("ETag", f'"{etag}"'), ("Cache-Control", cache_control), ("Access-Control-Allow-Origin", "*"),
               ("Vary", "Accept-Encoding"), ("X-Content-Type-Options", "nosniff")]
    if _matches(hot.if_none_match, etag):
        return 304, headers, b""
    body = body() if callable(body) else body
    if _wants_gzip(hot):
        body = app_cache("gzipped bodies", 256, KEYED_BY_CONTENT).get_or_make(
            etag, lambda: gzip.compress(body, 6, mtime=0))
        headers.append(("Content-Encoding", "gzip"))
    return 200, headers + [("Content-Type", content_type)], body


def tag(site, hot):
    """SDK + latest bundle + this request's context in one script."""
    known_site(site)
    sdk, sdk_digest = sdk_source()
    entry = publishing.latest(site)
    endpoint = f"{hot.host_url}v1/sites/{site}"
    prefix = prefix_for((site, entry and entry.version, entry and entry.signature, endpoint, sdk_digest),
                        lambda: (sdk + b"\n;vitrina.init({\"endpoint\":" + script_json(endpoint).encode()
                                 + b",\"bundle\":" + (entry.bundle_literal if entry else b"null") + b",\"context\":"))
    suffix = context_for(hot.remote_addr, hot.user_agent) + b"});\n"
    etag, plain, packed = app_cache("tag bodies", 256, KEYED_BY_CONTENT).get_or_make(
        (prefix.digest, suffix), lambda: (prefix.etag(suffix), prefix.data + suffix, prefix.gzip(suffix)))
    # The body carries this request's geo and device: private, short-lived, varying by UA.
    headers = [("ETag", f'"{etag}"'), ("Cache-Control", "private, max-age=60"), ("Access-Control-Allow-Origin", "*"),
               ("Vary", "Accept-Encoding, User-Agent"), ("X-Content-Type-Options", "nosniff")]
    if _matches(hot.if_none_match, etag):
        return 304, headers, b""
    if _wants_gzip(hot):
        headers.append(("Content-Encoding", "gzip"))
        plain = packed
    return 200, headers + [("Content-Type", "application/javascript; charset=utf-8")], plain


def bundle_json(site, hot):
    known_site(site)
    entry = publishing.latest(site)
    if entry is None:
        raise APIError(404, "not_published", f"Site '{site}' has no published version yet.")
    # The ETag is known before any body is built: a 304 costs no more than a cache lookup.
    etag = f"{site}-{entry.version}-{entry.signature[:16]}"
    return _fixed(lambda: entry.json_body, "application/json", etag, "public, max-age=60, stale-while-revalidate=300",
                  hot)


def sdk(hot):
    body, digest = sdk_source()
    cache = "public, max-age=31536000, immutable" if hot.query_v == digest else "public, max-age=300"
    return _fixed(body, "application/javascript; charset=utf-8", digest, cache, hot)

