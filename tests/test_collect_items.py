"""collect's `item` events (recommendation signals): validated with their paths, recorded apart
from results, accepted without a published version, and the fast path accepts only what the
full checks accept."""
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.events.batch import _checked_batch, _valid_batch, parse_batch
from server.store import get_store
from tests.test_collect import ev, post, promo_visitors, results, variation

NOW = int(time.time() * 1000)


def item(n, action="view", items=("sku-1",), **extra):
    return {"id": f"item-event-{n:04d}", "type": "item", "action": action, "items": list(items), "ts": NOW,
            "session": 2, **extra}


def interactions(app):
    with app.app_context():
        return sorted(get_store().interactions("shop", 0), key=lambda row: row[2])


def test_item_events_go_to_the_signals_not_to_results(app, client, published):
    (visitor,) = promo_visitors(client, 1)
    batch = [ev("exposure"), item(1, "view", ["sku-1"]), item(2, "cart", ["sku-1", "sku-1", "sku/2"], version=1),
             item(3, "purchase", ["sku-1", "sku/2"]), ev("conversion", value=5)]
    assert post(client, visitor, batch).status_code == 204
    assert post(client, visitor, batch).status_code == 204  # retried: counted once
    rows = interactions(app)
    assert [(who, basket, action, json.loads(items)) for _, who, basket, action, items in rows] == [
        (f"v:{visitor}", "e:item-event-0003", "purchase", ["sku-1", "sku/2"]),
        (f"v:{visitor}", f"s:{visitor}:2", "view", ["sku-1"]),
        (f"v:{visitor}", f"s:{visitor}:2", "cart", ["sku-1", "sku/2"])]
    assert all(abs(ts - time.time()) < 60 for ts, *_ in rows)  # the server's clock, not the browser's
    promo = variation(results(client, published), "hero-newsletter", "promo")
    assert promo["visitors"] == 1 and promo["goals"]["purchase"]["conversions"] == 1


def test_item_events_need_no_published_version(app, client, shop):
    assert post(client, "visitor-0001", [item(1)]).status_code == 204
    assert len(interactions(app)) == 1
    # but an exposure in the same batch still does
    assert post(client, "visitor-0001", [item(2), ev("exposure")]).status_code == 400
    assert len(interactions(app)) == 1


def test_forced_item_events_are_not_recorded(app, client, shop):
    assert post(client, "visitor-0001", [item(1, forced=True)]).status_code == 204
    assert interactions(app) == []


@pytest.mark.parametrize("change, path", [
    ({"action": "like"}, "/events/1/action"),
    ({"items": []}, "/events/1/items"),
    ({"items": ["ok"] * 21}, "/events/1/items"),
    ({"items": ["ok", "no spaces"]}, "/events/1/items/1"),
    ({"items": ["ok", 5]}, "/events/1/items/1"),
    ({"items": "sku-1"}, "/events/1/items"),
    ({"session": -1}, "/events/1/session"),
    ({"session": 1.5}, "/events/1/session"),
    ({"version": "1"}, "/events/1/version"),
    ({"campaign": "hero"}, "/events/1"),
])
def test_bad_item_events_are_refused_with_their_path(app, client, shop, change, path):
    response = post(client, "visitor-0001", [item(1), {**item(2), **change}])
    assert response.status_code == 400
    assert [d["path"] for d in response.get_json()["details"]] == [path]
    assert interactions(app) == []


ODD = st.sampled_from([None, True, 0, 1, -1, 10**9 + 1, 1.5, "", "view", "cart", "purchase", "like", "sku-1",
                       "a b", [], ["sku-1"], ["sku-1", 2], ["a b"], ["x"] * 21, {}, NOW])


@st.composite
def item_batches(draw):
    events = []
    for n in range(draw(st.integers(1, 4))):
        event = item(n)
        for _ in range(draw(st.integers(0, 2))):
            field = draw(st.sampled_from(["id", "type", "action", "items", "session", "version", "ts", "forced", "x"]))
            if draw(st.booleans()):
                event.pop(field, None)
            else:
                event[field] = draw(ODD)
        events.append(event)
    return {"visitor_id": "visitor-0001", "events": events}


@settings(max_examples=500, deadline=None)
@given(item_batches())
def test_fast_parse_accepts_only_what_the_full_checks_accept(body):
    if _valid_batch(body):
        assert _checked_batch(body) == (body["visitor_id"], body["events"], None)


def test_fast_parse_takes_ordinary_item_batches():
    body = {"visitor_id": "v1.0123456789abcdef", "events": [item(1), item(2, "purchase", ["a", "b/c"], version=3),
                                                           {k: v for k, v in item(3).items() if k != "session"}]}
    assert _valid_batch(body)
    assert parse_batch(json.dumps(body)) == (body["visitor_id"], body["events"], body.get("identity"))
