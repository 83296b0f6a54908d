"""GET /api/v1/sites/<site>/events: the raw event log as JSON lines, each line as
spec/schemas/event-export.schema.json says, paged by stream position with a next cursor, on both
stores: read page after page while events keep arriving, every recorded event comes once, in order."""
import json
import time

import pytest

from server import create_app
from server.events.batch import bucketed_assignment
from server.store import get_store
from server.web.auth import hash_key, new_api_key
from server.wire.schemas import problems
from tests.servers import BROWSER_UA

NOW_MS = int(time.time() * 1000)  # collect counts events from the last 3 days only

CONFIG = {"goals": {"purchase": {"event": "purchase"}},
          "campaigns": [{"key": "hero", "type": "experiment", "goals": ["purchase"],
                         "variations": [{"key": "control"}, {"key": "bold"}]}],
          "settings": {"holdout": 0}}


@pytest.fixture(params=["sqlite", "redis"])
def shop(request, tmp_path):
    env = {"VITRINA_DATABASE": str(tmp_path / "vitrina.sqlite3"), "VITRINA_SECRET_KEY": "test-secret-key-0123456789",
           "VITRINA_RATE_CLIENT": "0"}
    if request.param == "redis":
        env["VITRINA_REDIS_URL"] = request.getfixturevalue("redis_url")
    app = create_app(env=env)
    key, reader = new_api_key(), new_api_key()
    with app.app_context():
        store = get_store()
        if request.param == "redis":
            store.r.flushall()
        store.create_site("shop", hash_key(key))
        store.add_key("shop", "warehouse", "read", hash_key(reader))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.put("/api/v1/sites/shop/config", json=CONFIG, headers=auth).status_code == 200
    assert client.post("/api/v1/sites/shop/publish", headers=auth).status_code == 201
    yield client, {"Authorization": f"Bearer {reader}"}
    app.extensions["vitrina_store"].close()


def sender(client):
    bundle = client.get("/v1/sites/shop/bundle.json").get_json()["bundle"]
    sent = []

    def send(n, user_agent=BROWSER_UA):
        visitor = f"v1.export{n:06d}"
        _, variation = bucketed_assignment(bundle, bundle["campaigns"][0], visitor)
        events = [{"id": f"exposure-{n:06d}", "type": "exposure", "version": 1, "ts": NOW_MS,
                   "campaign": "hero", "variation": variation, "segments": "", "pre": [0, 0]},
                  {"id": f"purchase-{n:06d}", "type": "conversion", "version": 1, "ts": NOW_MS + 1,
                   "goal": "purchase", "value": 12.5}]
        response = client.post("/v1/sites/shop/collect", data=json.dumps({"visitor_id": visitor, "events": events}),
                               headers={"User-Agent": user_agent})
        assert response.status_code == 204
        if user_agent == BROWSER_UA:
            sent.extend((visitor, e) for e in events)
    return send, sent


def page(client, auth, since=None, limit=7):
    query = f"?limit={limit}" + (f"&since={since}" if since is not None else "")
    response = client.get(f"/api/v1/sites/shop/events{query}", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    return lines, response.headers


def test_pages_of_json_lines_hold_every_event_once_in_order_while_more_arrive(shop):
    client, auth = shop
    send, sent = sender(client)
    read, since, n = [], None, 0
    while True:
        if n < 40:  # events keep arriving between pages
            send(n)
            send(n + 1000, user_agent="Googlebot/2.1 (+http://www.google.com/bot.html)")  # never recorded
            n += 1
        lines, headers = page(client, auth, since)
        for line in lines:
            assert problems("event-export", line) == []
        read += lines
        if lines:
            assert headers["Vitrina-Next-Cursor"] == lines[-1]["cursor"]
        else:
            assert headers["Vitrina-Next-Cursor"] == (since or "")
        assert headers["Vitrina-More"] == ("true" if len(lines) == 7 else "false")
        assert "Vitrina-Missed" not in headers
        since = headers["Vitrina-Next-Cursor"] or None
        if not lines and n >= 40:
            break
    assert [(line["visitor_id"], line["event"]) for line in read] == sent  # the very events, as sent
    assert len({line["cursor"] for line in read}) == len(read)
    assert all(line["received_at"].endswith("Z") for line in read)


@pytest.mark.parametrize("query, path", [("?since=nope", "/since"), ("?limit=0", "/limit"), ("?limit=10001", "/limit"),
                                         ("?limit=ten", "/limit"), ("?since=" + "1" * 65, "/since")])
def test_a_bad_cursor_or_limit_is_a_400_naming_it(shop, query, path):
    client, auth = shop
    response = client.get(f"/api/v1/sites/shop/events{query}", headers=auth)
    assert response.status_code == 400
    assert [d["path"] for d in response.get_json()["details"]] == [path]


def test_the_export_needs_a_key_of_the_site(shop):
    client, _ = shop
    assert client.get("/api/v1/sites/shop/events").status_code == 401
