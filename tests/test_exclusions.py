"""Traffic that must not count: bots and headless browsers, addresses in settings.exclude_ips
(behind the proxy hop the server trusts), browsers marked internal, forced previews. Each is
counted by reason under `excluded` and never reaches results; the addresses are matched in
memory and never stored, nor published in the bundle every visitor downloads."""
import json
import time

import pytest

from server.events.batch import bucketed_assignment
from server.events.traffic import in_networks, is_bot, parse_networks
from tests.conftest import database_bytes, shop_with
from tests.servers import BROWSER_UA

NOW_MS = int(time.time() * 1000)  # collect counts events from the last 3 days only

OFFICE, VPN = "203.0.113.0/24", "2001:db8:42::/48"
CONFIG = {
    "goals": {"purchase": {"event": "purchase"}},
    "campaigns": [{"key": "hero", "type": "experiment", "goals": ["purchase"],
                   "variations": [{"key": "control"}, {"key": "bold"}]}],
    "settings": {"holdout": 0, "exclude_ips": [OFFICE, VPN, "192.0.2.7"]},
}
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 "
            "Safari/537.36")
LIGHTHOUSE = ("Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse")


@pytest.fixture
def shop(tmp_path):
    app, client, auth = shop_with(tmp_path, CONFIG, VITRINA_PROXY_HOPS="1")
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    visitors = (f"v1.ex{i:06d}" for i in range(10**6))

    def send(user_agent=BROWSER_UA, forwarded="198.51.100.9", batch=None, **flags):
        """One new visitor's exposure and purchase (with `flags` on both), through the proxy hop."""
        visitor = next(visitors)
        _, variation = bucketed_assignment(bundle, bundle["campaigns"][0], visitor)
        events = [{"id": f"x-{visitor}", "type": "exposure", "version": 1, "ts": NOW_MS, "campaign": "hero",
                   "variation": variation, **flags},
                  {"id": f"p-{visitor}", "type": "conversion", "version": 1, "ts": NOW_MS + 1, "goal": "purchase",
                   "value": 20, **flags}]
        response = client.post("/v1/sites/shop/collect", data=json.dumps({"visitor_id": visitor, "events": events, **(batch or {})}),
                               headers={"User-Agent": user_agent, "X-Forwarded-For": forwarded},
                               environ_base={"REMOTE_ADDR": "10.0.0.2"})  # the proxy's own address
        assert response.status_code == 204, response.get_data(as_text=True)
        return variation

    return app, client, auth, send


def totals(client, auth):
    data = client.get("/api/v1/sites/shop/results", headers=auth).get_json()
    hero = data["campaigns"][0]
    return (sum(v["visitors"] for v in hero["variations"]),
            sum(v["goals"]["purchase"]["conversions"] for v in hero["variations"]), data["excluded"], data["rejected"])


def test_excluded_traffic_is_counted_by_reason_and_never_in_results(shop):
    app, client, auth, send = shop
    for _ in range(3):
        send()  # shoppers
    send(forwarded="10.9.9.9, 198.51.100.20")  # what the client claims before the proxy's hop is not trusted
    for user_agent in (GOOGLEBOT, HEADLESS, LIGHTHOUSE):
        send(user_agent=user_agent)
    send(forwarded="203.0.113.50")  # the office, behind the proxy
    send(forwarded="198.51.100.9, 203.0.113.51")
    send(forwarded="2001:db8:42::1")  # the VPN, IPv6
    send(forwarded="192.0.2.7")  # a single address
    send(internal=True)  # a browser marked with ?vitrina_internal=1
    send(batch={"internal": True})  # the same, as the slices module says it: once for the batch
    send(batch={"internal": False})  # a browser no longer marked (?vitrina_internal=0)
    send(forced=True)  # a QA preview
    visitors, purchases, excluded, rejected = totals(client, auth)
    assert (visitors, purchases) == (5, 5)
    assert excluded == {"bot": 6, "ip": 8, "internal": 4, "forced": 2}  # events, by reason
    assert rejected == {}
    # addresses are matched in memory only: none of them is in the database
    stored = database_bytes(app)
    for address in (b"198.51.100.9", b"198.51.100.20", b"203.0.113.50", b"203.0.113.51", b"2001:db8:42::1"):
        assert address not in stored
    # and the ranges never reach the browser: they are kept with the version, not in the bundle
    for path in ("/v1/sites/shop/bundle.json", "/v1/sites/shop/tag.js"):
        body = client.get(path).get_data()
        assert b"203.0.113" not in body and b"exclude_ips" not in body


def test_exclude_ips_follow_the_published_version(shop):
    app, client, auth, send = shop
    config = {**CONFIG, "settings": {"holdout": 0}}
    assert client.put("/api/v1/sites/shop/config", json=config, headers=auth).status_code == 200
    send(forwarded="203.0.113.60")  # the draft no longer excludes the office, but it is not published
    assert totals(client, auth)[2] == {"ip": 2}
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    send(forwarded="203.0.113.61")
    assert totals(client, auth)[:3] == (1, 1, {"ip": 2})
    # a rollback brings back version 1's ranges with its bundle
    assert client.post("/api/v1/sites/shop/rollback", json={"version": 1}, headers=auth).status_code == 201
    send(forwarded="203.0.113.62")
    assert totals(client, auth)[:3] == (1, 1, {"ip": 4})


@pytest.mark.parametrize("cidr", ["203.0.113.0/33", "300.1.1.1", "office", "2001:db8::/129", "10.0.0.0/8/8"])
def test_a_range_that_is_not_one_is_refused_with_its_path(client, shop, cidr):
    _, client, auth, _ = shop
    config = {**CONFIG, "settings": {"exclude_ips": ["10.0.0.0/8", cidr]}}
    response = client.put("/api/v1/sites/shop/config", json=config, headers=auth)
    assert response.status_code == 400
    assert [d["path"] for d in response.get_json()["details"]] == ["/settings/exclude_ips/1"]


def test_bots_and_headless_browsers_by_their_user_agent():
    for bot in (GOOGLEBOT, HEADLESS, LIGHTHOUSE, "Mozilla/5.0 (compatible; bingbot/2.0)", "Python-urllib/3.11",
                "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
                "facebookexternalhit/1.1", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Version/17.0 Safari/605.1.15 (Applebot/0.1)"):
        assert is_bot(bot), bot
    for shopper in (BROWSER_UA, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", ""):
        assert not is_bot(shopper), shopper


def test_networks_match_v4_v6_and_mapped_addresses():
    networks = parse_networks([OFFICE, VPN])
    assert in_networks("203.0.113.255", networks) and in_networks("::ffff:203.0.113.4", networks)
    assert in_networks("2001:db8:42:ffff::9", networks)
    assert not in_networks("203.0.114.1", networks) and not in_networks("2001:db8:43::1", networks)
    assert not in_networks("not an address", networks) and not in_networks(None, networks)
    assert not in_networks("203.0.113.1", ())
