"""The hot public responses (tag.js, context.js, bundle.json, the SDK) as plain (status, headers,
body) tuples built from per-process caches. The ASGI front (server/web/asgi.py) answers them on its
event loop and the Flask views in server/web/public.py wrap the very same functions, so both paths agree."""
import gzip
import hashlib
import json
from dataclasses import dataclass

from flask import current_app
from werkzeug.http import parse_etags

from server.cache import app_cache
from server.configs import publishing
from server.delivery.context import context_for
from server.delivery.modules import modules_for, reads_for
from server.delivery.sdk_asset import sdk_build, sdk_source
from server.errors import APIError
from server.store import get_store, site_exists
from server.wire.ids import SITE_RE

KEYED_BY_CONTENT = "nothing: entries are keyed by a digest of what they are made from"
# Every visitor of a version gets the same tag.js: a shared cache (a CDN, nginx) may keep it
# VITRINA_TAG_MAX_AGE_S (a minute) and serve it stale for ten more while it revalidates
# (docs/DESIGN.md "tag.js"). bundle.json likewise, stale for five.
TAG_CACHE_CONTROL = "public, max-age={}, stale-while-revalidate=600"
BUNDLE_CACHE_CONTROL = "public, max-age={}, stale-while-revalidate=300"
# Said on tag.js and bundle.json served from memory while the store cannot be reached.
STALE = ("X-Vitrina-Stale", "store-unreachable")
# context.js carries this visitor's geo and device: the browser alone keeps it, for a few page views.
CONTEXT_CACHE_CONTROL = "private, max-age=300"
JS = "application/javascript; charset=utf-8"
# V8's explicit compile hint (Chrome 136+): every function of the script runs on load, so compile
# them all while the script streams in, off the main thread, not one by one at their first call
# (a third of the tag's main-thread time on a first page view, bench/first_paint). A comment to
# every other engine. The build starts the SDK file with it too.
COMPILE_HINT = b"//# allFunctionsCalledOnLoad\n"


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


def _max_age(template):
    return template.format(current_app.config["VITRINA_TAG_MAX_AGE_S"])


def _staleness():
    """(STALE,) while the store cannot be reached: the version served is the last this process read."""
    return (STALE,) if get_store().outage.away else ()


def _fixed(body, content_type, etag, cache_control, hot, extra=()):
    """A body that is the same for everyone (bundle.json, SDK): 304 on a match, gzip once per ETag."""
    headers = [("ETag", f'"{etag}"'), ("Cache-Control", cache_control), ("Access-Control-Allow-Origin", "*"),
               ("Vary", "Accept-Encoding"), ("X-Content-Type-Options", "nosniff"), *extra]
    if _matches(hot.if_none_match, etag):
        return 304, headers, b""
    body = body() if callable(body) else body
    if _wants_gzip(hot):
        body = app_cache("gzipped bodies", 256, KEYED_BY_CONTENT).get_or_make(
            etag, lambda: gzip.compress(body, 6, mtime=0))
        headers.append(("Content-Encoding", "gzip"))
    return 200, headers + [("Content-Type", content_type)], body


def _parsed(json_literal):
    """`JSON.parse('<json>')`: V8 parses JSON text faster than the same object literal compiles,
    about 3 ms less main-thread time for a 150 KB bundle (docs/DESIGN.md "tag.js")."""
    quoted = json_literal.replace(b"\\", b"\\\\").replace(b"'", b"\\'")
    return b"JSON.parse('" + quoted + b"')"


def _tag_body(bundle_literal, bundle, build):
    """core + the modules the bundle needs + `vitrina.init({"bundle": JSON.parse('...'), "reads":
    [...]})`: nothing of the visitor in it."""
    parts = [build.core] + [build.modules[name] for name in modules_for(bundle) if name in build.modules]
    reads = json.dumps(reads_for(bundle), separators=(",", ":")).encode()
    return (COMPILE_HINT + b"\n".join(parts) + b'\n;vitrina.init({"bundle":' + _parsed(bundle_literal)
            + b',"reads":' + reads + b"});\n")


def tag(site, hot):
    """The tag: the SDK's core, the modules the latest bundle needs, and that bundle, in one
    script that is byte for byte the same for every visitor of a version."""
    known_site(site)
    build = sdk_build()
    entry = publishing.latest(site)
    bodies = app_cache("tag.js bodies", 256, "nothing: the key holds the version, its revision, the version's "
                       "signature and the SDK build")

    def make():
        body = _tag_body(entry.bundle_literal if entry else b"null", entry and entry.bundle, build)
        return hashlib.sha256(body).hexdigest()[:32], body

    key = (site, entry and entry.served_as, entry and entry.signature, build.digest)
    etag, body = bodies.get_or_make(key, make)
    return _fixed(body, JS, etag, _max_age(TAG_CACHE_CONTROL), hot, _staleness())


def context_js(site, hot):
    """This visitor's server-resolved context (geo from the address, never stored; device os and
    browser from the user agent) for a page to load right before the tag: it hands the context
    to the tag, whichever of the two runs first."""
    known_site(site)
    body = (b"(function(c){var v=window.vitrina;v&&v.context?v.context(c):window.vitrinaContext=c})("
            + context_for(hot.remote_addr, hot.user_agent) + b");")
    return 200, [("Cache-Control", CONTEXT_CACHE_CONTROL), ("X-Content-Type-Options", "nosniff"),
                 ("Content-Type", JS)], body


def bundle_json(site, hot):
    known_site(site)
    entry = publishing.latest(site)
    if entry is None:
        raise APIError(404, "not_published", f"Site '{site}' has no published version yet.")
    # The ETag is known before any body is built: a 304 costs no more than a cache lookup.
    etag = f"{site}-{entry.version}-{entry.signature[:16]}"
    if entry.revision is not None:  # version and revision together name what is served
        etag += f"-r{entry.revision_number}-{entry.revision.signature[:16]}"
    return _fixed(lambda: entry.json_body, "application/json", etag, _max_age(BUNDLE_CACHE_CONTROL), hot,
                  _staleness())


def sdk_module(name, hot):
    """A module file of the SDK build (/sdk/modules/<name>.min.js): those the core fetches itself
    (the debug log's), and those tag.js may carry, for a page that loads them beside the SDK file."""
    build = sdk_build()
    body = build.lazy.get(name) or build.modules.get(name)
    if body is None:
        raise APIError(404, "not_found", f"The SDK has no module '{name}'.")
    return _fixed(body, JS, hashlib.sha256(body).hexdigest()[:32], "public, max-age=300", hot)


def sdk(hot):
    body, digest = sdk_source()
    cache = "public, max-age=31536000, immutable" if hot.query_v == digest else "public, max-age=300"
    return _fixed(body, JS, digest, cache, hot)

