"""tag.js, bundle.json, context, SDK, health: one request carries SDK + bundle + context."""
import gzip
import json
import re

from server.delivery.sdk_asset import REPO_SDK

CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Mobile Safari/537.36")


def _boot(tag_js):
    match = re.search(rb"\n;vitrina\.init\((.*)\);\n$", tag_js, re.S)
    assert match, "tag.js must end with vitrina.init({...})"
    return json.loads(match.group(1))


def test_tag_carries_sdk_bundle_and_context(client, published):
    response = client.get("/v1/sites/shop/tag.js", headers={"User-Agent": CHROME_ANDROID},
                          base_url="https://cdn.example.test")
    assert response.status_code == 200
    assert response.content_type.startswith("application/javascript")
    assert response.data.startswith(REPO_SDK.read_bytes())
    boot = _boot(response.data)
    assert boot["endpoint"] == "https://cdn.example.test/v1/sites/shop"
    assert boot["bundle"]["version"] == 1
    assert boot["context"]["device"] == {"type": "mobile", "os": "android", "browser": "chrome"}
    assert set(boot["context"]["geo"]) == {"country", "region", "city", "continent", "timezone"}
    assert response.headers["Cache-Control"] == "private, max-age=60"
    assert "User-Agent" in response.headers["Vary"]


def test_tag_escapes_markup_in_merchant_strings(client, published, demo_config):
    demo_config["campaigns"][0]["variations"][0]["actions"][0]["text"] = "</script><script>alert(1)</script>\u2028"
    client.put("/api/v1/sites/shop/config", json=demo_config, headers=published)
    client.post("/api/v1/sites/shop/publish", headers=published)
    body = client.get("/v1/sites/shop/tag.js").data
    tail = body[len(REPO_SDK.read_bytes()):]
    assert b"</script" not in tail and "\u2028".encode() not in tail
    assert _boot(body)["bundle"]["campaigns"][0]["variations"][0]["actions"][0]["text"].startswith("</script>")


def test_tag_etag_and_gzip(client, published):
    first = client.get("/v1/sites/shop/tag.js", headers={"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip"
    plain = client.get("/v1/sites/shop/tag.js")
    # one valid gzip member (CRC and size checked) holding exactly the identity body
    assert gzip.decompress(first.data) == plain.data
    assert plain.headers["ETag"] == first.headers["ETag"]
    other_device = client.get("/v1/sites/shop/tag.js", headers={"Accept-Encoding": "gzip", "User-Agent": CHROME_ANDROID})
    assert gzip.decompress(other_device.data) != plain.data
    assert other_device.headers["ETag"] != first.headers["ETag"]
    again = client.get("/v1/sites/shop/tag.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_tag_of_unpublished_site_runs_with_no_bundle(client, shop):
    assert _boot(client.get("/v1/sites/shop/tag.js").data)["bundle"] is None


def test_unknown_site_is_404(client):
    assert client.get("/v1/sites/nope/tag.js").status_code == 404
    assert client.get("/v1/sites/NOT..valid/bundle.json").status_code == 404


def test_bundle_json_etag_304_and_cors(client, published):
    response = client.get("/v1/sites/shop/bundle.json")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "public" in response.headers["Cache-Control"]
    body = response.get_json()
    assert body["bundle"]["version"] == 1 and body["signature"]
    etag = response.headers["ETag"]
    assert client.get("/v1/sites/shop/bundle.json", headers={"If-None-Match": etag}).status_code == 304
    client.post("/api/v1/sites/shop/publish", headers=published)
    changed = client.get("/v1/sites/shop/bundle.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["bundle"]["version"] == 2


def test_context_is_never_cached_and_holds_no_ip(client):
    response = client.get("/v1/context", headers={"User-Agent": CHROME_ANDROID},
                          environ_base={"REMOTE_ADDR": "81.2.69.142"})
    assert response.headers["Cache-Control"] == "no-store"
    assert b"81.2.69.142" not in response.data
    assert response.get_json()["device"]["type"] == "mobile"


def test_sdk_alone_is_long_cached_when_versioned(client):
    plain = client.get("/sdk/vitrina.min.js")
    assert plain.status_code == 200 and plain.data == REPO_SDK.read_bytes()
    digest = plain.headers["ETag"].strip('"')
    versioned = client.get(f"/sdk/vitrina.min.js?v={digest}")
    assert "immutable" in versioned.headers["Cache-Control"]


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "store": "SQLiteStore", "store_ok": True, "spooled": 0, "dead_letter": 0}
