"""PUT/GET config: every problem reported with its JSON path, nothing invalid stored, keys scoped."""
import copy
import json

import pytest

from server.web.auth import hash_key
from tests.conftest import database_bytes, make_site

URL = "/api/v1/sites/shop/config"


def test_valid_config_is_saved_and_read_back(client, shop, demo_config):
    response = client.put(URL, json=demo_config, headers=shop)
    assert response.status_code == 200, response.get_json()
    assert client.get(URL, headers=shop).get_json() == demo_config


def test_missing_or_malformed_key_is_401(client, shop, demo_config):
    assert client.put(URL, json=demo_config).status_code == 401
    assert client.put(URL, json=demo_config, headers={"Authorization": "Basic abc"}).status_code == 401
    response = client.put(URL, json=demo_config, headers={"Authorization": "Bearer vk_not-a-real-key"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_key_of_another_site_is_403(app, client, shop, demo_config):
    other = make_site(app, "other")
    response = client.put(URL, json=demo_config, headers=other)
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
    assert client.put("/api/v1/sites/other/config", json=demo_config, headers=other).status_code == 200
    assert client.get(URL, headers=shop).status_code == 404  # shop's draft was never written


def test_api_key_is_stored_hashed(app, shop):
    key = shop["Authorization"].split()[1]
    raw = database_bytes(app)
    assert hash_key(key).encode() in raw
    assert key.encode() not in raw


def _mutate(config, change):
    config = copy.deepcopy(config)
    change(config)
    return config


def _set(path, value):
    def change(config):
        target = config
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


BAD_CONFIGS = [
    ("unknown segment", _set(["campaigns", 0, "segment"], "nope"), "/campaigns/0/segment", "unknown segment"),
    ("unknown goal", _set(["campaigns", 1, "goals"], ["purchase", "nope"]), "/campaigns/1/goals/1", "unknown goal"),
    ("duplicate campaign", lambda c: c["campaigns"].append(copy.deepcopy(c["campaigns"][0])),
     "/campaigns/3/key", "duplicate campaign key"),
    ("duplicate variation", lambda c: c["campaigns"][1]["variations"].append({"key": "control", "weight": 0}),
     "/campaigns/1/variations/2/key", "duplicate variation key"),
    ("weights not summing to 1", _set(["campaigns", 1, "variations", 0, "weight"], 0.7),
     "/campaigns/1/variations", "sum to 1"),
    ("weight out of range", _set(["campaigns", 1, "variations", 0, "weight"], 1.5),
     "/campaigns/1/variations/0/weight", "maximum"),
    ("some weights missing", lambda c: c["campaigns"][1]["variations"][0].pop("weight"),
     "/campaigns/1/variations", "every variation a weight"),
    ("bad regex", _set(["campaigns", 0, "pages"], {"page.path": {"$regex": "(unclosed"}}),
     "/campaigns/0/pages/page.path/$regex", "invalid regex"),
    ("unknown operator", _set(["segments", "mobile"], {"device.type": {"$like": "mob%"}}),
     "/segments/mobile/device.type/$like", "unknown operator"),
    ("unknown field", _set(["campaigns", 0, "colour"], "red"), "/campaigns/0", "Additional properties"),
    ("bad status", _set(["campaigns", 0, "status"], "running"), "/campaigns/0/status", "is not one of"),
    ("bad campaign key", _set(["campaigns", 0, "key"], "has space"), "/campaigns/0/key", "does not match"),
    ("no variations", _set(["campaigns", 0, "variations"], []), "/campaigns/0/variations", "should be non-empty"),
    ("experiment with one variation", _set(["campaigns", 1, "variations"], [{"key": "only"}]),
     "/campaigns/1/variations", "at least two variations"),
    ("action without selector", _set(["campaigns", 0, "variations", 0, "actions", 0], {"text": "x"}),
     "/campaigns/0/variations/0/actions/0", "needs a 'selector'"),
    ("javascript redirect", _set(["campaigns", 0, "variations", 0, "actions", 0], {"redirect": "javascript:alert(1)"}),
     "/campaigns/0/variations/0/actions/0/redirect", "http(s)"),
    ("javascript href", _set(["campaigns", 0, "variations", 0, "actions", 2, "attr"], {"href": " JavaScript:alert(1)"}),
     "/campaigns/0/variations/0/actions/2/attr/href", "http(s)"),
    ("event handler attribute", _set(["campaigns", 0, "variations", 0, "actions", 2, "attr"], {"onclick": "x()"}),
     "/campaigns/0/variations/0/actions/2/attr", "does not match"),
    ("script in html", _set(["campaigns", 0, "variations", 0, "actions", 0], {"selector": "#x", "html": "<b>hi</b><script>alert(1)</script>"}),
     "/campaigns/0/variations/0/actions/0/html", "<script> is not allowed"),
    ("handler in appended html", _set(["campaigns", 0, "variations", 0, "actions", 0],
                                      {"selector": "#x", "append": "<img src=/x.png ONERROR='pwn()'>"}),
     "/campaigns/0/variations/0/actions/0/append", "onerror= is not allowed"),
    ("javascript link in html", _set(["campaigns", 0, "variations", 0, "actions", 0],
                                     {"selector": "#x", "insertAfter": "<a href='java&#115;cript:pwn()'>x</a>"}),
     "/campaigns/0/variations/0/actions/0/insertAfter", "http(s) URL"),
    ("iframe in html", _set(["campaigns", 0, "variations", 0, "actions", 0], {"selector": "#x", "insertBefore": "<iframe src=/x></iframe>"}),
     "/campaigns/0/variations/0/actions/0/insertBefore", "<iframe> is not allowed"),
    ("holdout too large", _set(["settings", "holdout"], 0.9), "/settings/holdout", "maximum"),
    ("schedule ends before start", _set(["campaigns", 0, "schedule"], {"start": "2026-12-01T00:00:00Z",
                                                                     "end": "2026-11-01T00:00:00Z"}),
     "/campaigns/0/schedule/end", "ends before it starts"),
    ("bad trigger", _set(["campaigns", 0, "trigger"], {"scroll": 150}), "/campaigns/0/trigger", ""),
    # Python's `$` also matches before a final newline: the patterns must not let one through
    ("key ending in a newline", _set(["campaigns", 0, "key"], "hero-newsletter\n"), "/campaigns/0/key", "match"),
    ("date ending in a newline", _set(["campaigns", 0, "schedule"], {"start": "2026-12-01T00:00:00Z\n"}),
     "/campaigns/0/schedule/start", "match"),
]


@pytest.mark.parametrize("name, change, path, message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_invalid_config_is_refused_with_its_path(client, shop, demo_config, name, change, path, message):
    response = client.put(URL, json=_mutate(demo_config, change), headers=shop)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_config"
    assert any(d["path"] == path and message in d["message"] for d in body["details"]), body["details"]
    assert client.get(URL, headers=shop).status_code == 404  # nothing stored


def test_every_problem_is_listed_at_once(client, shop, demo_config):
    config = _mutate(demo_config, _set(["campaigns", 0, "segment"], "nope"))
    config["campaigns"][1]["goals"] = ["nope"]
    config["campaigns"][2]["pages"] = {"page.path": {"$regex": "["}}
    details = client.put(URL, json=config, headers=shop).get_json()["details"]
    assert {d["path"] for d in details} >= {"/campaigns/0/segment", "/campaigns/1/goals/0",
                                            "/campaigns/2/pages/page.path/$regex"}


def test_duplicate_json_keys_are_refused(client, shop):
    body = '{"segments": {}, "segments": {}}'
    response = client.put(URL, data=body, headers={**shop, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "duplicate key 'segments'" in response.get_json()["details"][0]["message"]


def test_not_json_is_400(client, shop):
    response = client.put(URL, data="{nope", headers=shop)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_json"


def test_oversized_config_is_413(client, shop):
    big = json.dumps({"segments": {"s": {"x": "a" * (600 * 1024)}}})
    response = client.put(URL, data=big, headers={**shop, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
