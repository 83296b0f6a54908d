"""End-to-end fixtures: Debian's Chromium, the real `vitrina` CLI and `vitrina serve` under
gunicorn, and the shop pages of e2e/pages/ on another origin.

`vitrina` is the session's server (SQLite store): site "shop", made by `vitrina sites create`
and published over HTTP with e2e/pages/config.json, is shared by the tests that only look
at pages. A test that asserts exact results takes a `fresh_site`, a site of its own whose
counts start at zero; it runs once per store backend (the same server on a real
redis-server is started on first use). Every test gets a fresh browser context from
pytest-playwright, hence a new visitor.
"""
import itertools
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from server import create_app
from server.demo.shop import make_shop_server, serve_in_thread
from server.store import get_store
from server.web.auth import hash_key, new_api_key
from tests.servers import REPO, free_port, gunicorn_server, redis_server

from .pageutil import CONFIG, PAGES

SECRET_KEY = "e2e-secret-key-not-for-production-0123456789"
CHROMIUM = os.environ.get("VITRINA_E2E_CHROMIUM", "/usr/bin/chromium")
RESULTS_TIMEOUT = 5.0


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def shopper_user_agent():
    """Chromium's own user agent as a headed browser sends it. Headless, it says HeadlessChrome,
    which collect excludes as a robot (server/events/traffic.py): the suite's browsers are
    shoppers, so they say Chrome; test_exclusions.py sends the headless one on purpose."""
    said = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True).stdout
    version = re.search(r"[0-9]+(?:\.[0-9]+){3}", said).group(0)
    return f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version} Safari/537.36"


@pytest.fixture(scope="session")
def browser_type_launch_args():
    # Debian's Chromium, never a downloaded one; quiet: no update, sync or GPU processes.
    return {"executable_path": CHROMIUM, "headless": True,
            "args": ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                     "--disable-gpu", "--no-first-run", "--disable-sync", f"--user-agent={shopper_user_agent()}"]}


@pytest.fixture(scope="session")
def base_url():
    # Replaces pytest-playwright's own, a session fixture defined as an instance method, which
    # pytest 9 deprecates (an error under filterwarnings=error). Tests build absolute URLs.
    return None


class HTTPResult:
    def __init__(self, status, body):
        self.status = status
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None


def http(method, url, body=None, headers=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HTTPResult(response.status, response.read())
    except urllib.error.HTTPError as e:
        with e:
            return HTTPResult(e.code, e.read())


class Site:
    """One site on the session's server, with its own shop origin."""

    def __init__(self, name, api_key, server_url, shop_url):
        self.name, self.api_key, self.server_url, self.shop_url = name, api_key, server_url, shop_url

    def api(self, method, path, body=None):
        """Call /api/v1/sites/<site><path> with the site's key; returns HTTPResult."""
        return http(method, f"{self.server_url}/api/v1/sites/{self.name}{path}", body,
                    {"Authorization": f"Bearer {self.api_key}"})

    def publish(self, config):
        saved = self.api("PUT", "/config", config)
        assert saved.status == 200, saved.body.decode()
        published = self.api("POST", "/publish")
        assert published.status == 201, published.body.decode()
        return published.json()["version"]

    def results(self):
        """GET .../results (a dict, with lookups by campaign and variation)."""
        response = self.api("GET", "/results")
        assert response.status == 200, response.body.decode()
        return Results(response.json())

    def decide(self, visitor_id, attributes):
        response = self.api("POST", "/decide", {"visitor_id": visitor_id, "attributes": attributes})
        assert response.status == 200, response.body.decode()
        return response.json()

    def url(self, path="/"):
        return self.shop_url + path

    def wait_for_results(self, check, timeout=RESULTS_TIMEOUT):
        """Poll results until check(Results) is true; returns them. Events travel by
        sendBeacon/keepalive after the page is gone, so they land a little later."""
        deadline = time.monotonic() + timeout
        while True:
            results = self.results()
            if check(results):
                return results
            if time.monotonic() > deadline:
                raise AssertionError(f"results did not reach the expected state within {timeout}s:\n"
                                     + json.dumps(results, indent=1))
            time.sleep(0.1)


class Results(dict):
    """The body of GET .../results, with lookups by campaign and variation key."""

    def campaign(self, key):
        found = [c for c in self["campaigns"] if c["key"] == key]
        assert found, f"no campaign {key!r} in results: {[c['key'] for c in self['campaigns']]}"
        return found[0]

    def arm(self, campaign, variation):
        """A variation's numbers; variation None is the campaign's holdout."""
        c = self.campaign(campaign)
        if variation is None:
            return c["holdout"]
        found = [v for v in c["variations"] if v["key"] == variation]
        assert found, f"no variation {variation!r} in {campaign!r}: {[v['key'] for v in c['variations']]}"
        return found[0]

    def visitors(self, campaign, variation):
        return self.arm(campaign, variation)["visitors"]

    def total_visitors(self, campaign):
        c = self.campaign(campaign)
        return sum(v["visitors"] for v in c["variations"]) + c["holdout"]["visitors"]

    def rejected(self):
        """Refused events by reason: the real SDK should never send one the server refuses."""
        return self.get("rejected", {})

    def goal(self, campaign, variation, goal):
        return self.arm(campaign, variation)["goals"].get(goal, {"conversions": 0, "revenue": 0.0})


class Vitrina:
    """A server for the session: `vitrina serve` under gunicorn on one store, and the sites
    (each with its shop origin) created on it with the real CLI."""

    def __init__(self, workdir, store_env=None):
        # Every simulated shopper of the suite comes from 127.0.0.1: the per-client limit (100
        # batches in 10 s, tests/test_collect.py) would refuse hundreds of visitors as one client,
        # and a refused beacon is lost.
        self.env = {"VITRINA_DATABASE": str(workdir / "vitrina.sqlite3"), "VITRINA_SECRET_KEY": SECRET_KEY,
                    "VITRINA_RATE_CLIENT": "0", **(store_env or {})}
        self.server_url = None
        self.shop = None
        self._shops = []
        self._names = itertools.count(1)

    @contextmanager
    def running(self):
        with gunicorn_server(self.env) as server_url:
            self.server_url = server_url
            try:
                yield self
            finally:
                for shop in self._shops:
                    shop.shutdown()
                    shop.server_close()

    def cli(self, *args):
        """Run the real `vitrina` CLI on this server's store; returns its stdout."""
        done = subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"vitrina {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
        return done.stdout

    def create_site(self, name):
        """`vitrina sites create <name>`: the API key is alone on the last line of stdout."""
        return self.cli("sites", "create", name).strip().splitlines()[-1].strip()

    def create_site_fast(self, name):
        """The same, in this process: a CLI run costs a second of imports, a test's own site should not."""
        key = new_api_key()
        with create_app(env=self.env).app_context():
            store = get_store()
            try:
                store.create_site(name, hash_key(key))
            finally:
                store.close()
        return key

    def start_shop(self, name, tag_server=None):
        """The shop pages with this site's tag, on their own origin: bound to 127.0.0.1 but
        browsed as localhost, a different host from the server's, as for a real shop. The tag
        comes from `tag_server` (an edge in front of the server) when given."""
        port = free_port()
        shop = make_shop_server("127.0.0.1", port, PAGES, tag_server or self.server_url, name)
        shop.handle_error = _quiet_disconnects(shop.handle_error)
        serve_in_thread(shop)
        self._shops.append(shop)
        return f"http://localhost:{port}"

    def site(self, name, api_key, config=None):
        """Publish `config` (default e2e/pages/config.json) over HTTP and open the site's shop."""
        site = Site(name, api_key, self.server_url, self.start_shop(name))
        site.publish(CONFIG if config is None else config)
        return site

    def new_site(self, config=None):
        name = f"e2e-{next(self._names)}"
        return self.site(name, self.create_site_fast(name), config)

    # Shortcuts to site 'shop': vitrina.shop_url, vitrina.api_key, vitrina.results(), vitrina.url(path)
    shop_url = property(lambda self: self.shop.shop_url)
    api_key = property(lambda self: self.shop.api_key)

    def results(self):
        return self.shop.results()

    def url(self, path="/"):
        return self.shop.url(path)


def _quiet_disconnects(handle_error):
    # The browser drops connections it no longer needs (navigation, about:blank): not an error.
    def handle(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            handle_error(request, client_address)
    return handle


def _require_sdk():
    sdk = REPO / "sdk_js" / "dist" / "vitrina.min.js"
    if not sdk.is_file():
        pytest.fail(f"{sdk} is missing: run 'npm run build' first", pytrace=False)


@pytest.fixture(scope="session")
def vitrina(tmp_path_factory):
    """The session's server (SQLite store) with site 'shop' published from
    e2e/pages/config.json. Attributes: server_url, shop (a Site), shop_url, api_key; results()."""
    _require_sdk()
    v = Vitrina(tmp_path_factory.mktemp("vitrina"))
    key = v.create_site("shop")  # before serving: the CLI also makes the database
    with v.running():
        v.shop = v.site("shop", key)
        yield v


@pytest.fixture(scope="session")
def vitrina_redis(tmp_path_factory):
    """The same server on the Redis store (a real redis-server), started on first use."""
    _require_sdk()
    with redis_server() as (url, _, _):
        with Vitrina(tmp_path_factory.mktemp("vitrina-redis"), {"VITRINA_REDIS_URL": url}).running() as v:
            yield v


@pytest.fixture
def shop(vitrina):
    """Site 'shop', shared by the tests that look at pages rather than at exact counts."""
    return vitrina.shop


def _city(country, continent, region, city, tz):
    return {"country": {"iso_code": country, "names": {"en": country}},
            "continent": {"code": continent, "names": {"en": continent}},
            "subdivisions": [{"iso_code": region, "names": {"en": region}}],
            "city": {"names": {"en": city}}, "location": {"time_zone": tz}}


# What the test GeoIP database of `geo_server` says about its addresses.
GEO_PARIS = {"country": "FR", "region": "IDF", "city": "Paris", "continent": "EU", "timezone": "Europe/Paris"}
GEO_TOKYO = {"country": "JP", "region": "13", "city": "Tokyo", "continent": "AS", "timezone": "Asia/Tokyo"}
GEO_UNKNOWN = {"country": None, "region": None, "city": None, "continent": None, "timezone": None}
PARIS_IP, TOKYO_IP, UNKNOWN_IP = "198.51.100.7", "203.0.113.5", "192.0.2.1"


def write_test_geoip_db(folder):
    """A GeoIP2 City database in which 198.51.100.0/24 is Paris and 203.0.113.0/24 Tokyo; its path."""
    db = folder / "test-city.mmdb"
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(IPSet(["198.51.100.0/24"]), _city("FR", "EU", "IDF", "Paris", "Europe/Paris"))
    writer.insert_network(IPSet(["203.0.113.0/24"]), _city("JP", "AS", "13", "Tokyo", "Asia/Tokyo"))
    writer.to_db_file(str(db))
    return db


@pytest.fixture(scope="session")
def geo_server(tmp_path_factory):
    """`vitrina serve` with VITRINA_GEOIP_DB on a database built here (198.51.100.0/24 is Paris,
    203.0.113.0/24 Tokyo) and VITRINA_PROXY_HOPS=1, so the last X-Forwarded-For address is the
    visitor's. Attribute `workdir`: where its database lives."""
    _require_sdk()
    workdir = tmp_path_factory.mktemp("vitrina-geo")
    server = Vitrina(workdir, {"VITRINA_GEOIP_DB": str(write_test_geoip_db(workdir)), "VITRINA_PROXY_HOPS": "1"})
    server.workdir = workdir
    with server.running():
        yield server


def behind_proxy(context, server_url, forwarded):
    """Every request of the browser context to the server carries `X-Forwarded-For: forwarded`, as
    a proxy in front of it would add (below CORS: the page's requests stay simple ones)."""
    def add_header(route):
        route.continue_(headers={**route.request.headers, "x-forwarded-for": forwarded})
    context.route(f"{server_url}/**", add_header)


@pytest.fixture(params=["sqlite", "redis"])
def store_server(request):
    """The session's server on each store backend."""
    return request.getfixturevalue("vitrina" if request.param == "sqlite" else "vitrina_redis")


@pytest.fixture
def fresh_site(store_server):
    """A new site with the e2e config and its own shop origin: its results start at zero."""
    return store_server.new_site()
