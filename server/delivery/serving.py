"""The hot public responses (tag.js, bundle.json, the SDK) as plain (status, headers, body)
tuples built from per-process caches. The ASGI front (server/web/asgi.py) answers them on its event
loop and the Flask views in api_public.py wrap the very same functions, so both paths agree."""
import gzip
from dataclasses import dataclass

from werkzeug.http import parse_etags

from server.configs import publishing
from server.configs.signing import script_json
from server.delivery.context import context_for
from server.delivery.sdk_asset import sdk_source
from server.delivery.tag_body import prefix_for
from server.errors import APIError
from server.store import site_exists
from server.wire.ids import SITE_RE

MAX_CACHED = 2048
_gzip_cache = {}    # etag -> gzip bytes of a fixed body (bundle.json, SDK)
_tag_cache = {}     # (prefix digest, context suffix) -> (etag, plain body, gzip body)


@dataclass(slots=True)
class Hot:
    """What the hot responses read from a request."""
    host_url: str                 # "scheme://host/" as the client addressed this server
    remote_addr: str | None
    user_agent: str = ""
    accept_encoding: str = ""
    if_none_match: str = ""
    query_v: str | None = None    # the SDK's ?v=


def _remember(cache, key, value):
    if len(cache) >= MAX_CACHED:  # wholesale: no lock needed between the loop and Flask threads
        cache.clear()
    cache[key] = value
    return value


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
        packed = _gzip_cache.get(etag)
        if packed is None:
            packed = _remember(_gzip_cache, etag, gzip.compress(body, 6, mtime=0))
        body = packed
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
    cached = _tag_cache.get((prefix.digest, suffix))
    if cached is None:
        cached = _remember(_tag_cache, (prefix.digest, suffix),
                           (prefix.etag(suffix), prefix.data + suffix, prefix.gzip(suffix)))
    etag, plain, packed = cached
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

