"""collect: CORS, validation with reasons, bounds, once-per-visitor counting, results shape."""
import json
import time
import uuid

import pytest

from tests.conftest import database_bytes

NOW = int(time.time() * 1000)
URL = "/v1/sites/shop/collect"


def ev(kind, **fields):
    base = {"id": uuid.uuid4().hex, "type": kind, "version": 1, "ts": NOW}
    if kind == "exposure":
        base.update(campaign="hero-newsletter", variation="promo", holdout=False)
    else:
        base.update(goal="purchase")
    base.update(fields)
    return base


def visitors(client, campaign_key, variation, holdout=False):
    """Visitor ids that bucketing assigns to `variation` (or to the holdout) of a campaign."""
    from server.events.batch import bucketed_assignment
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    campaign_ = next(c for c in bundle["campaigns"] if c["key"] == campaign_key)
    for i in range(100_000):
        visitor = f"visitor-{i:05d}"
        in_holdout, chosen = bucketed_assignment(bundle, campaign_, visitor)
        if in_holdout == holdout and chosen == variation:
            yield visitor


def promo_visitors(client, n):
    ids = visitors(client, "hero-newsletter", "promo")
    return [next(ids) for _ in range(n)]


def post(client, visitor, events, **kw):
    # text/plain, as sendBeacon sends it: no CORS preflight.
    return client.post(URL, data=json.dumps({"visitor_id": visitor, "events": events}),
                       headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://shop.test"}, **kw)


def results(client, headers):
    return client.get("/api/v1/sites/shop/results", headers=headers).get_json()


def campaign(data, key):
    return next(c for c in data["campaigns"] if c["key"] == key)


def variation(data, key, name):
    return next(v for v in campaign(data, key)["variations"] if v["key"] == name)


def test_accepts_batch_with_cors(client, published):
    (visitor,) = promo_visitors(client, 1)
    response = post(client, visitor, [ev("exposure")])
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_preflight_is_answered(client, published):
    response = client.options(URL, headers={"Origin": "http://shop.test", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_visitor_counts_once_per_variation_across_pages(client, published):
    first, second = promo_visitors(client, 2)
    for _ in range(3):  # three page views, three exposures
        post(client, first, [ev("exposure")])
    post(client, second, [ev("exposure")])
    data = results(client, published)
    assert variation(data, "hero-newsletter", "promo")["visitors"] == 2


def test_retried_batch_counts_once(client, published):
    batch = [ev("exposure"), ev("conversion", value=10)]
    (visitor,) = promo_visitors(client, 1)
    post(client, visitor, batch)
    post(client, visitor, batch)
    promo = variation(results(client, published), "hero-newsletter", "promo")
    assert promo["visitors"] == 1
    assert promo["goals"]["purchase"] == {"conversions": 1, "rate": 1.0, "revenue": 10.0,
        "revenue_per_visitor": 10.0, "orders": 0, "aov": None}


def test_conversions_counted_once_per_visitor_revenue_summed(client, published):
    first, second = promo_visitors(client, 2)
    post(client, first, [ev("exposure"), ev("conversion", value=10), ev("conversion", value=2.5)])
    post(client, second, [ev("exposure")])
    promo = variation(results(client, published), "hero-newsletter", "promo")
    assert promo["goals"]["purchase"] == {"conversions": 1, "rate": 0.5, "revenue": 12.5,
        "revenue_per_visitor": 6.25, "orders": 0, "aov": None}


def test_holdout_exposures_and_forced_previews(client, published):
    held = next(visitors(client, "hero-newsletter", "promo", holdout=True))
    assert post(client, held, [ev("exposure", variation=None, holdout=True), ev("conversion")]).status_code == 204
    post(client, "visitor-0002", [ev("exposure", forced=True), ev("conversion", forced=True)])
    data = results(client, published)
    hero = campaign(data, "hero-newsletter")
    assert hero["holdout"]["visitors"] == 1
    assert hero["holdout"]["goals"]["purchase"]["conversions"] == 1
    assert variation(data, "hero-newsletter", "promo")["visitors"] == 0


def test_results_shape(client, published):
    arms = {"control": visitors(client, "cta-wording", "control"), "urgent": visitors(client, "cta-wording", "urgent")}
    for i in range(10):
        arm = "urgent" if i % 2 else "control"
        vid = next(arms[arm])
        events = [ev("exposure", campaign="cta-wording", variation=arm)]
        if i % 2 or i == 0:
            events.append(ev("conversion", goal="add_to_cart"))
        post(client, vid, events)
    data = results(client, published)
    assert data["site"] == "shop" and data["version"] == 1
    cta = campaign(data, "cta-wording")
    assert cta["type"] == "experiment"
    assert [v["key"] for v in cta["variations"]] == ["control", "urgent"]
    assert cta["variations"][1]["goals"]["add_to_cart"] == {"conversions": 5, "rate": 1.0, "revenue": 0.0,
        "revenue_per_visitor": 0.0, "orders": 0, "aov": None}
    assert cta["variations"][0]["goals"]["add_to_cart"]["rate"] == 0.2
    # 5 visitors an arm: far below the minimum sample, so no figure that could be mistaken for a finding
    assert cta["srm"] == {"status": "not_enough_data", "p_value": None, "ok": None}
    comparison = next(c for c in cta["comparisons"] if c["vs"] == "control" and c["goal"] == "add_to_cart")
    assert comparison["variation"] == "urgent" and comparison["metric"] == "conversion_rate"
    assert comparison["status"] == "not_enough_data" and comparison["method"] == "sequential"
    assert comparison["uplift"] is comparison["ci"] is comparison["p_value"] is comparison["bayes"] is None
    assert cta["goals"] == ["add_to_cart", "purchase"]  # the campaign's own goals, in its order


def batch(*events):
    """A valid exposure first, then the bad events: the whole batch must be refused."""
    return {"visitor_id": "visitor-0001", "events": [ev("exposure"), *events]}


BAD_BATCHES = [
    ("not json", "{oops", "invalid_batch", None),
    ("not an object", "[1]", "invalid_batch", None),
    ("bad visitor id", {"visitor_id": "x", "events": [ev("exposure")]}, "invalid_batch", "/visitor_id"),
    ("no events", {"visitor_id": "visitor-0001", "events": []}, "invalid_batch", "/events"),
    ("too many events", {"visitor_id": "visitor-0001", "events": [ev("exposure") for _ in range(101)]},
     "invalid_batch", "/events"),
    ("unknown type", batch(ev("exposure", type="click")), "invalid_batch", "/events/1/type"),
    ("missing id", batch(ev("exposure", id=None)), "invalid_batch", "/events/1/id"),
    ("bad ts", batch(ev("exposure", ts="now")), "invalid_batch", "/events/1/ts"),
    ("infinite value", '{"visitor_id":"visitor-0001","events":[{"id":"abcdefgh1","type":"conversion","version":1,'
                       '"ts":%d,"goal":"purchase","value":1e999}]}' % NOW, "invalid_batch", "/events/0/value"),
    ("value past the double range", '{"visitor_id":"visitor-0001","events":[{"id":"abcdefgh1","type":"conversion",'
                                    '"version":1,"ts":%d,"goal":"purchase","value":%d}]}' % (NOW, 10**400),
     "invalid_batch", "/events/0/value"),
    ("holdout with variation", batch(ev("exposure", holdout=True)), "invalid_batch", "/events/1/variation"),
    ("extra field", batch(ev("exposure", ip="1.2.3.4")), "invalid_batch", "/events/1"),
    ("unknown version", batch(ev("exposure", version=7)), "unverified_events", "/events/1/version"),
    ("unknown campaign", batch(ev("exposure", campaign="nope")), "unverified_events", "/events/1/campaign"),
    ("unknown variation", batch(ev("exposure", variation="nope")), "unverified_events", "/events/1/variation"),
    ("unknown goal", batch(ev("conversion", goal="nope")), "unverified_events", "/events/1/goal"),
]


@pytest.mark.parametrize("name, body, code, path", BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_bad_batches_are_refused_with_reasons_and_change_nothing(client, published, name, body, code, path):
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post(URL, data=raw, headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["error"] == code and payload["message"]
    if path is not None:
        assert any(d["path"] == path for d in payload["details"]), payload["details"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert variation(results(client, published), "hero-newsletter", "promo")["visitors"] == 0


def test_assignments_contradicting_bucketing_are_rejected_and_counted(client, published):
    control = next(visitors(client, "cta-wording", "control"))
    forged = post(client, control, [ev("exposure", campaign="cta-wording", variation="urgent")])
    assert forged.status_code == 400
    assert forged.get_json()["details"][0] == {"path": "/events/0/variation", "code": "bucketing",
                                               "message": "this visitor is not bucketed into that assignment"}
    not_held = next(visitors(client, "hero-newsletter", "promo"))
    assert post(client, not_held, [ev("exposure", variation=None, holdout=True)]).status_code == 400
    post(client, control, [ev("exposure", campaign="nope")])
    post(client, control, "not a list")
    data = results(client, published)
    assert data["rejected"] == {"bucketing": 2, "unknown_campaign": 1, "invalid": 1}
    assert all(v["visitors"] == 0 for v in campaign(data, "cta-wording")["variations"])
    # the true assignment is accepted
    assert post(client, control, [ev("exposure", campaign="cta-wording", variation="control")]).status_code == 204


def test_sticky_assignment_from_an_earlier_version_is_accepted(client, published, demo_config):
    # A visitor bucketed into "urgent" at 50/50 keeps it after the weights move to 90/10.
    urgent = list(visitors(client, "cta-wording", "urgent"))
    demo_config["campaigns"][1]["variations"][0]["weight"] = 0.9
    demo_config["campaigns"][1]["variations"][1]["weight"] = 0.1
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    assert client.post("/api/v1/sites/shop/publish", headers=published).get_json()["version"] == 2
    now_control = set(visitors(client, "cta-wording", "control"))
    moved = next(v for v in urgent if v in now_control)
    assert post(client, moved, [ev("exposure", campaign="cta-wording", variation="urgent", version=2)]).status_code == 204
    # a restart (new seed) ends stickiness
    demo_config["campaigns"][1]["seed"] = "cta-wording-2"
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    client.post("/api/v1/sites/shop/publish", headers=published)
    restarted = set(visitors(client, "cta-wording", "control"))
    victim = next(v for v in urgent if v in restarted)
    assert post(client, victim, [ev("exposure", campaign="cta-wording", variation="urgent", version=3)]).status_code == 400


def test_oversized_batch_is_413(client, published):
    raw = json.dumps({"visitor_id": "visitor-0001", "events": [ev("exposure", campaign="x" * 70000)]})
    response = client.post(URL, data=raw, headers={"Content-Type": "text/plain"})
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_unknown_site_is_404(client, published):
    assert client.post("/v1/sites/nope/collect", data="{}").status_code == 404


def test_no_ip_is_stored(app, client, published):
    (visitor,) = promo_visitors(client, 1)
    post(client, visitor, [ev("exposure")], environ_base={"REMOTE_ADDR": "203.0.113.77"})
    raw = database_bytes(app)
    assert visitor.encode() in raw  # the event was written...
    assert b"203.0.113.77" not in raw  # ...without the address it came from


def test_flooding_client_gets_429_with_retry_after(tmp_path):
    from server import create_app
    from tests.conftest import make_site
    app = create_app(env={"VITRINA_DATABASE": str(tmp_path / "r.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
                          "VITRINA_RATE_CLIENT": "5", "VITRINA_RATE_WINDOW": "60"})
    make_site(app, "shop")
    client = app.test_client()
    codes = [client.post(URL, data="{}", environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code for _ in range(7)]
    assert codes == [400] * 5 + [429] * 2
    flooded = client.post(URL, data="{}", environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert 1 <= int(flooded.headers["Retry-After"]) <= 60
    assert flooded.get_json()["error"] == "rate_limited"
    # another client is not affected
    assert client.post(URL, data="{}", environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 400


def test_site_limit_applies_across_clients(tmp_path):
    from server import create_app
    from tests.conftest import make_site
    app = create_app(env={"VITRINA_DATABASE": str(tmp_path / "r.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
                          "VITRINA_RATE_SITE": "3", "VITRINA_RATE_WINDOW": "60"})
    make_site(app, "shop")
    client = app.test_client()
    codes = [client.post(URL, data="{}", environ_base={"REMOTE_ADDR": f"198.51.100.{i}"}).status_code for i in range(5)]
    assert codes == [400, 400, 400, 429, 429]


def test_a_value_out_of_bounds_refuses_that_conversion_alone_and_counts_it(client, published):
    first, second = promo_visitors(client, 2)
    batch = [ev("exposure"), ev("conversion", value=-1e9), ev("conversion", value=100_001), ev("conversion", value=40),
             ev("conversion", value=1e300)]
    response = client.post(URL, data=json.dumps({"visitor_id": first, "events": batch}, allow_nan=False),
                           headers={"Content-Type": "text/plain"})
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    refused = response.get_json()["refused"]
    assert [(p["path"], p["code"]) for p in refused] == [
        ("/events/1/value", "value"), ("/events/2/value", "value"), ("/events/4/value", "value")]
    assert "100000" in refused[0]["message"]
    # a batch of nothing but refused values records nothing: refused whole, as any other
    only_bad = post(client, second, [ev("conversion", value=-3)])
    assert only_bad.status_code == 400 and only_bad.get_json()["details"][0]["code"] == "value"
    data = results(client, published)
    promo = variation(data, "hero-newsletter", "promo")
    assert promo["visitors"] == 1 and promo["goals"]["purchase"] == {"conversions": 1, "rate": 1.0, "revenue": 40.0,
                                                                     "revenue_per_visitor": 40.0, "orders": 0,
                                                                     "aov": None}
    assert data["rejected"] == {"value": 4}
    # bounds are checked against the version the event names, so forced previews are not
    assert post(client, first, [ev("conversion", value=-1, forced=True)]).status_code == 204


def test_events_outside_the_time_window_are_refused_alone_and_counted(client, published):
    from server.events.batch import MAX_EVENT_AGE_S, MAX_EVENT_AHEAD_S
    first, second = promo_visitors(client, 2)
    now = int(time.time() * 1000)
    stale, future = now - MAX_EVENT_AGE_S * 1000 - 60_000, now + MAX_EVENT_AHEAD_S * 1000 + 60_000
    batch = [ev("exposure", ts=stale), ev("exposure", ts=now - MAX_EVENT_AGE_S * 1000 + 60_000),
             ev("conversion", value=5, ts=future), ev("conversion", value=7, ts=now + MAX_EVENT_AHEAD_S * 1000 - 60_000)]
    response = post(client, first, batch)
    assert response.status_code == 200
    assert [(p["path"], p["code"]) for p in response.get_json()["refused"]] == [
        ("/events/0/ts", "stale"), ("/events/2/ts", "future")]
    # a forged assignment that is also stale is refused once, for its time
    (control,) = [next(visitors(client, "cta-wording", "control"))]
    forged = post(client, control, [ev("exposure", campaign="cta-wording", variation="urgent", ts=stale)])
    assert forged.status_code == 400
    assert [(p["path"], p["code"]) for p in forged.get_json()["details"]] == [("/events/0/ts", "stale")]
    # a QA preview is never counted: its clock is not checked
    assert post(client, second, [ev("exposure", ts=stale, forced=True)]).status_code == 204
    data = results(client, published)
    promo = variation(data, "hero-newsletter", "promo")
    assert promo["visitors"] == 1 and promo["goals"]["purchase"]["revenue"] == 7.0
    assert data["rejected"] == {"stale": 2, "future": 1}


def test_the_browser_drops_queued_events_before_the_server_would_refuse_them():
    import re

    from server.events.batch import MAX_EVENT_AGE_S, QUEUE_MAX_AGE_S
    from tests.conftest import REPO
    tracker = (REPO / "sdk_js" / "src" / "tracker.js").read_text()
    assert float(re.search(r"const MAX_AGE_MS = ([0-9e.]+)", tracker)[1]) / 1000 == QUEUE_MAX_AGE_S < MAX_EVENT_AGE_S


def test_the_site_sets_its_own_bound(client, published, demo_config):
    demo_config["settings"]["max_value"] = 500
    assert client.put("/api/v1/sites/shop/config", json=demo_config, headers=published).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=published).get_json()["version"] == 2
    (visitor,) = promo_visitors(client, 1)
    response = post(client, visitor, [ev("exposure", version=2), ev("conversion", value=500, version=2),
                                      ev("conversion", value=501, version=2), ev("conversion", value=700)])
    assert [p["path"] for p in response.get_json()["refused"]] == ["/events/2/value"]  # version 1: 100,000
    purchase = variation(results(client, published), "hero-newsletter", "promo")["goals"]["purchase"]
    assert purchase["revenue"] == 1200.0


def test_a_version_that_no_longer_verifies_is_a_4xx_the_sdk_drops_and_is_counted(app, client, published):
    # The server's secret key replaced without keeping the old one: version 1 no longer verifies.
    from server import create_app
    rotated = create_app(env={"VITRINA_DATABASE": app.config["VITRINA_DATABASE"],
                              "VITRINA_SECRET_KEY": "a-new-key-0123456789abcdef"})
    (visitor,) = promo_visitors(client, 1)
    response = post(rotated.test_client(), visitor, [ev("exposure"), ev("conversion", value=5)])
    assert response.status_code == 400  # not 503: a browser would retry it forever
    assert {d["code"] for d in response.get_json()["details"]} == {"unverifiable_version"}
    assert results(client, published)["rejected"] == {"unverifiable_version": 2}
    assert variation(results(client, published), "hero-newsletter", "promo")["visitors"] == 0


def test_purchases_with_order_ids_fill_orders_and_the_average_order_value(client, published):
    first, second = promo_visitors(client, 2)
    post(client, first, [ev("exposure"), ev("conversion", value=30, order_id="T-1"),
                         ev("conversion", value=30, order_id="T-1"),  # the thank-you page reloaded
                         ev("conversion", value=10, order_id="T-2")])
    assert post(client, second, [ev("exposure"), ev("conversion", value=50, order_id="T-1")]).status_code == 204
    purchase = variation(results(client, published), "hero-newsletter", "promo")["goals"]["purchase"]
    assert (purchase["conversions"], purchase["revenue"], purchase["orders"], purchase["aov"]) == (2, 90.0, 3, 30.0)


def test_a_conversion_names_a_live_campaign_or_the_batch_is_refused(client, published):
    (visitor,) = promo_visitors(client, 1)
    response = post(client, visitor, [ev("exposure"), ev("conversion", campaign="no-such-campaign")])
    assert response.status_code == 400
    assert response.get_json()["details"] == [{"path": "/events/1/campaign", "code": "unknown_campaign",
                                               "message": "no live campaign 'no-such-campaign' in version 1"}]
    assert post(client, visitor, [ev("exposure"), ev("conversion", campaign="cta-wording", value=5)]).status_code == 204
    data = results(client, published)  # the visitor was never exposed to cta-wording: counted nowhere
    assert variation(data, "hero-newsletter", "promo")["goals"]["purchase"]["conversions"] == 0


def test_an_order_id_the_server_cannot_count_by_is_ignored_and_the_conversion_counts(client, published):
    (visitor,) = promo_visitors(client, 1)
    events = [ev("exposure"), ev("conversion", value=5, order_id="Order 1042"),
              ev("conversion", value=5, order_id="Order 1042"), ev("conversion", value=5, order_id="x" * 101)]
    assert post(client, visitor, events).status_code == 204
    purchase = variation(results(client, published), "hero-newsletter", "promo")["goals"]["purchase"]
    assert (purchase["conversions"], purchase["revenue"], purchase["orders"]) == (1, 15.0, 0)


def test_an_integer_order_id_is_its_digits_and_any_other_value_is_ignored(client, published):
    """What a site passes to vitrina.track("purchase", {order_id}) reaches collect as it is: a
    batch is never refused for it (its exposures would go too)."""
    (visitor,) = promo_visitors(client, 1)
    events = [ev("exposure"), ev("conversion", value=5, order_id=1042), ev("conversion", value=5, order_id="1042"),
              *(ev("conversion", value=1, order_id=odd) for odd in (None, True, 10.5, {"id": 1}, [7], 10**400))]
    assert post(client, visitor, events).status_code == 204
    purchase = variation(results(client, published), "hero-newsletter", "promo")["goals"]["purchase"]
    assert (purchase["conversions"], purchase["revenue"], purchase["orders"]) == (1, 11.0, 1)  # 1042 once


@pytest.mark.parametrize("field, value", [("strategy", "popular"), ("items", []), ("items", ["a b"]),
                                          ("campaign", "-x")])
def test_conversion_extras_are_checked(client, published, field, value):
    (visitor,) = promo_visitors(client, 1)
    response = post(client, visitor, [ev("conversion", **{field: value})])
    assert response.status_code == 400
    assert response.get_json()["details"][0]["path"].startswith(f"/events/0/{field}")
