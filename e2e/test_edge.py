"""The production edge, through a real nginx started from deploy/nginx.conf (its "# EDIT" lines
set to a free port, a temp cache and the test's origin: tests/servers.py `nginx_edge`) in front
of `vitrina serve`, with Chromium loading shop pages whose tag comes through it.

A publish reaches the browser once the max-age has passed, not before (nginx's
`$upstream_cache_status` in X-Cache-Status says where each answer came from), plus one
revalidating request; bundle.json's 304s work through it; gzip and plain copies are kept apart
and nothing is gzipped twice; an emergency refresh replaces the cached tag at once, from allowed
addresses only; the visitor's address cannot be forged through it; oversized request heads stop
at it; with the origin down, it keeps serving the cached tag and the page still applies it.
VITRINA_TAG_MAX_AGE_S is short here so that a test waits seconds, not a minute."""
import gzip
import json
import os
import re
import shutil
import signal
import socket
import time
from http.client import HTTPConnection

import pytest
from playwright.sync_api import expect

from server.delivery.serving import COMPILE_HINT
from tests.servers import gunicorn_master, nginx_edge, tag_boot, wait_for

from .conftest import Site, Vitrina, _require_sdk, write_test_geoip_db

MAX_AGE = 3  # seconds: VITRINA_TAG_MAX_AGE_S of these servers
PARIS = "198.51.100.7"  # Paris in the test GeoIP database


def note_config(text):
    """A config whose one campaign writes `text` into the home page's #note."""
    return {"campaigns": [{"key": "edge-note", "type": "personalization", "status": "live",
                           "pages": {"page.path": {"$in": ["/", "/index.html"]}},
                           "variations": [{"key": "on", "actions": [{"selector": "#note", "text": text}]}]}],
            "settings": {"holdout": 0}}


def _get(url, headers=None, method="GET", source=None):
    """(status, lower-case headers, raw body): no decompression, no redirect or 304 handling."""
    host, _, path = url[len("http://"):].partition("/")
    connection = HTTPConnection(*host.split(":"), timeout=10, source_address=(source, 0) if source else None)
    try:
        connection.request(method, "/" + path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _tag_version(body, headers):
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return tag_boot(body)["bundle"]["version"]


class EdgeServer:
    """`vitrina serve` (SQLite) and nginx from deploy/nginx.conf in front of it."""

    def __init__(self, vitrina, edge):
        self.vitrina, self.edge = vitrina, edge
        self._names = iter(range(1, 1000))

    def site(self, config):
        """A new site published with `config`, whose shop pages load the tag through the edge."""
        name = f"edge-{next(self._names)}"
        key = self.vitrina.create_site_fast(name)
        site = Site(name, key, self.vitrina.server_url, self.vitrina.start_shop(name, tag_server=self.edge.url))
        site.publish(config)
        return site

    def tag(self, site, gzip_ok=True, **headers):
        """(status, headers, body, version) of the site's tag.js through the edge."""
        if gzip_ok:
            headers.setdefault("Accept-Encoding", "gzip, deflate, br")
        status, got, body = _get(f"{self.edge.url}/v1/sites/{site.name}/tag.js", headers)
        return status, got, body, _tag_version(body, got) if status == 200 else None


def _edge_server(workdir):
    return Vitrina(workdir, {"VITRINA_TAG_MAX_AGE_S": str(MAX_AGE), "VITRINA_PROXY_HOPS": "1",
                             "VITRINA_GEOIP_DB": str(write_test_geoip_db(workdir))})


def _stop_origin(url):
    """Stop `vitrina serve` (its gunicorn master, which stops its workers) until nothing listens."""
    os.kill(gunicorn_master(url), signal.SIGTERM)
    port = int(url.rsplit(":", 1)[1])

    def closed():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0
    wait_for(closed, what="the origin's stop")


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory):
    _require_sdk()
    with _edge_server(tmp_path_factory.mktemp("vitrina-edge")).running() as vitrina:
        with nginx_edge(vitrina.server_url) as edge:
            yield EdgeServer(vitrina, edge)


def test_a_publish_reaches_the_browser_once_the_max_age_has_passed(edge_server, new_context):
    site = edge_server.site(note_config("Edge version one"))
    cached_from = time.monotonic()
    _, first, _, version = edge_server.tag(site)
    cached_by = time.monotonic()  # nginx stored the copy in between: it expires MAX_AGE after
    assert (first["x-cache-status"], version) == ("MISS", 1)
    page = new_context().new_page()
    page.goto(site.url("/"))  # Chromium takes gzip: the copy just cached
    expect(page.locator("#note")).to_have_text("Edge version one")
    assert site.publish(note_config("Edge version two")) == 2

    answers = []  # (request start, seconds after the copy was cached at the latest, cache status, version)
    while time.monotonic() < cached_by + MAX_AGE + 3:
        started = time.monotonic()
        _, headers, _, version = edge_server.tag(site)
        answers.append((started - cached_by, headers["x-cache-status"], version))
        if version == 2 and headers["x-cache-status"] == "HIT":
            break
        time.sleep(0.05)
    # Until the max-age has passed, the edge answers the cached version 1 itself, however often.
    fresh = [a for a in answers if a[0] < MAX_AGE - (cached_by - cached_from)]
    assert len(fresh) >= 3 and all(a[1:] == ("HIT", 1) for a in fresh), answers
    # Then (nginx counts the max-age in whole seconds: up to one more) one request finds the copy
    # expired: it gets the stale copy and starts the background update, requests meanwhile get
    # the stale copy too, and the next ones version 2: the max-age plus one revalidating request.
    later = answers[len(fresh):]
    first_new = next(i for i, a in enumerate(later) if a[2] == 2)
    old = later[:first_new]
    assert all(a[2] == 1 for a in old) and re.fullmatch("H*(SU*)?", "".join(a[1][0] for a in old)), answers
    assert later[first_new][0] < MAX_AGE + 1.5 and all(a[2] == 2 for a in later[first_new:]), answers

    page = new_context().new_page()
    page.goto(site.url("/"))
    expect(page.locator("#note")).to_have_text("Edge version two")


def test_bundle_json_revalidates_with_304_through_the_edge(edge_server):
    site = edge_server.site(note_config("Bundle"))
    url = f"{edge_server.edge.url}/v1/sites/{site.name}/bundle.json"
    status, headers, body = _get(url)
    assert status == 200 and json.loads(body)["bundle"]["version"] == 1
    etag = headers["etag"]
    status, headers, body = _get(url, {"If-None-Match": etag})
    assert (status, body, headers["x-cache-status"], headers["etag"]) == (304, b"", "HIT", etag)
    assert _get(url, {"If-None-Match": '"another"'})[0] == 200
    site.publish(note_config("Bundle two"))
    time.sleep(MAX_AGE)
    for _ in range(40):  # past the max-age (in whole seconds): the stale copy, then the new one
        status, headers, body = _get(url, {"If-None-Match": etag})
        if status == 200 and json.loads(body)["bundle"]["version"] == 2:
            break
        assert status == 304, (status, headers)
        time.sleep(0.1)
    else:
        raise AssertionError("bundle.json version 2 never came through the edge")
    assert _get(url, {"If-None-Match": headers["etag"]})[0] == 304


def test_gzip_and_plain_copies_are_kept_apart_and_nothing_is_gzipped_twice(edge_server):
    site = edge_server.site(note_config("Both copies"))
    plain_status, plain_headers, plain, _ = edge_server.tag(site, gzip_ok=False)
    assert plain_status == 200 and "content-encoding" not in plain_headers and plain.startswith(COMPILE_HINT + b"(")
    _, packed_headers, packed, _ = edge_server.tag(site)
    assert packed_headers["content-encoding"] == "gzip" and gzip.decompress(packed) == plain
    # each copy is cached on its own; another Accept-Encoding that takes gzip shares the gzip copy
    _, headers, body, _ = edge_server.tag(site, gzip_ok=False)
    assert (headers["x-cache-status"], body, headers.get("content-encoding")) == ("HIT", plain, None)
    _, headers, body, _ = edge_server.tag(site, gzip_ok=False, **{"Accept-Encoding": "identity"})
    assert (headers["x-cache-status"], body) == ("HIT", plain)
    _, headers, body, _ = edge_server.tag(site, gzip_ok=False, **{"Accept-Encoding": "gzip;q=1.0"})
    assert (headers["x-cache-status"], body, headers["content-encoding"]) == ("HIT", packed, "gzip")
    # what browsers and CDNs beyond the edge need to know still reaches them
    assert packed_headers["vary"] == "Accept-Encoding" and packed_headers["etag"] == plain_headers["etag"]
    assert packed_headers["cache-control"] == f"public, max-age={MAX_AGE}, stale-while-revalidate=600"
    # a cache-busting query string reaches no origin: the same cached copy answers it
    status, headers, body = _get(f"{edge_server.edge.url}/v1/sites/{site.name}/tag.js?bust={time.time()}")
    assert (status, headers["x-cache-status"], body) == (200, "HIT", plain)


def test_an_emergency_refresh_replaces_the_cached_tag_at_once_from_allowed_hosts_only(edge_server):
    site = edge_server.site(note_config("Before the rollback"))
    for gzip_ok in (True, False):
        assert edge_server.tag(site, gzip_ok)[3] == 1
    site.publish(note_config("After the rollback"))
    # from an address not on the allow-list (127.0.0.2, still loopback), the header does nothing
    status, headers, body = _get(f"{edge_server.edge.url}/v1/sites/{site.name}/tag.js",
                                 {"X-Vitrina-Refresh": "1", "Accept-Encoding": "gzip"}, source="127.0.0.2")
    assert (headers["x-cache-status"], _tag_version(body, headers)) == ("HIT", 1)
    # from an allowed one, each copy (gzip and plain) is fetched again and stored
    for gzip_ok in (True, False):
        _, headers, _, version = edge_server.tag(site, gzip_ok, **{"X-Vitrina-Refresh": "1"})
        assert (headers["x-cache-status"], version) == ("BYPASS", 2)
    for gzip_ok in (True, False):  # well within the max-age: every shopper now gets version 2
        _, headers, _, version = edge_server.tag(site, gzip_ok)
        assert (headers["x-cache-status"], version) == ("HIT", 2)
    # the other way, for every site at once: empty the cache folder (a missing file is a miss)
    site.publish(note_config("After the second rollback"))
    for entry in (edge_server.edge.prefix / "cache").iterdir():
        shutil.rmtree(entry)
    for gzip_ok in (True, False):
        _, headers, _, version = edge_server.tag(site, gzip_ok)
        assert (headers["x-cache-status"], version) == ("MISS", 3)


def test_the_visitor_address_cannot_be_forged_through_the_edge(edge_server):
    # The origin trusts one hop (VITRINA_PROXY_HOPS=1): asked directly with a forged header, it
    # believes it, which is why only the edge may reach it...
    direct = _get(f"{edge_server.vitrina.server_url}/v1/context", {"X-Forwarded-For": PARIS})
    assert json.loads(direct[2])["geo"]["country"] == "FR"
    # ...and the edge replaces the header with the address it sees.
    for forged in (PARIS, f"{PARIS}, {PARIS}", f"10.0.0.1, {PARIS}"):
        status, _, body = _get(f"{edge_server.edge.url}/v1/context", {"X-Forwarded-For": forged})
        assert status == 200 and json.loads(body)["geo"]["country"] is None, forged


def test_oversized_request_heads_stop_at_the_edge(edge_server):
    site = edge_server.site(note_config("Heads"))
    status, _, _ = _get(f"{edge_server.edge.url}/v1/sites/{site.name}/tag.js", {"X-Padding": "x" * 9000})
    assert status == 400
    status, _, _ = _get(f"{edge_server.edge.url}/v1/sites/{site.name}/tag.js?" + "a" * 9000)
    assert status == 414
    assert edge_server.tag(site)[0] == 200


def test_with_the_origin_down_the_edge_keeps_serving_the_cached_tag(tmp_path, new_context):
    _require_sdk()
    vitrina = _edge_server(tmp_path)
    with vitrina.running():
        with nginx_edge(vitrina.server_url) as edge:
            server = EdgeServer(vitrina, edge)
            site = server.site(note_config("Served by the edge alone"))
            _, _, body, version = server.tag(site)
            assert version == 1
            _stop_origin(vitrina.server_url)
            time.sleep(MAX_AGE + 1.2)  # expired too (nginx counts whole seconds): stale-if-error, not merely fresh
            status, headers, stale, version = server.tag(site)
            assert (status, stale, version) == (200, body, 1) and headers["x-cache-status"] in ("STALE", "UPDATING")
            assert _get(f"{edge.url}/v1/sites/{site.name}/context.js")[0] == 502  # uncached: the origin's own
            page = new_context().new_page()
            page.goto(site.url("/"))
            expect(page.locator("#note")).to_have_text("Served by the edge alone")
