"""Geo from the GeoLite2/GeoIP2 City format: bundled GeoLite2 by default, VITRINA_GEOIP_DB for another file, and
VITRINA_PROXY_HOPS trusting exactly N X-Forwarded-For hops. Test databases are built here."""
import json
import urllib.request

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from server import create_app
from server.delivery.context import geo_for_ip
from server.store import get_store
from server.web.auth import hash_key, new_api_key
from tests.servers import gunicorn_server


def _record(country, continent, region, city, tz):
    return {"country": {"iso_code": country, "names": {"en": country}},
            "continent": {"code": continent, "names": {"en": continent}},
            "subdivisions": [{"iso_code": region, "names": {"en": region}}],
            "city": {"names": {"en": city}},
            "location": {"time_zone": tz}}


@pytest.fixture(scope="module")
def city_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("geo") / "test-city.mmdb"
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(IPSet(["198.51.100.0/24"]), _record("FR", "EU", "IDF", "Paris", "Europe/Paris"))
    writer.insert_network(IPSet(["203.0.113.0/24"]), _record("JP", "AS", "13", "Tokyo", "Asia/Tokyo"))
    writer.insert_network(IPSet(["2001:db8::/32"]), _record("CA", "NA", "QC", "Montreal", "America/Toronto"))
    writer.to_db_file(str(path))
    return path


def test_lookup_in_a_built_database(city_db):
    assert geo_for_ip("198.51.100.7", str(city_db)) == {
        "country": "FR", "region": "IDF", "city": "Paris", "continent": "EU", "timezone": "Europe/Paris"}
    assert geo_for_ip("2001:db8::1", str(city_db))["city"] == "Montreal"


@pytest.mark.parametrize("ip", ["192.0.2.1", "127.0.0.1", "not-an-ip", None])
def test_unknown_or_invalid_addresses_give_empty_geo(city_db, ip):
    assert set(geo_for_ip(ip, str(city_db)).values()) == {None}


def test_bundled_geolite2_is_the_default(tmp_path):
    app = create_app(env={"VITRINA_DATABASE": str(tmp_path / "d.sqlite3")})
    geo = app.test_client().get("/v1/context", environ_base={"REMOTE_ADDR": "8.8.8.8"}).get_json()["geo"]
    assert geo["country"] == "US" and geo["continent"] == "NA"


def _geo(tmp_path, city_db, hops, **request):
    env = {"VITRINA_DATABASE": str(tmp_path / "d.sqlite3"), "VITRINA_GEOIP_DB": str(city_db)}
    if hops is not None:
        env["VITRINA_PROXY_HOPS"] = str(hops)
    response = create_app(env=env).test_client().get("/v1/context", **request)
    assert b"198.51.100" not in response.data and b"203.0.113" not in response.data  # the IP is never echoed
    return response.get_json()["geo"]["country"]


def test_client_address_without_proxy_ignores_forwarded_header(tmp_path, city_db):
    assert _geo(tmp_path, city_db, None, environ_base={"REMOTE_ADDR": "198.51.100.9"},
                headers={"X-Forwarded-For": "203.0.113.5"}) == "FR"


def test_proxy_hops_trust_exactly_n_forwarded_addresses(tmp_path, city_db):
    # One trusted proxy: the last X-Forwarded-For entry is the client; a spoofed first entry is ignored.
    assert _geo(tmp_path, city_db, 1, environ_base={"REMOTE_ADDR": "10.0.0.1"},
                headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}) == "JP"
    assert _geo(tmp_path, city_db, 2, environ_base={"REMOTE_ADDR": "10.0.0.1"},
                headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.5"}) == "FR"


@pytest.mark.parametrize("hops, country", [(0, None), (1, "JP"), (2, "FR")])
def test_proxy_hops_mean_the_same_for_context_js_and_v1_context(tmp_path, city_db, hops, country):
    """Under `vitrina serve`: context.js and /v1/context trust the same N hops (the server itself
    trusts none: its own proxy-header handling is off), and tag.js, the same for everyone,
    carries no geo at all."""
    env = {"VITRINA_DATABASE": str(tmp_path / "d.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
           "VITRINA_GEOIP_DB": str(city_db), "VITRINA_PROXY_HOPS": str(hops)}
    app = create_app(env=env)
    with app.app_context():
        get_store().create_site("shop", hash_key(new_api_key()))
    app.extensions["vitrina_store"].close()
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.5", "X-Forwarded-Proto": "https"}

    def get(path):
        return urllib.request.urlopen(urllib.request.Request(url + path, headers=forwarded), timeout=5).read()
    with gunicorn_server(env) as url:
        context, script, tag = get("/v1/context"), get("/v1/sites/shop/context.js"), get("/v1/sites/shop/tag.js")
    assert json.loads(context)["geo"]["country"] == country
    assert b'"geo":{"country":%s,' % json.dumps(country).encode() in script
    assert b'"geo"' not in tag and b'"endpoint"' not in tag
    for body in (context, script, tag):
        assert b"198.51.100" not in body and b"203.0.113" not in body  # the address is never echoed
